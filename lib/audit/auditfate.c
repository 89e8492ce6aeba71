/*
 * The fate of each entry sent (see auditwriter.h): acknowledged, unknown
 * (no reply, an error Redis may have answered after writing part of the
 * batch), or refused.
 *
 * Refused is definite: Redis answered -OOM (full, noeviction), -NOREPLICAS
 * (min-replicas-to-write) or -READONLY (a replica), which a script gets
 * at its first write and then nothing of the batch was written (a script
 * stops at its first failed call; memory, replicas and role do not change
 * while it runs).  A refused decision keeps its lane as it was (the lane
 * chain never held it) and the deny the bank gets (audit_unavailable)
 * goes to chain 0 like any refusal decided while Redis is away, through
 * the spool; a refused lane checkpoint is undone, to be signed again; an
 * unknown fate ends its lane instead (auditwriter.c).
 *
 * A Redis that refuses is said once in the log, when it starts and when
 * it stops; the refusals between are counted (stats.refused).
 */
#include <stdio.h>
#include <string.h>

#include "auditbatch.h"
#include "core/util.h"


/* No reply, an error, or a gap: what is unknown goes to the spool. */
void
ca_aw_failed(ca_aw *aw, ca_aw_job *job)
{
    int  outcome;

    aw->stats.failed++;
    if (job->kind == CA_AW_KIND_DECISION) {
        (void) ca_aw_spool_failed_decision(aw, job);
        ca_aw_lane_retire(aw, job->slot);
        aw->stats.lost++;
        ca_aw_settle(aw, job, CA_AW_LOST, CA_AUDIT_UNAVAILABLE);
        return;
    }
    if (job->slot != 0) {
        /* spooled, it could land after the lane's next entry */
        ca_aw_lane_retire(aw, job->slot);
    } else {
        /* settled once no older chain-0 entry can still go before it */
        ca_aw_behind(aw, job);
        return;
    }
    outcome = ca_aw_spool_job(aw, job) == 0 ? CA_AW_SPOOLED : CA_AW_LOST;
    if (outcome == CA_AW_LOST) {
        aw->stats.lost++;
    }
    ca_aw_settle(aw, job, outcome, CA_OK);
}


/*
 * A decision Redis refused outright: the lane is free again as it was,
 * and the deny the bank gets is sealed into chain 0 and spooled (behind
 * older chain-0 entries still out, if any), to be replayed with the rest.
 */
static void
ca_aw_refused_decision(ca_aw *aw, ca_aw_job *job)
{
    size_t       i;
    ca_entry     e;
    const char  *why = ca_reason_name(CA_AUDIT_UNAVAILABLE);

    ca_aw_lane_release(aw, job->slot);

    /* the fields up to the chain's, the refusal in place of the allow */
    e.n = 0;
    e.used = 0;
    for (i = 0; i < job->n && i < job->chain; i++) {
        if (i == job->xpos[0]) {
            (void) ca_entry_add(&e, job->name[i], "deny", 4);
        } else if (i == job->xpos[1]) {
            (void) ca_entry_add(&e, job->name[i], why, strlen(why));
        } else {
            (void) ca_entry_add(&e, job->name[i], job->value[i],
                                job->len[i]);
        }
    }
    if (job->chain == (size_t) -1) {
        aw->stats.lost++;
    } else {
        /* offline: to the spool (counted lost there if it cannot be) */
        (void) ca_aw_final(aw, &e, 0, NULL, NULL);
    }
    ca_aw_settle(aw, job, CA_AW_REFUSED, CA_AUDIT_UNAVAILABLE);
}


static void
ca_aw_refused(ca_aw *aw, ca_aw_job *job)
{
    unsigned char  prev[32];
    ca_aw_lane    *l = &aw->lanes[job->slot];

    aw->stats.refused++;
    if (job->kind == CA_AW_KIND_DECISION) {
        ca_aw_refused_decision(aw, job);
        return;
    }
    /* a lane's checkpoint (the lane holds nothing after it): the lane is
     * as it was before it, and signs again at a later tick */
    if (job->slot != 0 && job->chain != (size_t) -1
        && job->chain + 2 < job->n
        && strcmp(job->name[job->chain + 2], "prev") == 0
        && ca_unhex(job->value[job->chain + 2], prev, 32) == 0)
    {
        l->chain.seq = job->seq - 1;
        memcpy(l->chain.head, prev, 32);
        ca_aw_lane_release(aw, job->slot);
        ca_aw_settle(aw, job, CA_AW_REFUSED, CA_OK);
        return;
    }
    /* chain 0: to the spool, in order */
    ca_aw_failed(aw, job);
}


