/*
 * Audit chain and checkpoint verification (see auditverify.h and
 * docs/audit-format.md for the classification rules).
 *
 * The evidence available to a regulator is:
 *   - each entry's own hash over its fields (catches edits that were not
 *     re-hashed);
 *   - each entry's prev = its predecessor's hash (catches re-hashed edits
 *     that were not propagated, deletions and insertions in the middle);
 *   - signed checkpoints (chain, covers, head): the only thing a forger who
 *     re-hashes everything cannot redo without the gateway's private key.
 * Every check below is one of these three, applied per chain.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit.h"
#include "auditverify.h"
#include "util.h"

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
    unsigned        cp_fields:1;    /* covers, head, sig parse */
    unsigned        sig_ok:1;       /* checkpoint signature verified */
    unsigned        dup:1;          /* identical redelivery */
    unsigned        primary:1;      /* the entry that holds its seq */
    unsigned        blamed:1;       /* already has a modified finding */
    unsigned        discontinuity:1;    /* event=discontinuity */
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
} av_chain;

struct ca_av_s {
    EVP_PKEY       *key;
    av_chain      **chains;
    size_t          nchains, ccap;
    size_t         *slots;      /* open addressing: chain index + 1 */
    size_t          nslots;
    uint64_t        pos;
    int             finished;
};

static const unsigned char zero32[32];

const char *
ca_av_kind_name(ca_av_kind k)
{
    static const char *const names[CA_AV_KINDS] = {
        "modified", "inserted", "deleted", "reordered", "truncated",
        "bad_signature", "discontinuity"
    };

    return (unsigned) k < CA_AV_KINDS ? names[k] : "unknown";
}

ca_av *
ca_av_new(EVP_PKEY *pub)
{
    ca_av *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        return NULL;
    }
    v->key = pub;
    v->nslots = 64;
    v->slots = calloc(v->nslots, sizeof(size_t));
    if (v->slots == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

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
rehash(ca_av *v)
{
    size_t  n = v->nslots * 2;
    size_t *s = calloc(n, sizeof(size_t));

    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        const char *name = v->chains[i]->pub.chain;
        size_t      j = fnv1a(name, strlen(name)) & (n - 1);

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

/* Chain names come from the stream and may hold any byte; a NUL would end
 * the name early, so such a name is a chain of its own that no gateway
 * writes ("" plus the NUL-free prefix is never ambiguous with a real id,
 * whose entries then fail their checks). */
static av_chain *
chain_get(ca_av *v, const char *name, size_t len)
{
    size_t    j;
    av_chain *c;

    if (len != strnlen(name, len)) {
        len = strnlen(name, len);
    }
    j = fnv1a(name, len) & (v->nslots - 1);
    while (v->slots[j]) {
        c = v->chains[v->slots[j] - 1];
        if (strlen(c->pub.chain) == len
            && memcmp(c->pub.chain, name, len) == 0)
        {
            return c;
        }
        j = (j + 1) & (v->nslots - 1);
    }

    if (v->nchains == v->ccap) {
        size_t     ncap = v->ccap ? v->ccap * 2 : 8;
        av_chain **nc = realloc(v->chains, ncap * sizeof(*nc));

        if (nc == NULL) {
            return NULL;
        }
        v->chains = nc;
        v->ccap = ncap;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->pub.chain = malloc(len + 1)) == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->pub.chain, name, len);
    c->pub.chain[len] = '\0';
    v->slots[j] = v->nchains + 1;
    v->chains[v->nchains++] = c;
    if (v->nchains * 2 > v->nslots && rehash(v) != 0) {
        return NULL;
    }
    return c;
}

static int
add_finding(av_chain *c, ca_av_kind kind, const av_rec *r, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));

static int
add_finding(av_chain *c, ca_av_kind kind, const av_rec *r, const char *fmt,
            ...)
{
    va_list        ap;
    ca_av_finding *f;

    if (c->pub.nfindings == c->fcap) {
        size_t         ncap = c->fcap ? c->fcap * 2 : 8;
        ca_av_finding *nf = realloc(c->pub.findings, ncap * sizeof(*nf));

        if (nf == NULL) {
            return -1;
        }
        c->pub.findings = nf;
        c->fcap = ncap;
    }
    f = &c->pub.findings[c->pub.nfindings++];
    f->kind = kind;
    snprintf(f->id, sizeof(f->id), "%s", r ? r->id : "");
    f->seq = r ? r->seq : 0;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    return 0;
}

