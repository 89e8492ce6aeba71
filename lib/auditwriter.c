/*
 * The audit writer: chains and lanes, this turn's queue, the fate of each
 * entry sent, and the spool.  See auditwriter.h; the wire format is in
 * auditbatch.c.
 *
 * Order.  Chain 0 is written in seal order: its entries are queued, and
 * while the spool holds anything they go behind it, into the spool.  A
 * lane holds at most one entry whose fate is unknown; when that fate
 * cannot be learnt (no reply, an error), the lane is retired: its chain
 * ends there and the slot starts a new chain.  A decision that failed is
 * spooled as the deny the bank got (audit_unavailable) at its position;
 * if Redis did write the original, the replay is a duplicate.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auditbatch.h"
#include "spool.h"
#include "util.h"

#define CA_AW_HOLD_TICKS  10        /* after a failed replay: ~1 s */

typedef struct {
    ca_chain            chain;
    int                 busy;       /* an entry in flight */
    int                 listed;     /* in the free list */
    uint64_t            checkpointed;
} ca_aw_lane;

struct ca_aw {
    ca_aw_conf          conf;
    char                gw[128];
    char                prefix[96];
    char                stream[256];
    char               *spool_file;
    ca_spool           *spool;

    ca_aw_lane         *lanes;      /* [0]: chain 0 */
    size_t              n_lanes;
    size_t             *free;       /* idle lane slots */
    size_t              n_free;
    uint64_t            next_chain; /* number of the next new lane chain */

    ca_aw_job          *queue;      /* this turn's entries */
    ca_aw_job         **tail;
    size_t              inflight;   /* entries sent, reply due */
    int                 replaying;
    int                 hold;
    int64_t             last_checkpoint;
    int64_t             oldest_ts;
    ca_aw_stats         stats;
};


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
ca_aw_chain_id(ca_aw *aw, ca_chain *ch, uint64_t no)
{
    char  id[sizeof(aw->prefix) + 24];

    snprintf(id, sizeof(id), "%s/%llu", aw->prefix, (unsigned long long) no);
    ca_chain_init(ch, id);
}


static void
ca_aw_settle(ca_aw *aw, ca_aw_job *job, int outcome, ca_reason reason)
{
    if (job->owner && aw->conf.settled) {
        aw->conf.settled(job->owner, outcome, reason);
    }
    ca_aw_job_free(job);
}


/* --- the spool ----------------------------------------------------------- */

static int
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


static int
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
static void
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


/* --- lanes --------------------------------------------------------------- */

static size_t
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
        ca_aw_chain_id(aw, &aw->lanes[i].chain, i);
    } else {
        return 0;
    }
    aw->lanes[i].busy = 1;
    return i;
}


static void
ca_aw_lane_release(ca_aw *aw, size_t slot)
{
    aw->lanes[slot].busy = 0;
    if (!aw->lanes[slot].listed) {
        aw->lanes[slot].listed = 1;
        aw->free[aw->n_free++] = slot;
    }
}


/* Its head is unknown: the chain ends here, the slot starts another. */
static void
ca_aw_lane_retire(ca_aw *aw, size_t slot)
{
    ca_aw_lane  *l = &aw->lanes[slot];

    ca_aw_log(aw, CA_AW_LOG_WARN, "audit chain %s ends at an entry whose "
              "fate is unknown", l->chain.id);
    ca_aw_chain_id(aw, &l->chain, aw->next_chain++);
    l->checkpointed = 0;
    ca_aw_lane_release(aw, slot);
}


/* --- entries in ---------------------------------------------------------- */

static void
ca_aw_enqueue(ca_aw *aw, ca_aw_job *job)
{
    job->next = NULL;
    *aw->tail = job;
    aw->tail = &job->next;
}


/*
 * A sealed final entry of `slot`: queued, or spooled now.  `saved` is the
 * chain before sealing, restored when the entry goes nowhere (a sealed
 * entry that never reaches the stream would read as a deletion).
 */