static void
ca_aw_acked(ca_aw *aw, ca_aw_job *job, char res)
{
    size_t          v;
    unsigned char   head[32];
    ca_aw_lane     *l = &aw->lanes[job->slot];

    aw->stats.acked++;
    /* the lane's number is the job's chain: no need to read it back */
    ca_aw_heads_acked(aw, l->no, job->seq);
    if (job->kind != CA_AW_KIND_DECISION) {
        /* not hex (cannot be, sealed here): the head stays as it was */
        ca_aw_head_acked(aw, job,
                         ca_unhex(job->value[job->n - 1], head, 32) == 0
                         ? head : l->acked_head);
        if (job->slot != 0) {
            ca_aw_lane_release(aw, job->slot);
        }
        ca_aw_settle(aw, job, CA_AW_ACKED, CA_OK);
        return;
    }
    v = (size_t) (res - '1');
    l->chain.seq = job->seq;
    (void) ca_unhex(job->var[v].hash, l->chain.head, 32);
    ca_aw_head_acked(aw, job, l->chain.head);
    ca_aw_lane_release(aw, job->slot);
    ca_aw_settle(aw, job, CA_AW_ACKED, job->var[v].reason);
}


int
ca_aw_result_ok(const ca_aw_job *job, char res)
{
    if (job->kind == CA_AW_KIND_DECISION) {
        return res >= '1' && (size_t) (res - '1') < job->nvar;
    }
    return res == 'w' || res == 'd';
}


/* The error's code (its first word) when it says nothing was written. */
static const char *
ca_aw_refusal(const ca_aw_rep *rep)
{
    static const char  *codes[] = { "OOM", "NOREPLICAS", "READONLY" };
    size_t              i, n;

    if (rep == NULL || rep->type != CA_AW_REPLY_ERROR) {
        return NULL;
    }
    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        n = strlen(codes[i]);
        if (rep->len > n && memcmp(rep->str, codes[i], n) == 0
            && rep->str[n] == ' ')
        {
            return codes[i];
        }
    }
    return NULL;
}


/*
 * The results, or NULL.  An error is logged when it is another than the
 * last one logged (its first word); a reply that writes again ends the
 * refusal, said once too.
 */
static const char *
ca_aw_check_reply(ca_aw *aw, ca_aw_batch *b, const ca_aw_rep *rep)
{
    size_t  n;

    if (rep == NULL) {
        return NULL;
    }
    if (rep->type == CA_AW_REPLY_STRING && rep->len == b->njobs) {
        if (aw->refusing[0]) {
            ca_aw_log(aw, CA_AW_LOG_INFO, "redis takes audit entries "
                      "again (%llu refused meanwhile)",
                      (unsigned long long) (aw->stats.refused
                                            - aw->refused_since));
            aw->refusing[0] = '\0';
        }
        return rep->str;
    }
    if (rep->type == CA_AW_REPLY_ERROR) {
        for (n = 0; n < rep->len && n < sizeof(aw->refusing) - 1
                    && rep->str[n] != ' '; n++)
        {
            /* void */
        }
        if (n != strlen(aw->refusing)
            || memcmp(aw->refusing, rep->str, n) != 0)
        {
            memcpy(aw->refusing, rep->str, n);
            aw->refusing[n] = '\0';
            aw->refused_since = aw->stats.refused;
            ca_aw_log(aw, CA_AW_LOG_ERR, "redis refused audit entries: %.*s"
                      " (said once: until Redis takes entries again, "
                      "refusals are counted, not logged)",
                      (int) (rep->len > 200 ? 200 : rep->len), rep->str);
        }
    } else {
        aw->stats.unexpected++;
        ca_aw_log(aw, CA_AW_LOG_ERR, "unexpected reply to audit entries "
                  "(type %d, %zu bytes, %zu entries)", rep->type,
                  rep->type == CA_AW_REPLY_STRING ? rep->len : 0,
                  b->njobs);
    }
    return NULL;
}


void
ca_aw_reply(ca_aw *aw, ca_aw_cmd *cmd, const ca_aw_rep *rep)
{
    size_t        i;
    const char   *res;
    ca_aw_batch  *b = (ca_aw_batch *) cmd;
    int           refused;

    res = ca_aw_check_reply(aw, b, rep);
    refused = (ca_aw_refusal(rep) != NULL);

    if (b->replay) {
        ca_aw_replayed(aw, b, res);
        ca_aw_batch_free(b);
        return;
    }

    aw->calls--;
    aw->inflight -= b->njobs;
    aw->outstanding0 -= b->n0;
    for (i = 0; i < b->njobs; i++) {
        if (res && ca_aw_result_ok(b->jobs[i], res[i])) {
            ca_aw_acked(aw, b->jobs[i], res[i]);
        } else if (refused) {
            ca_aw_refused(aw, b->jobs[i]);
        } else {
            ca_aw_failed(aw, b->jobs[i]);
        }
    }
    ca_aw_batch_free(b);
    ca_aw_release_behind(aw);
}
