/*
 * Who waits for the worker's Redis connection: requests parked while it
 * connects (…_audit.c, …_keyreg.c), each told once when the attempt ends,
 * ready or not (…_redis.c says when: every end of an attempt goes through
 * one function there).  While anyone waits, a graceful exit waits too.
 */
#include "ngx_http_credit_auth.h"


static ngx_queue_t  ngx_http_credit_auth_redis_waiters;


void
ngx_http_credit_auth_redis_waiters_init(void)
{
    ngx_queue_init(&ngx_http_credit_auth_redis_waiters);
}


void
ngx_http_credit_auth_redis_waiters_add(ngx_http_credit_auth_redis_waiter_t *w)
{
    if (!w->queued) {
        ngx_queue_insert_tail(&ngx_http_credit_auth_redis_waiters, &w->queue);
        w->queued = 1;
    }
}


void
ngx_http_credit_auth_redis_unwait(ngx_http_credit_auth_redis_waiter_t *w)
{
    if (w->queued) {
        ngx_queue_remove(&w->queue);
        w->queued = 0;
    }
}


ngx_uint_t
ngx_http_credit_auth_redis_waiting(void)
{
    return !ngx_queue_empty(&ngx_http_credit_auth_redis_waiters);
}


/* Each waiter leaves the queue before it is told, so that it may wait
 * again from its handler. */
void
ngx_http_credit_auth_redis_waiters_wake(void)
{
    ngx_queue_t                          *q;
    ngx_http_credit_auth_redis_waiter_t  *w;

    while (!ngx_queue_empty(&ngx_http_credit_auth_redis_waiters)) {
        q = ngx_queue_head(&ngx_http_credit_auth_redis_waiters);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_http_credit_auth_redis_waiter_t, queue);
        w->queued = 0;
        w->handler(w);
    }
}
