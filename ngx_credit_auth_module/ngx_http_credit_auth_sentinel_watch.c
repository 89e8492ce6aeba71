/*
 * Sentinel's word that the primary moved, as soon as it is said: a
 * connection of its own to one Sentinel of the set, subscribed to
 * +switch-master and +promoted-slave, so that a failover is followed when
 * Sentinel makes it, not when the old primary first refuses a write (an
 * idle worker would not learn of it at all).  Lost, or never made, it is
 * tried again on the next Sentinel a second later.  It only speeds things
 * up: the errors of the old primary lead to the new one without it
 * (…_sentinel.c asks then).
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


#define NGX_HTTP_CREDIT_AUTH_WATCH_RETRY  1000     /* ms */

typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    ngx_http_credit_auth_found_pt      switched;
    redisAsyncContext                 *ac;
    ngx_uint_t                         next;       /* sentinel to watch */
    ngx_uint_t                         at;         /* the one watched */
    ngx_uint_t                         subscribed;
    ngx_uint_t                         stopped;
    ngx_event_t                        timer;      /* retry, or timeout */
} ngx_http_credit_auth_watch_t;


static ngx_http_credit_auth_watch_t  ngx_http_credit_auth_watch;


static void ngx_http_credit_auth_watch_connect(void);


static void
ngx_http_credit_auth_watch_retry(const char *why)
{
    ngx_uint_t                             level;
    ngx_http_credit_auth_watch_t          *w = &ngx_http_credit_auth_watch;
    ngx_http_credit_auth_sentinel_addr_t  *sa = w->mcf->sentinels->elts;

    /* a watch that stood and fell is worth a warning, retries are not */
    level = w->subscribed ? NGX_LOG_WARN : NGX_LOG_INFO;
    ngx_log_error(level, w->log, 0,
                  "credit_auth: redis: +switch-master watch on Sentinel "
                  "%s:%i: %s", sa[w->at].host, sa[w->at].port, why);
    w->subscribed = 0;
    if (w->stopped) {
        return;
    }
    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
    ngx_add_timer(&w->timer, NGX_HTTP_CREDIT_AUTH_WATCH_RETRY);
}


/*
 * +switch-master: "<master> <old ip> <old port> <new ip> <new port>", from
 * any Sentinel once it knows; +promoted-slave: "slave <name> <ip> <port> @
 * <master> <ip> <port>", from the leader of the failover as soon as the
 * replica is a primary, before it has moved the other replicas (its own
 * +switch-master comes only then, a second or more later).  Only our
 * master's, and only an address: it is connected to without resolving.
 */
static void
ngx_http_credit_auth_watch_switch(ngx_uint_t promoted, const char *msg,
    size_t len)
{
    u_char                        *p, *last, *tok[8];
    size_t                         tlen[8];
    ngx_int_t                      port;
    ngx_uint_t                     n, want, m, a;
    char                           host[NGX_INET_ADDRSTRLEN + 1];
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    p = (u_char *) msg;
    last = p + len;
    for (n = 0; n < 8 && p < last; n++) {
        tok[n] = p;
        while (p < last && *p != ' ') {
            p++;
        }
        tlen[n] = p - tok[n];
        while (p < last && *p == ' ') {
            p++;
        }
    }
    want = promoted ? 8 : 5;
    m = promoted ? 5 : 0;           /* the master's name */
    a = promoted ? 2 : 3;           /* the new primary's address */
    if (n != want || p != last || tlen[m] != w->mcf->sentinel_master.len
        || ngx_strncmp(tok[m], w->mcf->sentinel_master.data, tlen[m]) != 0
        || (promoted && (tlen[0] != 5 || ngx_strncmp(tok[0], "slave", 5)
                                         != 0)))
    {
        return;                 /* another master's, or not understood */
    }
    port = ngx_atoi(tok[a + 1], tlen[a + 1]);
    if (tlen[a] >= sizeof(host) || port < 1 || port > 65535
        || ngx_inet_addr(tok[a], tlen[a]) == INADDR_NONE)
    {
        ngx_log_error(NGX_LOG_WARN, w->log, 0, "credit_auth: redis: "
                      "Sentinel names no IPv4 address: %*s",
                      (size_t) ngx_min(len, 200), msg);
        return;
    }
    ngx_memcpy(host, tok[a], tlen[a]);
    host[tlen[a]] = '\0';
    ngx_log_error(NGX_LOG_NOTICE, w->log, 0, "credit_auth: redis: %s: the "
                  "primary of \"%V\" is now %s:%i",
                  promoted ? "+promoted-slave" : "+switch-master",
                  &w->mcf->sentinel_master, host, port);
    w->switched(host, (int) port);
}


