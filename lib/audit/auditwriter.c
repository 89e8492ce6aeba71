/*
 * The audit writer: chains and lanes, this turn's queue, and the fate of
 * each entry sent.  See auditwriter.h; the wire format is in auditbatch.c,
 * allow decisions in auditdecide.c, the spool in auditreplay.c and
 * auditadopt.c.
 *
 * Order.  Chain 0 is written in seal order: its entries are queued, and
 * while the spool holds anything they go behind it, into the spool.  Its
 * entries reach the spool in seal order too: one bound for the spool
 * while older ones are still queued or in flight waits for their fate (it
 * may send them to the spool first) in the `behind` list, kept in seq
 * order, and so do the ones after it; the replay waits for that list to
 * be spooled.  A
 * lane holds at most one entry whose fate is unknown; when that fate
 * cannot be learnt (no reply, an error), the lane is retired: its chain
 * ends there and the slot starts a new chain.  A decision that failed is
 * spooled as the deny the bank got (audit_unavailable) at its position;
 * if Redis did write the original, the replay is a duplicate.  Fates are
 * read in auditfate.c (a definite refusal does not retire the lane).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auditbatch.h"
#include "spool.h"
#include "core/util.h"


void
ca_aw_log(ca_aw *aw, int level, const char *fmt, ...)
{
    char     msg[512];
    va_list  ap;

    if (aw->conf.log == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    aw->conf.log(aw->conf.log_ctx, level, msg);
}


static void
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


/* --- lanes ------------------------------------------------------------- */

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


/* Its head is unknown: the chain ends here, the slot starts another. */
void
ca_aw_lane_retire(ca_aw *aw, size_t slot)
{
    ca_aw_lane  *l = &aw->lanes[slot];

    ca_aw_log(aw, CA_AW_LOG_WARN, "audit chain %s ends at an entry whose "
              "fate is unknown", l->chain.id);
    ca_aw_head_retired(aw, l);
    ca_aw_chain_id(aw, l, aw->next_chain++);
    l->checkpointed = 0;
    ca_aw_lane_release(aw, slot);
}


/* --- entries in -------------------------------------------------------- */

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


void
ca_aw_detach(ca_aw_job *job)
{
    job->owner = NULL;
}


/* --- entries out ------------------------------------------------------- */

ca_aw_batch *
ca_aw_batch_new(size_t n)
{
    ca_aw_batch  *b = calloc(1, sizeof(ca_aw_batch));

    if (b == NULL) {
        return NULL;
    }
    b->jobs = calloc(n, sizeof(ca_aw_job *));
    if (b->jobs == NULL) {
        free(b);
        return NULL;
    }
    return b;
}


ca_aw_cmd *
ca_aw_flush(ca_aw *aw, int online)
{
    size_t        n;
    ca_aw_job    *job;
    ca_aw_batch  *b;

    if (aw->queue == NULL) {
        return NULL;
    }

    /*
     * Group commit: while a command is out, what queues meanwhile waits for
     * its reply and goes in the next one.  A loaded worker then sends fewer,
     * larger batches: one script call, one fsync or WAIT, one reply for many
     * decisions; an idle one still sends each entry at once.
     */
    if (online && aw->calls >= aw->conf.calls_max) {
        for (n = 0, job = aw->queue; job && n < CA_AW_BATCH_MAX; n++) {
            job = job->next;
        }
        if (n < CA_AW_BATCH_MAX) {
            return NULL;
        }
    }

    b = online ? ca_aw_batch_new(CA_AW_BATCH_MAX) : NULL;
    if (b == NULL) {
        while ((job = aw->queue) != NULL) {
            aw->queue = job->next;
            aw->outstanding0 -= (job->kind == CA_AW_KIND_ENTRY
                                 && job->slot == 0);
            ca_aw_failed(aw, job);
        }
        aw->tail = &aw->queue;
        ca_aw_release_behind(aw);
        return NULL;
    }

    for (n = 0; n < CA_AW_BATCH_MAX && aw->queue; n++) {
        job = aw->queue;
        aw->queue = job->next;
        b->jobs[n] = job;
        b->n0 += (job->kind == CA_AW_KIND_ENTRY && job->slot == 0);
    }
    if (aw->queue == NULL) {
        aw->tail = &aw->queue;
    }
    b->njobs = n;
    aw->calls++;
    aw->inflight += n;
    aw->stats.sent += n;

    if (ca_aw_encode(b, aw->stream) != 0) {
        ca_aw_reply(aw, &b->cmd, NULL);
        return NULL;
    }
    return &b->cmd;
}


