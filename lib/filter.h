/*
 * Least-necessary filtering (SPEC §6): the allowlist tree applied to an
 * upstream JSON document; every member not listed is withheld.
 */
#ifndef CA_FILTER_H
#define CA_FILTER_H

#include <jansson.h>

#include "policy.h"

typedef struct {
    const unsigned char *hash_key;  /* HMAC key for the `hash` treatment */
    size_t               hash_key_len;
    int                  raw;       /* 1: raw level, 0: masked level */
} ca_filter_opts;

/* What was disclosed, for the outcome entry.  Flags are indexed like the
 * category's fields array. */
typedef struct {
    unsigned char *disclosed;       /* field sent (kept or transformed) */
    unsigned char *masked;          /* field sent transformed */
    size_t         n_fields;
    size_t         withheld;        /* members and values not sent */
} ca_filter_report;

int ca_filter_report_init(ca_filter_report *rep, const ca_category *c);
void ca_filter_report_free(ca_filter_report *rep);
/* "a,b.c" list of disclosed (or masked) field paths; malloc'd. */
char *ca_filter_report_paths(const ca_filter_report *rep,
                             const ca_category *c, int masked);

/* Returns a new document holding only what the policy allows, or NULL when
 * the document is not an object (the caller then discloses nothing). */
json_t *ca_filter_apply(const ca_category *c, json_t *doc,
                        const ca_filter_opts *opts, ca_filter_report *rep);

/* Applies one treatment.  Returns a new reference, or NULL when the value
 * cannot take the treatment (it is then withheld: fail closed). */
json_t *ca_treat_apply(const ca_treatment *t, json_t *value,
                       const ca_filter_opts *opts);

/* mask:L,R on a UTF-8 string, by code points. NULL if not valid UTF-8. */
char *ca_mask_utf8(const char *s, size_t len, unsigned lead, unsigned trail);

#endif
