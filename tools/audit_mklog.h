/*
 * The archive's Merkle tree log and signed checkpoints from the tools
 * (contract §7.3, docs/transparency.md); the hashing and the proofs are the
 * engine's (lib/merkle/).
 *
 *   audit_mklog.c    the shipper's side: every batch's nodes in its own
 *                    transaction, a signed checkpoint at least every
 *                    --checkpoint-every, --publish FILE
 *   audit_mkstore.c  the readers' side: stored nodes fetched in bulk,
 *                    checkpoints, proofs as JSON
 *   audit_proof.c    credit-audit proof
 *   audit_stmt*.c    credit-audit statement
 */
#ifndef CA_TOOLS_AUDIT_MKLOG_H
#define CA_TOOLS_AUDIT_MKLOG_H

#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>

#include "audit_pg.h"
#include "merkle/merkle.h"

/* ---- reading the stored tree (audit_mkstore.c) ------------------------ */

typedef struct {
    uint64_t        index;
    unsigned        level;
    int             state;          /* 0 empty, 1 wanted, 2 have */
    unsigned char   h[32];
} mk_slot;

/* Stored nodes by (level, index).  A proof is made twice: first with
 * `recording` set, when a node not at hand is noted as wanted (and read
 * as zeros); then mk_fetch() reads every wanted one in one query, and the
 * second run finds them all. */
typedef struct {
    PGconn     *pg;
    mk_slot    *slot;
    size_t      cap, n, wanted;
    int         recording;
} mk_cache;

int mk_get(void *ctx, unsigned level, uint64_t index, unsigned char out[32]);
/* 0, or -1 after a message (a node the archive does not hold is an
 * error: the log is incomplete). */
int mk_fetch(mk_cache *c);
void mk_cache_free(mk_cache *c);

/* The number of leaves stored (-1 after a message). */
int64_t mk_stored_leaves(PGconn *pg);

typedef struct {
    uint64_t        size;
    unsigned char   root[32];
    char            origin[CA_NOTE_NAME_MAX + 1];
    char           *note;           /* the signed note (malloc) */
    char            made_at[40];    /* ISO 8601, UTC */
} mk_ckpt;

/* The checkpoint of tree size `size`, or with size 0 the latest: 0, 1
 * none, -1 after a message. */
int mk_ckpt_get(PGconn *pg, uint64_t size, mk_ckpt *out);
/* The latest checkpoint made at or before ms (Unix ms): 0, 1, -1. */
int mk_ckpt_before(PGconn *pg, int64_t ms, mk_ckpt *out);
void mk_ckpt_free(mk_ckpt *c);

/* JSON: a list of base64 hashes. */
void mk_json_hashes(FILE *out, const ca_mk_hash *h, size_t n);
/* A checkpoint read from a file (a note as ship --publish writes it; its
 * signature is not checked here): 0, or -1 after a message. */
int mk_ckpt_file(const char *file, mk_ckpt *c);

/* The archive, connected and at this build's schema; NULL after a
 * message. */
PGconn *mk_open_archive(const char *archive, const char *app);
/* JSON: base64 of bytes; an archived entry with its inclusion proof
 * (np < 0: none yet), {"ord","leaf","raw","fields","proof"}; a
 * checkpoint {"origin","tree_size","root","made_at","checkpoint"}. */
void mk_json_b64(FILE *out, const unsigned char *p, size_t len);
void mk_entry_json(FILE *out, uint64_t ord, const unsigned char *raw,
                   size_t len, const ca_mk_hash *path, int np);
void mk_ckpt_json(FILE *out, const mk_ckpt *c);

/* Inclusion proofs of n archived entries (their ords and leaf hashes)
 * against the checkpoint (size, root), fetched in one query and each
 * checked against root: np[i] < 0 for an entry after the checkpoint.  0,
 * 1 a proof does not hold (after a message: the archive changed), -1
 * failed.  (audit_proof.c) */
int mk_prove_all(PGconn *pg, const uint64_t *ords,
                 const unsigned char *leaves, size_t n, uint64_t size,
                 const unsigned char root[32],
                 ca_mk_hash (*paths)[CA_MK_PATH_MAX], int *np);

/* ---- the shipper's side (audit_mklog.c) ---------------------------- */

typedef struct mklog mklog;

/* The shipper's log options: NULL key for an unsigned log. */
typedef struct {
    const char     *key_file;       /* --log-key */
    const char     *name;           /* --log-name */
    const char     *publish;        /* --publish */
    int64_t         every_ms;       /* --checkpoint-every */
} mklog_opts;

/* After the options: the key read and checked.  NULL after a message. */
mklog *mklog_new(const mklog_opts *o);
void mklog_free(mklog *l);
/* In the batch's transaction, the log row locked, next_ord the archive's
 * size: the tree brought to it (after a reload, or another stream's
 * shipper).  0, or -1 after a message. */
int mklog_begin(mklog *l, PGconn *pg, uint64_t next_ord);
/* The next archived entry's leaf: its verbatim copy (raw_encode), or
 * those bytes as the archive holds them. */
int mklog_entry(mklog *l, const entry *e);
int mklog_leaf(mklog *l, const unsigned char *raw, size_t len);
/* The batch's nodes into the archive (before COMMIT): 0 or -1. */
int mklog_write(mklog *l, PGconn *pg);
void mklog_commit(mklog *l);
void mklog_rollback(mklog *l);
/* A signed checkpoint of the archive's tree when one is due (force: when
 * the tree grew at all), in its own transaction; then --publish.  0
 * (nothing due, or done), -1 after a message. */
int mklog_checkpoint(mklog *l, PGconn *pg, int force);
/* The checkpoints this process signed. */
uint64_t mklog_checkpoints(const mklog *l);

#endif
