/*
 * Policy files (contract §6).  Validation is strict on purpose: the policy is
 * an allowlist, so anything the loader does not understand (a misspelt
 * member, a path it cannot parse) could silently widen what is disclosed.
 * Every error names the file, the JSON path and the reason.
 *
 * This file reads the root and frees a policy, then answers lookups on a
 * loaded one; the validators every part shares are policyparse.c's, the
 * categories policycat.c's, names policynames.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

#define POLICY_FILE_MAX    (4u * 1024 * 1024)
#define VERSION_MAX        128

/* ---- the policy ------------------------------------------------------- */

static ca_alg
alg_from_name(const char *s)
{
    /* jwk.c has ca_alg_from_name; the policy keeps its own table so that
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
    if (!ca_pol_printable_text(v, 0)) {
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
        if (!ca_pol_is_code(k, klen)) {
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
    return purpose != NULL && ca_pol_find_str(p->purposes, p->n_purposes, purpose);
}

int
ca_category_allows_purpose(const ca_category *c, const char *purpose)
{
    return purpose != NULL && ca_pol_find_str(c->purposes, c->n_purposes, purpose);
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

const char *
ca_policy_purpose_name(const ca_policy *p, const char *code, int zh)
{
    for (size_t i = 0; p != NULL && code != NULL && i < p->n_purposes; i++) {
        if (strcmp(p->purposes[i], code) == 0) {
            char **names = zh ? p->purpose_name_zh : p->purpose_name;

            return names != NULL ? names[i] : NULL;
        }
    }
    return NULL;
}

const char *
ca_policy_category_name(const ca_policy *p, const char *code, int zh)
{
    const ca_category *c;

    if (p == NULL || code == NULL
        || (c = ca_policy_find_category(p, code)) == NULL)
    {
        return NULL;
    }
    return zh ? c->label_zh : c->label;
}