/* Canonical decimal as the gateway prints it: no sign, no leading zero. */
static int
parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t n = 0;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        if (n > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10) {
            return -1;
        }
        n = n * 10 + (uint64_t) (s[i] - '0');
    }
    *out = n;
    return 0;
}

/* Lower-case hex only: the gateway writes lower case, and accepting other
 * spellings would let two different stored values verify as one. */
static int
parse_hash(const char *s, size_t len, unsigned char out[32])
{
    char buf[65];

    if (len != 64) {
        return -1;
    }
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return -1;
        }
    }
    memcpy(buf, s, 64);
    buf[64] = '\0';
    return ca_unhex(buf, out, 32);
}

static int
field_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int
verify_checkpoint(EVP_PKEY *key, const char *chain, uint64_t covers,
                  const char *head_hex, const char *sig, size_t siglen)
{
    char          msg[512];
    unsigned char raw[96];
    size_t        mlen;
    long          rawlen;
    EVP_MD_CTX   *md;
    int           ok;

    if (key == NULL || siglen > 88) {
        return 0;
    }
    rawlen = ca_b64url_decode(sig, siglen, raw);
    if (rawlen != 64) {
        return 0;
    }
    mlen = ca_checkpoint_message(chain, covers, head_hex, msg, sizeof(msg));
    if (mlen == 0) {
        return 0;
    }
    md = EVP_MD_CTX_new();
    ok = md != NULL
         && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1
         && EVP_DigestVerify(md, raw, 64, (const unsigned char *) msg,
                             mlen) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

int
ca_av_add(ca_av *v, const char *id, size_t nfields,
          const char *const *names, const size_t *name_lens,
          const char *const *values, const size_t *value_lens)
{
    av_rec         r;
    av_chain      *c;
    size_t         i, nhash = 0, hash_at = 0, total = 0;
    ssize_t        f_event = -1, f_chain = -1, f_seq = -1, f_prev = -1,
                   f_covers = -1, f_head = -1, f_sig = -1;
    int            names_clean = 1;
    unsigned char  digest[32];
    char           hex[65];
    char          *nbuf, **cnames;

    memset(&r, 0, sizeof(r));
    r.pos = v->pos++;
    snprintf(r.id, sizeof(r.id), "%s", id);

    /* The first occurrence of each field is the one readers see first;
     * a gateway never writes a field twice, except that the digest covers
     * every occurrence anyway. */
    for (i = 0; i < nfields; i++) {
        const char *n = names[i];
        size_t      l = name_lens[i];

        total += l + 1;
        if (memchr(n, '\0', l) != NULL) {
            names_clean = 0;
        }
        if (field_is(n, l, "hash")) {
            nhash++;
            hash_at = i;
        } else if (field_is(n, l, "event") && f_event < 0) {
            f_event = (ssize_t) i;
        } else if (field_is(n, l, "chain") && f_chain < 0) {
            f_chain = (ssize_t) i;
        } else if (field_is(n, l, "seq") && f_seq < 0) {
            f_seq = (ssize_t) i;
        } else if (field_is(n, l, "prev") && f_prev < 0) {
            f_prev = (ssize_t) i;
        } else if (field_is(n, l, "covers") && f_covers < 0) {
            f_covers = (ssize_t) i;
        } else if (field_is(n, l, "head") && f_head < 0) {
            f_head = (ssize_t) i;
        } else if (field_is(n, l, "sig") && f_sig < 0) {
            f_sig = (ssize_t) i;
        }
    }

    c = f_chain >= 0 ? chain_get(v, values[f_chain], value_lens[f_chain])
                     : chain_get(v, "", 0);
    if (c == NULL) {
        return -1;
    }

    r.well_formed = f_chain >= 0 && value_lens[f_chain] > 0
        && f_seq >= 0
        && parse_u64(values[f_seq], value_lens[f_seq], &r.seq) == 0
        && r.seq > 0
        && f_prev >= 0
        && parse_hash(values[f_prev], value_lens[f_prev], r.prev) == 0
        && nhash == 1
        && parse_hash(values[hash_at], value_lens[hash_at], r.hash) == 0;

    /* ca_entry_digest() takes C-string names; a name with a NUL inside
     * could otherwise hash like a different, shorter one. */
    if (r.well_formed && names_clean) {
        nbuf = malloc(total);
        cnames = malloc((nfields ? nfields : 1) * sizeof(char *));
        if (nbuf == NULL || cnames == NULL) {
            free(nbuf);
            free(cnames);
            return -1;
        }
        for (i = 0, total = 0; i < nfields; i++) {
            cnames[i] = nbuf + total;
            memcpy(cnames[i], names[i], name_lens[i]);
            cnames[i][name_lens[i]] = '\0';
            total += name_lens[i] + 1;
        }
        ca_entry_digest((const char *const *) cnames, values, value_lens,
                        nfields, digest);
        free(nbuf);
        free(cnames);
        ca_hex(digest, 32, hex);
        /* `hash` is sealed last; anything after it is not covered. */
        r.digest_ok = hash_at == nfields - 1
                      && memcmp(hex, values[hash_at], 64) == 0;
    }

    r.discontinuity = f_event >= 0
                      && field_is(values[f_event], value_lens[f_event],
                                  "discontinuity");

    if (f_event >= 0 && field_is(values[f_event], value_lens[f_event],
                                 "checkpoint"))
    {
        r.checkpoint = 1;
        if (r.well_formed && f_covers >= 0 && f_head >= 0 && f_sig >= 0
            && parse_u64(values[f_covers], value_lens[f_covers],
                         &r.covers) == 0
            && parse_hash(values[f_head], value_lens[f_head], r.head) == 0)
        {
            r.cp_fields = 1;
            ca_hex(r.head, 32, hex);
            r.sig_ok = verify_checkpoint(v->key, c->pub.chain, r.covers, hex,
                                         values[f_sig], value_lens[f_sig]);
        }
    }

    if (c->nrecs == c->cap) {
        size_t  ncap = c->cap ? c->cap * 2 : 64;
        av_rec *nr = realloc(c->recs, ncap * sizeof(*nr));

        if (nr == NULL) {
            return -1;
        }
        c->recs = nr;
        c->cap = ncap;
    }
    c->recs[c->nrecs++] = r;
    return 0;
}

static int
rec_cmp(const void *a, const void *b)
{
    const av_rec *x = a, *y = b;

    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int
signed_cmp(const void *a, const void *b)
{
    const av_signed *x = a, *y = b;

    if (x->covers != y->covers) {
        return x->covers < y->covers ? -1 : 1;
    }
    return memcmp(x->head, y->head, 32);
}

/* The heads verified checkpoints vouch for, sorted for lookup: the
 * classification asks "did a signature name this hash" once per entry. */
static int
collect_signed(av_chain *c)
{
    size_t n = 0;

    for (size_t i = 0; i < c->nrecs; i++) {
        n += c->recs[i].checkpoint && c->recs[i].sig_ok;
    }
    c->signed_heads = malloc((n ? n : 1) * sizeof(av_signed));
    if (c->signed_heads == NULL) {
        return -1;
    }
    for (size_t i = 0; i < c->nrecs; i++) {
        const av_rec *r = &c->recs[i];

        if (r->checkpoint && r->sig_ok) {
            c->signed_heads[c->nsigned].covers = r->covers;
            memcpy(c->signed_heads[c->nsigned++].head, r->head, 32);
        }
    }
    qsort(c->signed_heads, c->nsigned, sizeof(av_signed), signed_cmp);
    return 0;
}

/* A verified checkpoint vouches for (covers, head). */
static int
signed_head(const av_chain *c, uint64_t seq, const unsigned char h[32])
{
    av_signed key;

    key.covers = seq;
    memcpy(key.head, h, 32);
    return bsearch(&key, c->signed_heads, c->nsigned, sizeof(av_signed),
                   signed_cmp) != NULL;
}

static int
blame(av_chain *c, av_rec *r, const char *why)
{
    if (r->blamed) {
        return 0;
    }
    r->blamed = 1;
    return add_finding(c, CA_AV_MODIFIED, r, "%s", why);
}

static int
by_hash(const void *a, const void *b)
{
    const av_rec *x = *(av_rec *const *) a, *y = *(av_rec *const *) b;
    int           d = memcmp(x->hash, y->hash, 32);

    return d != 0 ? d : (x->pos > y->pos) - (x->pos < y->pos);
}

static int
by_prev(const void *a, const void *b)
{
    return memcmp((*(av_rec *const *) a)->prev, (*(av_rec *const *) b)->prev,
                  32);
}

/*
 * Marks identical redeliveries in the seq group [i, end): every correctly
 * hashed entry whose hash an earlier correctly hashed entry already has
 * (a reconnect retried an XADD that had in fact succeeded).  Sorting by
 * (hash, position) keeps the first stored copy and costs n log n: anyone
 * can compute the unkeyed hash of an entry that claims seq 1, so a group
 * can hold as many entries as the stream.  Returns the entries left.
 */
static size_t
mark_duplicates(av_chain *c, size_t i, size_t end, av_rec **tmp)
{
    size_t m = 0, left = end - i;

    for (size_t j = i; j < end; j++) {
        if (c->recs[j].digest_ok) {
            tmp[m++] = &c->recs[j];
        }
    }
    qsort(tmp, m, sizeof(*tmp), by_hash);
    for (size_t j = 1; j < m; j++) {
        if (memcmp(tmp[j]->hash, tmp[j - 1]->hash, 32) == 0) {
            tmp[j]->dup = 1;
            c->pub.duplicates++;
            left--;
        }
    }
    return left;
}

/* Is h the prev of one of the m entries of next (sorted by prev)? */
static int
linked_from(av_rec *const *next, size_t m, const unsigned char h[32])
{
    size_t lo = 0, hi = m;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int    d = memcmp(next[mid]->prev, h, 32);

        if (d == 0) {
            return 1;
        }
        if (d < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return 0;
}

/*
 * Picks the entry that holds each seq when several distinct entries claim
 * it: the one the chain itself vouches for (the next entry's prev, or a
 * signed head), then one whose fields hash correctly, then the first
 * stored.  The others were not written by the chain's writer.
 */
static int
choose_primaries(av_chain *c, size_t from)
{
    size_t   i = from, j, k;
    av_rec **tmp;
    int      rc = 0;

    tmp = malloc((c->nrecs > from ? c->nrecs - from : 1) * sizeof(*tmp));
    if (tmp == NULL) {
        return -1;
    }
    while (i < c->nrecs) {
        size_t  end = i, best = i, left, nnext = 0;
        int     best_score = -1;

        while (end < c->nrecs && c->recs[end].seq == c->recs[i].seq) {
            end++;
        }
        left = mark_duplicates(c, i, end, tmp);
        if (left > 1) {
            /* the next group's prevs, sorted once for the whole group */
            for (k = end; k < c->nrecs && c->recs[k].seq == c->recs[i].seq + 1;
                 k++)
            {
                if (!c->recs[k].dup) {
                    tmp[nnext++] = &c->recs[k];
                }
            }
            qsort(tmp, nnext, sizeof(*tmp), by_prev);
        }
        for (j = i; j < end && left > 1; j++) {
            av_rec *r = &c->recs[j];
            int     score = 0;

            if (r->dup) {
                continue;
            }
            if (best_score < 0) {
                best = j;
            }
            if (linked_from(tmp, nnext, r->hash)
                || signed_head(c, r->seq, r->hash))
            {
                score += 2;
            }
            if (r->digest_ok) {
                score += 1;
            }
            if (score > best_score) {
                best_score = score;
                best = j;
            }
        }
        if (left == 1) {
            for (best = i; c->recs[best].dup; best++) {
                /* the one that is left */
            }
        }
        c->recs[best].primary = 1;
        for (j = i; j < end; j++) {
            av_rec *r = &c->recs[j];

            if (r->dup || r->primary) {
                continue;
            }
            if (memcmp(r->hash, c->recs[best].hash, 32) == 0) {
                r->blamed = 1;
                if (add_finding(c, CA_AV_MODIFIED, r,
                                "another copy of seq %llu with changed "
                                "fields", (unsigned long long) r->seq) != 0)
                {
                    rc = -1;
                    goto done;
                }
            } else if (add_finding(c, CA_AV_INSERTED, r,
                                   "a second entry with seq %llu that the "
                                   "chain does not link (kept %s)",
                                   (unsigned long long) r->seq,
                                   c->recs[best].id) != 0)
            {
                rc = -1;
                goto done;
            }
        }
        i = end;
    }

done:
    free(tmp);
    return rc;
}

static const char *
sig_reason(const ca_av *v, const av_rec *r)
{
    if (!r->cp_fields) {
        return "covers, head or sig missing or malformed";
    }
    if (v->key == NULL) {
        return "no public key to verify the signature";
    }
    return "the signature does not verify with the gateway's public key";
}

static av_rec *
find_primary(av_rec **p, size_t m, uint64_t seq)
{
    size_t lo = 0, hi = m;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (p[mid]->seq == seq) {
            return p[mid];
        }
        if (p[mid]->seq < seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static int
check_chain(const ca_av *v, av_chain *c)
{
    size_t          i, n, m = 0, first_bad = 0;
    av_rec        **p;
    av_rec         *last_cp = NULL;
    ca_av_chain    *pub = &c->pub;

    /* Entries that are not chain entries at all come out first: they
     * cannot be placed, so they are insertions. */
    for (i = 0; i < c->nrecs; i++) {
        if (!c->recs[i].well_formed) {
            av_rec tmp = c->recs[i];

            if (add_finding(c, CA_AV_INSERTED, &tmp,
                            "not a sealed chain entry (chain, seq, prev or "
                            "a single hash missing or malformed)") != 0)
            {
                return -1;
            }
            pub->entries++;
            c->recs[i] = c->recs[first_bad];
            c->recs[first_bad++] = tmp;
        }
    }
    n = c->nrecs - first_bad;
    qsort(c->recs + first_bad, n, sizeof(av_rec), rec_cmp);
    if (collect_signed(c) != 0 || choose_primaries(c, first_bad) != 0) {
        return -1;
    }

    p = malloc((n ? n : 1) * sizeof(*p));
    if (p == NULL) {
        return -1;
    }
    for (i = first_bad; i < c->nrecs; i++) {
        av_rec *r = &c->recs[i];

        if (r->dup) {
            continue;
        }
        pub->entries++;
        if (r->checkpoint) {
            pub->checkpoints++;
            if (r->sig_ok) {
                pub->checkpoints_verified++;
            } else if (add_finding(c, CA_AV_BAD_SIGNATURE, r,
                                   "%s", sig_reason(v, r)) != 0)
            {
                free(p);
                return -1;
            }
        }
        if (r->primary) {
            p[m++] = r;
        }
    }

    for (i = 0; i < m; i++) {
        av_rec *r = p[i], *q = i ? p[i - 1] : NULL;
        int     rc = 0;

        if (!r->digest_ok && !r->blamed) {
            r->blamed = 1;
            rc = add_finding(c, CA_AV_MODIFIED, r,
                             "the fields do not hash to the stored hash");
        }

        if (q == NULL) {
            if (r->seq > 1) {
                rc |= add_finding(c, CA_AV_DELETED, r,
                                  "the chain starts at seq %llu: seq 1..%llu "
                                  "missing", (unsigned long long) r->seq,
                                  (unsigned long long) r->seq - 1);
            } else if (memcmp(r->prev, zero32, 32) != 0) {
                rc |= blame(c, r, "the first entry's prev is not 64 zeros");
            }
        } else if (r->seq > q->seq + 1) {
            uint64_t a = q->seq + 1, b = r->seq - 1;

            if (r->checkpoint && r->sig_ok && r->covers == b && i == m - 1) {
                rc |= add_finding(c, CA_AV_TRUNCATED, r,
                                  "the signed checkpoint covers seq %llu but "
                                  "the chain ends at seq %llu",
                                  (unsigned long long) b,
                                  (unsigned long long) q->seq);
            } else if (a == b) {
                rc |= add_finding(c, CA_AV_DELETED, r, "seq %llu missing",
                                  (unsigned long long) a);
            } else {
                rc |= add_finding(c, CA_AV_DELETED, r, "seq %llu..%llu "
                                  "missing", (unsigned long long) a,
                                  (unsigned long long) b);
            }
        } else if (memcmp(r->prev, q->hash, 32) != 0) {
            /* One of the two was re-hashed.  A signed head clears the
             * earlier one; otherwise it is the earlier one whose hash the
             * chain no longer agrees with. */
            if (q->digest_ok && signed_head(c, q->seq, q->hash)) {
                rc |= blame(c, r, "prev is not the hash of the previous "
                            "entry, which a checkpoint signed");
            } else if (q->digest_ok) {
                rc |= blame(c, q, "re-hashed: its hash is not the next "
                            "entry's prev");
            }
        }

        if (q != NULL && r->pos < q->pos) {
            rc |= add_finding(c, CA_AV_REORDERED, r,
                              "seq %llu is stored before seq %llu (%s)",
                              (unsigned long long) r->seq,
                              (unsigned long long) q->seq, q->id);
        }

        if (r->checkpoint && r->sig_ok) {
            /* the entry the signature names must be the one stored */
            av_rec *named = find_primary(p, m, r->covers);
            int     named_bad = named != NULL
                                && memcmp(named->hash, r->head, 32) != 0;

            if (named_bad) {
                char why[128];

                snprintf(why, sizeof(why), "its hash is not the head signed "
                         "by checkpoint %s", r->id);
                rc |= blame(c, named, why);
            }
            if (r->seq > r->covers + 1) {
                rc |= add_finding(c, CA_AV_INSERTED, r,
                                  "checkpoint at seq %llu signs seq %llu: "
                                  "%llu entr%s the signature does not "
                                  "account for",
                                  (unsigned long long) r->seq,
                                  (unsigned long long) r->covers,
                                  (unsigned long long) (r->seq - r->covers
                                                        - 1),
                                  r->seq - r->covers - 1 == 1 ? "y" : "ies");
            } else if (r->seq <= r->covers) {
                rc |= add_finding(c, CA_AV_DELETED, r,
                                  "checkpoint at seq %llu signs seq %llu: "
                                  "entries were removed and renumbered",
                                  (unsigned long long) r->seq,
                                  (unsigned long long) r->covers);
            } else if (!named_bad && memcmp(r->prev, r->head, 32) != 0) {
                /* when the named entry is already blamed, a prev that
                 * follows it is the same forgery, not a second one */
                rc |= blame(c, r, "the checkpoint's prev is not its signed "
                            "head");
            }
            last_cp = r;
        }
        if (rc != 0) {
            free(p);
            return -1;
        }
    }

    /* the writer itself says entries it had acknowledged are gone: never
     * intact, whatever the chains that are left look like */
    for (i = 0; i < m; i++) {
        if (p[i]->discontinuity
            && add_finding(c, CA_AV_DISCONTINUITY, p[i], "the gateway found "
                           "Redis without data it had acknowledged (see "
                           "this entry's `missing`)") != 0)
        {
            free(p);
            return -1;
        }
    }

    if (m > 0) {
        pub->first_seq = p[0]->seq;
        pub->last_seq = p[m - 1]->seq;
    }
    if (last_cp != NULL) {
        pub->has_signed = 1;
        pub->last_signed_seq = last_cp->covers;
        for (i = 0; i < m; i++) {
            pub->unsigned_tail += p[i]->seq > last_cp->seq;
        }
    } else {
        pub->unsigned_tail = m;
    }
    free(p);
    return 0;
}

int
ca_av_finish(ca_av *v)
{
    if (v->finished) {
        return 0;
    }
    v->finished = 1;
    for (size_t i = 0; i < v->nchains; i++) {
        if (check_chain(v, v->chains[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

size_t
ca_av_nchains(const ca_av *v)
{
    return v->nchains;
}

const ca_av_chain *
ca_av_chain_at(const ca_av *v, size_t i)
{
    return i < v->nchains ? &v->chains[i]->pub : NULL;
}

size_t
ca_av_breaks(const ca_av *v)
{
    size_t n = 0;

    for (size_t i = 0; i < v->nchains; i++) {
        n += v->chains[i]->pub.nfindings;
    }
    return n;
}

size_t
ca_av_entries(const ca_av *v)
{
    size_t n = 0;

    for (size_t i = 0; i < v->nchains; i++) {
        n += v->chains[i]->pub.entries;
    }
    return n;
}

void
ca_av_free(ca_av *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        free(v->chains[i]->pub.chain);
        free(v->chains[i]->pub.findings);
        free(v->chains[i]->recs);
        free(v->chains[i]->signed_heads);
        free(v->chains[i]);
    }
    free(v->chains);
    free(v->slots);
    free(v);
}
