/*
 * Verification (核验比对, contract §2).  The bank learns true, false or null
 * per check and nothing else: details name the bank's own field path,
 * never a value from the upstream document.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"

#define CHECK_PATH_MAX   256
#define SELECT_VALUE_MAX 64

/* Every refusal of a verification body is request_invalid. */
#define invalid(detail, detail_len, ...)                                    \
    ca_refuse(CA_REQUEST_INVALID, detail, detail_len, __VA_ARGS__)

static int
is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/*
 * Parses a check path and writes its normalised form (every "[k=v]" as
 * "[]") into norm.  Returns NULL on success or the reason it is malformed.
 */
/* Where a check path selects: the normalised path up to the element
 * ("annual[]") and the member that selects it ("year"). */
typedef struct {
    size_t      norm_len;
    const char *key;
    size_t      klen;
} selector;

#define SELECTORS_MAX (CHECK_PATH_MAX / 5)

static const char *
check_path(const char *s, size_t len, char *norm, selector *sel,
           size_t *n_sel)
{
    size_t i = 0, o = 0;

    *n_sel = 0;

    if (len == 0 || len > CHECK_PATH_MAX || strlen(s) != len) {
        return "field must be 1-256 characters";
    }
    for (;;) {
        size_t start = i;
        while (i < len && is_name_char(s[i])) {
            norm[o++] = s[i++];
        }
        if (i == start) {
            return "every path segment needs a member name";
        }
        while (i < len && s[i] == '[') {
            size_t k = ++i, v;
            if (i < len && s[i] == ']') {
                return "a bare [] is ambiguous in a check; select the"
                       " element with [k=v]";
            }
            while (i < len && is_name_char(s[i])) {
                i++;
            }
            if (i == k || i >= len || s[i] != '=') {
                return "a selector is [k=v] with k a member name";
            }
            v = ++i;
            while (i < len && s[i] != ']') {
                if ((unsigned char) s[i] < 0x20) {
                    return "control character in a selector";
                }
                i++;
            }
            if (i >= len || i == v || i - v > SELECT_VALUE_MAX) {
                return "a selector value is 1-64 characters closed by ']'";
            }
            i++;
            if (*n_sel == SELECTORS_MAX) {
                return "too many selectors";
            }
            norm[o++] = '[';
            norm[o++] = ']';
            sel[*n_sel].norm_len = o;
            sel[*n_sel].key = s + k;
            sel[*n_sel].klen = v - 1 - k;
            (*n_sel)++;
        }
        if (i == len) {
            break;
        }
        if (s[i] != '.') {
            return "unexpected character in field";
        }
        norm[o++] = s[i++];
    }
    norm[o] = '\0';
    return NULL;
}

/*
 * A selector tests the member it names on every element until one
 * matches: a withheld or masked member would let the bank probe values it
 * may not see ("shareholders[id_number=...]").  Only members the category
 * discloses as they are, at the masked level, may select.
 */
static int
selector_disclosed(const ca_category *c, const char *norm,
                   const selector *sel)
{
    char            path[CHECK_PATH_MAX + SELECT_VALUE_MAX + 2];
    const ca_field *f;

    if (sel->norm_len + 1 + sel->klen >= sizeof(path)) {
        return 0;
    }
    memcpy(path, norm, sel->norm_len);
    path[sel->norm_len] = '.';
    memcpy(path + sel->norm_len + 1, sel->key, sel->klen);
    path[sel->norm_len + 1 + sel->klen] = '\0';
    f = ca_category_field_at(c, path);
    return f != NULL && f->masked.kind == CA_TREAT_KEEP;
}

size_t
ca_checks_budget(const ca_checks *cs, ca_check_use *uses)
{
    size_t n = 0, k;

    for (size_t i = 0; i < cs->n; i++) {
        for (k = 0; k < n; k++) {
            if (uses[k].field == cs->items[i].rule->path) {
                break;
            }
        }
        if (k == n) {
            uses[n].field = cs->items[i].rule->path;
            uses[n++].count = 0;
        }
        uses[k].count++;
    }
    return n;
}

void
ca_checks_free(ca_checks *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->items[i].field);
        json_decref(cs->items[i].value);
    }
    cs->n = 0;
}