static int
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

    if (slot == 0 && (!online || ca_aw_spool_pending(aw))) {
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


static size_t
ca_aw_field(const ca_entry *e, const char *name)
{
    size_t  i;

    for (i = 0; i < e->n; i++) {
        if (strcmp(e->name[i], name) == 0) {
            return i;
        }
    }
    return (size_t) -1;
}


/* Seals e on a copy of the lane's chain with the decision and reason of
 * variant v; e is left sealed with it. */
static int
ca_aw_seal_variant(ca_aw *aw, size_t slot, ca_entry *e, size_t base_n,
                   size_t base_used, size_t dpos, const ca_aw_variant *v,
                   char hash[65])
{
    ca_chain     ch = aw->lanes[slot].chain;
    const char  *why = v->reason == CA_OK ? "" : ca_reason_name(v->reason);

    e->n = base_n;
    e->used = base_used;
    e->value[dpos] = v->decision;
    e->len[dpos] = strlen(v->decision);
    e->value[dpos + 1] = why;
    e->len[dpos + 1] = strlen(why);
    if (ca_chain_seal(&ch, e) != 0) {
        return -1;
    }
    memcpy(hash, e->value[e->n - 1], 65);
    return 0;
}


int
ca_aw_decide(ca_aw *aw, ca_entry *e, const char *refusal,
             const ca_aw_check *checks, size_t n, void *owner,
             ca_aw_job **out)
{
    size_t         i, k, dpos, base_n, base_used, keys, nvar;
    size_t         vof[CA_AW_CHECKS_MAX];
    ca_aw_job     *job;
    ca_aw_variant  var[CA_AW_VARIANTS_MAX];
    size_t         slot;

    dpos = ca_aw_field(e, "decision");
    if (n > CA_AW_CHECKS_MAX || dpos == (size_t) -1 || dpos + 1 >= e->n
        || strcmp(e->name[dpos + 1], "reason") != 0
        || e->len[dpos] >= sizeof(var[0].decision)
        || strlen(refusal) >= sizeof(var[0].decision))
    {
        return CA_AW_LOST;
    }

    /* the variants: as given, then one per distinct refusal */
    memset(var, 0, sizeof(var));
    memcpy(var[0].decision, e->value[dpos], e->len[dpos]);
    var[0].reason = CA_OK;
    nvar = 1;
    keys = 0;
    for (i = 0; i < n; i++) {
        for (k = 1; k < nvar; k++) {
            if (var[k].reason == checks[i].reason) {
                break;
            }
        }
        if (k == nvar) {
            if (nvar == CA_AW_VARIANTS_MAX) {
                return CA_AW_LOST;
            }
            snprintf(var[k].decision, sizeof(var[k].decision), "%s",
                     refusal);
            var[k].reason = checks[i].reason;
            nvar++;
        }
        vof[i] = k;
        keys += strlen(checks[i].key) + 1;
    }

    slot = ca_aw_lane_get(aw);
    if (slot == 0) {
        ca_aw_log(aw, CA_AW_LOG_ERR, "no audit lane free");
        return CA_AW_LOST;
    }

    /* variant 0 last, so that e ends up sealed as the allow */
    base_n = e->n;
    base_used = e->used;
    for (k = nvar; k-- > 0; ) {
        if (ca_aw_seal_variant(aw, slot, e, base_n, base_used, dpos, &var[k],
                               var[k].hash)
            != 0)
        {
            ca_aw_lane_release(aw, slot);
            ca_aw_log(aw, CA_AW_LOG_ALERT, "audit entry too large");
            return CA_AW_LOST;
        }
    }

    job = ca_aw_job_new(e->n, e->name, e->value, e->len, n, keys);
    if (job == NULL) {
        ca_aw_lane_release(aw, slot);
        return CA_AW_LOST;
    }
    job->kind = CA_AW_KIND_DECISION;
    job->slot = slot;
    job->owner = owner;
    job->xpos[0] = dpos;
    job->xpos[1] = dpos + 1;
    job->xpos[2] = e->n - 1;
    job->nvar = nvar;
    memcpy(job->var, var, sizeof(var));
    job->ncheck = n;
    for (i = 0; i < n; i++) {
        ca_aw_jcheck  *c = &job->check[i];
        size_t         kl = strlen(checks[i].key);

        if (i > 0) {
            c->key = job->check[i - 1].key
                     + strlen(job->check[i - 1].key) + 1;
        }
        memcpy(c->key, checks[i].key, kl + 1);
        c->op = checks[i].op;
        snprintf(c->max, sizeof(c->max), "%lld",
                 (long long) checks[i].max);
        snprintf(c->expire, sizeof(c->expire), "%lld",
                 (long long) checks[i].expire_at);
        snprintf(c->variant, sizeof(c->variant), "%zu", vof[i] + 1);
    }

    ca_aw_enqueue(aw, job);
    if (out) {
        *out = job;
    }
    return CA_AW_QUEUED;
}


void
ca_aw_detach(ca_aw_job *job)
{
    job->owner = NULL;
}


/* --- fates ---------------------------------------------------------------- */

/* The deny the bank got (503), at the decision's chain position. */
static int
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


/* No reply, an error, or a gap: what is unknown goes to the spool. */
static void
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
    }
    outcome = ca_aw_spool_job(aw, job) == 0 ? CA_AW_SPOOLED : CA_AW_LOST;
    if (outcome == CA_AW_LOST) {
        aw->stats.lost++;
    }
    ca_aw_settle(aw, job, outcome, CA_OK);
}


