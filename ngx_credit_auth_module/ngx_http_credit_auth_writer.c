/*
 * The worker's audit writer (lib/audit/auditwriter.h) on nginx's event loop: it
 * sends the writer's commands over the Redis connection and hands the
 * replies back.  The entries sealed during one turn of the event loop go
 * out together, from a posted event, as one script call.
 *
 * Exit.  While the writer has work (entries unsigned, queued, in flight,
 * spooled with Redis up) its tick timer is not cancelable, so a graceful
 * shutdown waits for it: on the first tick after the shutdown began, every
 * chain gets its final checkpoint and everything goes out through the same
 * path as always, for at most NGX_HTTP_CREDIT_AUTH_EXIT_MS.  What is left
 * then stays in the spool file for the next worker to adopt.
 */
#include <hiredis/hiredis.h>

#include "ngx_http_credit_auth.h"


#define NGX_HTTP_CREDIT_AUTH_TICK     100     /* ms */
#define NGX_HTTP_CREDIT_AUTH_ADOPT    5000    /* ms */
#define NGX_HTTP_CREDIT_AUTH_EXIT_MS  3000


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    ca_aw                             *aw;
    ngx_event_t                        flush;
    ngx_event_t                        tick;
    ngx_msec_t                         last_adopt;
    ngx_msec_t                         exit_deadline;
    ngx_uint_t                         exiting;
    uint64_t                           discontinuities;
} ngx_http_credit_auth_writer_t;


static ngx_http_credit_auth_writer_t  ngx_http_credit_auth_writer;


static int64_t
ngx_http_credit_auth_wall_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


static void
ngx_http_credit_auth_writer_log(void *ctx, int level, const char *msg)
{
    static const ngx_uint_t  levels[] = {
        NGX_LOG_ERR, NGX_LOG_ALERT, NGX_LOG_ERR, NGX_LOG_WARN, NGX_LOG_NOTICE
    };

    ngx_log_error(levels[level < 5 ? level : 0],
                  ngx_http_credit_auth_writer.log, 0, "credit_auth: %s",
                  msg);
}


/* The owner of an entry learns its fate (see ngx_http_credit_auth.h). */
static void
ngx_http_credit_auth_writer_settled(void *owner, int outcome,
    ca_reason reason)
{
    ngx_http_credit_auth_waiter_t  *w = owner;

    w->job = NULL;
    w->handler(w, outcome, reason);
}


static void
ngx_http_credit_auth_writer_reply(void *data, void *reply)
{
    ca_aw_rep                      rep, *rp;
    redisReply                    *r = reply;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    rp = NULL;
    if (r != NULL) {
        rp = &rep;
        rep.str = r->str;
        rep.len = r->len;
        rep.type = r->type == REDIS_REPLY_STRING ? CA_AW_REPLY_STRING
                   : r->type == REDIS_REPLY_ERROR ? CA_AW_REPLY_ERROR
                   : CA_AW_REPLY_OTHER;
        if (rep.type == CA_AW_REPLY_OTHER) {
            rep.str = NULL;
            rep.len = 0;
        }
    }

    ca_aw_reply(wr->aw, data, rp);

    /* more replay, or what queued meanwhile: from the loop, not here */
    if (!wr->flush.posted) {
        ngx_post_event(&wr->flush, &ngx_posted_events);
    }
}


static void
ngx_http_credit_auth_writer_send(ca_aw_cmd *cmd)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    if (ngx_http_credit_auth_redis_command(cmd->argc, cmd->argv, cmd->lens,
                                    ngx_http_credit_auth_writer_reply, cmd)
        != NGX_OK)
    {
        ca_aw_reply(wr->aw, cmd, NULL);
    }
}


static void
ngx_http_credit_auth_writer_flush(ngx_event_t *ev)
{
    ngx_uint_t                      online;
    ca_aw_cmd                      *cmd;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    online = ngx_http_credit_auth_redis_ready();

    while ((cmd = ca_aw_flush(wr->aw, online)) != NULL) {
        ngx_http_credit_auth_writer_send(cmd);
    }

    if (online && (cmd = ca_aw_replay(wr->aw)) != NULL) {
        ngx_http_credit_auth_writer_send(cmd);
    }
}


void
ngx_http_credit_auth_writer_kick(void)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    if (wr->aw && !wr->flush.posted) {
        ngx_post_event(&wr->flush, &ngx_posted_events);
    }
}


/* A final entry's fate for its owner: NGX_AGAIN, told later; NGX_OK,
 * spooled now; NGX_ERROR, neither. */
static ngx_int_t
ngx_http_credit_auth_writer_submitted(int rc)
{
    if (rc == CA_AW_QUEUED) {
        ngx_http_credit_auth_writer_kick();
        return NGX_AGAIN;
    }
    return rc == CA_AW_SPOOLED ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_credit_auth_writer_final(ca_entry *e,
    ngx_http_credit_auth_waiter_t *w)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    return ngx_http_credit_auth_writer_submitted(
               ca_aw_final(wr->aw, e, ngx_http_credit_auth_redis_ready(), w,
                           w ? &w->job : NULL));
}


