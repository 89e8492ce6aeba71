/* credit-policy diff's pieces (policy_diff.c, policy_diffcat.c, and the
 * change records both add to: policy_diffchange.c). */
#ifndef CA_TOOLS_POLICY_DIFF_H
#define CA_TOOLS_POLICY_DIFF_H

#include <jansson.h>

#include "policy/policy.h"

/* What a change does to what a bank can receive or learn. */
typedef enum {
    DIFF_NOTE = 0,          /* nothing a bank sees (a description) */
    DIFF_WIDER,
    DIFF_NARROWER,
} diff_effect;

typedef struct {
    size_t wider, narrower, notes;
} diff_tally;

const char *diff_effect_name(diff_effect e);
void diff_count(diff_tally *t, diff_effect e);

/* Sets entry's "effect", appends it to obj[kind] (an array made on first
 * use) and counts it. */
void diff_add(json_t *obj, const char *kind, json_t *entry, diff_effect e,
              diff_tally *t);

/* {"added": [...], "removed": [...]} of the codes of b not in a and of a
 * not in b, each counted as on_add / on_remove; NULL when equal. */
json_t *diff_codes(char **a, size_t na, char **b, size_t nb,
                   diff_effect on_add, diff_effect on_remove, diff_tally *t);

/* A note {"old": a, "new": b} when two optional texts differ, else NULL. */
json_t *diff_text(const char *a, const char *b, diff_tally *t);

/* Everything that changes in one category; o or n NULL when it is added
 * or removed.  An empty object when nothing does. */
json_t *diff_category(const ca_category *o, const ca_category *n,
                      diff_tally *t);

#endif
