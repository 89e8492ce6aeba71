/* credit-policy explain's pieces (policy_explain.c, policy_verify.c,
 * and what both say: policy_refusal.c). */
#ifndef CA_TOOLS_POLICY_EXPLAIN_H
#define CA_TOOLS_POLICY_EXPLAIN_H

#include <jansson.h>

#include "core/core.h"
#include "policy/policy.h"

typedef struct {
    const char *policy, *path, *response, *claims, *token, *purpose;
    const char *hash_key;
    const char *checks[CA_CHECKS_MAX + 1];  /* --check, as written */
    size_t      n_checks;
    int         raw, json;
} explain_args;

/* The refusals that follow from policy and consent alone, in the
 * gateway's order; verify: the request is a verification (POST). */
ca_reason explain_policy_refusal(const ca_policy *p, const ca_category *c,
                                 json_t *claims, const char *uscc,
                                 const explain_args *a, int verify,
                                 char *detail, size_t dlen);

/* Prints the refusal (text or JSON, with the notes); returns 1. */
int explain_report_refusal(const explain_args *a, ca_reason r,
                           const char *detail, json_t *notes);

/* A note for each kept path that reaches an object or array in the
 * sample (policy_shape.c). */
void explain_note_whole_values(const ca_category *c, int raw, json_t *resp,
                               json_t *notes);

/* The policy's and the category's descriptions, when they have one. */
void explain_print_descriptions(const ca_policy *p, const ca_category *c);

/* explain --check: the checks against the sample as the gateway answers
 * a verification; 0 answered, 1 refused, 2 a --check it cannot read. */
int explain_verify(const explain_args *a, const ca_policy *p,
                   const ca_category *c, const char *uscc, json_t *claims,
                   json_t *resp, json_t *notes);

#endif
