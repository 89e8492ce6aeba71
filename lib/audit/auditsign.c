/*
 * The writer's checkpoints (docs/audit-format.md §3): when each chain is
 * signed, and which heads of its other chains a checkpoint lists.
 *
 * A listed head is the last entry Redis acknowledged, never one whose
 * fate is unknown: verify requires every listed head to be in the
 * stream, and listing an entry that was never written would report a
 * loss that did not happen.  Chain 0 lists each lane chain whose head
 * moved since it last listed it (ended lanes once, with their last
 * head); a lane lists chain 0's last acknowledged checkpoint.  So the
 * cost is one line per moved lane per interval.
 */
#include <stdlib.h>
#include <string.h>

#include "auditbatch.h"
#include "auditschema.h"
#include "core/core.h"


static int
ca_aw_is_checkpoint(const ca_aw_job *job)
{
    return job->n > 1 && strcmp(job->name[1], CA_AUDIT_NAME(EVENT)) == 0
           && strcmp(job->value[1],
                     ca_audit_event_name(CA_EV_CHECKPOINT)) == 0;
}


void
ca_aw_head_acked(ca_aw *aw, ca_aw_job *job, const unsigned char head[32])
{
    ca_aw_lane  *l;

    if (job->slot >= aw->n_lanes) {
        return;
    }
    l = &aw->lanes[job->slot];
    if (job->seq <= l->acked_seq) {
        return;
    }
    l->acked_seq = job->seq;
    memmove(l->acked_head, head, 32);
    if (job->slot == 0 && ca_aw_is_checkpoint(job)) {
        aw->cp0_seq = job->seq;
        memcpy(aw->cp0_head, l->acked_head, 32);
    }
}


/* A lane chain ends: its last head waits for chain 0's next checkpoint. */
void
ca_aw_head_retired(ca_aw *aw, ca_aw_lane *l)
{
    ca_ckpt_head  *h;

    if (aw->conf.key == NULL || l->acked_seq <= l->listed_seq) {
        return;
    }
    if (aw->n_ended == aw->cap_ended) {
        size_t  ncap = aw->cap_ended ? aw->cap_ended * 2 : 8;

        h = realloc(aw->ended, ncap * sizeof(*h));
        if (h == NULL) {
            ca_aw_log(aw, CA_AW_LOG_ALERT, "out of memory: audit chain %s "
                      "will not be listed by a checkpoint", l->chain.id);
            return;
        }
        aw->ended = h;
        aw->cap_ended = ncap;
    }
    h = &aw->ended[aw->n_ended++];
    h->lane = l->no;
    h->seq = l->acked_seq;
    memcpy(h->hash, l->acked_head, 32);
}


int
ca_aw_heads_pending(const ca_aw *aw, int online)
{
    size_t  i;

    if (aw->conf.key == NULL) {
        return 0;
    }
    for (i = 0; i < aw->n_lanes; i++) {
        if (aw->lanes[i].chain.seq != aw->lanes[i].checkpointed
            && (i == 0 || online))
        {
            return 1;
        }
        if (online && i > 0
            && aw->lanes[i].acked_seq > aw->lanes[i].listed_seq)
        {
            return 1;
        }
    }
    return online && aw->n_ended > 0;
}


typedef struct {
    ca_ckpt_head    h;
    size_t          slot;       /* 0: aw->ended[at] */
    size_t          at;
} ca_aw_listing;


static int
ca_aw_listing_cmp(const void *a, const void *b)
{
    uint64_t  x = ((const ca_aw_listing *) a)->h.lane;
    uint64_t  y = ((const ca_aw_listing *) b)->h.lane;

    return (x > y) - (x < y);
}


/* What chain 0 lists now, in lane order; *n of them (NULL: none, or no
 * memory: listed next time). */
static ca_aw_listing *
ca_aw_listings(ca_aw *aw, size_t *n)
{
    size_t          i, k = aw->n_ended;
    ca_aw_listing  *ls;

    for (i = 1; i < aw->n_lanes; i++) {
        k += aw->lanes[i].acked_seq > aw->lanes[i].listed_seq;
    }
    *n = 0;
    if (k == 0 || (ls = calloc(k, sizeof(*ls))) == NULL) {
        return NULL;
    }
    for (i = 0; i < aw->n_ended; i++) {
        ls[*n].h = aw->ended[i];
        ls[(*n)++].at = i;
    }
    for (i = 1; i < aw->n_lanes; i++) {
        ca_aw_lane  *l = &aw->lanes[i];

        if (l->acked_seq > l->listed_seq) {
            ls[*n].h.lane = l->no;
            ls[*n].h.seq = l->acked_seq;
            memcpy(ls[*n].h.hash, l->acked_head, 32);
            ls[(*n)++].slot = i;
        }
    }
    qsort(ls, *n, sizeof(*ls), ca_aw_listing_cmp);
    return ls;
}