ngx_int_t
ngx_http_credit_auth_writer_decide(ca_entry *e, const char *refusal,
    const ca_aw_check *checks, size_t n, ngx_http_credit_auth_waiter_t *w)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    if (ca_aw_decide(wr->aw, e, refusal, checks, n, w, &w->job)
        != CA_AW_QUEUED)
    {
        return NGX_ERROR;
    }
    ngx_http_credit_auth_writer_kick();
    return NGX_AGAIN;
}


/*
 * A consent withdrawn (contract §3): its `revocation` entry, sealed and sent
 * like a refusal; w (may be NULL) learns its fate as a decision's owner
 * does.  by: "enterprise" or "platform".
 */
ngx_int_t
ngx_http_credit_auth_writer_revocation(const char *enterprise,
    const char *jti, const char *by, ngx_http_credit_auth_waiter_t *w)
{
    ca_aw_revoked                   rv;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    rv.ts = ngx_http_credit_auth_wall_ms();
    rv.enterprise = enterprise;
    rv.jti = jti;
    rv.by = by;
    return ngx_http_credit_auth_writer_submitted(
               ca_aw_revocation(wr->aw, &rv,
                                ngx_http_credit_auth_redis_ready(), w,
                                w ? &w->job : NULL));
}


void
ngx_http_credit_auth_writer_detach(ngx_http_credit_auth_waiter_t *w)
{
    if (w->job) {
        ca_aw_detach(w->job);
        w->job = NULL;
    }
}


ngx_int_t
ngx_http_credit_auth_writer_sync(void)
{
    return ca_aw_sync(ngx_http_credit_auth_writer.aw) == 0 ? NGX_OK
                                                           : NGX_ERROR;
}


/*
 * Redis answers again but without something it had acknowledged: the
 * trail says so itself, in a signed entry (the next checkpoint of chain 0
 * covers it), so that `credit-audit verify` never calls it intact.
 */
void
ngx_http_credit_auth_writer_discontinuity(const char *missing,
    const char *expected, const char *found)
{
    ca_entry                        e;
    ca_audit_facts                  f;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    if (wr->aw == NULL) {
        return;
    }
    wr->discontinuities++;
    ngx_memzero(&f, sizeof(ca_audit_facts));
    f.ts = ngx_http_credit_auth_wall_ms();
    f.gw = (char *) wr->mcf->gateway_id.data;
    f.missing = missing;
    f.expected = expected;
    f.found = found;
    ngx_http_credit_auth_writer_kick();
    if (ca_audit_build(&e, CA_EV_DISCONTINUITY, &f) != 0
        || ca_aw_discontinuity(wr->aw, &e,
                               ngx_http_credit_auth_redis_ready())
           == CA_AW_LOST)
    {
        ngx_log_error(NGX_LOG_ALERT, wr->log, 0, "credit_auth: the "
                      "discontinuity entry could not be written or spooled");
    }
}


const char *
ngx_http_credit_auth_writer_heads_key(void)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    return wr->aw ? ca_aw_heads_key(wr->aw) : NULL;
}


/* HGETALL's answer (field, value, field, value...) against the heads
 * Redis acknowledged. */
ngx_int_t
ngx_http_credit_auth_writer_heads(void *reply, char *expected, char *found,
    size_t len)
{
    long                            behind;
    size_t                          i, n, *lens;
    const char                    **strs;
    redisReply                     *r = reply, *e;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    expected[0] = found[0] = '\0';
    if (wr->aw == NULL) {
        return 0;
    }
    n = r->elements / 2;
    strs = ngx_alloc((2 * n + 1) * sizeof(char *), wr->log);
    lens = ngx_alloc((2 * n + 1) * sizeof(size_t), wr->log);
    if (strs == NULL || lens == NULL) {
        behind = -1;
        goto done;
    }
    /* fields first, then their values */
    for (i = 0; i < 2 * n; i++) {
        e = r->element[i];
        strs[i / 2 + (i % 2) * n] = e->type == REDIS_REPLY_STRING ? e->str
                                                                  : "";
        lens[i / 2 + (i % 2) * n] = e->type == REDIS_REPLY_STRING ? e->len
                                                                  : 0;
    }
    behind = ca_aw_heads_check(wr->aw, n, strs, lens, strs + n, lens + n,
                               expected, found, len);

done:
    if (strs) {
        ngx_free(strs);
    }
    if (lens) {
        ngx_free(lens);
    }
    if (behind < 0) {
        ngx_log_error(NGX_LOG_ERR, wr->log, 0, "credit_auth: out of memory: "
                      "the chain heads were not checked");
    }
    return behind;
}


/* What the status page shows of this worker's writer. */
static void
ngx_http_credit_auth_writer_publish(void)
{
    int64_t                         oldest;
    const ca_aw_stats              *st;
    ngx_http_credit_auth_wstate_t   ws;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    st = ca_aw_get_stats(wr->aw);
    ws.spool_bytes = ca_aw_spool_bytes(wr->aw, &oldest);
    ws.spool_oldest_ms = oldest;
    ws.sent = st->sent;
    ws.acked = st->acked;
    ws.failed = st->failed;
    ws.replayed = st->replayed;
    ws.replay_failed = st->replay_failed;
    ws.unexpected = st->unexpected;
    ws.discontinuities = wr->discontinuities;
    ws.refused = st->refused;
    ngx_http_credit_auth_zone_writer(&ws);
}


