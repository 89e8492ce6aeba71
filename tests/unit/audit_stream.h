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
#include "core/util.h"
#include "verify/auditverify.h"

/* RFC 8032's test key 1 (secret): docs/audit-format.md §5 signs its
 * example with it. */
static const unsigned char rfc8032_key1[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
    0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
    0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60
};

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

/* Sets a field's value (it must exist). */
static inline void
set_field(sentry *e, const char *name, const char *value)
{
    for (size_t j = 0; j < e->n; j++) {
        if (strcmp(e->name[j], name) == 0) {
            free(e->value[j]);
            e->value[j] = strdup(value);
            e->len[j] = strlen(value);
            return;
        }
    }
    fprintf(stderr, "no field %s\n", name);
    abort();
}

/* What a forger without the private key can do: recompute the entry's own
 * hash after changing it. */
static inline void
rehash(sentry *e)
{
    unsigned char h[32];
    char          hex[65];

    ca_entry_digest((const char *const *) e->name,
                    (const char *const *) e->value, e->len, e->n, h);
    ca_hex(h, 32, hex);
    set_field(e, "hash", hex);
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