/* Signs chain 0 and lists lane heads, CA_CKPT_HEADS_MAX a checkpoint;
 * what a lost checkpoint would have listed stays for the next. */
static void
ca_aw_sign0(ca_aw *aw, int64_t now_ms, int online)
{
    size_t          n, off = 0, k, j, kept;
    ca_entry        e;
    ca_chain        saved;
    ca_aw_lane     *l0 = &aw->lanes[0];
    ca_aw_listing  *ls = ca_aw_listings(aw, &n);
    ca_ckpt_head    chunk[CA_CKPT_HEADS_MAX];
    char            heads[CA_CKPT_HEADS_MAX * CA_CKPT_HEAD_LINE + 1];

    if (n == 0 && l0->chain.seq == l0->checkpointed) {
        return;
    }
    do {
        k = n - off < CA_CKPT_HEADS_MAX ? n - off : CA_CKPT_HEADS_MAX;
        for (j = 0; j < k; j++) {
            chunk[j] = ls[off + j].h;
        }
        (void) ca_ckpt_heads_format(chunk, k, heads, sizeof(heads));
        saved = l0->chain;
        if (ca_checkpoint_build(&l0->chain, &e, now_ms, aw->gw,
                                aw->conf.key, heads) != 0)
        {
            l0->chain = saved;
            ca_aw_log(aw, CA_AW_LOG_ALERT, "cannot sign checkpoint");
            break;
        }
        if (ca_aw_submit(aw, 0, &e, &saved, online, NULL, NULL)
            == CA_AW_LOST)
        {
            break;
        }
        l0->checkpointed = l0->chain.seq;
        for (j = off; j < off + k; j++) {
            if (ls[j].slot) {
                aw->lanes[ls[j].slot].listed_seq = ls[j].h.seq;
            } else {
                aw->ended[ls[j].at].seq = 0;        /* listed */
            }
        }
        off += k;
    } while (off < n);

    for (j = 0, kept = 0; j < aw->n_ended; j++) {
        if (aw->ended[j].seq != 0) {
            aw->ended[kept++] = aw->ended[j];
        }
    }
    aw->n_ended = kept;
    free(ls);
}


static void
ca_aw_checkpoints(ca_aw *aw, int64_t now_ms, int online)
{
    size_t          i;
    ca_entry        e;
    ca_chain        saved;
    ca_aw_lane     *l;
    ca_ckpt_head    cp0;
    char            heads[CA_CKPT_HEAD_LINE + 1] = "";

    ca_aw_sign0(aw, now_ms, online);
    if (aw->cp0_seq > 0) {
        cp0.lane = 0;
        cp0.seq = aw->cp0_seq;
        memcpy(cp0.hash, aw->cp0_head, 32);
        (void) ca_ckpt_heads_format(&cp0, 1, heads, sizeof(heads));
    }
    for (i = 1; online && i < aw->n_lanes; i++) {
        l = &aw->lanes[i];
        if (l->busy || l->chain.seq == l->checkpointed) {
            continue;
        }
        saved = l->chain;
        if (ca_checkpoint_build(&l->chain, &e, now_ms, aw->gw, aw->conf.key,
                                heads) != 0)
        {
            l->chain = saved;
            ca_aw_log(aw, CA_AW_LOG_ALERT, "cannot sign checkpoint");
            return;
        }
        if (ca_aw_submit(aw, i, &e, &saved, online, NULL, NULL)
            != CA_AW_LOST)
        {
            l->checkpointed = l->chain.seq;
        }
    }
}


void
ca_aw_tick(ca_aw *aw, int64_t now_ms, uint64_t checkpoint_ms, int all,
           int online)
{
    if (aw->hold) {
        aw->hold--;
    }
    if (aw->last_checkpoint == 0) {
        aw->last_checkpoint = now_ms;       /* the first is one interval on */
    }
    if (aw->conf.key
        && (all || now_ms - aw->last_checkpoint >= (int64_t) checkpoint_ms))
    {
        aw->last_checkpoint = now_ms;
        ca_aw_checkpoints(aw, now_ms, online);
    }
}
