/*
 * policy/ functions exported for the unit tests only: a treatment applied
 * to a parsed value (the response filter calls treat.h's scalar functions
 * instead); nothing in the engine, the glue or the tools calls them
 * (tests/integration/test_layers.py keeps it so).
 */
#ifndef CA_POLICY_TESTING_H
#define CA_POLICY_TESTING_H

#include <jansson.h>

#include "policy.h"

/* treat.c: applies one treatment.  Returns a new reference, or NULL when
 * the value cannot take the treatment (it is then withheld: fail closed). */
json_t *ca_treat_apply(const ca_treatment *t, json_t *value,
                       const ca_filter_opts *opts);

/* treat.c: mask:L,R on a UTF-8 string, by code points.  NULL if not valid
 * UTF-8. */
char *ca_mask_utf8(const char *s, size_t len, unsigned lead, unsigned trail);

#endif
