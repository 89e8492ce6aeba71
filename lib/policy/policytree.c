/*
 * A category's allowlist tree: the field paths of a policy, one node per
 * member name or "[]", which the filter walks beside the response.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

/* ---- paths ------------------------------------------------------------ */

static int
is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/*
 * Checks the policy path grammar: name{[]}(.name{[]})*.  Returns the
 * number of components (names and "[]"s), or -1 with *why set.
 */
int
ca_pol_check_path(const char *s, size_t len, const char **why)
{
    size_t i = 0;
    int    comps = 0;

    if (len == 0 || len > CA_PATH_MAX || strlen(s) != len) {
        *why = "path must be 1-256 characters";
        return -1;
    }
    for (;;) {
        size_t start = i;
        while (i < len && is_name_char(s[i])) {
            i++;
        }
        if (i == start) {
            *why = "every path segment needs a member name of"
                   " [A-Za-z0-9_-]";
            return -1;
        }
        comps++;
        while (i < len && s[i] == '[') {
            if (i + 1 < len && s[i + 1] == ']') {
                i += 2;
                comps++;
                continue;
            }
            *why = memchr(s + i, '=', len - i)
                   ? "selectors [k=v] belong in verification checks; the"
                     " policy writes [] for every element"
                   : "'[' must be followed by ']'";
            return -1;
        }
        if (i == len) {
            break;
        }
        if (s[i] != '.') {
            *why = "unexpected character; paths are names of"
                   " [A-Za-z0-9_-] joined by '.', each optionally"
                   " followed by []";
            return -1;
        }
        i++;
    }
    if (comps > CA_PATH_DEPTH_MAX) {
        *why = "path is deeper than 32 components";
        return -1;
    }
    return comps;
}

/* ---- the allowlist tree ----------------------------------------------- */

void
ca_pol_node_free(ca_node *n)
{
    for (size_t i = 0; i < n->n_children; i++) {
        ca_pol_node_free(&n->children[i]);
    }
    free(n->children);
    if (n->each) {
        ca_pol_node_free(n->each);
        free(n->each);
    }
    free(n->key);
}

static const ca_field *
subtree_field(const ca_node *n)
{
    const ca_field *f;

    if (n->field) {
        return n->field;
    }
    for (size_t i = 0; i < n->n_children; i++) {
        if ((f = subtree_field(&n->children[i])) != NULL) {
            return f;
        }
    }
    return n->each ? subtree_field(n->each) : NULL;
}

static ca_node *
node_child(ca_node *n, const char *key, size_t klen)
{
    ca_node *c;

    for (size_t i = 0; i < n->n_children; i++) {
        if (key_eq(key, klen, n->children[i].key)) {
            return &n->children[i];
        }
    }
    c = realloc(n->children, (n->n_children + 1) * sizeof(ca_node));
    if (c == NULL) {
        return NULL;
    }
    n->children = c;
    c = &n->children[n->n_children];
    memset(c, 0, sizeof(*c));
    c->key = dupn(key, klen);
    if (c->key == NULL) {
        return NULL;
    }
    n->n_children++;
    return c;
}

static ca_node *
node_each(ca_node *n)
{
    if (n->each == NULL) {
        n->each = calloc(1, sizeof(ca_node));
    }
    return n->each;
}

/*
 * Adds a (grammar-checked) field path to the tree.  A path that ends where
 * another passes through is ambiguous: "a" would keep a's whole subtree
 * while "a.b" suggests only b, so the officer must say which.
 */
int
ca_pol_tree_add(ctx_t *cx, const char *jp, ca_node *root, const ca_field *f)
{
    const char *s = f->path;
    ca_node    *n = root;
    size_t      i = 0, len = strlen(s);

    while (i < len) {
        size_t start = i;
        while (i < len && is_name_char(s[i])) {
            i++;
        }
        if (n->field) {
            goto ambiguous_prefix;
        }
        if ((n = node_child(n, s + start, i - start)) == NULL) {
            return fail(cx, jp, "out of memory");
        }
        while (i < len && s[i] == '[') {
            if (n->field) {
                goto ambiguous_prefix;
            }
            if ((n = node_each(n)) == NULL) {
                return fail(cx, jp, "out of memory");
            }
            i += 2;
        }
        if (i < len) {
            i++;                                    /* '.' */
        }
    }
    if (n->field) {
        return fail(cx, jp, "the same path as \"%s\"", n->field->path);
    }
    if (n->n_children || n->each) {
        return fail(cx, jp, "ambiguous: \"%s\" is inside this path; a path"
                    " naming an object keeps or drops its whole subtree, so"
                    " list either the object or its members",
                    subtree_field(n)->path);
    }
    n->field = f;
    return 0;

ambiguous_prefix:
    return fail(cx, jp, "ambiguous: \"%s\" already names an enclosing value"
                " and keeps or drops its whole subtree", n->field->path);
}

static int
node_cmp(const void *a, const void *b)
{
    return strcmp(((const ca_node *) a)->key, ((const ca_node *) b)->key);
}

/* Sorted children let the filter find a member by binary search. */
void
ca_pol_tree_sort(ca_node *n)
{
    if (n->n_children > 1) {    /* a leaf's children are NULL */
        qsort(n->children, n->n_children, sizeof(ca_node), node_cmp);
    }
    for (size_t i = 0; i < n->n_children; i++) {
        ca_pol_tree_sort(&n->children[i]);
    }
    if (n->each) {
        ca_pol_tree_sort(n->each);
    }
}

const ca_field *
ca_category_field_at(const ca_category *c, const char *s)
{
    const ca_node *n = &c->tree;
    size_t         i = 0, len = strlen(s);

    while (i < len) {
        size_t         start = i;
        const ca_node *next = NULL;

        if (n->field) {
            return n->field;
        }
        while (i < len && is_name_char(s[i])) {
            i++;
        }
        for (size_t k = 0; k < n->n_children; k++) {
            if (key_eq(s + start, i - start, n->children[k].key)) {
                next = &n->children[k];
                break;
            }
        }
        if ((n = next) == NULL) {
            return NULL;
        }
        while (i + 1 < len && s[i] == '[' && s[i + 1] == ']') {
            if (n->field) {
                return n->field;
            }
            if ((n = n->each) == NULL) {
                return NULL;
            }
            i += 2;
        }
        if (i < len) {
            if (s[i] != '.') {
                return NULL;
            }
            i++;
        }
    }
    return n->field;
}

