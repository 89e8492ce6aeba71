/*
 * The audit archive's Merkle tree log (contract §7.3, docs/transparency.md):
 * RFC 9162 §2.1 hashing, proofs and their verification, with no I/O.
 *
 *   leaf  = SHA-256(0x00 ‖ the entry's canonical bytes)
 *   node  = SHA-256(0x01 ‖ left ‖ right)
 *   MTH({}) = SHA-256(""); a tree of n > 1 leaves splits at k, the largest
 *   power of two below n.
 *
 * Storage is the caller's: it keeps every complete subtree's hash, named
 * (level, index) — the subtree of leaves [index << level, (index + 1) <<
 * level) — and answers reads through a callback.  Every hash a proof
 * needs is either such a node or the hash of a right edge [lo, hi) made
 * of at most 64 of them, so a proof reads O(log n) nodes.  A caller that
 * reads in bulk runs a function once with a callback that only records
 * what it asks for, fetches that in one round trip, and runs it again.
 */
#ifndef CA_MERKLE_H
#define CA_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#define CA_MK_HASH          32
/* proofs of trees up to 2^64 leaves */
#define CA_MK_PATH_MAX      64
#define CA_MK_CONSIST_MAX   128

typedef unsigned char ca_mk_hash[CA_MK_HASH];

void ca_mk_leaf(const void *data, size_t len, unsigned char out[32]);
void ca_mk_node(const unsigned char l[32], const unsigned char r[32],
                unsigned char out[32]);

/* Reads the stored hash of complete subtree (level, index): 0, or -1 (the
 * functions below then fail with -1). */
typedef int (*ca_mk_get_fn)(void *ctx, unsigned level, uint64_t index,
                            unsigned char out[32]);

/* The right edge of a tree of `size` leaves: h[L] is the root of its
 * complete subtree of 2^L leaves for every bit L set in size. */
typedef struct {
    uint64_t        size;
    ca_mk_hash      h[64];
} ca_mk_frontier;

/* The frontier of a stored tree of n leaves (one read per bit of n). */
int ca_mk_frontier_load(ca_mk_frontier *f, uint64_t n, ca_mk_get_fn get,
                        void *ctx);
/* Each complete subtree an appended leaf completes, the leaf itself first:
 * what the caller stores.  Non-zero stops the append (returned). */
typedef int (*ca_mk_emit_fn)(void *ctx, unsigned level, uint64_t index,
                             const unsigned char h[32]);
int ca_mk_append(ca_mk_frontier *f, const unsigned char leaf[32],
                 ca_mk_emit_fn emit, void *ctx);
/* The tree head of the frontier's tree. */
void ca_mk_frontier_root(const ca_mk_frontier *f, unsigned char out[32]);

/* MTH(D[lo:hi]) from stored nodes; hi > lo. */
int ca_mk_range(uint64_t lo, uint64_t hi, ca_mk_get_fn get, void *ctx,
                unsigned char out[32]);
/* MTH(D[0:n]) (n = 0: SHA-256 of nothing). */
int ca_mk_root(uint64_t n, ca_mk_get_fn get, void *ctx,
               unsigned char out[32]);

/* RFC 9162 §2.1.3.1: the inclusion path of leaf m in the tree of n, leaf
 * level first.  The number of hashes, or -1 (m >= n, a read failed). */
int ca_mk_inclusion(uint64_t m, uint64_t n, ca_mk_get_fn get, void *ctx,
                    ca_mk_hash path[CA_MK_PATH_MAX]);
/* RFC 9162 §2.1.4.1: the consistency proof of the tree of m with the
 * tree of n (0 < m <= n).  The number of hashes, or -1. */
int ca_mk_consistency(uint64_t m, uint64_t n, ca_mk_get_fn get, void *ctx,
                      ca_mk_hash proof[CA_MK_CONSIST_MAX]);

/* RFC 9162 §2.1.3.2 and §2.1.4.2: 0 when the proof holds, -1 not. */
int ca_mk_verify_inclusion(const unsigned char leaf[32], uint64_t m,
                           uint64_t n, const ca_mk_hash *path, size_t np,
                           const unsigned char root[32]);
int ca_mk_verify_consistency(uint64_t m, uint64_t n,
                             const unsigned char root_m[32],
                             const unsigned char root_n[32],
                             const ca_mk_hash *proof, size_t np);

/* the rest of the component's public interface: signed notes and
 * checkpoints, and the statement's rows */
#include "note.h"
#include "stmtrow.h"

#endif
