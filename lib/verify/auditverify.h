/*
 * Verification of the audit trail's hash chains and signed checkpoints
 * (contract §7, docs/audit-format.md): what a regulator runs with only the
 * gateway's public key.
 *
 * Feed every entry of the stream in stream order with ca_av_add(), then
 * ca_av_finish(); the result is one report per chain (entries, checkpoints
 * verified, last signed seq, unsigned tail, breaks).  Entries are reduced
 * to a small record as they are added (hashes, seq, stream id), so memory
 * grows with the number of entries, not with their size.
 */
#ifndef CA_AUDITVERIFY_H
#define CA_AUDITVERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

typedef enum {
    CA_AV_MODIFIED = 0,     /* fields do not hash to the entry's hash, or a
                               re-hashed entry disagrees with its neighbour
                               or with a signed checkpoint */
    CA_AV_INSERTED,         /* an entry the chain does not account for */
    CA_AV_DELETED,          /* seqs missing before a later entry */
    CA_AV_REORDERED,        /* stream order differs from chain order */
    CA_AV_TRUNCATED,        /* entries a checkpoint covers missing at the
                               end of its range */
    CA_AV_BAD_SIGNATURE,    /* a checkpoint the public key does not verify */
    CA_AV_DISCONTINUITY,    /* the gateway found Redis without what it had
                               acknowledged (a `discontinuity` entry) */
    CA_AV_KINDS
} ca_av_kind;

typedef struct {
    ca_av_kind  kind;
    char        id[48];         /* stream id of the entry concerned */
    uint64_t    seq;            /* its seq (0 when it has none) */
    char        detail[384];
} ca_av_finding;

typedef struct {
    char            *chain;     /* "" for entries without a chain */
    size_t           entries;   /* distinct entries (duplicates dropped) */
    size_t           duplicates;
    size_t           checkpoints;           /* checkpoint entries seen */
    size_t           checkpoints_verified;  /* with a good signature */
    int              has_signed;            /* a verified checkpoint */
    uint64_t         last_signed_seq;       /* its `covers` */
    size_t           unsigned_tail;  /* entries after the last verified
                                        checkpoint: a warning, not a break */
    uint64_t         first_seq, last_seq;
    size_t           nfindings;
    ca_av_finding   *findings;
} ca_av_chain;

typedef struct ca_av_s ca_av;

/* pub: the gateway's Ed25519 public key (not owned).  NULL means
 * signatures cannot be checked: every checkpoint is then a bad_signature
 * finding, because an unverified checkpoint proves nothing. */
ca_av *ca_av_new(EVP_PKEY *pub);

/* One stream entry, in stream order.  Names and values are binary-safe
 * (explicit lengths) and copied as needed.  Returns -1 on memory
 * exhaustion only. */
int ca_av_add(ca_av *v, const char *id, size_t nfields,
              const char *const *names, const size_t *name_lens,
              const char *const *values, const size_t *value_lens);

/* Classifies; call once, after the last ca_av_add(). */
int ca_av_finish(ca_av *v);

size_t ca_av_nchains(const ca_av *v);
const ca_av_chain *ca_av_chain_at(const ca_av *v, size_t i);
/* Total findings over all chains: non-zero means "not intact". */
size_t ca_av_breaks(const ca_av *v);
size_t ca_av_entries(const ca_av *v);

/* Heads listed by verified v2 checkpoints that were checked, and those
 * not in the stream with their hash (each also a finding). */
size_t ca_av_heads_checked(const ca_av *v);
size_t ca_av_heads_missing(const ca_av *v);

/* --resume: entries of chain up to seq (hash: that entry's) were verified
 * before and are not read again; a head listed at or below it counts as
 * present (at it: with that hash).  Call before the first ca_av_add(). */
int ca_av_floor(ca_av *v, const char *chain, uint64_t seq,
                const unsigned char hash[32]);

const char *ca_av_kind_name(ca_av_kind k);

void ca_av_free(ca_av *v);

#endif
