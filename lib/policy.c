/*
 * Policy files (SPEC §6).  Validation is strict on purpose: the policy is
 * an allowlist, so anything the loader does not understand (a misspelt
 * member, a path it cannot parse) could silently widen what is disclosed.
 * Every error names the file, the JSON path and the reason.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "uscc.h"

#define POLICY_FILE_MAX    (4u * 1024 * 1024)
#define ROUTE_MAX          1024
#define ROUTE_SEGS_MAX     32
#define VERSION_MAX        128
#define CODE_MAX           64
#define MASK_KEEP_MAX      1000     /* more is a typo, not a policy */
#define JPATH_MAX          512

struct ca_route_tpl {
    const ca_category *cat;
    const char        *tpl;
    size_t             n_segs;
    size_t             uscc_seg;
    struct {
        const char *s;
        size_t      len;
    } segs[ROUTE_SEGS_MAX];
};

typedef struct {
    const char *file;
    ca_error   *err;
    ca_policy  *p;
} ctx_t;

static int __attribute__((format(printf, 3, 4)))
fail(ctx_t *cx, const char *jp, const char *fmt, ...)
{
    char    reason[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    ca_error_set(cx->err, cx->file, jp, "%s", reason);
    return -1;
}

/* ---- JSON paths for error messages ------------------------------------ */

static int
is_ident(const char *k, size_t len)
{
    if (len == 0 || (k[0] >= '0' && k[0] <= '9')) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* parent.key, or parent["key"] when key is not an identifier. */
static void
jp_key(char *out, const char *parent, const char *key, size_t klen)
{
    size_t n;

    if (is_ident(key, klen)) {
        if (snprintf(out, JPATH_MAX, "%s.%.*s", parent, (int) klen, key)
            >= JPATH_MAX) {
            out[JPATH_MAX - 1] = '\0';
        }
        return;
    }
    n = (size_t) snprintf(out, JPATH_MAX, "%s[\"", parent);
    if (n + 8 >= JPATH_MAX) {
        out[JPATH_MAX - 1] = '\0';
        return;
    }
    for (size_t i = 0; i < klen && n + 8 < JPATH_MAX; i++) {
        unsigned char c = (unsigned char) key[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char) c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t) snprintf(out + n, JPATH_MAX - n, "\\u%04x", c);
        } else {
            out[n++] = (char) c;
        }
    }
    snprintf(out + n, JPATH_MAX - n, "\"]");
}

static void
jp_idx(char *out, const char *parent, size_t i)
{
    /* A truncated path is still a useful prefix; the length is checked
     * only to tell the compiler that truncation was considered. */
    if (snprintf(out, JPATH_MAX, "%s[%zu]", parent, i) >= JPATH_MAX) {
        out[JPATH_MAX - 1] = '\0';
    }
}

/* ---- small validators ------------------------------------------------- */

