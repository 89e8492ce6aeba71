/*
 * The worker's Redis session on nginx's event loop: lib/redis/session.c
 * decides (which Sentinel, which primary, the handshake, the checks,
 * WAIT, timeouts, failover, backoff), this file only does what it says,
 * with hiredis (…_hiredis.c attaches a context to nginx's events), and
 * tells it what happened.  The traps of hiredis here, and how each is
 * avoided (ENGINEERING §4):
 *
 *  - blocking getaddrinfo(): the address is resolved at configuration time
 *    (credit_auth_redis), and Sentinel's answers are IPv4 literals;
 *  - no async timeouts in hiredis 0.14: the session asks for one timer,
 *    and drops the connection when a connect or a command is late;
 *  - redisAsyncHandleRead() may free the context: nothing touches `ac`
 *    after it; a context is forgotten before it is freed, so that the
 *    callbacks hiredis then runs (NULL replies, disconnect) are ignored;
 *  - a context is freed only from a timer, a request, or inside one of
 *    its reply callbacks (hiredis defers the free then);
 *  - unbounded output buffers: max_inflight caps the commands in flight,
 *    callers see NGX_DECLINED beyond it;
 *  - the timer is cancelable so that a reload never waits for it, except
 *    while replies are due or requests wait for the connection: a worker
 *    that exits after a reload must not exit under the requests it took.
 *
 * Trouble is said once (…_zone.c's note): the session marks which of its
 * log lines belong to the connection's trouble, its warning, or a WAIT
 * short of replicas.  Every end of an attempt, ready or not, tells every
 * waiter at once (…_redis_wait.c) and then the connection's owner.
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_http_credit_auth_reply_pt      handler;
    void                              *data;
} ngx_http_credit_auth_redis_owner_t;


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_http_credit_auth_redis_hooks_t  hooks;
    ngx_log_t                         *log;
    ca_rs                             *rs;
    ngx_event_t                        timer;
    ngx_uint_t                         running;
    /* the reply being fed, as hiredis gave it */
    const ca_rs_reply                 *fed;
    void                              *fed_reply;  /* a redisReply */
    ngx_http_credit_auth_note_t        notes[4];    /* CA_RS_NOTE_* */
} ngx_http_credit_auth_redis_t;


static ngx_http_credit_auth_redis_t  ngx_http_credit_auth_redis_state;


static void ngx_http_credit_auth_redis_run(void);


static uint64_t
ngx_http_credit_auth_redis_now(void)
{
    return (uint64_t) ngx_current_msec;
}


/* --- what happened, told to the session (…_hiredis.c says) ------------- */

static void
ngx_http_credit_auth_redis_connected(int conn, uint64_t id)
{
    ca_rs_connected(ngx_http_credit_auth_redis_state.rs, conn, id,
                    ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();
}


static void
ngx_http_credit_auth_redis_closed(int conn, uint64_t id, const char *why)
{
    ca_rs_closed(ngx_http_credit_auth_redis_state.rs, conn, id, why,
                 ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();
}


static void
ngx_http_credit_auth_redis_reply(int conn, uint64_t id, const ca_rs_reply *r,
    void *raw)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    st->fed = r;
    st->fed_reply = raw;
    ca_rs_feed(st->rs, conn, id, r, ngx_http_credit_auth_redis_now());
    st->fed = NULL;
    st->fed_reply = NULL;
    ngx_http_credit_auth_redis_run();
}


/* --- what the session asks for ------------------------------------------ */

/* The reply of a caller's command, as the caller reads it (a redisReply):
 * the one hiredis gave, or one held by the session behind WAIT. */
static void
ngx_http_credit_auth_redis_deliver(void *ctx, void *owner,
    const ca_rs_reply *r)
{
    redisReply                          held;
    ngx_http_credit_auth_redis_owner_t  o;
    ngx_http_credit_auth_redis_t       *st = &ngx_http_credit_auth_redis_state;

    o = *(ngx_http_credit_auth_redis_owner_t *) owner;
    ngx_free(owner);

    if (r == NULL) {
        o.handler(o.data, NULL);
        return;
    }
    if (r == st->fed) {
        o.handler(o.data, st->fed_reply);
        return;
    }
    ngx_memzero(&held, sizeof(redisReply));
    held.type = r->type == CA_RS_STATUS ? REDIS_REPLY_STATUS
                : r->type == CA_RS_ERROR ? REDIS_REPLY_ERROR
                : r->type == CA_RS_INTEGER ? REDIS_REPLY_INTEGER
                : r->type == CA_RS_NIL ? REDIS_REPLY_NIL
                : REDIS_REPLY_STRING;
    held.integer = r->integer;
    held.str = (char *) r->str;
    held.len = r->len;
    o.handler(o.data, &held);
}


static long
ngx_http_credit_auth_redis_heads(void *ctx, const ca_rs_reply *r,
    char *exp, char *found, size_t len)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    if (r != st->fed || st->hooks.heads == NULL) {
        return 0;
    }
    return (long) st->hooks.heads(st->fed_reply, exp, found, len);
}


