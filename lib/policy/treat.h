/*
 * Field treatments on scalars (engine-internal): the walk in filter.c
 * hands over a decoded string or a number token, never a parsed document.
 * The tests' entry points on parsed values (ca_treat_apply, ca_mask_utf8)
 * are in policy_testing.h.
 */
#ifndef CA_TREAT_H
#define CA_TREAT_H

#include "json/json.h"
#include "filter.h"

typedef enum {
    CA_SCALAR_OTHER = 0,            /* true, false, null */
    CA_SCALAR_STRING,
    CA_SCALAR_NUMBER,
} ca_scalar_kind;

typedef struct {
    ca_scalar_kind kind;
    const char    *s;               /* a string's decoded UTF-8 bytes */
    size_t         len;
    ca_decnum      num;             /* a number as written */
    const double  *real;            /* a number that is already a double
                                       (ca_treat_apply on a jansson real) */
} ca_scalar;

/*
 * Appends the treated value (UTF-8 bytes of the string to send) to res.
 * Returns 1, or 0 when the value cannot take the treatment (it is then
 * withheld: fail closed; res is left as it was).  keep and drop are the
 * walk's business: 0.
 */
CA_INTERNAL int ca_treat_scalar(const ca_treatment *t, const ca_scalar *v,
                                const ca_filter_opts *opts,
                                ca_jout *res);

/* 1 when what t writes never needs a JSON escape (a bucket's bounds, a
 * year: digits, '-', '.'): the walk then quotes it as it is. */
static inline int
ca_treat_is_plain(const ca_treatment *t)
{
    return t->kind == CA_TREAT_BUCKET || t->kind == CA_TREAT_YEAR;
}

#endif