static int
key_eq(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

/* Refuses members outside the allowed set: a misspelt "raw_alowed" must
 * not quietly fall back to a default. */
static int
only_members(ctx_t *cx, const char *jp, json_t *obj, const char *const *names)
{
    const char *k;
    size_t      klen;
    json_t     *v;
    char        sub[JPATH_MAX];

    json_object_keylen_foreach(obj, k, klen, v) {
        int known = 0;
        for (const char *const *n = names; *n; n++) {
            if (key_eq(k, klen, *n)) {
                known = 1;
                break;
            }
        }
        if (!known) {
            jp_key(sub, jp, k, klen);
            return fail(cx, sub, "unknown member");
        }
    }
    return 0;
}

static char *
dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int
is_code(const char *s, size_t len)
{
    return strlen(s) == len && ca_is_token_chars(s, CODE_MAX);
}

static int
find_str(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A non-empty array of unique codes; with `within`, each must be in it. */
static int
parse_codes(ctx_t *cx, const char *jp, json_t *arr, char ***out, size_t *n,
            char **within, size_t n_within)
{
    char   sub[JPATH_MAX];
    size_t i;
    json_t *v;

    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        return fail(cx, jp, "must be a non-empty array of codes");
    }
    *out = calloc(json_array_size(arr), sizeof(char *));
    if (*out == NULL) {
        return fail(cx, jp, "out of memory");
    }
    json_array_foreach(arr, i, v) {
        jp_idx(sub, jp, i);
        if (!json_is_string(v)
            || !is_code(json_string_value(v), json_string_length(v))) {
            return fail(cx, sub, "must be 1-64 characters of"
                        " [A-Za-z0-9._-]");
        }
        if (find_str(*out, *n, json_string_value(v))) {
            return fail(cx, sub, "\"%s\" is listed twice",
                        json_string_value(v));
        }
        if (within && !find_str(within, n_within, json_string_value(v))) {
            return fail(cx, sub, "\"%s\" is not one of the policy's"
                        " purposes", json_string_value(v));
        }
        (*out)[*n] = strdup(json_string_value(v));
        if ((*out)[*n] == NULL) {
            return fail(cx, sub, "out of memory");
        }
        (*n)++;
    }
    return 0;
}

/* ---- operators, classes, treatments ----------------------------------- */

static const struct {
    const char *name;
    unsigned    op;
} ops[] = {
    {"eq", CA_OP_EQ}, {"ne", CA_OP_NE}, {"gt", CA_OP_GT},
    {"ge", CA_OP_GE}, {"lt", CA_OP_LT}, {"le", CA_OP_LE},
};

unsigned
ca_op_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(name, ops[i].name) == 0) {
            return ops[i].op;
        }
    }
    return 0;
}

const char *
ca_op_name(unsigned op)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (op == ops[i].op) {
            return ops[i].name;
        }
    }
    return "?";
}

const char *
ca_class_name(ca_class cls)
{
    switch (cls) {
    case CA_CLASS_PERSONAL:     return "personal";
    case CA_CLASS_TRADE_SECRET: return "trade_secret";
    default:                    return "public";
    }
}

int
ca_treatment_format(const ca_treatment *t, char *buf, size_t len)
{
    switch (t->kind) {
    case CA_TREAT_KEEP:   return snprintf(buf, len, "keep");
    case CA_TREAT_DROP:   return snprintf(buf, len, "drop");
    case CA_TREAT_HASH:   return snprintf(buf, len, "hash");
    case CA_TREAT_YEAR:   return snprintf(buf, len, "year");
    case CA_TREAT_MASK:   return snprintf(buf, len, "mask:%u,%u", t->a, t->b);
    case CA_TREAT_BUCKET: return snprintf(buf, len, "bucket:%.17g", t->width);
    }
    return snprintf(buf, len, "?");
}

/* Digits only, no sign, bounded: "mask:1,0". */
static int
parse_uint(const char *s, size_t len, unsigned *out)
{
    unsigned v = 0;

    if (len == 0 || len > 4) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned) (s[i] - '0');
    }
    if (v > MASK_KEEP_MAX) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