static ca_reason
parse_item(json_t *it, size_t i, const ca_category *c, ca_check *ck,
           char *detail, size_t detail_len)
{
    json_t               *f, *op, *v;
    const char           *why;
    const ca_verify_rule *rule;
    char                  norm[CHECK_PATH_MAX + 1];
    selector              sel[SELECTORS_MAX];
    size_t                n_sel;
    unsigned              o;

    if (!json_is_object(it) || json_object_size(it) != 3
        || (f = json_object_get(it, "field")) == NULL
        || (op = json_object_get(it, "op")) == NULL
        || (v = json_object_get(it, "value")) == NULL) {
        return invalid(detail, detail_len, "checks[%zu] must have exactly"
                       " field, op and value", i);
    }
    if (!json_is_string(f)) {
        return invalid(detail, detail_len, "checks[%zu].field must be a"
                       " string", i);
    }
    if ((why = check_path(json_string_value(f), json_string_length(f),
                          norm, sel, &n_sel)) != NULL) {
        return invalid(detail, detail_len, "checks[%zu].field: %s", i, why);
    }
    rule = ca_category_verify_rule(c, norm);
    if (rule == NULL) {
        return invalid(detail, detail_len, "field \"%s\" is not verifiable",
                       json_string_value(f));
    }
    for (size_t j = 0; j < n_sel; j++) {
        if (!selector_disclosed(c, norm, &sel[j])) {
            return invalid(detail, detail_len, "checks[%zu].field: the"
                           " selector member \"%.*s\" is not disclosed"
                           " unmasked by this category, so it cannot"
                           " select", i, (int) sel[j].klen, sel[j].key);
        }
    }
    o = json_is_string(op) ? ca_op_from_name(json_string_value(op)) : 0;
    if (o == 0) {
        return invalid(detail, detail_len, "checks[%zu].op must be one of eq"
                       " ne gt ge lt le", i);
    }
    if ((rule->ops & o) == 0) {
        return invalid(detail, detail_len, "op \"%s\" is not allowed on field"
                       " \"%s\"", ca_op_name(o), json_string_value(f));
    }
    if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
        return invalid(detail, detail_len, "checks[%zu].value must be a"
                       " string, number or boolean", i);
    }
    if ((o & (CA_OP_GT | CA_OP_GE | CA_OP_LT | CA_OP_LE))
        && !json_is_number(v)) {
        return invalid(detail, detail_len, "op \"%s\" on field \"%s\" needs"
                       " a number", ca_op_name(o), json_string_value(f));
    }
    ck->field = strdup(json_string_value(f));
    if (ck->field == NULL) {
        return invalid(detail, detail_len, "out of memory");
    }
    ck->rule = rule;
    ck->op = o;
    ck->value = json_incref(v);
    return CA_OK;
}

ca_reason
ca_checks_parse(const char *body, size_t len, const ca_category *c,
                ca_checks *out, char *detail, size_t detail_len)
{
    json_error_t je;
    json_t      *root, *arr, *it;
    size_t       i;
    ca_reason    rc = CA_OK;

    memset(out, 0, sizeof(*out));
    if (len > CA_CHECKS_BODY_MAX) {
        return invalid(detail, detail_len, "body is larger than %d bytes",
                       CA_CHECKS_BODY_MAX);
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return invalid(detail, detail_len, "body is not valid JSON (line %d"
                       " column %d)", je.line, je.column);
    }
    arr = json_object_get(root, "checks");
    if (!json_is_object(root) || json_object_size(root) != 1
        || !json_is_array(arr)) {
        rc = invalid(detail, detail_len, "body must be {\"checks\":[...]}");
    } else if (json_array_size(arr) == 0
               || json_array_size(arr) > CA_CHECKS_MAX) {
        rc = invalid(detail, detail_len, "checks must hold 1 to %d items",
                     CA_CHECKS_MAX);
    } else {
        json_array_foreach(arr, i, it) {
            rc = parse_item(it, i, c, &out->items[i], detail, detail_len);
            if (rc != CA_OK) {
                break;
            }
            out->n++;
        }
    }
    json_decref(root);
    if (rc != CA_OK) {
        ca_checks_free(out);
    }
    return rc;
}

/* ---- evaluation ------------------------------------------------------- */

