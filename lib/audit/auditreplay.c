/*
 * The audit writer's spool: entries that Redis could not take, stored as
 * they are (name/value pairs, the hashed encoding) and replayed in order,
 * one command at a time; a spooled entry is acknowledged (and the file
 * truncated once all are) only when Redis has written it or already had
 * it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditbatch.h"
#include "core/util.h"


int
ca_aw_spool_pending(const ca_aw *aw)
{
    return aw->spool != NULL && !ca_spool_empty(aw->spool);
}


static int
ca_aw_spool_entry(ca_aw *aw, size_t n, const char *const *name,
                  const char *const *value, const size_t *len, int64_t ts)
{
    const char  *argv[2 * CA_ENTRY_FIELDS];
    size_t       lens[2 * CA_ENTRY_FIELDS], i;
    int          was_empty;

    if (aw->spool == NULL || n > CA_ENTRY_FIELDS) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        argv[2 * i] = name[i];
        lens[2 * i] = strlen(name[i]);
        argv[2 * i + 1] = value[i];
        lens[2 * i + 1] = len[i];
    }
    was_empty = ca_spool_empty(aw->spool);
    if (ca_spool_append(aw->spool, CA_AW_RECORD_ENTRY, NULL, 0, (int) (2 * n),
                        argv, lens)
        != 0)
    {
        ca_aw_log(aw, CA_AW_LOG_ALERT, "audit spool %s is full or "
                  "unwritable", aw->spool_file);
        return -1;
    }
    if (was_empty) {
        aw->oldest_ts = ts;
    }
    aw->stats.spooled++;
    return 0;
}


int
ca_aw_spool_job(ca_aw *aw, ca_aw_job *job)
{
    return ca_aw_spool_entry(aw, job->n, job->name, job->value, job->len,
                             job->ts);
}


/* A record as a job; NULL if it is not an entry of this version. */
static ca_aw_job *
ca_aw_job_from_record(const ca_spool_record *rec)
{
    char         names[CA_ENTRY_FIELDS][32];
    const char  *np[CA_ENTRY_FIELDS], *vp[CA_ENTRY_FIELDS];
    size_t       vl[CA_ENTRY_FIELDS];
    int          i, n;

    if (rec->kind != CA_AW_RECORD_ENTRY || rec->argc % 2
        || rec->argc / 2 > CA_ENTRY_FIELDS || rec->argc == 0)
    {
        return NULL;
    }
    n = rec->argc / 2;
    for (i = 0; i < n; i++) {
        if (rec->lens[2 * i] >= sizeof(names[0])) {
            return NULL;
        }
        memcpy(names[i], rec->argv[2 * i], rec->lens[2 * i]);
        names[i][rec->lens[2 * i]] = '\0';
        np[i] = names[i];
        vp[i] = rec->argv[2 * i + 1];
        vl[i] = rec->lens[2 * i + 1];
    }
    return ca_aw_job_new((size_t) n, np, vp, vl, 0, 0);
}


/* An entry record of another spool, appended to ours as it is. */
int
ca_aw_spool_record(ca_aw *aw, const ca_spool_record *rec)
{
    int         rc;
    ca_aw_job  *job;

    job = ca_aw_job_from_record(rec);
    if (job == NULL) {
        return -1;
    }
    rc = ca_aw_spool_job(aw, job);
    ca_aw_job_free(job);
    return rc;
}


int
ca_aw_has_spool(const ca_aw *aw)
{
    return aw->spool != NULL;
}


/* ts of the oldest entry still in the spool. */
void
ca_aw_refresh_oldest(ca_aw *aw)
{
    ca_spool_record  rec;
    ca_aw_job       *job;

    aw->oldest_ts = 0;
    if (!ca_aw_spool_pending(aw)
        || ca_spool_read(aw->spool, ca_spool_acked(aw->spool), &rec) != 1)
    {
        return;
    }
    job = ca_aw_job_from_record(&rec);
    if (job) {
        aw->oldest_ts = job->ts;
        ca_aw_job_free(job);
    }
    ca_spool_record_free(&rec);
}