parse_treatment(ctx_t *cx, const char *jp, json_t *v, ca_treatment *t)
{
    const char *s;
    size_t      len;

    memset(t, 0, sizeof(*t));
    if (!json_is_string(v)) {
        return fail(cx, jp, "treatment must be a string");
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (strcmp(s, "keep") == 0) {
        t->kind = CA_TREAT_KEEP;
    } else if (strcmp(s, "drop") == 0) {
        t->kind = CA_TREAT_DROP;
    } else if (strcmp(s, "hash") == 0) {
        t->kind = CA_TREAT_HASH;
    } else if (strcmp(s, "year") == 0) {
        t->kind = CA_TREAT_YEAR;
    } else if (strncmp(s, "mask:", 5) == 0) {
        const char *comma = memchr(s + 5, ',', len - 5);
        t->kind = CA_TREAT_MASK;
        if (comma == NULL
            || parse_uint(s + 5, (size_t) (comma - s - 5), &t->a) != 0
            || parse_uint(comma + 1, len - (size_t) (comma + 1 - s), &t->b)
               != 0) {
            return fail(cx, jp, "\"%s\": mask needs two non-negative"
                        " integers up to %d, \"mask:L,R\"", s, MASK_KEEP_MAX);
        }
    } else if (strncmp(s, "bucket:", 7) == 0) {
        char *end;
        /* strtod also takes "inf", "nan" and hex: only plain decimals. */
        int   ok = len > 7 && strspn(s + 7, "0123456789.eE+-") == len - 7;
        t->kind = CA_TREAT_BUCKET;
        t->width = ok ? strtod(s + 7, &end) : 0;
        if (!ok || *end != '\0' || !isfinite(t->width) || t->width <= 0) {
            return fail(cx, jp, "\"%s\": bucket needs a positive number,"
                        " \"bucket:N\"", s);
        }
    } else {
        return fail(cx, jp, "unknown treatment \"%s\" (keep, drop,"
                    " mask:L,R, hash, bucket:N, year)", s);
    }
    return 0;
}

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
static int
check_path(const char *s, size_t len, const char **why)
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

static void
node_free(ca_node *n)
{
    for (size_t i = 0; i < n->n_children; i++) {
        node_free(&n->children[i]);
    }
    free(n->children);
    if (n->each) {
        node_free(n->each);
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
static int
tree_add(ctx_t *cx, const char *jp, ca_node *root, const ca_field *f)
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
static void
tree_sort(ca_node *n)
{
    if (n->n_children > 1) {    /* a leaf's children are NULL */
        qsort(n->children, n->n_children, sizeof(ca_node), node_cmp);
    }
    for (size_t i = 0; i < n->n_children; i++) {
        tree_sort(&n->children[i]);
    }
    if (n->each) {
        tree_sort(n->each);
    }
}

/* ---- categories ------------------------------------------------------- */

static int
parse_field(ctx_t *cx, const char *jp, json_t *v, ca_field *f)
{
    static const char *const members[] = {"masked", "raw", "class", NULL};
    char    sub[JPATH_MAX];
    json_t *m;

    if (json_is_string(v)) {
        if (parse_treatment(cx, jp, v, &f->masked) != 0) {
            return -1;
        }
        f->raw = f->masked;
        f->cls = CA_CLASS_PUBLIC;
        return 0;
    }
    if (!json_is_object(v)) {
        return fail(cx, jp, "must be a treatment string or an object"
                    " {\"masked\":..., \"raw\":..., \"class\":...}");
    }
    if (only_members(cx, jp, v, members) != 0) {
        return -1;
    }
    jp_key(sub, jp, "masked", 6);
    if ((m = json_object_get(v, "masked")) == NULL) {
        return fail(cx, sub, "required");
    }
    if (parse_treatment(cx, sub, m, &f->masked) != 0) {
        return -1;
    }
    f->raw = f->masked;
    if ((m = json_object_get(v, "raw")) != NULL) {
        char rjp[JPATH_MAX];
        jp_key(rjp, jp, "raw", 3);
        if (parse_treatment(cx, rjp, m, &f->raw) != 0) {
            return -1;
        }
    }
    f->cls = CA_CLASS_PUBLIC;
    if ((m = json_object_get(v, "class")) != NULL) {
        const char *c = json_string_value(m);
        char        cjp[JPATH_MAX];
        jp_key(cjp, jp, "class", 5);
        if (c && strcmp(c, "personal") == 0) {
            f->cls = CA_CLASS_PERSONAL;
        } else if (c && strcmp(c, "trade_secret") == 0) {
            f->cls = CA_CLASS_TRADE_SECRET;
        } else if (c == NULL || strcmp(c, "public") != 0) {
            return fail(cx, cjp, "class must be public, personal or"
                        " trade_secret");
        }
    }
    if (f->cls != CA_CLASS_PUBLIC && f->masked.kind == CA_TREAT_KEEP) {
        return fail(cx, sub, "%s field kept raw at the masked level",
                    ca_class_name(f->cls));
    }
    return 0;
}

static int
parse_fields(ctx_t *cx, const char *jp, json_t *obj, ca_category *c)
{
    const char *k, *why;
    size_t      klen;
    json_t     *v;
    char        sub[JPATH_MAX];

    if (!json_is_object(obj)) {
        return fail(cx, jp, "must be an object of path: treatment");
    }
    c->fields = calloc(json_object_size(obj) + 1, sizeof(ca_field));
    if (c->fields == NULL) {
        return fail(cx, jp, "out of memory");
    }
    json_object_keylen_foreach(obj, k, klen, v) {
        ca_field *f = &c->fields[c->n_fields];
        jp_key(sub, jp, k, klen);
        if (check_path(k, klen, &why) < 0) {
            return fail(cx, sub, "%s", why);
        }
        if ((f->path = dupn(k, klen)) == NULL) {
            return fail(cx, sub, "out of memory");
        }
        c->n_fields++;
        if (parse_field(cx, sub, v, f) != 0
            || tree_add(cx, sub, &c->tree, f) != 0) {
            return -1;
        }
    }
    tree_sort(&c->tree);
    return 0;
}

static int
parse_verify(ctx_t *cx, const char *jp, json_t *obj, ca_category *c)
{
    const char *k, *why;
    size_t      klen, i;
    json_t     *v, *op;
    char        sub[JPATH_MAX], opjp[JPATH_MAX];

    if (!json_is_object(obj)) {
        return fail(cx, jp, "must be an object of path: [ops]");
    }
    c->verify = calloc(json_object_size(obj) + 1, sizeof(ca_verify_rule));
    if (c->verify == NULL) {
        return fail(cx, jp, "out of memory");
    }
    json_object_keylen_foreach(obj, k, klen, v) {
        ca_verify_rule *r = &c->verify[c->n_verify];
        jp_key(sub, jp, k, klen);
        if (check_path(k, klen, &why) < 0) {
            return fail(cx, sub, "%s", why);
        }
        if ((r->path = dupn(k, klen)) == NULL) {
            return fail(cx, sub, "out of memory");
        }
        c->n_verify++;
        if (!json_is_array(v) || json_array_size(v) == 0) {
            return fail(cx, sub, "must be a non-empty array of ops (eq ne"
                        " gt ge lt le)");
        }
        json_array_foreach(v, i, op) {
            unsigned o = json_is_string(op)
                         ? ca_op_from_name(json_string_value(op)) : 0;
            jp_idx(opjp, sub, i);
            if (o == 0) {
                return fail(cx, opjp, "unknown op (eq ne gt ge lt le)");
            }
            if (r->ops & o) {
                return fail(cx, opjp, "\"%s\" is listed twice",
                            ca_op_name(o));
            }
            r->ops |= o;
        }
    }
    return 0;
}

/* A route template: /literal/.../{uscc}/..., checked segment by segment. */
static int
check_route(ctx_t *cx, const char *jp, const char *s, size_t len)
{
    size_t i = 1, n_uscc = 0, n_segs = 0;

    if (len == 0 || s[0] != '/' || len > ROUTE_MAX || strlen(s) != len) {
        return fail(cx, jp, "a route template starts with '/' and is at"
                    " most %d characters", ROUTE_MAX);
    }
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != '/') {
            unsigned char ch = (unsigned char) s[i];
            if (ch == '?' || ch == '#') {
                return fail(cx, jp, "a route template has no query string"
                            " or fragment");
            }
            if (ch <= 0x20 || ch == 0x7f || ch == '%') {
                return fail(cx, jp, "a route template is written decoded,"
                            " without spaces, control characters or"
                            " percent escapes");
            }
            i++;
        }
        if (i == start) {
            return fail(cx, jp, "empty path segment (a doubled or trailing"
                        " '/')");
        }
        if (++n_segs > ROUTE_SEGS_MAX) {
            return fail(cx, jp, "more than %d segments", ROUTE_SEGS_MAX);
        }
        if (i - start == 6 && memcmp(s + start, "{uscc}", 6) == 0) {
            n_uscc++;
        } else if (memchr(s + start, '{', i - start)
                   || memchr(s + start, '}', i - start)) {
            return fail(cx, jp, "the only placeholder is a whole segment"
                        " {uscc}");
        } else if ((i - start == 1 && s[start] == '.')
                   || (i - start == 2 && s[start] == '.'
                       && s[start + 1] == '.')) {
            return fail(cx, jp, "'.' and '..' segments never match a"
                        " normalised request path");
        }
        i++;
    }
    if (n_uscc != 1) {
        return fail(cx, jp, "a route template has exactly one {uscc}"
                    " segment");
    }
    return 0;
}

static int
parse_category(ctx_t *cx, const char *jp, const char *name, json_t *obj,
               ca_category *c)
{
    static const char *const members[] = {
        "routes", "purposes", "raw_allowed", "fields", "verify",
        "verify_budget", NULL
    };
    char    sub[JPATH_MAX], rjp[JPATH_MAX];
    json_t *v, *r;
    size_t  i;

    if ((c->name = strdup(name)) == NULL) {
        return fail(cx, jp, "out of memory");
    }
    if (!json_is_object(obj)) {
        return fail(cx, jp, "a category must be an object");
    }
    if (only_members(cx, jp, obj, members) != 0) {
        return -1;
    }

    jp_key(sub, jp, "routes", 6);
    v = json_object_get(obj, "routes");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return fail(cx, sub, "must be a non-empty array of route templates");
    }
    c->routes = calloc(json_array_size(v), sizeof(char *));
    if (c->routes == NULL) {
        return fail(cx, sub, "out of memory");
    }
    json_array_foreach(v, i, r) {
        jp_idx(rjp, sub, i);
        if (!json_is_string(r)) {
            return fail(cx, rjp, "must be a string");
        }
        if (check_route(cx, rjp, json_string_value(r), json_string_length(r))
            != 0) {
            return -1;
        }
        if ((c->routes[i] = strdup(json_string_value(r))) == NULL) {
            return fail(cx, rjp, "out of memory");
        }
        c->n_routes++;
    }

    jp_key(sub, jp, "purposes", 8);
    if (parse_codes(cx, sub, json_object_get(obj, "purposes"), &c->purposes,
                    &c->n_purposes, cx->p->purposes, cx->p->n_purposes)
        != 0) {
        return -1;
    }

    if ((v = json_object_get(obj, "raw_allowed")) != NULL) {
        if (!json_is_boolean(v)) {
            jp_key(sub, jp, "raw_allowed", 11);
            return fail(cx, sub, "must be true or false");
        }
        c->raw_allowed = json_is_true(v);
    }

    jp_key(sub, jp, "fields", 6);
    if ((v = json_object_get(obj, "fields")) == NULL) {
        return fail(cx, sub, "required (an empty object discloses nothing)");
    }
    if (parse_fields(cx, sub, v, c) != 0) {
        return -1;
    }

    if ((v = json_object_get(obj, "verify")) != NULL) {
        jp_key(sub, jp, "verify", 6);
        if (parse_verify(cx, sub, v, c) != 0) {
            return -1;
        }
    }

    c->verify_budget = CA_VERIFY_BUDGET_DEFAULT;
    if ((v = json_object_get(obj, "verify_budget")) != NULL) {
        jp_key(sub, jp, "verify_budget", 13);
        if (!json_is_integer(v) || json_integer_value(v) < 1
            || json_integer_value(v) > CA_VERIFY_BUDGET_MAX) {
            return fail(cx, sub, "must be an integer from 1 to %d (checks"
                        " per verifiable field per consent)",
                        CA_VERIFY_BUDGET_MAX);
        }
        c->verify_budget = (unsigned) json_integer_value(v);
    }
    return 0;
}

