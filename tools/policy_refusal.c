/*
 * What credit-policy explain and explain --check both say (policy_explain.c,
 * policy_verify.c): the refusal that policy and consent alone give, how it
 * is printed, and the descriptions the officer wrote.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_explain.h"

static int
json_list_has(json_t *arr, const char *s)
{
    size_t  i;
    json_t *v;

    if (json_is_string(arr)) {
        return strcmp(json_string_value(arr), s) == 0;
    }
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The refusals that follow from policy and consent alone (the access
 * phase's purpose, category, mode and detail steps). */
ca_reason
explain_policy_refusal(const ca_policy *p, const ca_category *c,
                       json_t *claims, const char *uscc,
                       const explain_args *a, int verify, char *detail,
                       size_t dlen)
{
    const char *mode = verify ? "verify" : "query";
    json_t *v;

    if (claims && json_is_string(v = json_object_get(claims, "sub"))
        && strcmp(json_string_value(v), uscc) != 0) {
        snprintf(detail, dlen, "token sub is not the USCC in the path");
        return CA_SUBJECT_MISMATCH;
    }
    if (a->purpose) {
        if (!ca_policy_knows_purpose(p, a->purpose)) {
            snprintf(detail, dlen, "purpose \"%s\" is not in the policy",
                     a->purpose);
            return CA_PURPOSE_NOT_ALLOWED;
        }
        if (!ca_category_allows_purpose(c, a->purpose)) {
            snprintf(detail, dlen, "purpose \"%s\" is not allowed for"
                     " category \"%s\"", a->purpose, c->name);
            return CA_PURPOSE_NOT_ALLOWED;
        }
        if (claims
            && !json_list_has(json_object_get(claims, "purposes"),
                              a->purpose)) {
            snprintf(detail, dlen, "the consent does not list purpose"
                     " \"%s\"", a->purpose);
            return CA_PURPOSE_NOT_ALLOWED;
        }
    }
    if (claims
        && !json_list_has(json_object_get(claims, "categories"), c->name)) {
        snprintf(detail, dlen, "the consent does not list category \"%s\"",
                 c->name);
        return CA_CATEGORY_NOT_CONSENTED;
    }
    if (claims && (v = json_object_get(claims, "modes")) != NULL
        && !json_list_has(v, mode)) {
        snprintf(detail, dlen, "the consent does not allow %s mode", mode);
        return CA_MODE_NOT_CONSENTED;
    }
    if (a->raw) {
        if (!c->raw_allowed) {
            snprintf(detail, dlen, "category \"%s\" does not allow raw"
                     " detail", c->name);
            return CA_RAW_NOT_ALLOWED;
        }
        v = claims ? json_object_get(claims, "detail") : NULL;
        if (claims && !(json_is_string(v)
                        && strcmp(json_string_value(v), "raw") == 0)) {
            snprintf(detail, dlen, "the consent does not say"
                     " detail:\"raw\"");
            return CA_RAW_NOT_ALLOWED;
        }
    }
    return CA_OK;
}

int
explain_report_refusal(const explain_args *a, ca_reason r,
                       const char *detail, json_t *notes)
{
    size_t  i;
    json_t *n;

    if (a->json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:O}", "decision", "refuse",
                              "reason", ca_reason_name(r), "detail", detail,
                              "notes", notes);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        json_array_foreach(notes, i, n) {
            printf("note: %s\n", json_string_value(n));
        }
        printf("refused: %s (%d): %s\n", ca_reason_name(r),
               ca_reason_status(r), detail);
    }
    return EXIT_FINDING;
}

/* A description's lines, each after the prefix. */
static void
print_lines(const char *prefix, const char *s)
{
    while (*s) {
        size_t n = strcspn(s, "\n");
        printf("%s%.*s\n", prefix, (int) n, s);
        s += n + (s[n] == '\n');
    }
}

void
explain_print_descriptions(const ca_policy *p, const ca_category *c)
{
    char prefix[128];

    if (p->description != NULL) {
        snprintf(prefix, sizeof(prefix), "policy %s: ", p->version);
        print_lines(prefix, p->description);
    }
    if (c->description != NULL) {
        snprintf(prefix, sizeof(prefix), "category %s: ", c->name);
        print_lines(prefix, c->description);
    }
}
