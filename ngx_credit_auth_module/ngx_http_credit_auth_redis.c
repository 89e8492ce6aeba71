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
 *    the watchdog while replies are due or requests wait for the
 *    connection: a worker that exits after a reload must not exit under
 *    the requests it took.
 *
 * Waiting.  A request waits on Redis in one of two ways, each bounded: for
 * the reply of a command in flight (command_timeout, the watchdog drops
 * the connection, and hiredis then calls every pending callback with a
 * NULL reply), or, while an attempt to connect is under way, for its end
 * (connect_timeout, and the Sentinel lookup).  Every end of an attempt,
 * ready or not, goes through ngx_http_credit_auth_redis_changed(), which
 * tells every waiter at once.
 *
 * Trouble is said once (…_zone.c's note): an attempt that fails, Redis
 * loading, refusing writes, is one log line when it begins and one when
 * the connection answers again; the attempts between are counted on the
 * status page (`events`).
 *
 * Durability (SPEC §7.1): a connection is ready only once …_redis_check.c
 * has found a primary that keeps what it acknowledges under the
 * configured durability, and has looked for what it lost; with
 * replicas:N, every command is followed on the same connection by WAIT N
 * T, and its reply reaches the caller only if WAIT counted N replicas.
 * -READONLY or -NOREPLICAS drops the connection, so that the next one
 * checks again, and so does a +switch-master from Sentinel.
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_http_credit_auth_redis_hooks_t  hooks;
    ngx_log_t                         *log;
    redisAsyncContext                 *ac;
    ngx_uint_t                         ready;      /* connected, AUTH sent */
    ngx_uint_t                         failures;   /* for backoff */
    ngx_uint_t                         exiting;
    ngx_event_t                        reconnect;
    ngx_event_t                        watchdog;
    ngx_msec_t                         connect_deadline;
    ngx_msec_t                         last_attempt;
    char                               why[256];   /* not ready, or a warning */
    ngx_http_credit_auth_note_t        trouble;    /* said, not yet over */
    ngx_http_credit_auth_note_t        warned;     /* a connect's warning */
    char                               host[NGX_INET_ADDRSTRLEN + 1];
    int                                port;       /* from Sentinel */
    ngx_uint_t                         asking;     /* Sentinel, now */
} ngx_http_credit_auth_redis_t;


static ngx_http_credit_auth_redis_t  ngx_http_credit_auth_redis_state;


static void ngx_http_credit_auth_redis_connect(void);
static void ngx_http_credit_auth_redis_drop(const char *why);


/* --- connection life cycle ---------------------------------------------- */

/* An attempt has ended (ready, failed, or dropped): whoever waited for
 * it hears so now (…_redis_wait.c), and then the connection's owner. */
static void
ngx_http_credit_auth_redis_changed(void)
{
    ngx_http_credit_auth_redis_waiters_wake();
    ngx_http_credit_auth_redis_state.hooks.changed();
}


static void
ngx_http_credit_auth_redis_schedule(void)
{
    ngx_msec_t                     delay;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    /* whatever went wrong, the next attempt asks Sentinel again: the
     * primary may have moved (SPEC §7.1) */
    rs->port = 0;

    /* whoever waited for this connection will not get it now */
    ngx_http_credit_auth_redis_changed();

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
            ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_WARN,
                                      NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                                      "redis disconnected: %s",
                                      ac->errstr[0] ? ac->errstr : "closed");
        }
        rs->ac = NULL;
        rs->ready = 0;
        ngx_http_credit_auth_redis_schedule();
    }
}


/*
 * The one verdict on a new connection, and the one place that says it:
 * ready only when all of the connect sequence went through (a command
 * sent behind a refused SELECT would run in the wrong database, and a
 * refused AUTH or a Redis still loading must keep backing off); `why`
 * says what failed.  Requests that arrive meanwhile wait for this
 * (…_redis_wait.c).
 */
static void
ngx_http_credit_auth_redis_checked(void *ac, ngx_int_t rc)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac != ac) {
        return;
    }
    if (rc != NGX_OK) {
        if (rc == NGX_ABORT) {
            /* never usable as configured: loud, and retried slowly */
            rs->failures = 7;
            ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_ALERT,
                                      NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                                      "redis %s", rs->why);

        } else if (ngx_strstr(rs->why, "LOADING") != NULL
                   || ngx_strstr(rs->why, "still loading") != NULL)
        {
            /* every restart of a Redis that persists: not an error */
            ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_NOTICE,
                                      NGX_HTTP_CREDIT_AUTH_EV_REDIS_LOADING,
                                      "redis is loading its data: waiting "
                                      "(%s)", rs->why);
        } else {
            ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_ERR,
                                      NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                                      "redis %s", rs->why);
        }
        redisAsyncDisconnect(ac);
        return;
    }

    rs->ready = 1;
    rs->failures = 0;
    if (rs->why[0]) {
        ngx_http_credit_auth_note(&rs->warned, rs->log, NGX_LOG_WARN,
                                  NGX_HTTP_CREDIT_AUTH_EVENTS, /* none */
                                  "redis: %s", rs->why);
    } else {
        rs->warned.said[0] = '\0';
    }
    /* after trouble, said when the connection answers (…_answered()) */
    if (rs->trouble.said[0] == '\0') {
        ngx_log_error(NGX_LOG_INFO, rs->log, 0,
                      "credit_auth: redis connected (durability=%s)",
                      ca_durability_name((int) rs->mcf->durability));
    }
    ngx_http_credit_auth_redis_changed();
}