static void
ngx_http_credit_auth_redis_say(ca_rs_action *a)
{
    ngx_uint_t                     level, event;
    ngx_http_credit_auth_note_t   *n;
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    level = a->level == CA_RS_ALERT ? NGX_LOG_ALERT
            : a->level == CA_RS_ERR ? NGX_LOG_ERR
            : a->level == CA_RS_WARN ? NGX_LOG_WARN
            : a->level == CA_RS_NOTICE ? NGX_LOG_NOTICE : NGX_LOG_INFO;
    event = a->event == CA_RS_EV_DOWN ? NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN
            : a->event == CA_RS_EV_LOADING
              ? NGX_HTTP_CREDIT_AUTH_EV_REDIS_LOADING
            : a->event == CA_RS_EV_NOT_WRITABLE
              ? NGX_HTTP_CREDIT_AUTH_EV_REDIS_NOT_WRITABLE
            : a->event == CA_RS_EV_WAIT_SHORT
              ? NGX_HTTP_CREDIT_AUTH_EV_WAIT_SHORT
            : NGX_HTTP_CREDIT_AUTH_EVENTS;

    if (a->note == CA_RS_NOTE_NONE) {
        ngx_log_error(level, st->log, 0, "credit_auth: %s", a->text);
        return;
    }
    n = &st->notes[a->note];
    if (!a->over) {
        ngx_http_credit_auth_note(n, st->log, level, event, "%s", a->text);
    } else if (a->text && a->text[0]) {
        ngx_http_credit_auth_note_over(n, st->log, a->text);
    } else {
        n->said[0] = '\0';      /* forgotten, silently */
    }
}


static void
ngx_http_credit_auth_redis_arm(long ms)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }
    if (ms >= 0) {
        ngx_add_timer(&st->timer, (ngx_msec_t) ms);
    }
}


/* The session's actions, in order; an action may feed it again (a
 * connect that fails at once), which queues more. */
