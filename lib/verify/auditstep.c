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

#include <openssl/x509.h>

#include "audit/audit.h"
#include "audit/auditckpt.h"
#include "audit/auditschema.h"
#include "auditstep.h"
#include "core/util.h"

#define AS_RECENT   64          /* last entries' hashes per chain */
#define AS_CKPTS    8           /* last checkpoints' hashes per chain */
#define AS_KEYS_MAX 16

typedef struct {
    char           *name;
    size_t          len;
    ca_as_state     st;
    ca_as_mark      recent[AS_RECENT];
    size_t          nrecent;
    ca_as_mark      ckpt[AS_CKPTS];
    size_t          nckpt;
    ca_as_mark     *pend;       /* accepted since ca_as_commit(): not yet
                                   in the archive the callbacks read */
    size_t          npend, pcap;
    int             key;        /* index of st.key_id among the keys, -1 */
    unsigned        touched:1;
} as_chain;

struct ca_as_s {
    EVP_PKEY       *keys[AS_KEYS_MAX];
    unsigned char   key_id[AS_KEYS_MAX][32];
    size_t          nkeys;
    ca_as_io        io;
    as_chain      **chains;
    size_t          nchains, ccap;
    size_t         *slots;      /* open addressing: index + 1 */
    size_t          nslots;
    ca_as_finding  *found;
    size_t          nfound, fcap;
};

static const unsigned char zero32[32];

int
ca_as_key_id(EVP_PKEY *key, unsigned char out[32])
{
    unsigned char *der = NULL;
    int            n = i2d_PUBKEY(key, &der);

    if (n <= 0) {
        return -1;
    }
    ca_sha256(der, (size_t) n, out);
    OPENSSL_free(der);
    return 0;
}

ca_as *
ca_as_new(EVP_PKEY *const *keys, size_t nkeys, const ca_as_io *io)
{
    ca_as *v;

    if (nkeys > AS_KEYS_MAX || (v = calloc(1, sizeof(*v))) == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < nkeys; i++) {
        v->keys[i] = keys[i];
        if (ca_as_key_id(keys[i], v->key_id[i]) != 0) {
            free(v);
            return NULL;
        }
    }
    v->nkeys = nkeys;
    v->io = *io;
    v->nslots = 256;
    if ((v->slots = calloc(v->nslots, sizeof(size_t))) == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

void
ca_as_free(ca_as *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        free(v->chains[i]->name);
        free(v->chains[i]->pend);
        free(v->chains[i]);
    }
    free(v->chains);
    free(v->slots);
    free(v->found);
    free(v);
}

/* ---- chains ------------------------------------------------------------ */

static uint64_t
fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }
    return h;
}

static int
grow_slots(ca_as *v)
{
    size_t  n = v->nslots * 2;
    size_t *s = calloc(n, sizeof(size_t));

    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        size_t j = fnv1a(v->chains[i]->name, v->chains[i]->len) & (n - 1);

        while (s[j]) {
            j = (j + 1) & (n - 1);
        }
        s[j] = i + 1;
    }
    free(v->slots);
    v->slots = s;
    v->nslots = n;
    return 0;
}

static int
key_index(const ca_as *v, const unsigned char id[32])
{
    for (size_t i = 0; i < v->nkeys; i++) {
        if (memcmp(v->key_id[i], id, 32) == 0) {
            return (int) i;
        }
    }
    return -1;
}

/* The chain of that name, from memory or the archive (a chain the
 * archive does not know starts empty); NULL on an error. */
static as_chain *
chain_get(ca_as *v, const char *name, size_t len)
{
    size_t    j = fnv1a(name, len) & (v->nslots - 1);
    as_chain *c;
    int       rc;

    while (v->slots[j]) {
        c = v->chains[v->slots[j] - 1];
        if (c->len == len && memcmp(c->name, name, len) == 0) {
            return c;
        }
        j = (j + 1) & (v->nslots - 1);
    }
    if (v->nchains == v->ccap) {
        size_t     ncap = v->ccap ? v->ccap * 2 : 64;
        as_chain **nc = realloc(v->chains, ncap * sizeof(*nc));

        if (nc == NULL) {
            return NULL;
        }
        v->chains = nc;
        v->ccap = ncap;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL
        || (c->name = malloc(len + 1)) == NULL)
    {
        free(c);
        return NULL;
    }
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->len = len;
    rc = v->io.load(v->io.data, name, len, &c->st);
    if (rc < 0) {
        free(c->name);
        free(c);
        return NULL;
    }
    if (rc > 0) {
        memset(&c->st, 0, sizeof(c->st));
    }
    c->key = c->st.has_key ? key_index(v, c->st.key_id) : -1;
    v->slots[j] = v->nchains + 1;
    v->chains[v->nchains++] = c;
    if (v->nchains * 2 > v->nslots && grow_slots(v) != 0) {
        return NULL;
    }
    return c;
}

static void
remember(ca_as_mark *ring, size_t *n, size_t cap, const ca_as_mark *m)
{
    ring[*n % cap] = *m;
    (*n)++;
}

