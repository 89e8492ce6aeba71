/*
 * A policy's categories (contract §6): routes, purposes, fields and their
 * treatments, verification rules.  The operator, class and treatment
 * names are here too, with the parser that reads them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

#define MASK_KEEP_MAX      1000     /* more is a typo, not a policy */

/* ---- operators, classes, treatments ----------------------------------- */

static const struct {
    const char *name;
    unsigned    op;
} ops_table[] = {
    {"eq", CA_OP_EQ}, {"ne", CA_OP_NE}, {"gt", CA_OP_GT},
    {"ge", CA_OP_GE}, {"lt", CA_OP_LT}, {"le", CA_OP_LE},
};

unsigned
ca_op_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++) {
        if (strcmp(name, ops_table[i].name) == 0) {
            return ops_table[i].op;
        }
    }
    return 0;
}

const char *
ca_op_name(unsigned op)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++) {
        if (op == ops_table[i].op) {
            return ops_table[i].name;
        }
    }
    return "?";
}

void
ca_ops_format(unsigned ops, char *buf, size_t len)
{
    size_t n = 0;

    if (len > 0) {
        buf[0] = '\0';
    }
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++) {
        if ((ops & ops_table[i].op) && n < len) {
            n += (size_t) snprintf(buf + n, len - n, "%s%s", n ? " " : "",
                                   ops_table[i].name);
        }
    }
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

/* The shortest %g text that reads back as w: 0.05, not
 * 0.050000000000000003. */
static int
format_width(double w, char *buf, size_t len)
{
    char s[32];

    if (w == floor(w) && w < 1e15) {
        return snprintf(buf, len, "bucket:%.0f", w);
    }
    for (int prec = 1; prec < 17; prec++) {
        snprintf(s, sizeof(s), "%.*g", prec, w);
        if (strtod(s, NULL) == w) {
            break;
        }
    }
    if (strtod(s, NULL) != w) {
        snprintf(s, sizeof(s), "%.17g", w);
    }
    return snprintf(buf, len, "bucket:%s", s);
}

int
ca_treatment_format(const ca_treatment *t, char *buf, size_t len)
{
    if (t->text != NULL) {
        return snprintf(buf, len, "%s", t->text);
    }
    switch (t->kind) {
    case CA_TREAT_KEEP:   return snprintf(buf, len, "keep");
    case CA_TREAT_DROP:   return snprintf(buf, len, "drop");
    case CA_TREAT_HASH:   return snprintf(buf, len, "hash");
    case CA_TREAT_YEAR:   return snprintf(buf, len, "year");
    case CA_TREAT_MASK:   return snprintf(buf, len, "mask:%u,%u", t->a, t->b);
    case CA_TREAT_BUCKET: return format_width(t->width, buf, len);
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
    if ((t->text = dupn(s, len)) == NULL) {
        return fail(cx, jp, "out of memory");
    }
    return 0;
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
    if (ca_pol_only_members(cx, jp, v, members) != 0) {
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
        if (ca_pol_check_path(k, klen, &why) < 0) {
            return fail(cx, sub, "%s", why);
        }
        if ((f->path = dupn(k, klen)) == NULL) {
            return fail(cx, sub, "out of memory");
        }
        c->n_fields++;
        if (parse_field(cx, sub, v, f) != 0
            || ca_pol_tree_add(cx, sub, &c->tree, f) != 0) {
            return -1;
        }
    }
    ca_pol_tree_sort(&c->tree);
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
        if (ca_pol_check_path(k, klen, &why) < 0) {
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

int
ca_pol_parse_category(ctx_t *cx, const char *jp, const char *name,
                      json_t *obj, ca_category *c)
{
    static const char *const members[] = {
        "routes", "purposes", "raw_allowed", "fields", "verify",
        "verify_budget", "description", "name", "name_zh", NULL
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
    if (ca_pol_only_members(cx, jp, obj, members) != 0
        || ca_pol_parse_name(cx, jp, obj, "name", &c->label) != 0
        || ca_pol_parse_name(cx, jp, obj, "name_zh", &c->label_zh) != 0) {
        return -1;
    }

    jp_key(sub, jp, "description", 11);
    if (ca_pol_parse_description(cx, sub, json_object_get(obj, "description"),
                                 &c->description) != 0) {
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
        if (ca_pol_check_route(cx, rjp, json_string_value(r),
                               json_string_length(r)) != 0) {
            return -1;
        }
        if ((c->routes[i] = strdup(json_string_value(r))) == NULL) {
            return fail(cx, rjp, "out of memory");
        }
        c->n_routes++;
    }

    jp_key(sub, jp, "purposes", 8);
    if (ca_pol_parse_codes(cx, sub, json_object_get(obj, "purposes"),
                           &c->purposes, &c->n_purposes, cx->p->purposes,
                           cx->p->n_purposes) != 0) {
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

