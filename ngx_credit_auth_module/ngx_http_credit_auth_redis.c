/*
 * One asynchronous Redis connection per worker, driven by nginx's event
 * loop (ENGINEERING §4).  The traps, and how each is avoided here:
 *
 *  - blocking getaddrinfo(): the address is resolved at configuration time
 *    (credit_auth_redis), hiredis only ever sees an IP literal or a socket;
 *  - no async timeouts in hiredis 0.14: our own connect timer and a command
 *    timer (the oldest pending command) that drop the connection; hiredis
 *    then calls every pending callback with a NULL reply;
 *  - edge-triggered reads stall after 16 KB: read events are level
 *    triggered (NGX_LEVEL_EVENT), so a partially read buffer fires again;
 *  - redisAsyncHandleRead() may free the context: nothing touches `ac`
 *    after it; disconnects are learnt from the disconnect callback;
 *  - the adapter is attached before the connect callback is set;
 *  - the fd is closed once, by hiredis: our ngx_connection_t is released
 *    with ngx_free_connection(), never ngx_close_connection();
 *  - unbounded output buffers: max_inflight caps pending commands, callers
 *    see NGX_DECLINED beyond it;
 *  - timers are cancelable so that a reload never waits for them, except
 *    the watchdog while replies are due: requests parked on Redis must not
 *    be cut off by a worker that exits under them.
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_queue_t                     queue;      /* in sending order */
    ngx_http_credit_auth_reply_pt   handler;
    void                           *data;
    ngx_msec_t                      deadline;
} ngx_http_credit_auth_redis_cmd_t;


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_http_credit_auth_redis_hooks_t  hooks;
    ngx_log_t                         *log;
    redisAsyncContext                 *ac;
    ngx_connection_t                  *conn;
    ngx_uint_t                         ready;      /* connected, AUTH sent */
    ngx_uint_t                         inflight;
    ngx_uint_t                         failures;   /* for backoff */
    ngx_uint_t                         exiting;
    ngx_event_t                        reconnect;
    ngx_event_t                        watchdog;
    ngx_msec_t                         connect_deadline;
    ngx_msec_t                         last_attempt;
    ngx_queue_t                        pending;    /* replies come in order */
} ngx_http_credit_auth_redis_t;


static ngx_http_credit_auth_redis_t  ngx_http_credit_auth_redis_state;


static void ngx_http_credit_auth_redis_connect(void);
static void ngx_http_credit_auth_redis_ready_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_credit_auth_redis_drop(const char *why);


/* --- the adapter: hiredis asks, nginx's event loop does ---------------- */

static void
ngx_http_credit_auth_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_credit_auth_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_credit_auth_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active) {
        c->read->handler = ngx_http_credit_auth_redis_read_handler;
        c->read->log = c->log;
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit_auth: redis: cannot add read event");
        }
    }
}


static void
ngx_http_credit_auth_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_credit_auth_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active) {
        c->write->handler = ngx_http_credit_auth_redis_write_handler;
        c->write->log = c->log;
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit_auth: redis: cannot add write event");
        }
    }
}


static void
ngx_http_credit_auth_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_credit_auth_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c == NULL) {
        return;
    }

    /* hiredis closes the fd itself: only release nginx's bookkeeping */
    if (c->read->active || c->read->disabled) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->write->active || c->write->disabled) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (ngx_http_credit_auth_redis_state.conn == c) {
        ngx_http_credit_auth_redis_state.conn = NULL;
    }
}


/* --- connection life cycle ---------------------------------------------- */

static void
ngx_http_credit_auth_redis_schedule(void)
{
    ngx_msec_t                     delay;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    /* whoever waited for this connection will not get it now */
    rs->hooks.changed();

    if (rs->exiting || rs->reconnect.timer_set) {
        return;
    }

    /* exponential backoff from 50 ms to 5 s, with jitter so that the
     * workers of a fleet do not reconnect in step */
    delay = 50 << ngx_min(rs->failures, 7);
    delay = ngx_min(delay, 5000);
    delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
    rs->failures++;

    ngx_add_timer(&rs->reconnect, delay);
}


static void
ngx_http_credit_auth_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac == ac) {
        if (status != REDIS_OK) {
            ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                          "credit_auth: redis disconnected: %s",
                          ac->errstr[0] ? ac->errstr : "closed");
        }
        rs->ac = NULL;
        rs->ready = 0;
        ngx_http_credit_auth_redis_schedule();
    }
}


static void
ngx_http_credit_auth_redis_auth_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "credit_auth: redis %s refused: %s",
                      (char *) privdata, reply->str);
        if (rs->ac == ac) {
            redisAsyncDisconnect(ac);
        }
    }
}


