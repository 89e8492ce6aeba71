/*
 * The fields both verifiers read from an entry (auditverify.c, the whole
 * stream; auditstep.c, one entry at a time): those of chaining and
 * signing, by their names in lib/audit/auditschema.h, each at its first
 * occurrence (a gateway never writes a field twice; the digest covers
 * every occurrence), and where the single `hash` is.
 */
#ifndef CA_AUDITFIELDS_H
#define CA_AUDITFIELDS_H

#include <string.h>
#include <sys/types.h>

#include "audit/audit.h"

enum { F_EVENT, F_CHAIN, F_SEQ, F_PREV, F_COVERS, F_HEAD, F_HEADS, F_SIG,
       F_N };

typedef struct {
    const char *const  *values;
    const size_t       *lens;
    ssize_t             at[F_N];    /* -1: absent */
    size_t              nhash;      /* `hash` fields */
    size_t              hash_at;    /* the last one */
    int                 nul_name;   /* a name with a NUL inside */
} ca_vfields;

#define HAS(f, k)   ((f)->at[k] >= 0)
#define VAL(f, k)   (f)->values[(f)->at[k]], (f)->lens[(f)->at[k]]

static inline int
ca_vf_is(const char *s, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

static inline void
ca_vf_scan(ca_vfields *f, size_t n, const char *const *names,
           const size_t *nl, const char *const *values, const size_t *vl)
{
    static const ca_audit_fid wanted[F_N] = {
        CA_F_EVENT, CA_F_CHAIN, CA_F_SEQ, CA_F_PREV, CA_F_COVERS, CA_F_HEAD,
        CA_F_HEADS, CA_F_SIG
    };

    memset(f, 0, sizeof(*f));
    f->values = values;
    f->lens = vl;
    for (int k = 0; k < F_N; k++) {
        f->at[k] = -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (memchr(names[i], '\0', nl[i]) != NULL) {
            f->nul_name = 1;
        }
        if (ca_vf_is(names[i], nl[i], CA_AUDIT_NAME(HASH))) {
            f->nhash++;
            f->hash_at = i;
            continue;
        }
        for (int k = 0; k < F_N; k++) {
            if (f->at[k] < 0
                && ca_vf_is(names[i], nl[i], ca_audit_schema[wanted[k]].name))
            {
                f->at[k] = (ssize_t) i;
                break;
            }
        }
    }
}

#endif