static void
ngx_http_credit_auth_redis_run(void)
{
    ca_rs_action                   a;
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    if (st->running) {
        return;                 /* the outer loop takes them */
    }
    st->running = 1;

    while (ca_rs_next(st->rs, &a)) {
        switch (a.type) {

        case CA_RS_CONNECT:
            ngx_http_credit_auth_hiredis_open(a.conn, a.id, a.host, a.port,
                                              a.unix_path);
            break;

        case CA_RS_SEND:
            ngx_http_credit_auth_hiredis_send(a.conn, a.id, a.data, a.len);
            break;

        case CA_RS_CLOSE:
            ngx_http_credit_auth_hiredis_close(a.conn, a.id, a.graceful);
            break;

        case CA_RS_TIMER:
            ngx_http_credit_auth_redis_arm(a.ms);
            break;

        case CA_RS_LOG:
            ngx_http_credit_auth_redis_say(&a);
            break;

        case CA_RS_READY:
        case CA_RS_NOT_READY:
            /* whoever waited for this attempt hears so now, then the
             * connection's owner */
            ngx_http_credit_auth_redis_waiters_wake();
            st->hooks.changed();
            break;

        case CA_RS_MEMORY:
            ngx_http_credit_auth_redis_mem_seen(a.info, st->log);
            break;

        case CA_RS_SHIPPER:
            ngx_http_credit_auth_redis_ship_seen(a.shipper, st->log);
            break;

        case CA_RS_SAVE_EPOCH:
            /* failed: asked again at the next connection's check */
            ca_rs_epoch_saved(st->rs,
                ngx_http_credit_auth_redis_epoch_save(a.text) == NGX_OK);
            break;

        case CA_RS_LOST:
            st->hooks.discontinuity(a.missing, a.expected, a.found);
            break;
        }
    }

    st->running = 0;

    /* a graceful exit waits for replies due and for waiters */
    st->timer.cancelable = ca_rs_inflight(st->rs) == 0
                           && !ngx_http_credit_auth_redis_waiting();
}


static void
ngx_http_credit_auth_redis_timer_handler(ngx_event_t *ev)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    ca_rs_timer(st->rs, ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();
}


/* --- for the rest of the module ------------------------------------------ */

ngx_int_t
ngx_http_credit_auth_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler, void *data)
{
    ngx_http_credit_auth_redis_owner_t  *o;
    ngx_http_credit_auth_redis_t        *st = &ngx_http_credit_auth_redis_state;

    if (st->rs == NULL || !ca_rs_ready(st->rs)) {
        return NGX_DECLINED;
    }
    o = ngx_alloc(sizeof(ngx_http_credit_auth_redis_owner_t), st->log);
    if (o == NULL) {
        return NGX_ERROR;
    }
    o->handler = handler;
    o->data = data;
    if (ca_rs_command(st->rs, argc, argv, argvlen, o,
                      ngx_http_credit_auth_redis_now())
        != 0)
    {
        ngx_free(o);
        return NGX_DECLINED;
    }
    ngx_http_credit_auth_redis_run();
    return NGX_OK;
}


ngx_uint_t
ngx_http_credit_auth_redis_ready(void)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    return st->rs != NULL && ca_rs_ready(st->rs);
}


ngx_int_t
ngx_http_credit_auth_redis_wait(ngx_http_credit_auth_redis_waiter_t *w)
{
    int                            rc;
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    if (st->rs == NULL) {
        return NGX_DECLINED;
    }
    rc = ca_rs_want(st->rs, ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();
    /* an attempt that failed at once (refused) has ended before this */
    if (rc == 0) {
        rc = ca_rs_want(st->rs, ngx_http_credit_auth_redis_now());
        ngx_http_credit_auth_redis_run();
    }
    if (rc == 1) {
        return NGX_OK;
    }
    if (rc < 0) {
        return NGX_DECLINED;
    }
    ngx_http_credit_auth_redis_waiters_add(w);
    st->timer.cancelable = 0;
    return NGX_AGAIN;
}


const char *
ngx_http_credit_auth_redis_why(void)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    return st->rs ? ca_rs_why(st->rs) : "";
}


ngx_uint_t
ngx_http_credit_auth_redis_inflight(void)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    return st->rs ? ca_rs_inflight(st->rs) : 0;
}


/* A NUL-ended copy: the session keeps C strings. */
static const char *
ngx_http_credit_auth_redis_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p;

    if (s->len == 0) {
        return NULL;
    }
    p = ngx_pnalloc(pool, s->len + 1);
    if (p != NULL) {
        ngx_memcpy(p, s->data, s->len);
        p[s->len] = '\0';
    }
    return (const char *) p;
}