static void
ngx_http_credit_auth_redis_on_connect(const redisAsyncContext *cac,
    int status)
{
    char                               db[32];
    ngx_uint_t                         i;
    redisAsyncContext                 *ac = (redisAsyncContext *) cac;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;
    ngx_http_credit_auth_main_conf_t  *mcf = rs->mcf;

    if (rs->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                      "credit_auth: redis connect failed: %s", ac->errstr);
        /* hiredis frees the context after this callback */
        rs->ac = NULL;
        rs->ready = 0;
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    /* AUTH and SELECT are pipelined ahead of any command: Redis answers
     * in order, so nothing runs unauthenticated or in the wrong db. */
    if (mcf->redis_password.len) {
        redisAsyncCommand(ac, ngx_http_credit_auth_redis_auth_reply, "AUTH",
                          "AUTH %b", mcf->redis_password.data,
                          (size_t) mcf->redis_password.len);
    }
    if (mcf->redis_db) {
        ngx_snprintf((u_char *) db, sizeof(db) - 1, "%i%Z", mcf->redis_db);
        redisAsyncCommand(ac, ngx_http_credit_auth_redis_auth_reply, "SELECT",
                          "SELECT %s", db);
    }

    /* the scripts, for EVALSHA (Redis may have restarted) */
    for (i = 0; rs->hooks.scripts[i]; i++) {
        redisAsyncCommand(ac, ngx_http_credit_auth_redis_auth_reply,
                          "SCRIPT LOAD", "SCRIPT LOAD %s",
                          rs->hooks.scripts[i]);
    }

    /*
     * Ready only when all of the above went through: a command sent behind
     * a refused SELECT would run in the wrong database, and a refused AUTH
     * or a Redis still loading must keep backing off.  Decisions that
     * arrive meanwhile wait for the PONG (ngx_http_credit_auth_audit_
     * redis_changed()).
     */
    redisAsyncCommand(ac, ngx_http_credit_auth_redis_ready_reply, NULL,
                      "PING");
}


static void
ngx_http_credit_auth_redis_ready_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    /* an earlier refusal (AUTH, SELECT, SCRIPT LOAD) is already closing it */
    if (rs->ac != ac || reply == NULL || (ac->c.flags & REDIS_DISCONNECTING)) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "credit_auth: redis not ready: %s", reply->str);
        redisAsyncDisconnect(ac);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, rs->log, 0, "credit_auth: redis connected");
    rs->ready = 1;
    rs->failures = 0;
    rs->hooks.changed();
}


static void
ngx_http_credit_auth_redis_connect(void)
{
    redisAsyncContext                 *ac;
    ngx_connection_t                  *c;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;
    ngx_http_credit_auth_main_conf_t  *mcf = rs->mcf;

    if (rs->exiting || rs->ac) {
        return;
    }

    if (mcf->redis_unix.len) {
        ac = redisAsyncConnectUnix((char *) mcf->redis_unix.data);
    } else {
        ac = redisAsyncConnect((char *) mcf->redis_host.data,
                               (int) mcf->redis_port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rs->log, 0,
                      "credit_auth: redis: out of memory");
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_WARN, rs->log, 0,
                      "credit_auth: redis connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    c = ngx_get_connection(ac->c.fd, rs->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    c->data = ac;
    c->log = rs->log;
    c->read->log = rs->log;
    c->write->log = rs->log;
    rs->conn = c;

    /* adapter first: hiredis adds a write event as the connect callback
     * is installed */
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_credit_auth_redis_add_read;
    ac->ev.delRead = ngx_http_credit_auth_redis_del_read;
    ac->ev.addWrite = ngx_http_credit_auth_redis_add_write;
    ac->ev.delWrite = ngx_http_credit_auth_redis_del_write;
    ac->ev.cleanup = ngx_http_credit_auth_redis_cleanup;

    rs->ac = ac;
    rs->ready = 0;
    rs->last_attempt = ngx_current_msec;
    rs->connect_deadline = ngx_current_msec + mcf->connect_timeout;

    redisAsyncSetConnectCallback(ac, ngx_http_credit_auth_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_credit_auth_redis_on_disconnect);
}


/* Drops the connection: every pending callback runs with a NULL reply. */
static void
ngx_http_credit_auth_redis_drop(const char *why)
{
    redisAsyncContext             *ac;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    ac = rs->ac;
    if (ac == NULL) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, rs->log, 0, "credit_auth: redis: %s", why);

    rs->ac = NULL;
    rs->ready = 0;
    redisAsyncFree(ac);
    ngx_http_credit_auth_redis_schedule();
}


static void
ngx_http_credit_auth_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_credit_auth_redis_connect();
}


/*
 * Ticks every 100 ms: enforces the connect timeout and the command timeout
 * (measured on the oldest pending command, since replies come in order).
 */
