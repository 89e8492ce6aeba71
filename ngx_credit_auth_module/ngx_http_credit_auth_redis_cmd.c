/*
 * The commands in flight on the worker's Redis connection, in sending
 * order (Redis answers in order): each one's caller, its deadline (the
 * watchdog of …_redis.c reads the oldest), and under durability=replicas:N
 * the WAIT N T pipelined behind it, whose count decides whether the
 * caller sees the reply at all.  Every reply is told to the connection's
 * owner through the callback it gave, after the caller: a -READONLY or
 * -NOREPLICAS answer means the connection must go, any other that it
 * works.  A WAIT short of replicas is said once while it lasts.
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_queue_t                     queue;      /* in sending order */
    ngx_http_credit_auth_reply_pt   handler;
    void                           *data;
    ngx_msec_t                      deadline;
    redisReply                     *held;       /* waiting for WAIT */
    ngx_uint_t                      unwaited;   /* WAIT could not be sent */
} ngx_http_credit_auth_redis_cmd_t;


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    ngx_http_credit_auth_answered_pt   answered;
    ngx_queue_t                        pending;
    ngx_uint_t                         inflight;
    ngx_http_credit_auth_note_t        short_wait;
} ngx_http_credit_auth_redis_cmds_t;


static ngx_http_credit_auth_redis_cmds_t  ngx_http_credit_auth_redis_cmds;


static void
ngx_http_credit_auth_redis_done(redisAsyncContext *ac,
    ngx_http_credit_auth_redis_cmd_t *cmd, redisReply *reply)
{
    const char                         *refusal;
    ngx_http_credit_auth_redis_cmds_t  *q = &ngx_http_credit_auth_redis_cmds;

    q->inflight--;
    ngx_queue_remove(&cmd->queue);

    /* a replica, or a primary short of replicas */
    refusal = NULL;
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        refusal = ngx_strncmp(reply->str, "READONLY", 8) == 0 ? "READONLY"
                  : ngx_strncmp(reply->str, "NOREPLICAS", 10) == 0
                    ? "NOREPLICAS" : NULL;
    }

    cmd->handler(cmd->data, reply);
    ngx_free(cmd);

    if (reply) {
        q->answered(ac, refusal);
    }
}


static void
ngx_http_credit_auth_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_credit_auth_redis_done(ac, privdata, reply);
}


/* A copy of what the caller reads of a reply (type, string, integer):
 * hiredis frees the original when this callback returns. */
static void
ngx_http_credit_auth_redis_hold(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                        *reply = r, *held;
    ngx_http_credit_auth_redis_cmd_t  *cmd = privdata;

    if (cmd->unwaited) {
        ngx_http_credit_auth_redis_done(ac, cmd, NULL);
        return;
    }
    if (reply == NULL) {
        return;                 /* the WAIT's callback gets NULL too */
    }

    held = ngx_calloc(sizeof(redisReply) + reply->len + 1,
                      ngx_http_credit_auth_redis_cmds.log);
    if (held == NULL) {
        return;                 /* then treated as no reply */
    }
    held->type = reply->type;
    held->integer = reply->integer;
    if (reply->str) {
        held->str = (char *) (held + 1);
        held->len = reply->len;
        ngx_memcpy(held->str, reply->str, reply->len);
    }
    cmd->held = held;
}


static void
ngx_http_credit_auth_redis_wait_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                         *reply = r, *held;
    ngx_http_credit_auth_redis_cmd_t   *cmd = privdata;
    ngx_http_credit_auth_redis_cmds_t  *q = &ngx_http_credit_auth_redis_cmds;

    held = cmd->held;

    /* a refusal wrote nothing: it goes through as it is */
    if (held && (held->type == REDIS_REPLY_ERROR
                 || (reply && reply->type == REDIS_REPLY_INTEGER
                     && reply->integer
                        >= (long long) q->mcf->wait_replicas)))
    {
        if (held->type != REDIS_REPLY_ERROR) {
            ngx_http_credit_auth_note_over(&q->short_wait, q->log,
                                           "redis: WAIT counts the replicas");
        }
        ngx_http_credit_auth_redis_done(ac, cmd, held);

    } else {
        if (reply) {
            ngx_http_credit_auth_note(&q->short_wait, q->log, NGX_LOG_ERR,
                                      NGX_HTTP_CREDIT_AUTH_EV_WAIT_SHORT,
                                      "redis: WAIT %ui: fewer replicas "
                                      "acknowledged: not durable, refused",
                                      q->mcf->wait_replicas);
        }
        ngx_http_credit_auth_redis_done(ac, cmd, NULL);
    }

    if (held) {
        ngx_free(held);
    }
}


