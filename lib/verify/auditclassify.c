/*
 * One chain's classification (docs/audit-format.md §4): its entries
 * sorted by seq, the one that holds each seq chosen, then every gap,
 * link, order and signed head checked, in the order the table gives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditverify_int.h"

/* r is one of the chain's records */
#define add_finding(c, kind, r, ...) \
    ca_av_report(c, kind, (r)->id, (r)->seq, __VA_ARGS__)

static const unsigned char zero32[32];

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

av_rec *
ca_av_find_primary(av_rec *const *p, size_t m, uint64_t seq)
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

int
ca_av_check_chain(const ca_av *v, av_chain *c)
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
            av_rec *named = ca_av_find_primary(p, m, r->covers);
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
    c->prim = p;            /* for the heads other chains list */
    c->nprim = m;
    return 0;
}
