/*
 * Least-necessary filtering (contract §6): the allowlist tree applied to an
 * upstream JSON document; every member not listed is withheld.
 */
#ifndef CA_FILTER_H
#define CA_FILTER_H

#include <jansson.h>

#include "policy.h"

/* What the filter did with one member or element (for a trace). */
typedef enum {
    CA_TRACE_SENT = 0,      /* field treatment applied and value sent */
    CA_TRACE_DROPPED,       /* field treatment is `drop` */
    CA_TRACE_UNFIT,         /* value cannot take the treatment or does not
                               have the shape the allowlist expects */
    CA_TRACE_UNLISTED,      /* not in the allowlist */
} ca_trace_what;

typedef void (*ca_filter_trace_fn)(void *ctx, const char *path,
                                   const ca_field *field,
                                   const ca_treatment *t,
                                   ca_trace_what what);

typedef struct {
    const unsigned char *hash_key;  /* HMAC key for the `hash` treatment */
    size_t               hash_key_len;
    int                  raw;       /* 1: raw level, 0: masked level */
    /* Optional (credit-policy explain): called with the concrete document
     * path ("annual[0].tax_paid") of each decision.  NULL in the gateway;
     * zero-initialise the struct. */
    ca_filter_trace_fn   trace;
    void                *trace_ctx;
} ca_filter_opts;

/* Deepest document nesting the filter descends into (root object = 1). */
#define CA_FILTER_DEPTH_MAX 64

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

/*
 * Filters the upstream body as text in one pass (the gateway's path):
 * returns malloc'd compact JSON holding only what the policy allows, with
 * its length in *out_len, or NULL when the body is not a well-formed JSON
 * object within the nesting limits (the caller then discloses nothing).
 * Kept values are copied as they were written, numbers included.
 */
char *ca_filter_text(const ca_category *c, const char *in, size_t len,
                     const ca_filter_opts *opts, ca_filter_report *rep,
                     size_t *out_len);

/* The same on a parsed document (tools and tests): a new document holding
 * only what the policy allows, or NULL when it is not an object. */
json_t *ca_filter_apply(const ca_category *c, json_t *doc,
                        const ca_filter_opts *opts, ca_filter_report *rep);

#endif