ngx_int_t
ngx_http_credit_auth_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf,
    const ngx_http_credit_auth_redis_hooks_t *hooks)
{
    ngx_uint_t                             i;
    ca_rs_conf                             c;
    ca_rs_addr                            *addrs;
    ngx_http_credit_auth_sentinel_addr_t  *sa;
    ngx_http_credit_auth_redis_t          *st;

    static const ngx_http_credit_auth_hiredis_events_t  events = {
        ngx_http_credit_auth_redis_connected,
        ngx_http_credit_auth_redis_closed,
        ngx_http_credit_auth_redis_reply
    };

    st = &ngx_http_credit_auth_redis_state;
    ngx_memzero(st, sizeof(ngx_http_credit_auth_redis_t));
    st->mcf = mcf;
    st->hooks = *hooks;
    st->log = cycle->log;
    ngx_http_credit_auth_redis_waiters_init();
    ngx_http_credit_auth_hiredis_init(&events, cycle->log);

    ngx_memzero(&c, sizeof(ca_rs_conf));
    c.host = ngx_http_credit_auth_redis_cstr(cycle->pool, &mcf->redis_host);
    c.port = (int) mcf->redis_port;
    c.unix_path = ngx_http_credit_auth_redis_cstr(cycle->pool,
                                                  &mcf->redis_unix);
    if (mcf->sentinels) {
        addrs = ngx_pcalloc(cycle->pool,
                            mcf->sentinels->nelts * sizeof(ca_rs_addr));
        if (addrs == NULL) {
            return NGX_ERROR;
        }
        sa = mcf->sentinels->elts;
        for (i = 0; i < mcf->sentinels->nelts; i++) {
            addrs[i].host = (const char *) sa[i].host;
            addrs[i].port = (int) sa[i].port;
        }
        c.sentinels = addrs;
        c.nsentinels = mcf->sentinels->nelts;
        c.master = ngx_http_credit_auth_redis_cstr(cycle->pool,
                                                   &mcf->sentinel_master);
        c.watch_first = ngx_worker;     /* workers spread over the set */
        c.unix_path = NULL;
    }
    c.password = ngx_http_credit_auth_redis_cstr(cycle->pool,
                                                 &mcf->redis_password);
    c.db = (long) mcf->redis_db;
    c.scripts = hooks->scripts;
    c.stream = ngx_http_credit_auth_redis_cstr(cycle->pool, &mcf->stream);
    c.heads_key = hooks->heads_key ? hooks->heads_key() : NULL;
    c.shipper_key = ngx_http_credit_auth_redis_ship_key(cycle->pool,
                                                        &mcf->stream);
    c.durability = (int) mcf->durability;
    c.wait_replicas = (long) mcf->wait_replicas;
    c.wait_timeout = mcf->wait_timeout;
    c.connect_timeout = mcf->connect_timeout;
    c.command_timeout = mcf->command_timeout;
    c.max_inflight = mcf->max_inflight;
    c.epoch = ngx_http_credit_auth_redis_epoch_init(cycle, mcf);
    c.save_epoch = c.epoch != NULL;
    c.seed = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random()
             ^ ((uint64_t) ngx_pid << 40) ^ ngx_current_msec;
    c.reply = ngx_http_credit_auth_redis_deliver;
    c.heads = ngx_http_credit_auth_redis_heads;

    st->rs = ca_rs_new(&c);
    if (st->rs == NULL) {
        return NGX_ERROR;
    }

    st->timer.handler = ngx_http_credit_auth_redis_timer_handler;
    st->timer.log = cycle->log;
    st->timer.data = st;
    st->timer.cancelable = 1;

    ca_rs_start(st->rs, ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();

    return NGX_OK;
}


void
ngx_http_credit_auth_redis_exit_process(void)
{
    ngx_http_credit_auth_redis_t  *st = &ngx_http_credit_auth_redis_state;

    if (st->rs == NULL) {
        return;
    }
    /* replies still due come back empty, to their callers, now */
    ca_rs_stop(st->rs, ngx_http_credit_auth_redis_now());
    ngx_http_credit_auth_redis_run();
    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }
    ca_rs_free(st->rs);
    st->rs = NULL;
}
