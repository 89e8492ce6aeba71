/*
 * A consent revoked by the gateway itself (contract §3 v3; the withdrawal
 * endpoint, …_withdraw.c), in this order:
 *
 *   1. credit:revoked:<iss>:<jti>, the key every gateway's decision script
 *      checks, acknowledged on the configured durability like any command
 *      of the Redis session (aof verified on connect, or WAIT N behind it);
 *   2. then its `revocation` entry through the audit writer, acknowledged
 *      by Redis or fsync'd to the spool.
 *
 * 2 after 1, so that the trail never names a revocation that is not in
 * force.  The job lives on its own (its caller may leave: detach), and
 * once the revocation is in force its entry is written whoever still
 * waits.  The caller hears the end from a posted event: CA_OK, or
 * CA_REVOCATION_UNAVAILABLE (not acknowledged: nothing audited; Redis may
 * still apply a command it did not answer in time), or
 * CA_AUDIT_UNAVAILABLE (in force, its entry neither acknowledged nor
 * spooled).  Each wait is one of Redis's (a reply, bounded by
 * command_timeout) or the writer's (its entry's fate, bounded the same
 * way).  A worker told to stop at once runs no posted event after its
 * Redis connection is gone: the jobs alive are listed, and
 * ngx_http_credit_auth_revoke_exit() ends each of them there.
 */
#include <hiredis/hiredis.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_http_credit_auth_waiter_t     waiter;   /* the entry's fate */
    ngx_queue_t                       queue;    /* the jobs alive */
    ngx_event_t                       ev;       /* the next step */
    ngx_http_credit_auth_revoked_pt   done;     /* NULL: nobody waits */
    void                             *data;
    ngx_uint_t                        in_force;
    ngx_int_t                         outcome;  /* CA_AW_*; 0: not yet */
    char                              enterprise[CA_USCC_LEN + 1];
    char                              jti[CA_JTI_MAX + 1];
    char                              by[16];
} ngx_http_credit_auth_revoke_t;


/*
 * Expires at ARGV[1], when no consent with this jti issued until now can
 * still be valid, but never shortens a revocation already there (the
 * platform's, or one without expiry).
 */
static const char  ngx_http_credit_auth_revoke_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then\n"
    "  return 1\n"
    "end\n"
    "redis.call('EXPIREAT', KEYS[1], ARGV[1], 'GT')\n"
    "return 0\n";


static ngx_queue_t  ngx_http_credit_auth_revokes;


static void
ngx_http_credit_auth_revoke_post(ngx_http_credit_auth_revoke_t *rv)
{
    if (!rv->ev.posted) {
        ngx_post_event(&rv->ev, &ngx_posted_events);
    }
}


static void
ngx_http_credit_auth_revoke_reply(void *data, void *reply)
{
    redisReply                     *rep = reply;
    ngx_http_credit_auth_revoke_t  *rv = data;

    rv->in_force = (rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "credit_auth: "
                      "revocation of \"%s\": redis: %*s", rv->jti,
                      (size_t) ngx_min(rep->len, 200), rep->str);
    }
    if (!rv->in_force) {
        rv->outcome = CA_AW_LOST;
    }
    /* the entry goes from the loop, not from inside hiredis' callback */
    ngx_http_credit_auth_revoke_post(rv);
}


static void
ngx_http_credit_auth_revoke_settled(ngx_http_credit_auth_waiter_t *w,
    int outcome, ca_reason reason)
{
    ngx_http_credit_auth_revoke_t  *rv = (ngx_http_credit_auth_revoke_t *) w;

    /* inside the writer: the sync of a spooled entry waits for the loop */
    rv->outcome = outcome;
    ngx_http_credit_auth_revoke_post(rv);
}


static void
ngx_http_credit_auth_revoke_end(ngx_http_credit_auth_revoke_t *rv,
    ca_reason reason)
{
    ngx_queue_remove(&rv->queue);
    if (rv->done) {
        rv->done(rv->data, reason);
    }
    ngx_free(rv);
}


/* The next step: 1 when the job ended, 0 when its entry's fate is due. */
static ngx_uint_t
ngx_http_credit_auth_revoke_go(ngx_http_credit_auth_revoke_t *rv)
{
    ca_reason  reason;
    ngx_int_t  rc;

    if (rv->in_force && rv->outcome == 0) {
        rc = ngx_http_credit_auth_writer_revocation(rv->enterprise, rv->jti,
                                                    rv->by, &rv->waiter);
        if (rc == NGX_AGAIN) {
            return 0;
        }
        rv->outcome = (rc == NGX_OK) ? CA_AW_SPOOLED : CA_AW_LOST;
    }

    if (!rv->in_force) {
        reason = CA_REVOCATION_UNAVAILABLE;

    } else if (rv->outcome == CA_AW_ACKED
               || (rv->outcome == CA_AW_SPOOLED
                   && ngx_http_credit_auth_writer_sync() == NGX_OK))
    {
        /* a spooled entry counts once it is on disk, as a decision's */
        reason = CA_OK;

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0, "credit_auth: "
                      "consent \"%s\" of %s revoked (by %s), but its "
                      "revocation entry was not written", rv->jti,
                      rv->enterprise, rv->by);
        reason = CA_AUDIT_UNAVAILABLE;
    }

    ngx_http_credit_auth_revoke_end(rv, reason);
    return 1;
}