/* ---- routes ----------------------------------------------------------- */

static void
route_compile(struct ca_route_tpl *t, const ca_category *c, const char *s)
{
    size_t i = 1, len = strlen(s);

    t->cat = c;
    t->tpl = s;
    t->n_segs = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != '/') {
            i++;
        }
        t->segs[t->n_segs].s = s + start;
        t->segs[t->n_segs].len = i - start;
        if (i - start == 6 && memcmp(s + start, "{uscc}", 6) == 0) {
            t->uscc_seg = t->n_segs;
        }
        t->n_segs++;
        i++;
    }
}

/*
 * Two templates overlap when some path matches both: same length and at
 * every segment equal, or {uscc} facing a literal that is itself a valid
 * USCC.  Refusing that makes every request path belong to one category.
 */
static int
routes_overlap(const struct ca_route_tpl *a, const struct ca_route_tpl *b)
{
    if (a->n_segs != b->n_segs) {
        return 0;
    }
    for (size_t i = 0; i < a->n_segs; i++) {
        int au = i == a->uscc_seg, bu = i == b->uscc_seg;
        if (au && bu) {
            continue;
        }
        if (au || bu) {
            const char *lit = au ? b->segs[i].s : a->segs[i].s;
            size_t      ll = au ? b->segs[i].len : a->segs[i].len;
            if (!ca_uscc_valid(lit, ll)) {
                return 0;
            }
            continue;
        }
        if (a->segs[i].len != b->segs[i].len
            || memcmp(a->segs[i].s, b->segs[i].s, a->segs[i].len) != 0) {
            return 0;
        }
    }
    return 1;
}