ngx_int_t
ngx_http_credit_auth_redis_cmd_send(void *actx, int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler, void *data)
{
    int                                 rc;
    char                               *buf;
    size_t                              len;
    ngx_uint_t                          replicas;
    redisAsyncContext                  *ac = actx;
    ngx_http_credit_auth_redis_cmd_t   *cmd;
    ngx_http_credit_auth_redis_cmds_t  *q = &ngx_http_credit_auth_redis_cmds;

    cmd = ngx_alloc(sizeof(ngx_http_credit_auth_redis_cmd_t), q->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }
    cmd->handler = handler;
    cmd->data = data;
    cmd->deadline = ngx_current_msec + q->mcf->command_timeout;
    cmd->held = NULL;
    cmd->unwaited = 0;

    replicas = q->mcf->durability == CA_DURABLE_REPLICAS;
    if (replicas) {
        cmd->deadline += q->mcf->wait_timeout;
    }

    /* formatted here in one pass (lib/core/util.c), not by hiredis */
    buf = ngx_alloc(ca_resp_size(argc, argvlen), q->log);
    if (buf == NULL) {
        ngx_free(cmd);
        return NGX_ERROR;
    }
    len = ca_resp_format(buf, argc, argv, argvlen);
    rc = redisAsyncFormattedCommand(ac,
                                    replicas ? ngx_http_credit_auth_redis_hold
                                             : ngx_http_credit_auth_redis_reply,
                                    cmd, buf, len);
    ngx_free(buf);
    if (rc != REDIS_OK) {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    /* pipelined behind it: one more reply, not one more round trip */
    if (replicas
        && redisAsyncCommand(ac, ngx_http_credit_auth_redis_wait_reply,
                             cmd, "WAIT %d %d",
                             (int) q->mcf->wait_replicas,
                             (int) q->mcf->wait_timeout)
           != REDIS_OK)
    {
        cmd->unwaited = 1;
    }

    q->inflight++;
    ngx_queue_insert_tail(&q->pending, &cmd->queue);

    return NGX_OK;
}


/* Replies come in order: the oldest command is the one late first. */
ngx_uint_t
ngx_http_credit_auth_redis_cmd_overdue(void)
{
    ngx_http_credit_auth_redis_cmd_t   *cmd;
    ngx_http_credit_auth_redis_cmds_t  *q = &ngx_http_credit_auth_redis_cmds;

    if (ngx_queue_empty(&q->pending)) {
        return 0;
    }
    cmd = ngx_queue_data(ngx_queue_head(&q->pending),
                         ngx_http_credit_auth_redis_cmd_t, queue);
    return (ngx_msec_int_t) (ngx_current_msec - cmd->deadline) > 0;
}


ngx_uint_t
ngx_http_credit_auth_redis_cmd_inflight(void)
{
    return ngx_http_credit_auth_redis_cmds.inflight;
}


void
ngx_http_credit_auth_redis_cmd_init(ngx_http_credit_auth_main_conf_t *mcf,
    ngx_log_t *log, ngx_http_credit_auth_answered_pt answered)
{
    ngx_http_credit_auth_redis_cmds_t  *q = &ngx_http_credit_auth_redis_cmds;

    ngx_memzero(q, sizeof(ngx_http_credit_auth_redis_cmds_t));
    q->mcf = mcf;
    q->log = log;
    q->answered = answered;
    ngx_queue_init(&q->pending);
}
