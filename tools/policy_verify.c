/*
 * credit-policy explain --check 'FIELD OP VALUE': what the gateway would
 * answer a verification (POST) of the sample record.  The checks go
 * through the gateway's own code (lib/policy/checks.c), in its order: the
 * body's checks (a verifiable field, an allowed op, selectors only on
 * members disclosed as they are), the policy's and consent's rules for
 * mode verify, the budget, then the evaluation: match, no match, or
 * absent.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_explain.h"

/*
 * 'FIELD OP VALUE': FIELD ends at the first blank outside a selector's
 * brackets, OP is the next word, VALUE the rest.  VALUE is JSON when it
 * reads as JSON (100, true, "A"), otherwise the string as written.
 */
static json_t *
parse_check(const char *s, char *err, size_t errlen)
{
    const char *f, *fe, *o, *oe, *v;
    int         depth = 0;
    size_t      vlen;
    char       *val;
    json_t     *value;

    for (f = s; isspace((unsigned char) *f); f++) {
    }
    for (fe = f; *fe && (depth > 0 || !isspace((unsigned char) *fe)); fe++) {
        depth += *fe == '[' ? 1 : *fe == ']' ? -1 : 0;
    }
    for (o = fe; isspace((unsigned char) *o); o++) {
    }
    for (oe = o; *oe && !isspace((unsigned char) *oe); oe++) {
    }
    for (v = oe; isspace((unsigned char) *v); v++) {
    }
    vlen = strlen(v);
    while (vlen > 0 && isspace((unsigned char) v[vlen - 1])) {
        vlen--;
    }
    if (fe == f || oe == o || vlen == 0) {
        snprintf(err, errlen, "--check \"%s\": write FIELD OP VALUE, e.g."
                 " 'annual[year=2023].tax_paid ge 100000'", s);
        return NULL;
    }
    if ((val = strndup(v, vlen)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    value = json_loads(val, JSON_DECODE_ANY, NULL);
    if (value == NULL) {
        value = json_string(val);
    }
    free(val);
    return json_pack("{s:s%,s:s%,s:o}", "field", f, (size_t) (fe - f),
                     "op", o, (size_t) (oe - o), "value", value);
}

/* The body a bank would POST. */
static char *
checks_body(const explain_args *a, json_t **items)
{
    json_t *arr = json_array(), *it;
    char    err[512], *body;

    *items = arr;
    for (size_t i = 0; i < a->n_checks; i++) {
        if ((it = parse_check(a->checks[i], err, sizeof(err))) == NULL) {
            fprintf(stderr, "credit-policy: %s\n", err);
            return NULL;
        }
        json_array_append_new(arr, it);
    }
    it = json_pack("{s:O}", "checks", arr);
    body = json_dumps(it, JSON_COMPACT);
    json_decref(it);
    return body;
}

static const char *
match_text(json_t *m)
{
    return json_is_true(m) ? "match" : json_is_false(m) ? "no match"
           : "absent (null: the record has no such value)";
}

static void
print_results(const explain_args *a, const ca_policy *p,
              const ca_category *c, json_t *items, json_t *results,
              json_t *notes)
{
    size_t  i, width = 0;
    json_t *r, *n;
    char    text[CA_CHECKS_MAX][512];

    explain_print_descriptions(p, c);
    json_array_foreach(notes, i, n) {
        printf("note: %s\n", json_string_value(n));
    }
    printf("allowed: category %s, purpose %s, mode verify\n", c->name,
           a->purpose ? a->purpose : "(not given)");
    printf("\nverification (POST), %u checks per field per consent:\n",
           c->verify_budget);
    json_array_foreach(results, i, r) {
        char *v = json_dumps(json_object_get(json_array_get(items, i),
                                             "value"), JSON_ENCODE_ANY);
        snprintf(text[i], sizeof(text[i]), "%s %s %s",
                 json_string_value(json_object_get(r, "field")),
                 json_string_value(json_object_get(r, "op")), v ? v : "?");
        free(v);
        width = strlen(text[i]) > width ? strlen(text[i]) : width;
    }
    json_array_foreach(results, i, r) {
        printf("  %-*s  %s\n", (int) width, text[i],
               match_text(json_object_get(r, "match")));
    }
}

/* Each result with the value checked (the officer's own, unlike the
 * gateway's answer, which never repeats a value). */
static void
print_json(const explain_args *a, const ca_policy *p, const ca_category *c,
           const char *uscc, json_t *items, json_t *results, json_t *notes)
{
    size_t  i;
    json_t *e, *o;

    json_array_foreach(results, i, e) {
        json_object_set(e, "value", json_object_get(json_array_get(items, i),
                                                     "value"));
    }
    o = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:O, s:I, s:O}",
                  "decision", "allow", "mode", "verify", "category", c->name,
                  "enterprise", uscc, "purpose", a->purpose,
                  "results", results,
                  "budget", (json_int_t) c->verify_budget, "notes", notes);
    json_object_set_new(o, "policy_description", p->description
                        ? json_string(p->description) : json_null());
    json_object_set_new(o, "category_description", c->description
                        ? json_string(c->description) : json_null());
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
}

int
explain_verify(const explain_args *a, const ca_policy *p,
               const ca_category *c, const char *uscc, json_t *claims,
               json_t *resp, json_t *notes)
{
    ca_checks    cs;
    ca_check_use uses[CA_CHECKS_MAX];
    ca_reason    r;
    json_t      *items = NULL, *out = NULL, *results;
    char        *body, detail[256];
    size_t       n;
    int          status;

    if ((body = checks_body(a, &items)) == NULL) {
        json_decref(items);
        return EXIT_USAGE;
    }
    r = ca_checks_parse(body, strlen(body), c, &cs, detail, sizeof(detail));
    free(body);
    if (r != CA_OK) {
        json_decref(items);
        return explain_report_refusal(a, r, detail, notes);
    }
    r = explain_policy_refusal(p, c, claims, uscc, a, 1, detail,
                               sizeof(detail));
    if (r != CA_OK) {
        status = explain_report_refusal(a, r, detail, notes);
        goto done;
    }
    /* the gateway counts the budget per consent across requests; here
     * only what this one request spends can be known */
    n = ca_checks_budget(&cs, uses);
    for (size_t i = 0; i < n; i++) {
        if (uses[i].count > c->verify_budget) {
            snprintf(detail, sizeof(detail), "%u checks of %s in one"
                     " request; a consent may make %u (verify_budget)",
                     uses[i].count, uses[i].field, c->verify_budget);
            status = explain_report_refusal(
                a, CA_VERIFICATION_BUDGET_EXHAUSTED, detail, notes);
            goto done;
        }
    }
    if (!json_is_object(resp)) {
        status = explain_report_refusal(a, CA_UPSTREAM_INVALID, "the"
                                        " response is not a JSON object",
                                        notes);
        goto done;
    }
    r = ca_checks_eval(&cs, resp, &out, detail, sizeof(detail));
    if (r != CA_OK) {
        status = explain_report_refusal(a, r, detail, notes);
        goto done;
    }
    results = json_object_get(out, "results");
    json_array_append_new(notes, json_string("the budget is counted per"
                          " consent across requests: earlier checks of the"
                          " same consent would count too"));

    if (a->json) {
        print_json(a, p, c, uscc, items, results, notes);
    } else {
        print_results(a, p, c, items, results, notes);
    }
    status = 0;

done:
    json_decref(out);
    json_decref(items);
    ca_checks_free(&cs);
    return status;
}
