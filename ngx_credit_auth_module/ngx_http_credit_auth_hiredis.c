/*
 * hiredis on nginx's event loop: the adapter that lets a hiredis async
 * context (any of the Redis session's, …_redis.c) read
 * and write through nginx's events.  See …_redis.c for the traps this
 * avoids (level-triggered reads, the fd closed once, by hiredis).
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


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
}


ngx_connection_t *
ngx_http_credit_auth_redis_attach(void *ctx, ngx_log_t *log)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac = ctx;

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NULL;
    }

    c->data = ac;
    c->log = log;
    c->read->log = log;
    c->write->log = log;

    /* adapter first: hiredis adds a write event as the connect callback
     * is installed */
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_credit_auth_redis_add_read;
    ac->ev.delRead = ngx_http_credit_auth_redis_del_read;
    ac->ev.addWrite = ngx_http_credit_auth_redis_add_write;
    ac->ev.delWrite = ngx_http_credit_auth_redis_del_write;
    ac->ev.cleanup = ngx_http_credit_auth_redis_cleanup;

    return c;
}