static void
ca_aw_acked(ca_aw *aw, ca_aw_job *job, char res)
{
    size_t      v;
    ca_aw_lane *l = &aw->lanes[job->slot];

    aw->stats.acked++;
    if (job->kind != CA_AW_KIND_DECISION) {
        if (job->slot != 0) {
            ca_aw_lane_release(aw, job->slot);
        }
        ca_aw_settle(aw, job, CA_AW_ACKED, CA_OK);
        return;
    }
    v = (size_t) (res - '1');
    l->chain.seq = job->seq;
    (void) ca_unhex(job->var[v].hash, l->chain.head, 32);
    ca_aw_lane_release(aw, job->slot);
    ca_aw_settle(aw, job, CA_AW_ACKED, job->var[v].reason);
}


static int
ca_aw_result_ok(const ca_aw_job *job, char res)
{
    if (job->kind == CA_AW_KIND_DECISION) {
        return res >= '1' && (size_t) (res - '1') < job->nvar;
    }
    return res == 'w' || res == 'd';
}


static const char *
ca_aw_check_reply(ca_aw *aw, ca_aw_batch *b, const ca_aw_rep *rep)
{
    if (rep == NULL) {
        return NULL;
    }
    if (rep->type == CA_AW_REPLY_STRING && rep->len == b->njobs) {
        return rep->str;
    }
    if (rep->type == CA_AW_REPLY_ERROR) {
        ca_aw_log(aw, CA_AW_LOG_ERR, "redis refused audit entries: %.*s",
                  (int) (rep->len > 200 ? 200 : rep->len), rep->str);
    } else {
        aw->stats.unexpected++;
        ca_aw_log(aw, CA_AW_LOG_ERR, "unexpected reply to audit entries "
                  "(type %d, %zu bytes, %zu entries)", rep->type,
                  rep->type == CA_AW_REPLY_STRING ? rep->len : 0,
                  b->njobs);
    }
    return NULL;
}


static void
ca_aw_replayed(ca_aw *aw, ca_aw_batch *b, const char *res)
{
    size_t  i;

    aw->replaying = 0;
    for (i = 0; i < b->njobs; i++) {
        if (res == NULL || !ca_aw_result_ok(b->jobs[i], res[i])) {
            break;
        }
        aw->stats.replayed++;
        (void) ca_spool_ack(aw->spool, b->jobs[i]->spool_end);
    }
    if (i < b->njobs) {
        aw->stats.replay_failed++;
        if (res == NULL) {
            /* an error or no reply: let Redis recover first */
            aw->hold = CA_AW_HOLD_TICKS;
        }
        ca_aw_log(aw, CA_AW_LOG_WARN, "audit replay stopped at entry seq "
                  "%llu: %s", (unsigned long long) b->jobs[i]->seq,
                  res ? "a predecessor is missing" : "no answer");
    }
    ca_aw_refresh_oldest(aw);
    for (i = 0; i < b->njobs; i++) {
        ca_aw_job_free(b->jobs[i]);
    }
}