static int
build_routes(ctx_t *cx)
{
    ca_policy *p = cx->p;
    size_t     n = 0, k = 0;
    char       jp[JPATH_MAX], cjp[JPATH_MAX], rjp[JPATH_MAX];

    for (size_t i = 0; i < p->n_categories; i++) {
        n += p->categories[i].n_routes;
    }
    p->route_tpls = calloc(n, sizeof(struct ca_route_tpl));
    if (p->route_tpls == NULL) {
        return fail(cx, "$.categories", "out of memory");
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        ca_category *c = &p->categories[i];
        for (size_t j = 0; j < c->n_routes; j++, k++) {
            struct ca_route_tpl *t = &p->route_tpls[k];
            route_compile(t, c, c->routes[j]);
            p->n_route_tpls = k + 1;
            for (size_t m = 0; m < k; m++) {
                const struct ca_route_tpl *o = &p->route_tpls[m];
                if (!routes_overlap(t, o)) {
                    continue;
                }
                jp_key(cjp, "$.categories", c->name, strlen(c->name));
                jp_key(jp, cjp, "routes", 6);
                jp_idx(rjp, jp, j);
                if (strcmp(t->tpl, o->tpl) == 0) {
                    return fail(cx, rjp, "route \"%s\" is also listed in"
                                " category \"%s\"", t->tpl, o->cat->name);
                }
                return fail(cx, rjp, "route \"%s\" overlaps \"%s\" of"
                            " category \"%s\"", t->tpl, o->tpl,
                            o->cat->name);
            }
        }
    }
    return 0;
}