static void
ngx_http_credit_auth_writer_tick(ngx_event_t *ev)
{
    ngx_uint_t                      online;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    online = ngx_http_credit_auth_redis_ready();

    if (ngx_exiting && !wr->exiting) {
        wr->exiting = 1;
        wr->exit_deadline = ngx_current_msec + NGX_HTTP_CREDIT_AUTH_EXIT_MS;
    }

    ca_aw_tick(wr->aw, ngx_http_credit_auth_wall_ms(),
               wr->mcf->checkpoint_interval, wr->exiting, online);

    if (wr->mcf->spool_path.len && !wr->exiting
        && ngx_current_msec - wr->last_adopt >= NGX_HTTP_CREDIT_AUTH_ADOPT)
    {
        wr->last_adopt = ngx_current_msec;
        ca_aw_adopt_dir(wr->aw, (char *) wr->mcf->spool_path.data,
                        (long) ngx_pid);
    }

    ngx_http_credit_auth_writer_flush(&wr->flush);

    /* refusals are answered once appended; durability follows within a
     * tick (batched: fsync on every append would stall the loop) */
    (void) ca_aw_sync(wr->aw);
    ngx_http_credit_auth_writer_publish();

    /* keeps an exiting worker alive while there is work, within bounds */
    ev->cancelable = ca_aw_idle(wr->aw, online)
                     || (wr->exiting
                         && (ngx_msec_int_t) (ngx_current_msec
                                              - wr->exit_deadline) > 0);
    ngx_add_timer(ev, NGX_HTTP_CREDIT_AUTH_TICK);
}


ngx_int_t
ngx_http_credit_auth_writer_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    char                            err[256], gw[128], prefix[96];
    u_char                         *spool;
    ca_aw_conf                      conf;
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    ngx_memzero(wr, sizeof(ngx_http_credit_auth_writer_t));
    wr->mcf = mcf;
    wr->log = cycle->log;

    ngx_cpystrn((u_char *) gw, mcf->gateway_id.data,
                ngx_min(mcf->gateway_id.len + 1, sizeof(gw)));
    /* one writer = one worker process incarnation */
    ngx_snprintf((u_char *) prefix, sizeof(prefix) - 1, "%s/%P/%L%Z", gw,
                 ngx_pid, ngx_http_credit_auth_wall_ms());

    spool = NULL;
    if (mcf->spool_path.len) {
        spool = ngx_pnalloc(cycle->pool, mcf->spool_path.len + 64);
        if (spool == NULL) {
            return NGX_ERROR;
        }
        ngx_snprintf(spool, mcf->spool_path.len + 63, "%V/worker-%P.spool%Z",
                     &mcf->spool_path, ngx_pid);
    }

    ngx_memzero(&conf, sizeof(ca_aw_conf));
    conf.gw = gw;
    conf.prefix = prefix;
    conf.stream = (char *) mcf->stream.data;
    conf.max_lanes = ngx_min(mcf->max_inflight, 4096);
    conf.spool_file = (char *) spool;
    conf.spool_max = (uint64_t) mcf->spool_max;
    conf.key = mcf->audit_key;
    conf.settled = ngx_http_credit_auth_writer_settled;
    conf.log = ngx_http_credit_auth_writer_log;

    wr->aw = ca_aw_new(&conf, err, sizeof(err));
    if (wr->aw == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "credit_auth: cannot open audit spool: %s", err);
        return NGX_ERROR;
    }
    if (spool) {
        ca_aw_adopt_dir(wr->aw, (char *) mcf->spool_path.data,
                        (long) ngx_pid);
        wr->last_adopt = ngx_current_msec;
    }

    wr->flush.handler = ngx_http_credit_auth_writer_flush;
    wr->flush.log = cycle->log;
    wr->flush.data = wr;

    wr->tick.handler = ngx_http_credit_auth_writer_tick;
    wr->tick.log = cycle->log;
    wr->tick.data = wr;
    wr->tick.cancelable = 1;
    ngx_add_timer(&wr->tick, NGX_HTTP_CREDIT_AUTH_TICK);

    return NGX_OK;
}


/* After the Redis connection is gone: its pending replies came back empty
 * and went to the spool; what is queued goes there too. */
void
ngx_http_credit_auth_writer_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_auth_writer_t  *wr = &ngx_http_credit_auth_writer;

    if (wr->aw == NULL) {
        return;
    }
    if (wr->tick.timer_set) {
        ngx_del_timer(&wr->tick);
    }
    if (wr->flush.posted) {
        ngx_delete_posted_event(&wr->flush);
    }
    ngx_http_credit_auth_writer_publish();
    ngx_http_credit_auth_zone_writer(NULL);
    (void) ca_aw_free(wr->aw);
    wr->aw = NULL;
}