void
ca_aw_reply(ca_aw *aw, ca_aw_cmd *cmd, const ca_aw_rep *rep)
{
    size_t        i;
    const char   *res;
    ca_aw_batch  *b = (ca_aw_batch *) cmd;

    res = ca_aw_check_reply(aw, b, rep);

    if (b->replay) {
        ca_aw_replayed(aw, b, res);
        ca_aw_batch_free(b);
        return;
    }

    aw->inflight -= b->njobs;
    for (i = 0; i < b->njobs; i++) {
        if (res && ca_aw_result_ok(b->jobs[i], res[i])) {
            ca_aw_acked(aw, b->jobs[i], res[i]);
        } else {
            ca_aw_failed(aw, b->jobs[i]);
        }
    }
    ca_aw_batch_free(b);
}


/* --- entries out ---------------------------------------------------------- */

static ca_aw_batch *
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

    b = online ? ca_aw_batch_new(CA_AW_BATCH_MAX) : NULL;
    if (b == NULL) {
        while ((job = aw->queue) != NULL) {
            aw->queue = job->next;
            ca_aw_failed(aw, job);
        }
        aw->tail = &aw->queue;
        return NULL;
    }

    for (n = 0; n < CA_AW_BATCH_MAX && aw->queue; n++) {
        job = aw->queue;
        aw->queue = job->next;
        b->jobs[n] = job;
    }
    if (aw->queue == NULL) {
        aw->tail = &aw->queue;
    }
    b->njobs = n;
    aw->inflight += n;
    aw->stats.sent += n;

    if (ca_aw_encode(b, aw->stream) != 0) {
        ca_aw_reply(aw, &b->cmd, NULL);
        return NULL;
    }
    return &b->cmd;
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

    if (!ca_aw_spool_pending(aw) || aw->replaying || aw->hold) {
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


/* --- housekeeping --------------------------------------------------------- */

static void
ca_aw_checkpoints(ca_aw *aw, int64_t now_ms, int online)
{
    size_t       i;
    ca_entry     e;
    ca_chain     saved;
    ca_aw_lane  *l;

    for (i = 0; i < aw->n_lanes; i++) {
        l = &aw->lanes[i];
        if (l->busy || l->chain.seq == l->checkpointed
            || (i != 0 && !online))
        {
            continue;
        }
        saved = l->chain;
        if (ca_checkpoint_build(&l->chain, &e, now_ms, aw->gw, aw->conf.key)
            != 0)
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


int
ca_aw_sync(ca_aw *aw)
{
    return aw->spool ? ca_spool_sync(aw->spool) : 0;
}


int
ca_aw_idle(const ca_aw *aw, int online)
{
    size_t  i;

    if (aw->queue || aw->inflight || aw->replaying
        || (online && ca_aw_spool_pending(aw)))
    {
        return 0;
    }
    for (i = 0; aw->conf.key && i < aw->n_lanes; i++) {
        if (aw->lanes[i].chain.seq != aw->lanes[i].checkpointed
            && (i == 0 || online))
        {
            return 0;
        }
    }
    return 1;
}


const ca_aw_stats *
ca_aw_get_stats(const ca_aw *aw)
{
    return &aw->stats;
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


/* --- life cycle ----------------------------------------------------------- */

ca_aw *
ca_aw_new(const ca_aw_conf *conf, char *err, size_t errlen)
{
    ca_aw  *aw;

    aw = calloc(1, sizeof(ca_aw));
    if (aw == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    aw->conf = *conf;
    snprintf(aw->gw, sizeof(aw->gw), "%s", conf->gw);
    snprintf(aw->prefix, sizeof(aw->prefix), "%s", conf->prefix);
    snprintf(aw->stream, sizeof(aw->stream), "%s", conf->stream);
    aw->tail = &aw->queue;
    aw->next_chain = conf->max_lanes + 1;

    aw->lanes = calloc(conf->max_lanes + 1, sizeof(ca_aw_lane));
    aw->free = calloc(conf->max_lanes + 1, sizeof(size_t));
    if (aw->lanes == NULL || aw->free == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }
    ca_aw_chain_id(aw, &aw->lanes[0].chain, 0);
    aw->n_lanes = 1;

    if (conf->spool_file) {
        aw->spool_file = strdup(conf->spool_file);
        if (aw->spool_file == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
        aw->spool = ca_spool_open(conf->spool_file, conf->spool_max, err,
                                  errlen);
        if (aw->spool == NULL) {
            goto failed;
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
    free(aw->spool_file);
    free(aw->lanes);
    free(aw->free);
    free(aw);
    return removed;
}
