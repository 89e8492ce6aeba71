/*
 * A stored stream entry for the audit unit tests: what XRANGE returns
 * (names and values, binary-safe), copied from a sealed ca_entry, read
 * back by name, and fed to the verifier.
 */
#ifndef TEST_AUDIT_STREAM_H
#define TEST_AUDIT_STREAM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "verify/auditverify.h"

typedef struct {
    char    id[48];
    size_t  n;
    char   *name[CA_ENTRY_FIELDS];
    char   *value[CA_ENTRY_FIELDS];
    size_t  len[CA_ENTRY_FIELDS];
} sentry;

static inline void
sentry_copy(sentry *e, const ca_entry *ce)
{
    e->n = ce->n;
    for (size_t i = 0; i < ce->n; i++) {
        e->name[i] = strdup(ce->name[i]);
        e->value[i] = malloc(ce->len[i] + 1);
        memcpy(e->value[i], ce->value[i], ce->len[i]);
        e->value[i][ce->len[i]] = '\0';
        e->len[i] = ce->len[i];
    }
}

static inline void
sentry_clear(sentry *e)
{
    for (size_t j = 0; j < e->n; j++) {
        free(e->name[j]);
        free(e->value[j]);
    }
    e->n = 0;
}

/* The value of a field, or NULL. */
static inline const char *
sentry_get(const sentry *e, const char *name)
{
    for (size_t j = 0; j < e->n; j++) {
        if (strcmp(e->name[j], name) == 0) {
            return e->value[j];
        }
    }
    return NULL;
}

/* ca_av_add() of the entry, under its id. */
static inline int
sentry_feed(ca_av *v, const sentry *e)
{
    size_t nl[CA_ENTRY_FIELDS];

    for (size_t j = 0; j < e->n; j++) {
        nl[j] = strlen(e->name[j]);
    }
    return ca_av_add(v, e->id, e->n, (const char *const *) e->name, nl,
                     (const char *const *) e->value, e->len);
}

#endif
