/*
 * Which server is the primary: asked of the Sentinels in turn, with
 * SENTINEL get-master-addr-by-name, over the same non-blocking hiredis
 * connections as the primary's (…_redis.c drives them).  hiredis has no
 * Sentinel support of its own.
 *
 * One question at a time per worker: a Sentinel that does not answer
 * within connect_timeout, refuses, or does not know the master is left for
 * the next; when none knows, the caller hears NULL and backs off.  The
 * answer is only a candidate: …_redis.c uses the server only once its own
 * INFO says role:master (a Sentinel can be behind a failover).
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    ngx_http_credit_auth_found_pt      found;
    redisAsyncContext                 *ac;
    ngx_uint_t                         next;       /* sentinel to ask */
    ngx_uint_t                         tried;
    ngx_event_t                        timeout;
} ngx_http_credit_auth_sentinel_t;


static ngx_http_credit_auth_sentinel_t  ngx_http_credit_auth_sentinel;



static void ngx_http_credit_auth_sentinel_try(void);


static void
ngx_http_credit_auth_sentinel_done(const char *host, int port)
{
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    if (s->timeout.timer_set) {
        ngx_del_timer(&s->timeout);
    }
    s->found(host, port);
}


/* This Sentinel gave no answer: the next one, or nobody knows. */
static void
ngx_http_credit_auth_sentinel_next(const char *why)
{
    ngx_http_credit_auth_sentinel_t       *s = &ngx_http_credit_auth_sentinel;
    ngx_http_credit_auth_sentinel_addr_t  *sa = s->mcf->sentinels->elts;
    ngx_uint_t                             i;

    i = (s->next + s->mcf->sentinels->nelts - 1) % s->mcf->sentinels->nelts;
    ngx_log_error(NGX_LOG_WARN, s->log, 0,
                  "credit_auth: redis: Sentinel %s:%i: %s", sa[i].host,
                  sa[i].port, why);

    if (s->tried >= s->mcf->sentinels->nelts) {
        ngx_http_credit_auth_sentinel_done(NULL, 0);
        return;
    }
    ngx_http_credit_auth_sentinel_try();
}


static void
ngx_http_credit_auth_sentinel_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    int                               port;
    char                              host[NGX_INET_ADDRSTRLEN + 1];
    redisReply                       *reply = r;
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    if (s->ac != ac) {
        return;                 /* given up on already */
    }
    s->ac = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[0]->len >= sizeof(host)
        || reply->element[1]->len > 5)
    {
        redisAsyncDisconnect(ac);
        ngx_http_credit_auth_sentinel_next(
            reply && reply->type == REDIS_REPLY_ERROR ? reply->str
            : reply && reply->type == REDIS_REPLY_NIL ? "master unknown"
            : "no answer");
        return;
    }

    ngx_memcpy(host, reply->element[0]->str, reply->element[0]->len);
    host[reply->element[0]->len] = '\0';
    port = ngx_atoi((u_char *) reply->element[1]->str,
                    reply->element[1]->len);
    redisAsyncDisconnect(ac);

    /* an address, never a name: it is connected to without resolving */
    if (port < 1 || port > 65535
        || ngx_inet_addr((u_char *) host, ngx_strlen(host)) == INADDR_NONE)
    {
        ngx_http_credit_auth_sentinel_next("answered no IPv4 address");
        return;
    }
    ngx_http_credit_auth_sentinel_done(host, port);
}


static void
ngx_http_credit_auth_sentinel_on_connect(const redisAsyncContext *cac,
    int status)
{
    redisAsyncContext                *ac = (redisAsyncContext *) cac;
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    if (s->ac != ac) {
        return;
    }
    if (status != REDIS_OK) {
        s->ac = NULL;           /* hiredis frees it after this callback */
        ngx_http_credit_auth_sentinel_next("cannot connect");
        return;
    }
    redisAsyncCommand(ac, ngx_http_credit_auth_sentinel_reply, NULL,
                      "SENTINEL get-master-addr-by-name %b",
                      s->mcf->sentinel_master.data,
                      (size_t) s->mcf->sentinel_master.len);
}


static void
ngx_http_credit_auth_sentinel_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    if (s->ac == ac) {
        s->ac = NULL;
        ngx_http_credit_auth_sentinel_next("connection lost");
    }
}


static void
ngx_http_credit_auth_sentinel_try(void)
{
    redisAsyncContext                     *ac;
    ngx_http_credit_auth_sentinel_t       *s = &ngx_http_credit_auth_sentinel;
    ngx_http_credit_auth_sentinel_addr_t  *sa = s->mcf->sentinels->elts;

    sa += s->next;
    s->next = (s->next + 1) % s->mcf->sentinels->nelts;
    s->tried++;

    ac = redisAsyncConnect((char *) sa->host, (int) sa->port);
    if (ac == NULL || ac->err) {
        if (ac) {
            redisAsyncFree(ac);
        }
        ngx_http_credit_auth_sentinel_next("cannot connect");
        return;
    }
    if (ngx_http_credit_auth_redis_attach(ac, s->log) == NULL) {
        ngx_http_credit_auth_sentinel_next("no free connection");
        return;
    }
    s->ac = ac;
    redisAsyncSetConnectCallback(ac, ngx_http_credit_auth_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                 ngx_http_credit_auth_sentinel_on_disconnect);

    if (s->timeout.timer_set) {
        ngx_del_timer(&s->timeout);
    }
    ngx_add_timer(&s->timeout, s->mcf->connect_timeout);
}


static void
ngx_http_credit_auth_sentinel_timeout(ngx_event_t *ev)
{
    redisAsyncContext                *ac;
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    ac = s->ac;
    if (ac == NULL) {
        return;
    }
    s->ac = NULL;               /* its callbacks now see a stale context */
    redisAsyncFree(ac);
    ngx_http_credit_auth_sentinel_next("timed out");
}


void
ngx_http_credit_auth_sentinel_ask(ngx_http_credit_auth_main_conf_t *mcf,
    ngx_log_t *log, ngx_http_credit_auth_found_pt found)
{
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    s->mcf = mcf;
    s->log = log;
    s->found = found;
    s->tried = 0;
    s->timeout.handler = ngx_http_credit_auth_sentinel_timeout;
    s->timeout.log = log;
    s->timeout.data = s;
    s->timeout.cancelable = 1;

    ngx_http_credit_auth_sentinel_try();
}


void
ngx_http_credit_auth_sentinel_stop(void)
{
    redisAsyncContext                *ac;
    ngx_http_credit_auth_sentinel_t  *s = &ngx_http_credit_auth_sentinel;

    if (s->timeout.timer_set) {
        ngx_del_timer(&s->timeout);
    }
    ac = s->ac;
    s->ac = NULL;
    if (ac) {
        redisAsyncFree(ac);
    }
}