static void
ngx_http_credit_auth_revoke_step(ngx_event_t *ev)
{
    (void) ngx_http_credit_auth_revoke_go(ev->data);
}


/* NGX_AGAIN: `done` is told; NGX_ERROR: not sent, nothing written. */
ngx_int_t
ngx_http_credit_auth_revoke(const char *enterprise, const char *jti,
    const char *by, time_t until, ngx_http_credit_auth_revoked_pt done,
    void *data, void **handle)
{
    char                            key[CA_CONSENT_KEY_MAX], exat[24];
    size_t                          lens[5];
    const char                     *argv[5];
    ngx_http_credit_auth_revoke_t  *rv;

    if (ca_consent_key(key, sizeof(key), "revoked", enterprise, jti) == 0
        || ngx_strlen(by) >= sizeof(rv->by))
    {
        return NGX_ERROR;
    }
    ngx_sprintf((u_char *) exat, "%T%Z", until);

    argv[0] = "EVAL";
    argv[1] = ngx_http_credit_auth_revoke_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = exat;
    lens[0] = 4;
    lens[1] = sizeof(ngx_http_credit_auth_revoke_script) - 1;
    lens[2] = 1;
    lens[3] = ngx_strlen(key);
    lens[4] = ngx_strlen(exat);

    rv = ngx_calloc(sizeof(ngx_http_credit_auth_revoke_t), ngx_cycle->log);
    if (rv == NULL) {
        return NGX_ERROR;
    }
    rv->waiter.handler = ngx_http_credit_auth_revoke_settled;
    rv->ev.handler = ngx_http_credit_auth_revoke_step;
    rv->ev.data = rv;
    rv->ev.log = ngx_cycle->log;
    rv->done = done;
    rv->data = data;
    ngx_cpystrn((u_char *) rv->enterprise, (u_char *) enterprise,
                sizeof(rv->enterprise));
    ngx_cpystrn((u_char *) rv->jti, (u_char *) jti, sizeof(rv->jti));
    ngx_cpystrn((u_char *) rv->by, (u_char *) by, sizeof(rv->by));

    if (ngx_http_credit_auth_redis_command(5, argv, lens,
                                           ngx_http_credit_auth_revoke_reply,
                                           rv)
        != NGX_OK)
    {
        ngx_free(rv);
        return NGX_ERROR;
    }

    if (ngx_http_credit_auth_revokes.next == NULL) {
        ngx_queue_init(&ngx_http_credit_auth_revokes);
    }
    ngx_queue_insert_tail(&ngx_http_credit_auth_revokes, &rv->queue);

    *handle = rv;
    return NGX_AGAIN;
}


/* The caller is gone: the revocation goes on, nobody is told. */
void
ngx_http_credit_auth_revoke_detach(void *handle)
{
    ngx_http_credit_auth_revoke_t  *rv = handle;

    rv->done = NULL;
}


/*
 * The worker stops at once (after …_redis_exit_process(): every reply due
 * came back empty).  A job whose next step was posted takes it here; one
 * whose entry the writer still holds ends unconfirmed: the writer, which
 * exits after this, spools that entry (with a spool), and the caller is
 * told CA_AUDIT_UNAVAILABLE.
 */
void
ngx_http_credit_auth_revoke_exit(void)
{
    ngx_queue_t                    *q;
    ngx_http_credit_auth_revoke_t  *rv;

    if (ngx_http_credit_auth_revokes.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_credit_auth_revokes)) {
        q = ngx_queue_head(&ngx_http_credit_auth_revokes);
        rv = ngx_queue_data(q, ngx_http_credit_auth_revoke_t, queue);

        if (rv->ev.posted) {
            ngx_delete_posted_event(&rv->ev);
            if (ngx_http_credit_auth_revoke_go(rv)) {
                continue;
            }
        }

        if (!rv->in_force) {
            /* no reply came, not even an empty one */
            ngx_http_credit_auth_revoke_end(rv, CA_REVOCATION_UNAVAILABLE);
            continue;
        }

        ngx_http_credit_auth_writer_detach(&rv->waiter);
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0, "credit_auth: "
                      "consent \"%s\" of %s revoked (by %s); the worker "
                      "stops before its revocation entry was confirmed: "
                      "it goes to the spool, if there is one", rv->jti,
                      rv->enterprise, rv->by);
        ngx_http_credit_auth_revoke_end(rv, CA_AUDIT_UNAVAILABLE);
    }
}
