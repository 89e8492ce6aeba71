/*
 * Where a sealed entry goes (see auditwriter.c, "Order"): the lanes and
 * their chains, this turn's queue, the chain-0 entries waiting `behind`
 * older ones, and the spool when chain 0 cannot be written in order; a
 * final entry sealed into chain 0 (ca_aw_final).  Below the checkpoints
 * (auditsign.c submits here) and the fates of what was sent
 * (auditfate.c); it only writes to the spool (auditreplay.c).
 */
#include <stdio.h>
#include <string.h>

#include "auditbatch.h"

void
ca_aw_chain_id(ca_aw *aw, ca_aw_lane *l, uint64_t no)
{
    char  id[sizeof(aw->prefix) + 24];

    snprintf(id, sizeof(id), "%s/%llu", aw->prefix, (unsigned long long) no);
    ca_chain_init(&l->chain, id);
    l->no = no;
    l->acked_seq = 0;
    l->listed_seq = 0;
}


void
ca_aw_settle(ca_aw *aw, ca_aw_job *job, int outcome, ca_reason reason)
{
    if (job->owner && aw->conf.settled) {
        aw->conf.settled(job->owner, outcome, reason);
    }
    ca_aw_job_free(job);
}


size_t
ca_aw_lane_get(ca_aw *aw)
{
    size_t  i;

    /* a listed lane may have become busy since (its checkpoint) */
    while (aw->n_free) {
        i = aw->free[--aw->n_free];
        aw->lanes[i].listed = 0;
        if (!aw->lanes[i].busy) {
            aw->lanes[i].busy = 1;
            return i;
        }
    }
    if (aw->n_lanes <= aw->conf.max_lanes) {
        i = aw->n_lanes++;
        memset(&aw->lanes[i], 0, sizeof(ca_aw_lane));
        ca_aw_chain_id(aw, &aw->lanes[i], i);
    } else {
        return 0;
    }
    aw->lanes[i].busy = 1;
    return i;
}


void
ca_aw_lane_release(ca_aw *aw, size_t slot)
{
    aw->lanes[slot].busy = 0;
    if (!aw->lanes[slot].listed) {
        aw->lanes[slot].listed = 1;
        aw->free[aw->n_free++] = slot;
    }
}


void
ca_aw_enqueue(ca_aw *aw, ca_aw_job *job)
{
    job->next = NULL;
    *aw->tail = job;
    aw->tail = &job->next;
}


/* In seq order: a younger batch can fail before an older one's fate is
 * known (a command declined while another is out). */
void
ca_aw_behind(ca_aw *aw, ca_aw_job *job)
{
    ca_aw_job  **p;

    for (p = &aw->behind; *p && (*p)->seq < job->seq; p = &(*p)->next) {
        /* void */
    }
    job->next = *p;
    *p = job;
}


/* No chain-0 entry queued or in flight any more: the ones waiting go to
 * the spool, oldest first. */
void
ca_aw_release_behind(ca_aw *aw)
{
    int         outcome;
    ca_aw_job  *job;

    if (aw->outstanding0 > 0) {
        return;
    }
    while ((job = aw->behind) != NULL) {
        aw->behind = job->next;
        outcome = ca_aw_spool_job(aw, job) == 0 ? CA_AW_SPOOLED : CA_AW_LOST;
        if (outcome == CA_AW_LOST) {
            aw->stats.lost++;
        }
        ca_aw_settle(aw, job, outcome, CA_OK);
    }
}


/*
 * A sealed final entry of `slot`: queued, or spooled now.  `saved` is the
 * chain before sealing, restored when the entry goes nowhere (a sealed
 * entry that never reaches the stream would read as a deletion).
 */
int
ca_aw_submit(ca_aw *aw, size_t slot, ca_entry *e, const ca_chain *saved,
             int online, void *owner, ca_aw_job **out)
{
    ca_aw_job  *job;

    job = ca_aw_job_new(e->n, e->name, e->value, e->len, 0, 0);
    if (job == NULL) {
        aw->lanes[slot].chain = *saved;
        return CA_AW_LOST;
    }
    job->kind = CA_AW_KIND_ENTRY;
    job->slot = slot;
    job->owner = owner;
    if (slot == 0 && aw->gap0) {
        job->after_gap = 1;
        aw->gap0 = 0;
    }

    if (slot == 0 && (!online || ca_aw_spool_pending(aw) || aw->behind)) {
        if (aw->outstanding0 > 0 || aw->behind) {
            ca_aw_behind(aw, job);
            if (out) {
                *out = job;
            }
            return CA_AW_QUEUED;
        }
        if (ca_aw_spool_job(aw, job) != 0) {
            aw->lanes[0].chain = *saved;
            ca_aw_job_free(job);
            aw->stats.lost++;
            return CA_AW_LOST;
        }
        ca_aw_job_free(job);
        return CA_AW_SPOOLED;
    }

    if (slot != 0) {
        aw->lanes[slot].busy = 1;
    } else {
        aw->outstanding0++;
    }
    ca_aw_enqueue(aw, job);
    if (out) {
        *out = job;
    }
    return CA_AW_QUEUED;
}


int
ca_aw_final(ca_aw *aw, ca_entry *e, int online, void *owner,
            ca_aw_job **out)
{
    ca_chain  saved = aw->lanes[0].chain;

    if (!online && aw->spool == NULL) {
        aw->stats.lost++;
        return CA_AW_LOST;
    }
    if (ca_chain_seal(&aw->lanes[0].chain, e) != 0) {
        aw->lanes[0].chain = saved;
        ca_aw_log(aw, CA_AW_LOG_ALERT, "audit entry too large");
        return CA_AW_LOST;
    }
    return ca_aw_submit(aw, 0, e, &saved, online, owner, out);
}


int
ca_aw_discontinuity(ca_aw *aw, ca_entry *e, int online)
{
    aw->gap0 = 1;
    return ca_aw_final(aw, e, online, NULL, NULL);
}
