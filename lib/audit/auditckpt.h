/*
 * Checkpoints (docs/audit-format.md §3): the bytes a checkpoint signs, its
 * entry, and the `heads` it lists, shared by the writer that signs them
 * and the verifier that checks them.
 *
 * v1 signs its own chain's head.  v2 also lists heads of the writer's
 * other chains: chain 0's checkpoint the last acknowledged entry of every
 * lane chain that moved since it last listed it, a lane's checkpoint
 * chain 0's last acknowledged checkpoint.  A listed head names a chain by
 * its lane number (the last component of the chain id; the rest is the
 * checkpoint's own writer), so deleting a whole chain, or the end of one,
 * is seen from another chain's signature.
 */
#ifndef CA_AUDITCKPT_H
#define CA_AUDITCKPT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "audit.h"

/* Heads one checkpoint lists at most: a writer with more moved chains
 * writes several checkpoints in a row (an entry holds 8 KB). */
#define CA_CKPT_HEADS_MAX   64
/* "<lane> <seq> <hash>\n" at most */
#define CA_CKPT_HEAD_LINE   (20 + 1 + 20 + 1 + 64 + 1)

typedef struct {
    uint64_t        lane;
    uint64_t        seq;
    unsigned char   hash[32];
} ca_ckpt_head;


/* The `heads` value of h[0..n), which must be in ascending lane order;
 * the length, 0 when out is too small (n == 0: "", length 0). */
size_t ca_ckpt_heads_format(const ca_ckpt_head *h, size_t n, char *out,
                            size_t outlen);

/* Parses a `heads` value as the gateway writes it (canonical decimals,
 * lower-case hex, ascending lanes, each line ending in "\n") into out
 * (room for max).  The number of heads, or -1 if malformed or more. */
long ca_ckpt_heads_parse(const char *s, size_t len, ca_ckpt_head *out,
                         size_t max);

/* Builds a checkpoint entry over the chain's current head and seals it
 * into the chain.  heads: NULL for v1, else the `heads` value (v2).  key
 * is the gateway's Ed25519 private key. */
int ca_checkpoint_build(ca_chain *ch, ca_entry *e, int64_t ts_ms,
                        const char *gw, EVP_PKEY *key, const char *heads);

/* 1 when sig (base64url) is key's signature of the checkpoint (heads
 * NULL: v1). */
int ca_checkpoint_verify(EVP_PKEY *key, const char *chain, uint64_t covers,
                         const char *head_hex, const char *heads,
                         size_t heads_len, const char *sig, size_t siglen);

/* 64 lower-case hex digits: other spellings would let two different
 * stored values verify as one (decimals: ca_u64_parse(), core/util.h).
 * 0 or -1. */
int ca_ckpt_parse_hash(const char *s, size_t len, unsigned char out[32]);

#endif
