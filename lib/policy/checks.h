/*
 * Verification (核验比对, contract §2): a bank asks whether fields satisfy
 * conditions and learns match / no match, never the value.
 */
#ifndef CA_CHECKS_H
#define CA_CHECKS_H

#include <jansson.h>

#include "policy.h"

#define CA_CHECKS_MAX      32
#define CA_CHECKS_BODY_MAX 16384

typedef struct {
    char                 *field;    /* as the bank wrote it:
                                       annual[year=2023].x */
    const ca_verify_rule *rule;     /* the policy's "annual[].x" */
    unsigned              op;
    json_t               *value;    /* string, number or boolean */
} ca_check;

/* How many checks of a request test one verify field: what the consent's
 * verification budget is charged (contract §2.1). */
typedef struct {
    const char *field;              /* the verify rule's path */
    unsigned    count;
} ca_check_use;

typedef struct {
    ca_check items[CA_CHECKS_MAX];
    size_t   n;
} ca_checks;

/* Parses {"checks":[...]} and validates each against the category's verify
 * rules.  CA_OK, or CA_REQUEST_INVALID with detail set. */
ca_reason ca_checks_parse(const char *body, size_t len, const ca_category *c,
                          ca_checks *out, char *detail, size_t detail_len);
void ca_checks_free(ca_checks *cs);

/* Groups the checks by verify field into uses[] (room for CA_CHECKS_MAX);
 * returns how many fields. */
size_t ca_checks_budget(const ca_checks *cs, ca_check_use *uses);

/* Evaluates the checks against the upstream document and returns
 * {"results":[...]}.  A field of another type than the check's value makes
 * the whole answer CA_REQUEST_INVALID. */
ca_reason ca_checks_eval(const ca_checks *cs, json_t *doc, json_t **results,
                         char *detail, size_t detail_len);

/* What a verification answered, for its audit outcome (contract §7): how many
 * checks matched, did not, and found no value to compare (null). */
typedef struct {
    unsigned    matched;
    unsigned    unmatched;
    unsigned    absent;
} ca_checks_tally;

/* Counts the answers of ca_checks_eval()'s {"results":[...]}. */
void ca_checks_count(json_t *results, ca_checks_tally *t);

#endif