static void
ngx_http_credit_auth_redis_on_connect(const redisAsyncContext *cac,
    int status)
{
    redisAsyncContext             *ac = (redisAsyncContext *) cac;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac != ac) {
        return;
    }

    if (status != REDIS_OK) {
        ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_WARN,
                                  NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                                  "redis connect failed: %s", ac->errstr);
        /* hiredis frees the context after this callback */
        rs->ac = NULL;
        rs->ready = 0;
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    /* AUTH, SELECT, the scripts, then what it keeps (…_redis_check.c) */
    ngx_http_credit_auth_redis_check(ac, rs->why, sizeof(rs->why),
                                     ngx_http_credit_auth_redis_checked);
}


static void
ngx_http_credit_auth_redis_found(const char *host, int port)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    rs->asking = 0;
    /* exiting, or already moved by +switch-master while this was asked */
    if (rs->exiting || rs->ac) {
        return;
    }
    if (host == NULL) {
        ngx_snprintf((u_char *) rs->why, sizeof(rs->why) - 1,
                     "no Sentinel knows the primary of \"%V\"%Z",
                     &rs->mcf->sentinel_master);
        ngx_http_credit_auth_redis_schedule();
        return;
    }
    if (rs->port != port || ngx_strcmp(rs->host, host) != 0) {
        ngx_log_error(NGX_LOG_NOTICE, rs->log, 0,
                      "credit_auth: redis: Sentinel says the primary of "
                      "\"%V\" is %s:%d", &rs->mcf->sentinel_master, host,
                      port);
    }
    ngx_cpystrn((u_char *) rs->host, (u_char *) host, sizeof(rs->host));
    rs->port = port;
    ngx_http_credit_auth_redis_connect();
}


static void
ngx_http_credit_auth_redis_connect(void)
{
    redisAsyncContext                 *ac;
    ngx_connection_t                  *c;
    ngx_http_credit_auth_redis_t      *rs = &ngx_http_credit_auth_redis_state;
    ngx_http_credit_auth_main_conf_t  *mcf = rs->mcf;

    if (rs->exiting || rs->ac || rs->asking) {
        return;
    }

    if (mcf->sentinels && rs->port == 0) {
        rs->asking = 1;
        rs->last_attempt = ngx_current_msec;
        ngx_http_credit_auth_sentinel_ask(mcf, rs->log,
                                          ngx_http_credit_auth_redis_found);
        return;
    }

    if (mcf->redis_unix.len) {
        ac = redisAsyncConnectUnix((char *) mcf->redis_unix.data);
    } else if (mcf->sentinels) {
        ac = redisAsyncConnect(rs->host, rs->port);
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
        ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_WARN,
                                  NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                                  "redis connect failed: %s", ac->errstr);
        redisAsyncFree(ac);
        ngx_http_credit_auth_redis_schedule();
        return;
    }

    c = ngx_http_credit_auth_redis_attach(ac, rs->log);
    if (c == NULL) {
        ngx_http_credit_auth_redis_schedule();
        return;
    }

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

    ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_WARN,
                              NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN,
                              "redis: %s", why);

    rs->ac = NULL;
    rs->ready = 0;
    redisAsyncFree(ac);
    ngx_http_credit_auth_redis_schedule();
}


/*
 * Sentinel has just made `host` the primary: whatever the current
 * connection is doing there is no longer acknowledged durably, and the
 * new primary is connected to now, not after a backoff.
 */
static void
ngx_http_credit_auth_redis_switched(const char *host, int port)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->exiting
        || (rs->ac && rs->port == port && ngx_strcmp(rs->host, host) == 0))
    {
        return;
    }
    ngx_http_credit_auth_redis_drop("the primary moved (+switch-master)");
    if (rs->reconnect.timer_set) {
        ngx_del_timer(&rs->reconnect);
    }
    rs->failures = 0;
    ngx_http_credit_auth_redis_found(host, port);
}