ca_route_result
ca_policy_match_route(const ca_policy *p, const char *path, size_t len,
                      const ca_category **cat, char uscc[19])
{
    ca_route_result best = CA_ROUTE_NONE;

    for (size_t r = 0; r < p->n_route_tpls; r++) {
        const struct ca_route_tpl *t = &p->route_tpls[r];
        const char *us = NULL;
        size_t      pos = 0, s;

        for (s = 0; s < t->n_segs; s++) {
            size_t start;
            if (pos >= len || path[pos] != '/') {
                break;
            }
            start = ++pos;
            while (pos < len && path[pos] != '/') {
                pos++;
            }
            if (s == t->uscc_seg) {
                if (pos == start) {
                    break;
                }
                us = path + start;
                continue;
            }
            if (pos - start != t->segs[s].len
                || memcmp(path + start, t->segs[s].s, t->segs[s].len) != 0) {
                break;
            }
        }
        if (s < t->n_segs || pos != len) {
            continue;
        }
        /* The {uscc} segment ends at the next '/'; a bad code here is
         * remembered, but a valid match elsewhere still wins. */
        {
            const char *end = memchr(us, '/', (size_t) (path + len - us));
            size_t      ulen = end ? (size_t) (end - us)
                                   : (size_t) (path + len - us);
            if (cat) {
                *cat = t->cat;
            }
            if (!ca_uscc_valid(us, ulen)) {
                best = CA_ROUTE_BAD_USCC;
                continue;
            }
            memcpy(uscc, us, CA_USCC_LEN);
            uscc[CA_USCC_LEN] = '\0';
            return CA_ROUTE_MATCH;
        }
    }
    return best;
}