void
ca_aw_replayed(ca_aw *aw, ca_aw_batch *b, const char *res)
{
    size_t  i;

    aw->replaying = 0;
    for (i = 0; i < b->njobs; i++) {
        if (res == NULL || !ca_aw_result_ok(b->jobs[i], res[i])) {
            break;
        }
        aw->stats.replayed++;
        ca_aw_heads_replayed(aw, b->jobs[i]);
        (void) ca_spool_ack(aw->spool, b->jobs[i]->spool_end);
    }
    if (i < b->njobs) {
        aw->stats.replay_failed++;
        if (res == NULL) {
            /* an error or no reply: let Redis recover first */
            aw->hold = CA_AW_HOLD_TICKS;
        }
        /* said once per entry it is stuck at: a Redis that refuses for
         * minutes is retried every second */
        if (b->jobs[i]->seq != aw->stuck_seq) {
            aw->stuck_seq = b->jobs[i]->seq;
            ca_aw_log(aw, CA_AW_LOG_WARN, "audit replay stopped at entry "
                      "seq %llu: %s", (unsigned long long) b->jobs[i]->seq,
                      res ? "a predecessor is missing" : "no answer");
        }
    }
    ca_aw_refresh_oldest(aw);
    for (i = 0; i < b->njobs; i++) {
        ca_aw_job_free(b->jobs[i]);
    }
}


ca_aw_cmd *
ca_aw_replay(ca_aw *aw)
{
    int               rc;
    size_t            n;
    uint64_t          off;
    ca_aw_job        *job;
    ca_aw_batch      *b;
    ca_spool_record   rec;

    if (!ca_aw_spool_pending(aw) || aw->replaying || aw->hold || aw->behind)
    {
        return NULL;
    }
    b = ca_aw_batch_new(CA_AW_REPLAY_MAX);
    if (b == NULL) {
        return NULL;
    }
    b->replay = 1;

    off = ca_spool_acked(aw->spool);
    for (n = 0; n < CA_AW_REPLAY_MAX; n++) {
        rc = ca_spool_read(aw->spool, off, &rec);
        if (rc == 0) {
            break;
        }
        job = rc == 1 ? ca_aw_job_from_record(&rec) : NULL;
        if (job == NULL) {
            if (rc == 1) {
                ca_spool_record_free(&rec);
            }
            if (n > 0) {
                break;          /* send what precedes it first */
            }
            ca_aw_log(aw, CA_AW_LOG_ALERT, "audit spool %s: unreadable "
                      "record at offset %llu; the rest of the file is "
                      "dropped", aw->spool_file, (unsigned long long) off);
            (void) ca_spool_ack(aw->spool, ca_spool_size(aw->spool));
            ca_aw_refresh_oldest(aw);
            break;
        }
        job->kind = CA_AW_KIND_REPLAY;
        job->slot = CA_AW_NO_SLOT;
        job->spool_end = rec.end;
        off = rec.end;
        ca_spool_record_free(&rec);
        b->jobs[n] = job;
    }
    b->njobs = n;

    if (n == 0 || ca_aw_encode(b, aw->stream) != 0) {
        for (size_t i = 0; i < n; i++) {
            ca_aw_job_free(b->jobs[i]);
        }
        ca_aw_batch_free(b);
        return NULL;
    }
    aw->replaying = 1;
    return &b->cmd;
}


int
ca_aw_sync(ca_aw *aw)
{
    return aw->spool ? ca_spool_sync(aw->spool) : 0;
}


uint64_t
ca_aw_spool_bytes(const ca_aw *aw, int64_t *oldest_ts)
{
    if (!ca_aw_spool_pending(aw)) {
        *oldest_ts = 0;
        return 0;
    }
    *oldest_ts = aw->oldest_ts;
    return ca_spool_size(aw->spool) - ca_spool_acked(aw->spool);
}


/* The deny the bank got (503), at the decision's chain position. */
int
ca_aw_spool_failed_decision(ca_aw *aw, ca_aw_job *job)
{
    const char    *value[CA_ENTRY_FIELDS];
    size_t         len[CA_ENTRY_FIELDS];
    unsigned char  h[32];
    char           hex[65];
    const char    *why = ca_reason_name(CA_AUDIT_UNAVAILABLE);

    if (job->n > CA_ENTRY_FIELDS) {
        return -1;
    }
    memcpy(value, job->value, job->n * sizeof(char *));
    memcpy(len, job->len, job->n * sizeof(size_t));
    value[job->xpos[0]] = "deny";
    len[job->xpos[0]] = 4;
    value[job->xpos[1]] = why;
    len[job->xpos[1]] = strlen(why);
    ca_entry_digest(job->name, value, len, job->n, h);
    ca_hex(h, 32, hex);
    value[job->xpos[2]] = hex;
    len[job->xpos[2]] = 64;
    return ca_aw_spool_entry(aw, job->n, job->name, value, len, job->ts);
}