/* Called for the SUBSCRIBE's confirmation and for every message. */
static void
ngx_http_credit_auth_watch_message(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                            *reply = r, **el;
    ngx_http_credit_auth_watch_t          *w = &ngx_http_credit_auth_watch;
    ngx_http_credit_auth_sentinel_addr_t  *sa;

    if (w->ac != ac || reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }
    el = reply->element;

    if (ngx_strcmp(el[0]->str, "subscribe") == 0 && !w->subscribed
        && el[2]->type == REDIS_REPLY_INTEGER && el[2]->integer == 2)
    {
        w->subscribed = 1;
        if (w->timer.timer_set) {
            ngx_del_timer(&w->timer);
        }
        sa = w->mcf->sentinels->elts;
        ngx_log_error(NGX_LOG_INFO, w->log, 0, "credit_auth: redis: "
                      "watching +switch-master on Sentinel %s:%i",
                      sa[w->at].host, sa[w->at].port);
        return;
    }
    if (ngx_strcmp(el[0]->str, "message") == 0
        && el[1]->type == REDIS_REPLY_STRING
        && el[2]->type == REDIS_REPLY_STRING)
    {
        ngx_http_credit_auth_watch_switch(
            ngx_strcmp(el[1]->str, "+promoted-slave") == 0, el[2]->str,
            el[2]->len);
    }
}


static void
ngx_http_credit_auth_watch_on_connect(const redisAsyncContext *cac,
    int status)
{
    redisAsyncContext             *ac = (redisAsyncContext *) cac;
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    if (w->ac != ac) {
        return;
    }
    if (status != REDIS_OK) {
        w->ac = NULL;           /* hiredis frees it after this callback */
        ngx_http_credit_auth_watch_retry("cannot connect");
        return;
    }
    redisAsyncCommand(ac, ngx_http_credit_auth_watch_message, NULL,
                      "SUBSCRIBE +switch-master +promoted-slave");
}


static void
ngx_http_credit_auth_watch_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    if (w->ac == ac) {
        w->ac = NULL;
        ngx_http_credit_auth_watch_retry("connection lost");
    }
}


static void
ngx_http_credit_auth_watch_connect(void)
{
    redisAsyncContext                     *ac;
    ngx_http_credit_auth_watch_t          *w = &ngx_http_credit_auth_watch;
    ngx_http_credit_auth_sentinel_addr_t  *sa = w->mcf->sentinels->elts;

    w->at = w->next;
    w->next = (w->next + 1) % w->mcf->sentinels->nelts;
    w->subscribed = 0;

    ac = redisAsyncConnect((char *) sa[w->at].host, (int) sa[w->at].port);
    if (ac == NULL || ac->err) {
        if (ac) {
            redisAsyncFree(ac);
        }
        ngx_http_credit_auth_watch_retry("cannot connect");
        return;
    }
    if (ngx_http_credit_auth_redis_attach(ac, w->log) == NULL) {
        ngx_http_credit_auth_watch_retry("no free connection");
        return;
    }
    w->ac = ac;
    redisAsyncSetConnectCallback(ac, ngx_http_credit_auth_watch_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                    ngx_http_credit_auth_watch_on_disconnect);

    /* not subscribed by then: the next Sentinel */
    ngx_add_timer(&w->timer, w->mcf->connect_timeout);
}


static void
ngx_http_credit_auth_watch_timer(ngx_event_t *ev)
{
    redisAsyncContext             *ac;
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    ac = w->ac;
    if (ac != NULL) {
        w->ac = NULL;           /* its callbacks now see a stale context */
        redisAsyncFree(ac);
        ngx_http_credit_auth_watch_retry("timed out");
        return;
    }
    ngx_http_credit_auth_watch_connect();
}


void
ngx_http_credit_auth_sentinel_watch(ngx_http_credit_auth_main_conf_t *mcf,
    ngx_log_t *log, ngx_http_credit_auth_found_pt switched)
{
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    ngx_memzero(w, sizeof(ngx_http_credit_auth_watch_t));
    w->mcf = mcf;
    w->log = log;
    w->switched = switched;
    /* workers spread over the set */
    w->next = ngx_worker % mcf->sentinels->nelts;
    w->timer.handler = ngx_http_credit_auth_watch_timer;
    w->timer.log = log;
    w->timer.data = w;
    w->timer.cancelable = 1;

    ngx_http_credit_auth_watch_connect();
}


void
ngx_http_credit_auth_sentinel_unwatch(void)
{
    redisAsyncContext             *ac;
    ngx_http_credit_auth_watch_t  *w = &ngx_http_credit_auth_watch;

    w->stopped = 1;
    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }
    ac = w->ac;
    w->ac = NULL;
    if (ac) {
        redisAsyncFree(ac);
    }
}
