/*
 * Internal to the verifier (auditverify.c reads entries into records,
 * auditclassify.c classifies each chain, auditheads.c checks the heads
 * that v2 checkpoints list).
 */
#ifndef CA_AUDITVERIFY_INT_H
#define CA_AUDITVERIFY_INT_H

#include "audit/audit.h"
#include "auditverify.h"

typedef struct {
    uint64_t        pos;            /* position in the stream */
    uint64_t        seq;
    uint64_t        covers;         /* checkpoint only */
    unsigned char   hash[32];       /* the stored `hash` */
    unsigned char   prev[32];
    unsigned char   head[32];       /* checkpoint only */
    unsigned        well_formed:1;  /* chain, seq, prev, hash parse */
    unsigned        digest_ok:1;    /* fields hash to `hash` */
    unsigned        checkpoint:1;
    unsigned        cp_fields:1;    /* covers, head, sig (heads) parse */
    unsigned        sig_ok:1;       /* checkpoint signature verified */
    unsigned        dup:1;          /* identical redelivery */
    unsigned        primary:1;      /* the entry that holds its seq */
    unsigned        blamed:1;       /* already has a modified finding */
    unsigned        discontinuity:1;    /* event=discontinuity */
    uint32_t        nheads;         /* v2: heads listed, at heads_at */
    size_t          heads_at;       /* in its chain's heads */
    char            id[48];
} av_rec;

typedef struct {
    uint64_t        covers;
    unsigned char   head[32];
} av_signed;

typedef struct {
    ca_av_chain     pub;
    av_rec         *recs;
    size_t          nrecs, cap;
    size_t          fcap;
    av_signed      *signed_heads;   /* verified checkpoints, by covers */
    size_t          nsigned;
    ca_ckpt_head   *heads;          /* what its v2 checkpoints list */
    size_t          nheads, hcap;
    av_rec        **prim;           /* the entries holding each seq, by
                                       seq (after classification) */
    size_t          nprim;
    size_t          heads_deleted;  /* its `deleted` finding from a
                                       listing, + 1 (0: none) */
} av_chain;

typedef struct {
    char           *chain;
    uint64_t        seq;
    unsigned char   hash[32];
} av_floor;

struct ca_av_s {
    EVP_PKEY       *key;
    av_chain      **chains;
    size_t          nchains, ccap;
    size_t         *slots;      /* open addressing: chain index + 1 */
    size_t          nslots;
    uint64_t        pos;
    int             finished;
    av_floor       *floors;     /* verified before (--resume) */
    size_t          nfloors;
    size_t          heads_checked, heads_missing;
};

/* auditchains.c: a finding against c; the chain of a name */
int ca_av_report(av_chain *c, ca_av_kind kind, const char *id,
                  uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The chain of that name, or NULL (create: a new, empty one). */
av_chain *ca_av_chain_get(ca_av *v, const char *name, size_t len,
                          int create);

/* auditclassify.c: one chain's breaks; leaves its primaries in c->prim */
int ca_av_check_chain(const ca_av *v, av_chain *c);
av_rec *ca_av_find_primary(av_rec *const *p, size_t m, uint64_t seq);

/* auditheads.c: every listed head of every verified v2 checkpoint */
int ca_av_check_heads(ca_av *v);

#endif