static void
ngx_http_credit_auth_redis_watchdog_handler(ngx_event_t *ev)
{
    ngx_http_credit_auth_redis_cmd_t  *cmd;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;

    if (rs->exiting) {
        return;
    }

    if (rs->ac && !rs->ready
        && (ngx_msec_int_t) (ngx_current_msec - rs->connect_deadline) > 0)
    {
        ngx_http_credit_auth_redis_drop("connect timed out");

    } else if (rs->ac && !ngx_queue_empty(&rs->pending)) {
        cmd = ngx_queue_data(ngx_queue_head(&rs->pending),
                             ngx_http_credit_auth_redis_cmd_t, queue);
        if ((ngx_msec_int_t) (ngx_current_msec - cmd->deadline) > 0) {
            ngx_http_credit_auth_redis_drop("command timed out");
        }
    }

    /* see ngx_http_credit_auth_redis_command() */
    ev->cancelable = (rs->inflight == 0);
    ngx_add_timer(ev, 100);
}


static void
ngx_http_credit_auth_redis_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_http_credit_auth_redis_cmd_t  *cmd = privdata;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;

    rs->inflight--;
    ngx_queue_remove(&cmd->queue);

    cmd->handler(cmd->data, reply);
    ngx_free(cmd);
}


ngx_int_t
ngx_http_credit_auth_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler, void *data)
{
    int                                rc;
    char                              *buf;
    size_t                             len;
    ngx_http_credit_auth_redis_cmd_t  *cmd;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac == NULL || !rs->ready || rs->exiting
        || rs->inflight >= rs->mcf->max_inflight)
    {
        return NGX_DECLINED;
    }

    cmd = ngx_alloc(sizeof(ngx_http_credit_auth_redis_cmd_t), rs->log);
    if (cmd == NULL) {
        return NGX_ERROR;
    }
    cmd->handler = handler;
    cmd->data = data;
    cmd->deadline = ngx_current_msec + rs->mcf->command_timeout;

    /* formatted here in one pass (lib/util.c), not by hiredis */
    buf = ngx_alloc(ca_resp_size(argc, argvlen), rs->log);
    if (buf == NULL) {
        ngx_free(cmd);
        return NGX_ERROR;
    }
    len = ca_resp_format(buf, argc, argv, argvlen);
    rc = redisAsyncFormattedCommand(rs->ac, ngx_http_credit_auth_redis_reply,
                                    cmd, buf, len);
    ngx_free(buf);
    if (rc != REDIS_OK) {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    rs->inflight++;
    ngx_queue_insert_tail(&rs->pending, &cmd->queue);

    /*
     * A graceful shutdown waits only for non-cancelable timers, and a
     * request parked on Redis has none: while replies are due, the
     * watchdog keeps the worker alive (bounded by command_timeout).
     */
    rs->watchdog.cancelable = 0;

    return NGX_OK;
}


ngx_uint_t
ngx_http_credit_auth_redis_ready(void)
{
    return ngx_http_credit_auth_redis_state.ready
           && !ngx_http_credit_auth_redis_state.exiting;
}


/*
 * A connection is being set up (TCP, AUTH, SELECT, scripts), or, when a
 * request needs Redis and the worker is only waiting out its backoff, is
 * started now: the backoff protects Redis from idle reconnect loops, not
 * from demand, and at most one attempt per 200 ms is made that way.
 */
ngx_uint_t
ngx_http_credit_auth_redis_connecting(void)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->exiting || rs->ready) {
        return 0;
    }

    if (rs->ac == NULL && rs->reconnect.timer_set
        && ngx_current_msec - rs->last_attempt >= 200)
    {
        ngx_del_timer(&rs->reconnect);
        ngx_http_credit_auth_redis_connect();
    }

    return rs->ac != NULL;
}


ngx_uint_t
ngx_http_credit_auth_redis_inflight(void)
{
    return ngx_http_credit_auth_redis_state.inflight;
}


ngx_int_t
ngx_http_credit_auth_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf,
    const ngx_http_credit_auth_redis_hooks_t *hooks)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    ngx_memzero(rs, sizeof(ngx_http_credit_auth_redis_t));
    rs->mcf = mcf;
    rs->hooks = *hooks;
    rs->log = cycle->log;
    ngx_queue_init(&rs->pending);

    rs->reconnect.handler = ngx_http_credit_auth_redis_reconnect_handler;
    rs->reconnect.log = cycle->log;
    rs->reconnect.data = rs;
    rs->reconnect.cancelable = 1;

    rs->watchdog.handler = ngx_http_credit_auth_redis_watchdog_handler;
    rs->watchdog.log = cycle->log;
    rs->watchdog.data = rs;
    rs->watchdog.cancelable = 1;
    ngx_add_timer(&rs->watchdog, 100);

    ngx_http_credit_auth_redis_connect();

    return NGX_OK;
}


void
ngx_http_credit_auth_redis_exit_process(void)
{
    redisAsyncContext             *ac;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    rs->exiting = 1;

    if (rs->reconnect.timer_set) {
        ngx_del_timer(&rs->reconnect);
    }
    if (rs->watchdog.timer_set) {
        ngx_del_timer(&rs->watchdog);
    }

    ac = rs->ac;
    rs->ac = NULL;
    rs->ready = 0;
    if (ac) {
        redisAsyncFree(ac);
    }
}