/*
 * A command's reply came.  `refusal` ("READONLY", "NOREPLICAS", or a
 * maxmemory-policy set to evict meanwhile: …_redis_mem.c): a replica, a
 * primary short of replicas, or one that may lose what it keeps, so the
 * connection goes and the next one is checked again; NULL: the connection
 * works, and trouble said before is over.
 */
static void
ngx_http_credit_auth_redis_answered(void *ac, const char *refusal)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac != ac || !rs->ready) {
        return;
    }
    if (refusal == NULL) {
        ngx_http_credit_auth_note_over(&rs->trouble, rs->log,
                                       "redis answers");
        return;
    }
    ngx_http_credit_auth_note(&rs->trouble, rs->log, NGX_LOG_WARN,
                              NGX_HTTP_CREDIT_AUTH_EV_REDIS_NOT_WRITABLE,
                              "redis: no longer a primary to write to (%s):"
                              " reconnecting", refusal);
    ngx_snprintf((u_char *) rs->why, sizeof(rs->why) - 1,
                 "not used: %s%Z", refusal);
    /* from inside a hiredis callback: disconnect, never free */
    rs->ready = 0;
    redisAsyncDisconnect(ac);
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
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->exiting) {
        return;
    }

    if (rs->ac && !rs->ready
        && (ngx_msec_int_t) (ngx_current_msec - rs->connect_deadline) > 0)
    {
        ngx_http_credit_auth_redis_drop("connect timed out");

    } else if (rs->ac && ngx_http_credit_auth_redis_cmd_overdue()) {
        ngx_http_credit_auth_redis_drop("command timed out");
    }

    ngx_http_credit_auth_redis_mem_tick(rs->ready ? rs->ac : NULL);

    /* see ngx_http_credit_auth_redis_command() */
    ev->cancelable = (ngx_http_credit_auth_redis_cmd_inflight() == 0
                      && !ngx_http_credit_auth_redis_waiting());
    ngx_add_timer(ev, 100);
}


ngx_int_t
ngx_http_credit_auth_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler, void *data)
{
    ngx_int_t                      rc;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (rs->ac == NULL || !rs->ready || rs->exiting
        || ngx_http_credit_auth_redis_cmd_inflight() >= rs->mcf->max_inflight)
    {
        return NGX_DECLINED;
    }

    rc = ngx_http_credit_auth_redis_cmd_send(rs->ac, argc, argv, argvlen,
                                             handler, data);
    if (rc != NGX_OK) {
        return rc;
    }

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
static ngx_uint_t
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

    return rs->ac != NULL || rs->asking;
}


ngx_int_t
ngx_http_credit_auth_redis_wait(ngx_http_credit_auth_redis_waiter_t *w)
{
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    if (ngx_http_credit_auth_redis_ready()) {
        return NGX_OK;
    }

    /* an attempt that fails at once (refused) has ended before this */
    if (!ngx_http_credit_auth_redis_connecting()) {
        return NGX_DECLINED;
    }

    ngx_http_credit_auth_redis_waiters_add(w);

    /* a graceful exit waits for the attempt, as for a reply */
    rs->watchdog.cancelable = 0;

    return NGX_AGAIN;
}


const char *
ngx_http_credit_auth_redis_why(void)
{
    return ngx_http_credit_auth_redis_state.why;
}


ngx_uint_t
ngx_http_credit_auth_redis_inflight(void)
{
    return ngx_http_credit_auth_redis_cmd_inflight();
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
    ngx_http_credit_auth_redis_waiters_init();
    ngx_http_credit_auth_redis_cmd_init(mcf, cycle->log,
                                        ngx_http_credit_auth_redis_answered);
    ngx_http_credit_auth_redis_mem_init(cycle->log,
                                        ngx_http_credit_auth_redis_answered);

    rs->reconnect.handler = ngx_http_credit_auth_redis_reconnect_handler;
    rs->reconnect.log = cycle->log;
    rs->reconnect.data = rs;
    rs->reconnect.cancelable = 1;

    rs->watchdog.handler = ngx_http_credit_auth_redis_watchdog_handler;
    rs->watchdog.log = cycle->log;
    rs->watchdog.data = rs;
    rs->watchdog.cancelable = 1;
    ngx_add_timer(&rs->watchdog, 100);

    if (mcf->sentinels) {
        ngx_http_credit_auth_sentinel_watch(mcf, rs->log,
                                        ngx_http_credit_auth_redis_switched);
    }
    ngx_http_credit_auth_redis_connect();

    return NGX_OK;
}


void
ngx_http_credit_auth_redis_exit_process(void)
{
    redisAsyncContext             *ac;
    ngx_http_credit_auth_redis_t  *rs = &ngx_http_credit_auth_redis_state;

    rs->exiting = 1;
    ngx_http_credit_auth_sentinel_unwatch();
    ngx_http_credit_auth_sentinel_stop();

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