/* --- housekeeping (checkpoints: auditsign.c) ------------------------ */

int
ca_aw_idle(const ca_aw *aw, int online)
{
    if (aw->queue || aw->inflight || aw->replaying || aw->behind
        || (online && ca_aw_spool_pending(aw)))
    {
        return 0;
    }
    return !ca_aw_heads_pending(aw, online);
}


const ca_aw_stats *
ca_aw_get_stats(const ca_aw *aw)
{
    return &aw->stats;
}


/* --- life cycle -------------------------------------------------------- */

ca_aw *
ca_aw_new(const ca_aw_conf *conf, char *err, size_t errlen)
{
    ca_aw        *aw;
    char          stale[4096];
    size_t        n;
    struct stat   st;

    aw = calloc(1, sizeof(ca_aw));
    if (aw == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    aw->conf = *conf;
    if (aw->conf.calls_max == 0) {
        aw->conf.calls_max = CA_AW_CALLS_MAX;
    }
    snprintf(aw->gw, sizeof(aw->gw), "%s", conf->gw);
    snprintf(aw->prefix, sizeof(aw->prefix), "%s", conf->prefix);
    snprintf(aw->stream, sizeof(aw->stream), "%s", conf->stream);
    aw->tail = &aw->queue;
    aw->next_chain = conf->max_lanes + 1;
    stale[0] = '\0';

    aw->lanes = calloc(conf->max_lanes + 1, sizeof(ca_aw_lane));
    aw->free = calloc(conf->max_lanes + 1, sizeof(size_t));
    if (aw->lanes == NULL || aw->free == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    ca_aw_chain_id(aw, &aw->lanes[0], 0);
    aw->n_lanes = 1;

    if (conf->spool_file) {
        aw->spool_file = strdup(conf->spool_file);
        if (aw->spool_file == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        /*
         * A file under our name is an earlier process's with our pid (a
         * crash, then the pid came round again): its entries are adopted
         * like a dead worker's, never read as ours.  Where that cannot be
         * done now it stays as worker-<pid>-<n>.spool for adoption later.
         */
        if (stat(conf->spool_file, &st) == 0 && st.st_size > 0) {
            n = strlen(conf->spool_file);
            snprintf(stale, sizeof(stale), "%.*s-%lld.spool",
                     (int) (n > 6 ? n - 6 : n), conf->spool_file,
                     (long long) time(NULL));
            if (rename(conf->spool_file, stale) != 0) {
                stale[0] = '\0';
            }
        }
        aw->spool = ca_spool_open(conf->spool_file, conf->spool_max, err,
                                  errlen);
        if (aw->spool == NULL) {
            goto failed;
        }
        if (stale[0]) {
            ca_aw_adopt_claimed(aw, stale, stale);
        }
        ca_aw_refresh_oldest(aw);
    }
    return aw;

failed:
    free(aw->spool_file);
    free(aw->lanes);
    free(aw->free);
    free(aw);
    return NULL;
}


int
ca_aw_free(ca_aw *aw)
{
    int  removed = 0;

    (void) ca_aw_flush(aw, 0);
    aw->outstanding0 = 0;           /* every reply has come, NULL at worst */
    ca_aw_release_behind(aw);
    if (aw->spool) {
        removed = ca_spool_empty(aw->spool);
        ca_spool_close(aw->spool);
        if (removed) {
            (void) unlink(aw->spool_file);
        } else {
            ca_aw_log(aw, CA_AW_LOG_WARN, "audit entries left in %s for the "
                      "next worker", aw->spool_file);
        }
    }
    ca_aw_heads_free(aw);
    free(aw->spool_file);
    free(aw->lanes);
    free(aw->free);
    free(aw->ended);
    free(aw);
    ca_aw_jobs_release();
    return removed;
}
