/*
 * The heads v2 checkpoints list (docs/audit-format.md §3, §4): every
 * (chain, seq, hash) a verified checkpoint lists must be in the stream
 * with that hash.  A chain deleted whole, or cut below what another chain
 * signed of it, is then a break, though what is left of it verifies.
 *
 * Each listing is checked on its own, so a writer may leave out a chain
 * whose head has not moved since it last listed it: the earlier listing
 * still stands, and is itself protected by its chain's links and by the
 * listings of that chain in turn.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditverify_int.h"

static int
floor_cmp(const void *a, const void *b)
{
    return strcmp(((const av_floor *) a)->chain,
                  ((const av_floor *) b)->chain);
}

static const av_floor *
floor_of(const ca_av *v, const char *chain)
{
    av_floor key;

    key.chain = (char *) chain;
    return v->nfloors ? bsearch(&key, v->floors, v->nfloors, sizeof(key),
                                floor_cmp)
                      : NULL;
}

/* One `deleted` per listed chain: the highest listing that fails says
 * the most ("ends it at M"); the others would repeat it. */
static int
deleted(av_chain *t, const char *cp_chain, const av_rec *cp,
        const char *name, const ca_ckpt_head *h)
{
    char            why[sizeof(((ca_av_finding *) 0)->detail)];
    ca_av_finding  *f;
    uint64_t        ends = t->nprim ? t->prim[t->nprim - 1]->seq : 0;

    if (t->nprim == 0) {
        snprintf(why, sizeof(why), "checkpoint %s#%llu lists chain %s at "
                 "seq %llu; the stream holds none", cp_chain,
                 (unsigned long long) cp->seq, name,
                 (unsigned long long) h->seq);
    } else if (h->seq > ends) {
        snprintf(why, sizeof(why), "checkpoint %s#%llu lists chain %s at "
                 "seq %llu; the stream ends it at %llu", cp_chain,
                 (unsigned long long) cp->seq, name,
                 (unsigned long long) h->seq, (unsigned long long) ends);
    } else {
        snprintf(why, sizeof(why), "checkpoint %s#%llu lists chain %s at "
                 "seq %llu; the stream lacks that seq", cp_chain,
                 (unsigned long long) cp->seq, name,
                 (unsigned long long) h->seq);
    }
    if (t->heads_deleted) {
        f = &t->pub.findings[t->heads_deleted - 1];
        if (h->seq > f->seq) {
            snprintf(f->id, sizeof(f->id), "%s", cp->id);
            f->seq = h->seq;
            memcpy(f->detail, why, sizeof(why));
        }
        return 0;
    }
    if (ca_av_report(t, CA_AV_DELETED, cp->id, h->seq, "%s", why) != 0) {
        return -1;
    }
    t->heads_deleted = t->pub.nfindings;
    return 0;
}

static int
check_one(ca_av *v, const av_chain *c, const av_rec *cp, size_t plen,
          const ca_ckpt_head *h)
{
    char            *name;
    int              len, rc = 0, mismatch;
    av_chain        *t;
    av_rec          *e;
    const av_floor  *fl;

    name = malloc(plen + 24);
    if (name == NULL) {
        return -1;
    }
    len = snprintf(name, plen + 24, "%.*s%llu", (int) plen, c->pub.chain,
                   (unsigned long long) h->lane);
    v->heads_checked++;
    t = ca_av_chain_get(v, name, (size_t) len, 0);
    fl = floor_of(v, name);
    if (fl != NULL && h->seq <= fl->seq) {
        /* verified before (--resume): not read again */
        if (h->seq < fl->seq || memcmp(h->hash, fl->hash, 32) == 0) {
            goto done;
        }
        mismatch = 1;
    } else {
        e = t ? ca_av_find_primary(t->prim, t->nprim, h->seq) : NULL;
        if (e != NULL && memcmp(e->hash, h->hash, 32) == 0) {
            goto done;
        }
        mismatch = e != NULL;
    }
    v->heads_missing++;
    if (t == NULL && (t = ca_av_chain_get(v, name, (size_t) len, 1))
                     == NULL)
    {
        rc = -1;
        goto done;
    }
    if (mismatch) {
        rc = ca_av_report(t, CA_AV_MODIFIED, cp->id, h->seq, "checkpoint "
                           "%s#%llu lists chain %s at seq %llu with another "
                           "hash than the stream's", c->pub.chain,
                           (unsigned long long) cp->seq, name,
                           (unsigned long long) h->seq);
    } else {
        rc = deleted(t, c->pub.chain, cp, name, h);
    }

done:
    free(name);
    return rc;
}

int
ca_av_check_heads(ca_av *v)
{
    size_t n = v->nchains;      /* chains made for a finding come after */

    if (v->nfloors > 0) {
        qsort(v->floors, v->nfloors, sizeof(av_floor), floor_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        av_chain   *c = v->chains[i];
        const char *slash = strrchr(c->pub.chain, '/');

        if (slash == NULL || c->nheads == 0) {
            continue;
        }
        for (size_t j = 0; j < c->nprim; j++) {
            const av_rec *r = c->prim[j];

            if (!r->checkpoint || !r->sig_ok) {
                continue;
            }
            for (uint32_t k = 0; k < r->nheads; k++) {
                if (check_one(v, c, r, (size_t) (slash - c->pub.chain) + 1,
                              &c->heads[r->heads_at + k]) != 0)
                {
                    return -1;
                }
            }
        }
    }
    return 0;
}