/* ---- the policy ------------------------------------------------------- */

static ca_alg
alg_from_name(const char *s)
{
    /* keys.c has ca_alg_from_name; the policy keeps its own table so that
     * it does not depend on the key loader. */
    static const struct {
        const char *name;
        ca_alg      alg;
    } algs[] = {
        {"ES256", CA_ALG_ES256}, {"RS256", CA_ALG_RS256},
        {"PS256", CA_ALG_PS256}, {"EdDSA", CA_ALG_EDDSA},
        {"SM2", CA_ALG_SM2},
    };
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        if (strcmp(s, algs[i].name) == 0) {
            return algs[i].alg;
        }
    }
    return CA_ALG_NONE;
}

static int
parse_token(ctx_t *cx, json_t *obj)
{
    static const char *const members[] = {
        "algs", "max_lifetime", "leeway", "require_cnf", NULL
    };
    ca_token_rules *t = &cx->p->token;
    json_t         *v, *a;
    size_t          i;
    char            jp[JPATH_MAX];

    if (!json_is_object(obj)) {
        return fail(cx, "$.token", "required object {algs, max_lifetime,"
                    " leeway, require_cnf}");
    }
    if (only_members(cx, "$.token", obj, members) != 0) {
        return -1;
    }
    v = json_object_get(obj, "algs");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        return fail(cx, "$.token.algs", "must be a non-empty array of"
                    " ES256 RS256 PS256 EdDSA SM2");
    }
    json_array_foreach(v, i, a) {
        const char *name = json_string_value(a);
        ca_alg      alg;
        jp_idx(jp, "$.token.algs", i);
        if (name == NULL) {
            return fail(cx, jp, "must be a string");
        }
        if (strcmp(name, "none") == 0 || strncmp(name, "HS", 2) == 0) {
            return fail(cx, jp, "\"%s\" is never allowed (RFC 8725)", name);
        }
        if ((alg = alg_from_name(name)) == CA_ALG_NONE) {
            return fail(cx, jp, "unknown algorithm \"%s\" (ES256 RS256"
                        " PS256 EdDSA SM2)", name);
        }
        if (t->algs & alg) {
            return fail(cx, jp, "\"%s\" is listed twice", name);
        }
        t->algs |= alg;
    }
    v = json_object_get(obj, "max_lifetime");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        return fail(cx, "$.token.max_lifetime", "required positive integer"
                    " (seconds)");
    }
    t->max_lifetime = json_integer_value(v);
    if ((v = json_object_get(obj, "leeway")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0
            || json_integer_value(v) > 60) {
            return fail(cx, "$.token.leeway", "must be an integer from 0"
                        " to 60 (seconds)");
        }
        t->leeway = json_integer_value(v);
    }
    if ((v = json_object_get(obj, "require_cnf")) != NULL) {
        if (!json_is_boolean(v)) {
            return fail(cx, "$.token.require_cnf", "must be true or false");
        }
        t->require_cnf = json_is_true(v);
    }
    return 0;
}