/* Does member k of element e select it for [k=v]? */
static int
selects(json_t *e, const char *k, size_t klen, const char *v, size_t vlen)
{
    json_t *m;
    char    buf[64], *end;

    if (!json_is_object(e) || (m = json_object_getn(e, k, klen)) == NULL) {
        return 0;
    }
    if (json_is_string(m)) {
        return json_string_length(m) == vlen
               && memcmp(json_string_value(m), v, vlen) == 0;
    }
    if (json_is_integer(m)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(m));
        return strlen(buf) == vlen && memcmp(buf, v, vlen) == 0;
    }
    if (json_is_real(m)) {
        /* A decimal value selects a real by numeric equality: "2.5" and
         * "2.50" name the same number. */
        double d;
        if (vlen >= sizeof(buf) || strspn(v, "0123456789.eE+-") < vlen) {
            return 0;
        }
        memcpy(buf, v, vlen);
        buf[vlen] = '\0';
        d = strtod(buf, &end);
        return *end == '\0' && d == json_real_value(m);
    }
    return 0;
}

/* Follows a (validated) check path; NULL when anything is missing. */
static json_t *
navigate(json_t *doc, const char *s)
{
    json_t *cur = doc;
    size_t  i = 0, len = strlen(s);

    while (i < len) {
        size_t start = i;
        while (i < len && is_name_char(s[i])) {
            i++;
        }
        if (!json_is_object(cur)) {
            return NULL;
        }
        if ((cur = json_object_getn(cur, s + start, i - start)) == NULL) {
            return NULL;
        }
        while (i < len && s[i] == '[') {
            size_t k = ++i, klen, v, vlen, j;
            json_t *e, *found = NULL;
            while (s[i] != '=') {
                i++;
            }
            klen = i - k;
            v = ++i;
            while (s[i] != ']') {
                i++;
            }
            vlen = i - v;
            i++;
            if (!json_is_array(cur)) {
                return NULL;
            }
            json_array_foreach(cur, j, e) {
                if (selects(e, s + k, klen, s + v, vlen)) {
                    found = e;
                    break;
                }
            }
            if ((cur = found) == NULL) {
                return NULL;
            }
        }
        if (i < len) {
            i++;                                        /* '.' */
        }
    }
    return cur;
}

static int
same_type(json_t *a, json_t *b)
{
    return (json_is_string(a) && json_is_string(b))
           || (json_is_number(a) && json_is_number(b))
           || (json_is_boolean(a) && json_is_boolean(b));
}

static int
compare(unsigned op, json_t *field, json_t *value)
{
    int eq;

    if (json_is_number(field)) {
        double a = json_number_value(field), b = json_number_value(value);
        switch (op) {
        case CA_OP_GT: return a > b;
        case CA_OP_GE: return a >= b;
        case CA_OP_LT: return a < b;
        case CA_OP_LE: return a <= b;
        }
        eq = a == b;
    } else if (json_is_string(field)) {
        eq = json_string_length(field) == json_string_length(value)
             && memcmp(json_string_value(field), json_string_value(value),
                       json_string_length(field)) == 0;
    } else {
        eq = json_is_true(field) == json_is_true(value);
    }
    return op == CA_OP_EQ ? eq : !eq;
}

ca_reason
ca_checks_eval(const ca_checks *cs, json_t *doc, json_t **results,
               char *detail, size_t detail_len)
{
    json_t *arr = json_array(), *r;

    *results = NULL;
    if (arr == NULL) {
        return invalid(detail, detail_len, "out of memory");
    }
    for (size_t i = 0; i < cs->n; i++) {
        const ca_check *ck = &cs->items[i];
        json_t         *f = navigate(doc, ck->field), *match;

        /* JSON null is no value to compare: the field counts as absent. */
        if (f == NULL || json_is_null(f)) {
            match = json_null();
        } else if (!same_type(f, ck->value)) {
            json_decref(arr);
            return invalid(detail, detail_len, "field \"%s\" is not of the"
                           " type of the check's value", ck->field);
        } else {
            match = json_boolean(compare(ck->op, f, ck->value));
        }
        r = json_pack("{s:s, s:s, s:o}", "field", ck->field,
                      "op", ca_op_name(ck->op), "match", match);
        if (r == NULL || json_array_append_new(arr, r) != 0) {
            json_decref(arr);
            return invalid(detail, detail_len, "out of memory");
        }
    }
    *results = json_pack("{s:o}", "results", arr);
    if (*results == NULL) {
        return invalid(detail, detail_len, "out of memory");
    }
    return CA_OK;
}

void
ca_checks_count(json_t *results, ca_checks_tally *t)
{
    size_t  i;
    json_t *r, *m;

    t->matched = t->unmatched = t->absent = 0;
    json_array_foreach(json_object_get(results, "results"), i, r) {
        m = json_object_get(r, "match");
        if (json_is_true(m)) {
            t->matched++;
        } else if (json_is_false(m)) {
            t->unmatched++;
        } else {
            t->absent++;
        }
    }
}
