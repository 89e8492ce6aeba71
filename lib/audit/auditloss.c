/*
 * Loss detection (contract §7.1): the head of each of this writer's chains
 * that Redis acknowledged, held against what Redis shows on a reconnect
 * (the batch script's hash credit:chains:<prefix>, auditbatch.c).
 *
 * Only acknowledgements count: an entry whose fate is unknown, or that
 * sits in the spool, was never acknowledged, so Redis not having it is no
 * loss; a writer that has had nothing acknowledged yet (its first connect)
 * expects nothing.  Replayed entries of adopted spools belong to other
 * writers' chains (another prefix) and are not tracked here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditbatch.h"
#include "core/core.h"

#define CA_AW_HEADS_MAX     65536   /* chains tracked: 1 MB at most */
#define CA_AW_HEADS_LISTED  16      /* chains named in an entry */

typedef struct {
    uint64_t            chain;
    uint64_t            seq;
} ca_aw_head;

struct ca_aw_heads {
    ca_aw_head         *h;          /* sorted by chain */
    size_t              n;
    size_t              cap;
    int                 full;       /* logged once */
    char                key[sizeof("credit:chains:") + 96];
};


static int
ca_aw_heads_num(const char *s, size_t len, uint64_t *v)
{
    size_t  i;

    /* decimal digits only, and short enough not to overflow */
    if (len == 0 || len > 19) {
        return -1;
    }
    *v = 0;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        *v = *v * 10 + (uint64_t) (s[i] - '0');
    }
    return 0;
}


static ca_aw_head *
ca_aw_heads_find(const ca_aw_heads *hs, uint64_t chain, size_t *at)
{
    size_t  lo = 0, hi = hs->n, mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (hs->h[mid].chain < chain) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *at = lo;
    return lo < hs->n && hs->h[lo].chain == chain ? &hs->h[lo] : NULL;
}


static ca_aw_heads *
ca_aw_heads_get(ca_aw *aw)
{
    if (aw->heads == NULL) {
        aw->heads = calloc(1, sizeof(ca_aw_heads));
        if (aw->heads != NULL) {
            snprintf(aw->heads->key, sizeof(aw->heads->key),
                     "credit:chains:%s", aw->prefix);
        }
    }
    return aw->heads;
}


/* A replayed entry names its chain only in its fields; it counts when the
 * chain is one of this writer's (an adopted spool's are another's). */
void
ca_aw_heads_replayed(ca_aw *aw, const ca_aw_job *job)
{
    const char  *chain;
    size_t       len, slash, plen;
    uint64_t     no;

    plen = strlen(aw->prefix);
    if (ca_aw_job_chain(job, &chain, &len, &slash) == 0 && slash == plen
        && memcmp(chain, aw->prefix, plen) == 0
        && ca_aw_heads_num(chain + slash + 1, len - slash - 1, &no) == 0)
    {
        ca_aw_heads_acked(aw, no, job->seq);
    }
}


void
ca_aw_heads_acked(ca_aw *aw, uint64_t no, uint64_t seq)
{
    size_t        at;
    ca_aw_head   *h, *grown;
    ca_aw_heads  *hs;

    if ((hs = ca_aw_heads_get(aw)) == NULL) {
        return;
    }

    h = ca_aw_heads_find(hs, no, &at);
    if (h != NULL) {
        if (seq > h->seq) {
            h->seq = seq;
        }
        return;
    }

    if (hs->n == hs->cap) {
        if (hs->cap >= CA_AW_HEADS_MAX) {
            if (!hs->full) {
                hs->full = 1;
                ca_aw_log(aw, CA_AW_LOG_WARN, "audit: more than %d chains: "
                          "later ones are not checked on reconnect",
                          CA_AW_HEADS_MAX);
            }
            return;
        }
        grown = realloc(hs->h, (hs->cap ? hs->cap * 2 : 64)
                               * sizeof(ca_aw_head));
        if (grown == NULL) {
            return;
        }
        hs->h = grown;
        hs->cap = hs->cap ? hs->cap * 2 : 64;
    }
    memmove(&hs->h[at + 1], &hs->h[at], (hs->n - at) * sizeof(ca_aw_head));
    hs->h[at].chain = no;
    hs->h[at].seq = seq;
    hs->n++;
}


const char *
ca_aw_heads_key(ca_aw *aw)
{
    ca_aw_heads  *hs = ca_aw_heads_get(aw);

    return hs ? hs->key : NULL;
}


static int
ca_aw_head_cmp(const void *a, const void *b)
{
    const ca_aw_head  *x = a, *y = b;

    return x->chain < y->chain ? -1 : x->chain > y->chain;
}


/* Appends " <chain>:<seq>" (or ":-", none), within len. */
static void
ca_aw_heads_put(char *buf, size_t len, uint64_t chain, uint64_t seq,
                int known)
{
    size_t  used = strlen(buf);

    if (used + 1 >= len) {
        return;
    }
    if (known) {
        snprintf(buf + used, len - used, "%s%llu:%llu", used ? "," : "",
                 (unsigned long long) chain, (unsigned long long) seq);
    } else {
        snprintf(buf + used, len - used, "%s%llu:-", used ? "," : "",
                 (unsigned long long) chain);
    }
}


long
ca_aw_heads_check(ca_aw *aw, size_t n, const char *const *fields,
                  const size_t *flens, const char *const *values,
                  const size_t *vlens, char *expected, char *found,
                  size_t len)
{
    size_t        i, j, m, behind;
    ca_aw_head   *redis, *f;
    ca_aw_heads  *hs = aw->heads;

    expected[0] = found[0] = '\0';
    if (hs == NULL || hs->n == 0) {
        return 0;                   /* nothing acknowledged yet */
    }

    redis = calloc(n ? n : 1, sizeof(ca_aw_head));
    if (redis == NULL) {
        return -1;
    }
    for (i = 0, m = 0; i < n; i++) {
        if (ca_aw_heads_num(fields[i], flens[i], &redis[m].chain) == 0
            && ca_aw_heads_num(values[i], vlens[i], &redis[m].seq) == 0)
        {
            m++;
        }
    }
    qsort(redis, m, sizeof(ca_aw_head), ca_aw_head_cmp);

    behind = 0;
    for (i = 0, j = 0; i < hs->n; i++) {
        while (j < m && redis[j].chain < hs->h[i].chain) {
            j++;
        }
        f = j < m && redis[j].chain == hs->h[i].chain ? &redis[j] : NULL;
        if (f != NULL && f->seq >= hs->h[i].seq) {
            continue;
        }
        if (behind++ < CA_AW_HEADS_LISTED) {
            ca_aw_heads_put(expected, len, hs->h[i].chain, hs->h[i].seq, 1);
            ca_aw_heads_put(found, len, hs->h[i].chain, f ? f->seq : 0,
                            f != NULL);
        }
        /* reported once: from here on, what Redis has is what counts */
        hs->h[i].seq = f ? f->seq : 0;
    }
    free(redis);

    if (behind > CA_AW_HEADS_LISTED) {
        i = strlen(expected);
        snprintf(expected + i, len - i, ",+%zu more",
                 behind - CA_AW_HEADS_LISTED);
        i = strlen(found);
        snprintf(found + i, len - i, ",+%zu more",
                 behind - CA_AW_HEADS_LISTED);
    }
    return (long) behind;
}


void
ca_aw_heads_free(ca_aw *aw)
{
    if (aw->heads) {
        free(aw->heads->h);
        free(aw->heads);
        aw->heads = NULL;
    }
}