static int
parse_root(ctx_t *cx, json_t *root)
{
    static const char *const members[] = {
        "version", "purposes", "token", "categories", NULL
    };
    ca_policy  *p = cx->p;
    json_t     *v;
    const char *k;
    size_t      klen;
    char        jp[JPATH_MAX];

    if (!json_is_object(root)) {
        return fail(cx, "$", "a policy is a JSON object");
    }
    if (only_members(cx, "$", root, members) != 0) {
        return -1;
    }

    v = json_object_get(root, "version");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > VERSION_MAX) {
        return fail(cx, "$.version", "required non-empty string of at most"
                    " %d characters", VERSION_MAX);
    }
    for (const char *s = json_string_value(v); *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return fail(cx, "$.version", "control characters are not"
                        " allowed");
        }
    }
    if (strlen(json_string_value(v)) != json_string_length(v)
        || (p->version = strdup(json_string_value(v))) == NULL) {
        return fail(cx, "$.version", "invalid string");
    }

    if (parse_codes(cx, "$.purposes", json_object_get(root, "purposes"),
                    &p->purposes, &p->n_purposes, NULL, 0) != 0) {
        return -1;
    }
    if (parse_token(cx, json_object_get(root, "token")) != 0) {
        return -1;
    }

    v = json_object_get(root, "categories");
    if (!json_is_object(v) || json_object_size(v) == 0) {
        return fail(cx, "$.categories", "must be a non-empty object of"
                    " categories");
    }
    p->categories = calloc(json_object_size(v), sizeof(ca_category));
    if (p->categories == NULL) {
        return fail(cx, "$.categories", "out of memory");
    }
    json_object_keylen_foreach(v, k, klen, root) {
        jp_key(jp, "$.categories", k, klen);
        if (!is_code(k, klen)) {
            return fail(cx, jp, "a category name is 1-64 characters of"
                        " [A-Za-z0-9._-]");
        }
        p->n_categories++;
        if (parse_category(cx, jp, k, root,
                           &p->categories[p->n_categories - 1]) != 0) {
            return -1;
        }
    }
    return build_routes(cx);
}

ca_policy *
ca_policy_parse(const char *text, size_t len, const char *name,
                ca_error *err)
{
    ctx_t         cx = {name, err, NULL};
    json_error_t  je;
    json_t       *root;
    unsigned char md[32];

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        ca_error_set(err, name, NULL, "invalid JSON at line %d column %d:"
                     " %s", je.line, je.column, je.text);
        return NULL;
    }
    cx.p = calloc(1, sizeof(ca_policy));
    if (cx.p == NULL || (cx.p->file = strdup(name ? name : "-")) == NULL) {
        ca_error_set(err, name, NULL, "out of memory");
        free(cx.p);
        json_decref(root);
        return NULL;
    }
    ca_sha256(text, len, md);
    ca_hex(md, 32, cx.p->sha256);
    if (parse_root(&cx, root) != 0) {
        ca_policy_free(cx.p);
        cx.p = NULL;
    }
    json_decref(root);
    return cx.p;
}

ca_policy *
ca_policy_load(const char *file, ca_error *err)
{
    ca_policy *p;
    size_t     len;
    char      *text = ca_read_file(file, POLICY_FILE_MAX, &len, err);

    if (text == NULL) {
        return NULL;
    }
    p = ca_policy_parse(text, len, file, err);
    free(text);
    return p;
}

static void
free_strs(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i]);
    }
    free(s);
}

void
ca_policy_free(ca_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        ca_category *c = &p->categories[i];
        free(c->name);
        free_strs(c->routes, c->n_routes);
        free_strs(c->purposes, c->n_purposes);
        for (size_t j = 0; j < c->n_fields; j++) {
            free(c->fields[j].path);
        }
        free(c->fields);
        node_free(&c->tree);
        for (size_t j = 0; j < c->n_verify; j++) {
            free(c->verify[j].path);
        }
        free(c->verify);
    }
    free(p->categories);
    free(p->route_tpls);
    free_strs(p->purposes, p->n_purposes);
    free(p->version);
    free(p->file);
    free(p);
}

int
ca_policy_knows_purpose(const ca_policy *p, const char *purpose)
{
    return purpose != NULL && find_str(p->purposes, p->n_purposes, purpose);
}

int
ca_category_allows_purpose(const ca_category *c, const char *purpose)
{
    return purpose != NULL && find_str(c->purposes, c->n_purposes, purpose);
}

const ca_category *
ca_policy_find_category(const ca_policy *p, const char *name)
{
    for (size_t i = 0; i < p->n_categories; i++) {
        if (strcmp(p->categories[i].name, name) == 0) {
            return &p->categories[i];
        }
    }
    return NULL;
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

const ca_verify_rule *
ca_category_verify_rule(const ca_category *c, const char *norm_path)
{
    for (size_t i = 0; i < c->n_verify; i++) {
        if (strcmp(c->verify[i].path, norm_path) == 0) {
            return &c->verify[i];
        }
    }
    return NULL;
}
