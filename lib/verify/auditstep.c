/*
 * Verification one entry at a time (see auditstep.h): the rules of
 * auditclassify.c and auditheads.c, decided on arrival.
 *
 * Per chain in memory: the state the archive keeps, plus the hashes of
 * its last entries and of its last checkpoints, so that what a v2
 * checkpoint lists (a lane's head written a moment before, chain 0's last
 * checkpoint) and a copy of a recent entry are answered without asking
 * the archive.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit/audit.h"
#include "auditfields.h"
#include "auditstep_int.h"
#include "core/core.h"

static const unsigned char zero32[32];

/* ---- findings ---------------------------------------------------------- */

static int
report(ca_as *v, ca_av_kind kind, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
report(ca_as *v, ca_av_kind kind, uint64_t seq, const char *fmt, ...)
{
    va_list        ap;
    ca_as_finding *f;

    if (v->nfound == v->fcap) {
        size_t         ncap = v->fcap ? v->fcap * 2 : 8;
        ca_as_finding *nf = realloc(v->found, ncap * sizeof(*nf));

        if (nf == NULL) {
            return -1;
        }
        v->found = nf;
        v->fcap = ncap;
    }
    f = &v->found[v->nfound++];
    f->kind = kind;
    f->seq = seq;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    return 0;
}

#define ULL(x) ((unsigned long long) (x))

/* ---- one entry ---------------------------------------------------------- */

/* The heads a verified v2 checkpoint lists: each must be archived, with
 * that hash (auditheads.c's rule). */
static int
check_listing(ca_as *v, const as_chain *c, uint64_t cp_seq,
              const ca_ckpt_head *h)
{
    const char *slash = strrchr(c->name, '/');
    size_t      plen = slash ? (size_t) (slash - c->name) + 1 : 0;
    char       *name = malloc(plen + 24);
    as_chain   *t;
    ca_as_mark  m;
    int         len, rc;

    if (name == NULL) {
        return -1;
    }
    len = snprintf(name, plen + 24, "%.*s%llu", (int) plen, c->name,
                   ULL(h->lane));
    t = as_chain_get(v, name, (size_t) len);
    if (t == NULL) {
        free(name);
        return -1;
    }
    rc = as_find_mark(v, t, h->seq, &m);
    if (rc == 0 && memcmp(m.hash, h->hash, 32) != 0) {
        rc = report(v, CA_AV_MODIFIED, cp_seq, "checkpoint %s#%llu lists "
                    "chain %s at seq %llu with another hash than the "
                    "stream's", c->name, ULL(cp_seq), name, ULL(h->seq));
    } else if (rc > 0 && t->st.last_seq == 0) {
        rc = report(v, CA_AV_DELETED, cp_seq, "checkpoint %s#%llu lists "
                    "chain %s at seq %llu; the stream holds none", c->name,
                    ULL(cp_seq), name, ULL(h->seq));
    } else if (rc > 0 && h->seq > t->st.last_seq) {
        rc = report(v, CA_AV_DELETED, cp_seq, "checkpoint %s#%llu lists "
                    "chain %s at seq %llu; the stream ends it at %llu",
                    c->name, ULL(cp_seq), name, ULL(h->seq),
                    ULL(t->st.last_seq));
    } else if (rc > 0) {
        rc = report(v, CA_AV_DELETED, cp_seq, "checkpoint %s#%llu lists "
                    "chain %s at seq %llu; the stream lacks that seq",
                    c->name, ULL(cp_seq), name, ULL(h->seq));
    }
    free(name);
    return rc < 0 ? -1 : 0;
}

/* A checkpoint entry: its signature, what it covers, what it lists.
 * prev_head: the chain's head before this entry (its seq is covers when
 * nothing is missing). */
static int
check_checkpoint(ca_as *v, as_chain *c, const ca_vfields *f, uint64_t seq,
                 const unsigned char prev[32], const ca_as_state *before)
{
    ca_ckpt_head    heads[CA_CKPT_HEADS_MAX];
    long            nheads = 0;
    uint64_t        covers;
    unsigned char   head[32];
    char            hex[65];
    const char     *hv = HAS(f, F_HEADS) ? f->values[f->at[F_HEADS]] : NULL;
    size_t          hl = HAS(f, F_HEADS) ? f->lens[f->at[F_HEADS]] : 0;
    int             ok = 0, k;

    if (!(HAS(f, F_COVERS) && HAS(f, F_HEAD) && HAS(f, F_SIG)
          && ca_u64_parse(VAL(f, F_COVERS), &covers) == 0
          && ca_ckpt_parse_hash(VAL(f, F_HEAD), head) == 0
          && (hv == NULL || (nheads = ca_ckpt_heads_parse(
                                 hv, hl, heads, CA_CKPT_HEADS_MAX)) >= 0)))
    {
        return report(v, CA_AV_BAD_SIGNATURE, seq, "covers, head or sig "
                      "missing or malformed");
    }
    ca_hex(head, 32, hex);
    if (c->key >= 0) {
        k = c->key;
        ok = ca_checkpoint_verify(v->keys[k], c->name, covers, hex, hv, hl,
                                  VAL(f, F_SIG));
    } else if (!c->st.has_key) {
        for (k = 0; k < (int) v->nkeys && !ok; k++) {
            ok = ca_checkpoint_verify(v->keys[k], c->name, covers, hex, hv,
                                      hl, VAL(f, F_SIG));
        }
        k--;
    }
    if (!ok) {
        return report(v, CA_AV_BAD_SIGNATURE, seq, "%s",
                      v->nkeys == 0
                      ? "no public key to verify the signature"
                      : c->st.has_key && c->key < 0
                      ? "the chain's earlier checkpoints were verified with "
                        "a key not given now"
                      : "the signature does not verify with the gateway's "
                        "public key");
    }
    if (!c->st.has_key) {
        c->st.has_key = 1;
        c->key = k;
        memcpy(c->st.key_id, v->key_id[k], 32);
    }

    if (seq > covers + 1) {
        if (report(v, CA_AV_INSERTED, seq, "checkpoint at seq %llu signs seq "
                   "%llu: %llu entr%s the signature does not account for",
                   ULL(seq), ULL(covers), ULL(seq - covers - 1),
                   seq - covers - 1 == 1 ? "y" : "ies") != 0)
        {
            return -1;
        }
    } else if (seq <= covers) {
        if (report(v, CA_AV_DELETED, seq, "checkpoint at seq %llu signs seq "
                   "%llu: entries were removed and renumbered", ULL(seq),
                   ULL(covers)) != 0)
        {
            return -1;
        }
    } else if (before->last_seq == covers
               && memcmp(before->last_hash, head, 32) != 0
               && memcmp(prev, before->last_hash, 32) == 0)
    {
        /* the entry the signature names is not the one archived, though
         * the checkpoint links to it (a prev that does not was reported
         * already: the same forgery) */
        if (report(v, CA_AV_MODIFIED, seq, "seq %llu's hash is not the head "
                   "this checkpoint signed", ULL(covers)) != 0)
        {
            return -1;
        }
    }
    if (covers > c->st.signed_seq) {
        c->st.signed_seq = covers;
    }
    for (long i = 0; i < nheads; i++) {
        if (check_listing(v, c, seq, &heads[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

/* A (chain, seq) that is already archived, or lies in a gap below the
 * chain's head. */
static int
judge_old(ca_as *v, as_chain *c, uint64_t seq, const unsigned char hash[32],
          int digest_ok, ca_as_verdict *out, int *accepted)
{
    ca_as_mark m;
    int        rc = as_find_mark(v, c, seq, &m);

    if (rc < 0) {
        return -1;
    }
    if (rc > 0) {
        *accepted = 1;
        return report(v, CA_AV_REORDERED, seq, "seq %llu arrives after seq "
                      "%llu of its chain", ULL(seq), ULL(c->st.last_seq));
    }
    out->copy = 1;
    out->copy_of = m.ord;
    if (memcmp(m.hash, hash, 32) == 0) {
        if (digest_ok) {
            out->duplicate = 1;
            return 0;
        }
        return report(v, CA_AV_MODIFIED, seq, "another copy of seq %llu with "
                      "changed fields", ULL(seq));
    }
    return report(v, CA_AV_INSERTED, seq, "a second entry with seq %llu that "
                  "the chain does not link (kept archive entry %llu)",
                  ULL(seq), ULL(m.ord));
}

int
ca_as_add(ca_as *v, const char *id, uint64_t ord, size_t nfields,
          const char *const *names, const size_t *name_lens,
          const char *const *values, const size_t *value_lens,
          ca_as_verdict *out)
{
    ca_vfields       f;
    as_chain       *c;
    ca_as_state     before;
    uint64_t        seq = 0;
    unsigned char   prev[32], hash[32], digest[32];
    char            hex[65];
    int             digest_ok, accepted = 0, is_ckpt;
    ca_as_mark      m;

    (void) id;
    memset(out, 0, sizeof(*out));
    v->nfound = 0;
    ca_vf_scan(&f, nfields, names, name_lens, values, value_lens);

    if (!(HAS(&f, F_CHAIN) && f.lens[f.at[F_CHAIN]] > 0
          && ca_audit_column_fits(CA_F_CHAIN, VAL(&f, F_CHAIN))
          && HAS(&f, F_SEQ) && ca_u64_parse(VAL(&f, F_SEQ), &seq) == 0
          && seq > 0 && HAS(&f, F_PREV)
          && ca_ckpt_parse_hash(VAL(&f, F_PREV), prev) == 0
          && f.nhash == 1
          && ca_ckpt_parse_hash(values[f.hash_at], value_lens[f.hash_at],
                                hash) == 0))
    {
        if (report(v, CA_AV_INSERTED, seq, "not a sealed chain entry (chain, "
                   "seq, prev or a single hash missing or malformed)") != 0)
        {
            return -1;
        }
        goto done;
    }
    if ((c = as_chain_get(v, VAL(&f, F_CHAIN))) == NULL) {
        return -1;
    }

    ca_entry_digest_bin(names, name_lens, values, value_lens, nfields,
                        digest);
    ca_hex(digest, 32, hex);
    digest_ok = !f.nul_name && f.hash_at == nfields - 1
                && memcmp(hex, values[f.hash_at], 64) == 0;

    before = c->st;
    m.seq = seq;
    m.ord = ord;
    memcpy(m.hash, hash, 32);
    if (seq <= c->st.last_seq) {
        if (judge_old(v, c, seq, hash, digest_ok, out, &accepted) != 0) {
            return -1;
        }
        if (!accepted) {
            goto done;
        }
        if (as_accept(c, &m) != 0) {
            return -1;
        }
    } else {
        accepted = 1;
        if (c->st.last_seq == 0 && seq > 1) {
            if (report(v, CA_AV_DELETED, seq, "the chain starts at seq %llu: "
                       "seq 1..%llu missing", ULL(seq), ULL(seq - 1)) != 0) {
                return -1;
            }
        } else if (seq > c->st.last_seq + 1) {
            uint64_t a = c->st.last_seq + 1, b = seq - 1;
            int      rc = a == b
                          ? report(v, CA_AV_DELETED, seq, "seq %llu missing",
                                   ULL(a))
                          : report(v, CA_AV_DELETED, seq, "seq %llu..%llu "
                                   "missing", ULL(a), ULL(b));
            if (rc != 0) {
                return -1;
            }
        } else if (seq == 1 && memcmp(prev, zero32, 32) != 0) {
            if (report(v, CA_AV_MODIFIED, seq, "the first entry's prev is not "
                       "64 zeros") != 0)
            {
                return -1;
            }
        } else if (seq > 1 && memcmp(prev, c->st.last_hash, 32) != 0) {
            if (report(v, CA_AV_MODIFIED, seq, "prev is not the hash of seq "
                       "%llu (archive entry %llu)", ULL(seq - 1),
                       ULL(c->st.last_ord)) != 0)
            {
                return -1;
            }
        }
        if (as_accept(c, &m) != 0) {
            return -1;
        }
        c->st.last_seq = seq;
        c->st.last_ord = ord;
        memcpy(c->st.last_hash, hash, 32);
    }
    c->st.entries++;
    c->touched = 1;

    if (!digest_ok && report(v, CA_AV_MODIFIED, seq, "the fields do not hash "
                             "to the stored hash") != 0)
    {
        return -1;
    }
    is_ckpt = HAS(&f, F_EVENT)
              && ca_vf_is(VAL(&f, F_EVENT),
                         ca_audit_event_name(CA_EV_CHECKPOINT));
    if (is_ckpt) {
        as_remember(c->ckpt, &c->nckpt, AS_CKPTS, &m);
        if (check_checkpoint(v, c, &f, seq, prev, &before) != 0) {
            return -1;
        }
    }
    if (HAS(&f, F_EVENT)
        && ca_vf_is(VAL(&f, F_EVENT),
                   ca_audit_event_name(CA_EV_DISCONTINUITY))
        && report(v, CA_AV_DISCONTINUITY, seq, "the gateway found Redis "
                  "without data it had acknowledged (see this entry's "
                  "`missing`)") != 0)
    {
        return -1;
    }

done:
    out->nfindings = v->nfound;
    out->findings = v->found;
    return 0;
}


