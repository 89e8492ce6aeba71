/*
 * Policy files (SPEC §6).  Validation is strict on purpose: the policy is
 * an allowlist, so anything the loader does not understand (a misspelt
 * member, a path it cannot parse) could silently widen what is disclosed.
 * Every error names the file, the JSON path and the reason.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

#define POLICY_FILE_MAX    (4u * 1024 * 1024)
#define VERSION_MAX        128
#define CODE_MAX           64

/* ---- small validators ------------------------------------------------- */

#define NAME_GUESS_MAX 64

/*
 * Edit distance between a and b, counting a swap of two neighbours as one
 * edit ("pruposes"); only for short names.
 */
static size_t
edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    unsigned char d[NAME_GUESS_MAX + 1][NAME_GUESS_MAX + 1];

    for (size_t i = 0; i <= la; i++) {
        d[i][0] = (unsigned char) i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = (unsigned char) j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t v = (size_t) d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = (size_t) d[i - 1][j] + 1;
            size_t ins = (size_t) d[i][j - 1] + 1;
            if (del < v) {
                v = del;
            }
            if (ins < v) {
                v = ins;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2]
                && a[i - 2] == b[j - 1] && (size_t) d[i - 2][j - 2] + 1 < v) {
                v = (size_t) d[i - 2][j - 2] + 1;
            }
            d[i][j] = (unsigned char) v;
        }
    }
    return d[la][lb];
}

/* The known name a misspelt key most likely meant, or NULL: one edit, two
 * for names of six characters or more. */
static const char *
name_guess(const char *k, size_t klen, const char *const *names)
{
    const char *best = NULL;
    size_t      best_d = (size_t) -1;

    if (klen > NAME_GUESS_MAX) {
        return NULL;
    }
    for (const char *const *n = names; *n; n++) {
        size_t nl = strlen(*n), d, max;
        if (nl > NAME_GUESS_MAX) {
            continue;
        }
        d = edit_distance(k, klen, *n, nl);
        max = nl >= 6 ? 2 : 1;
        if (d <= max && d < best_d) {
            best = *n;
            best_d = d;
        }
    }
    return best;
}

/* Refuses members outside the allowed set: a misspelt "raw_alowed" must
 * not quietly fall back to a default.  The error names the member that
 * was probably meant. */
int
ca_pol_only_members(ctx_t *cx, const char *jp, json_t *obj,
                    const char *const *names)
{
    const char *k, *guess;
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
            if ((guess = name_guess(k, klen, names)) != NULL) {
                return fail(cx, sub, "unknown member (did you mean \"%s\"?)",
                            guess);
            }
            return fail(cx, sub, "unknown member");
        }
    }
    return 0;
}

/*
 * A text the tools print: no control character but newline and tab (a
 * terminal would act on an escape sequence), no NUL inside.
 */
static int
printable_text(json_t *v, int newlines)
{
    const char *s = json_string_value(v);

    if (strlen(s) != json_string_length(v)) {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if ((c < 0x20 && !(newlines && (c == '\n' || c == '\t')))
            || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* "description": optional; the officer's note, which the gateway ignores. */
int
ca_pol_parse_description(ctx_t *cx, const char *jp, json_t *v, char **out)
{
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > CA_DESCRIPTION_MAX) {
        return fail(cx, jp, "must be a string of at most %d bytes",
                    CA_DESCRIPTION_MAX);
    }
    if (!printable_text(v, 1)) {
        return fail(cx, jp, "control characters other than newline and tab"
                    " are not allowed");
    }
    if ((*out = strdup(json_string_value(v))) == NULL) {
        return fail(cx, jp, "out of memory");
    }
    return 0;
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
int
ca_pol_parse_codes(ctx_t *cx, const char *jp, json_t *arr, char ***out,
                   size_t *n, char **within, size_t n_within)
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
    if (ca_pol_only_members(cx, "$.token", obj, members) != 0) {
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
        "version", "purposes", "token", "categories", "description", NULL
    };
    ca_policy  *p = cx->p;
    json_t     *v;
    const char *k;
    size_t      klen;
    char        jp[JPATH_MAX];

    if (!json_is_object(root)) {
        return fail(cx, "$", "a policy is a JSON object");
    }
    if (ca_pol_only_members(cx, "$", root, members) != 0) {
        return -1;
    }

    v = json_object_get(root, "version");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > VERSION_MAX) {
        return fail(cx, "$.version", "required non-empty string of at most"
                    " %d characters", VERSION_MAX);
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return fail(cx, "$.version", "invalid string");
    }
    if (!printable_text(v, 0)) {
        return fail(cx, "$.version", "control characters are not"
                    " allowed");
    }
    if ((p->version = strdup(json_string_value(v))) == NULL) {
        return fail(cx, "$.version", "out of memory");
    }
    if (ca_pol_parse_description(cx, "$.description",
                                 json_object_get(root, "description"),
                                 &p->description) != 0) {
        return -1;
    }

    if (ca_pol_parse_purposes(cx, json_object_get(root, "purposes")) != 0) {
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
        if (ca_pol_parse_category(cx, jp, k, root,
                           &p->categories[p->n_categories - 1]) != 0) {
            return -1;
        }
    }
    return ca_pol_build_routes(cx);
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
    ca_pol_free_names(p);
    for (size_t i = 0; i < p->n_categories; i++) {
        ca_category *c = &p->categories[i];
        free(c->name);
        free_strs(c->routes, c->n_routes);
        free_strs(c->purposes, c->n_purposes);
        free(c->description);
        for (size_t j = 0; j < c->n_fields; j++) {
            ca_field *f = &c->fields[j];
            free(f->path);
            if (f->raw.text != f->masked.text) {
                free(f->raw.text);       /* raw defaults to masked's copy */
            }
            free(f->masked.text);
        }
        free(c->fields);
        ca_pol_node_free(&c->tree);
        for (size_t j = 0; j < c->n_verify; j++) {
            free(c->verify[j].path);
        }
        free(c->verify);
    }
    free(p->categories);
    free(p->route_tpls);
    free_strs(p->purposes, p->n_purposes);
    free(p->version);
    free(p->description);
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
