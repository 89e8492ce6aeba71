/*
 * Verification one entry at a time (credit-audit ship, contract §7.2): the
 * checks `credit-audit verify` makes (auditverify.h, docs/audit-format.md
 * §4) applied to each entry as it arrives, against a small state per chain
 * that the caller keeps (in the archive) between runs, so that a shipper
 * that restarts, or another one that takes over, continues exactly where
 * the last commit left off.
 *
 * Within one chain the stream holds the entries in seq order (the
 * gateway's script writes an entry only after its predecessor, docs/
 * audit-format.md §1), and the heads a checkpoint lists were written
 * before it; so an entry is judged on arrival against what came before:
 *
 *   - its fields hash to its `hash`; it is a sealed chain entry (and its
 *     chain id is text: valid UTF-8 without NUL, as every gateway's is);
 *   - seq is the chain's next, and prev the hash of the entry before it
 *     (a gap is `deleted`; seq 1 has a prev of 64 zeros);
 *   - a seq already archived: an identical copy (the same entry written
 *     twice: not a break) or another entry claiming it (`inserted`, or
 *     `modified` when its hash is the archived one's); a seq never
 *     archived below the chain's head arrives late (`reordered`);
 *   - a checkpoint's signature (with the key that verified the chain's
 *     earlier checkpoints, else any of the keys), its covers and head, and
 *     every head a v2 checkpoint lists (the listed entry must be archived,
 *     with that hash);
 *   - a `discontinuity` entry is always a finding.
 *
 * What `verify` sees only at the end of a stream is not judged here: the
 * unsigned tail (not a break anyway) and `truncated` (a gap before a
 * checkpoint is `deleted`).  The first entry of a (chain, seq) to arrive
 * holds it; a later one is archived beside it as a copy, with its finding,
 * so that the archive keeps every entry the stream held.
 *
 * No I/O: the chain states and the hashes of archived entries come through
 * the callbacks, only for what is not in memory.
 */
#ifndef CA_AUDITSTEP_H
#define CA_AUDITSTEP_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "auditverify.h"

/* What is kept per chain between batches (and in the archive). */
typedef struct {
    uint64_t        last_seq;       /* the chain's head; 0: no entry yet */
    unsigned char   last_hash[32];
    uint64_t        last_ord;       /* its archive order */
    uint64_t        signed_seq;     /* `covers` of the last verified
                                       checkpoint; 0: none */
    unsigned char   key_id[32];     /* SHA-256 of the DER public key that
                                       verified its checkpoints */
    int             has_key;
    uint64_t        entries;        /* entries it holds (copies not) */
} ca_as_state;

/* An archived entry that holds a (chain, seq). */
typedef struct {
    uint64_t        seq;
    uint64_t        ord;
    unsigned char   hash[32];
} ca_as_mark;

typedef struct {
    /* The chain's state as archived: 0, 1 when the archive has none, -1
     * on an error (the entry is then not judged: ca_as_add fails). */
    int   (*load)(void *data, const char *chain, size_t len,
                  ca_as_state *st);
    /* The archived entry that holds (chain, seq): 0, 1 none, -1 error. */
    int   (*lookup)(void *data, const char *chain, size_t len, uint64_t seq,
                    ca_as_mark *m);
    void   *data;
} ca_as_io;

typedef struct {
    ca_av_kind      kind;
    uint64_t        seq;
    char            detail[384];
} ca_as_finding;

typedef struct {
    int                  copy;      /* another entry holds its seq */
    uint64_t             copy_of;   /* that entry's archive order */
    int                  duplicate; /* an identical copy: not a break */
    size_t               nfindings;
    const ca_as_finding *findings;  /* valid until the next ca_as_add */
} ca_as_verdict;

typedef struct ca_as_s ca_as;

/* keys: the gateways' Ed25519 public keys (not owned). */
ca_as *ca_as_new(EVP_PKEY *const *keys, size_t nkeys, const ca_as_io *io);

/* One stream entry, in stream order; ord is the archive order it gets.
 * 0, or -1 when a callback failed or memory ran out (v must then be
 * freed: its state is no longer the archive's). */
int ca_as_add(ca_as *v, const char *id, uint64_t ord, size_t nfields,
              const char *const *names, const size_t *name_lens,
              const char *const *values, const size_t *value_lens,
              ca_as_verdict *out);

/* The chains whose state moved since ca_as_commit(): *cursor from 0;
 * 1 with the chain's name and state, 0 at the end. */
int ca_as_touched(const ca_as *v, size_t *cursor, const char **name,
                  size_t *len, const ca_as_state **st);
/* What was touched is now archived. */
void ca_as_commit(ca_as *v);

/* Chains held in memory (a caller bounds memory by starting afresh: the
 * states are in the archive). */
size_t ca_as_nchains(const ca_as *v);

/* SHA-256 of a public key's DER (the key_id of a chain's state). */
int ca_as_key_id(EVP_PKEY *key, unsigned char out[32]);

void ca_as_free(ca_as *v);

#endif