/* An entry that now holds its seq: findable before and after commit. */
static int
accept(as_chain *c, const ca_as_mark *m)
{
    if (c->npend == c->pcap) {
        size_t      ncap = c->pcap ? c->pcap * 2 : 16;
        ca_as_mark *np = realloc(c->pend, ncap * sizeof(*np));

        if (np == NULL) {
            return -1;
        }
        c->pend = np;
        c->pcap = ncap;
    }
    c->pend[c->npend++] = *m;
    remember(c->recent, &c->nrecent, AS_RECENT, m);
    return 0;
}

/* The entry holding (c, seq): 0, 1 none, -1 error. */
static int
find_mark(ca_as *v, const as_chain *c, uint64_t seq, ca_as_mark *m)
{
    if (seq == 0 || seq > c->st.last_seq) {
        return 1;
    }
    if (seq == c->st.last_seq) {
        m->seq = seq;
        m->ord = c->st.last_ord;
        memcpy(m->hash, c->st.last_hash, 32);
        return 0;
    }
    for (size_t i = 0; i < AS_RECENT && i < c->nrecent; i++) {
        if (c->recent[i].seq == seq) {
            *m = c->recent[i];
            return 0;
        }
    }
    for (size_t i = 0; i < AS_CKPTS && i < c->nckpt; i++) {
        if (c->ckpt[i].seq == seq) {
            *m = c->ckpt[i];
            return 0;
        }
    }
    for (size_t i = c->npend; i-- > 0; ) {
        if (c->pend[i].seq == seq) {
            *m = c->pend[i];
            return 0;
        }
    }
    return v->io.lookup(v->io.data, c->name, c->len, seq, m);
}

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

enum { F_EVENT, F_CHAIN, F_SEQ, F_PREV, F_COVERS, F_HEAD, F_HEADS, F_SIG,
       F_N };

static const ca_audit_fid wanted[F_N] = {
    CA_F_EVENT, CA_F_CHAIN, CA_F_SEQ, CA_F_PREV, CA_F_COVERS, CA_F_HEAD,
    CA_F_HEADS, CA_F_SIG
};

typedef struct {
    const char *const  *values;
    const size_t       *lens;
    ssize_t             at[F_N];
    int                 nul_name;
    size_t              nhash, hash_at;
} as_fields;

#define HAS(f, k)   ((f)->at[k] >= 0)
#define VAL(f, k)   (f)->values[(f)->at[k]], (f)->lens[(f)->at[k]]

static int
name_is(const char *s, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

static void
scan_fields(as_fields *f, size_t n, const char *const *names,
            const size_t *nl, const char *const *values, const size_t *vl)
{
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
        if (name_is(names[i], nl[i], CA_AUDIT_NAME(HASH))) {
            f->nhash++;
            f->hash_at = i;
            continue;
        }
        for (int k = 0; k < F_N; k++) {
            if (f->at[k] < 0
                && name_is(names[i], nl[i], ca_audit_schema[wanted[k]].name))
            {
                f->at[k] = (ssize_t) i;
                break;
            }
        }
    }
}

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
    t = chain_get(v, name, (size_t) len);
    if (t == NULL) {
        free(name);
        return -1;
    }
    rc = find_mark(v, t, h->seq, &m);
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
check_checkpoint(ca_as *v, as_chain *c, const as_fields *f, uint64_t seq,
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
          && ca_ckpt_parse_u64(VAL(f, F_COVERS), &covers) == 0
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
    int        rc = find_mark(v, c, seq, &m);

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
    as_fields       f;
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
    scan_fields(&f, nfields, names, name_lens, values, value_lens);

    if (!(HAS(&f, F_CHAIN) && f.lens[f.at[F_CHAIN]] > 0
          && memchr(VAL(&f, F_CHAIN), '\0') == NULL
          && HAS(&f, F_SEQ) && ca_ckpt_parse_u64(VAL(&f, F_SEQ), &seq) == 0
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
    if ((c = chain_get(v, VAL(&f, F_CHAIN))) == NULL) {
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
        if (accept(c, &m) != 0) {
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
        if (accept(c, &m) != 0) {
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
              && name_is(VAL(&f, F_EVENT),
                         ca_audit_event_name(CA_EV_CHECKPOINT));
    if (is_ckpt) {
        remember(c->ckpt, &c->nckpt, AS_CKPTS, &m);
        if (check_checkpoint(v, c, &f, seq, prev, &before) != 0) {
            return -1;
        }
    }
    if (HAS(&f, F_EVENT)
        && name_is(VAL(&f, F_EVENT),
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

int
ca_as_touched(const ca_as *v, size_t *cursor, const char **name, size_t *len,
              const ca_as_state **st)
{
    while (*cursor < v->nchains) {
        const as_chain *c = v->chains[(*cursor)++];

        if (c->touched) {
            *name = c->name;
            *len = c->len;
            *st = &c->st;
            return 1;
        }
    }
    return 0;
}

void
ca_as_commit(ca_as *v)
{
    for (size_t i = 0; i < v->nchains; i++) {
        v->chains[i]->touched = 0;
        v->chains[i]->npend = 0;
    }
}
