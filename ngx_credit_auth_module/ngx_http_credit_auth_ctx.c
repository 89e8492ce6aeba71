/*
 * The request's ctx, kept where an internal redirect does not clear it:
 * every phase and filter finds the same one (…_access.c sets it); its
 * hold (ctx->hold, written here only): a request that waits on Redis is
 * held once and woken by one posted event (for its audit, for a registry
 * key, for a withdrawal's revocation), and, parked while the worker
 * connects, woken when the attempt ends, whichever wait parked it.  The
 * requests held are listed, so that a worker told to stop at once still
 * answers them (…_access.c).
 */
#include "ngx_http_credit_auth.h"


static void ngx_http_credit_auth_wake_handler(ngx_event_t *ev);
static void ngx_http_credit_auth_reconnected(
    ngx_http_credit_auth_redis_waiter_t *w);

static ngx_queue_t  ngx_http_credit_auth_held;


/* Also a marker: ngx_http_credit_auth_get_ctx() finds the ctx by it. */
static void
ngx_http_credit_auth_ctx_cleanup(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    if (ctx->hold.wake.posted) {
        ngx_delete_posted_event(&ctx->hold.wake);
    }
    if (ctx->hold.held) {
        ngx_queue_remove(&ctx->hold.queue);
        ctx->hold.held = 0;
    }
}


/* The request waits: held once, whatever runs the access phase
 * meanwhile (r->main->count, released by ngx_http_credit_auth_release). */
ngx_int_t
ngx_http_credit_auth_hold(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    if (!ctx->hold.held) {
        if (ngx_http_credit_auth_held.next == NULL) {
            ngx_queue_init(&ngx_http_credit_auth_held);
        }
        ngx_queue_insert_tail(&ngx_http_credit_auth_held, &ctx->hold.queue);
        ctx->hold.held = 1;
        r->main->count++;
    }
    return NGX_DONE;
}


void
ngx_http_credit_auth_release(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->hold.wake.posted) {
        ngx_delete_posted_event(&ctx->hold.wake);
    }
    if (ctx->hold.held) {
        ngx_queue_remove(&ctx->hold.queue);
        ctx->hold.held = 0;
        r->main->count--;
    }
}


/*
 * Its answer is taken, by whichever run comes first (the access phase, or
 * a withdrawal's steps).  A worker that began to exit meanwhile (a reload)
 * still answers it, and says that the connection ends there: nginx closes
 * it after this answer, and the client must not send the next request on
 * it.
 */
void
ngx_http_credit_auth_resume(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_http_credit_auth_release(r, ctx);
    if (ngx_exiting || ngx_terminate) {
        r->keepalive = 0;
    }
}


/* The first request still held, or NULL. */
ngx_http_credit_auth_ctx_t *
ngx_http_credit_auth_first_held(void)
{
    if (ngx_http_credit_auth_held.next == NULL
        || ngx_queue_empty(&ngx_http_credit_auth_held))
    {
        return NULL;
    }
    return ngx_queue_data(ngx_queue_head(&ngx_http_credit_auth_held),
                          ngx_http_credit_auth_ctx_t, hold.queue);
}


/* Sets the request's ctx, and keeps it where an internal redirect, which
 * clears every module's ctx, does not reach (as the realip module does). */
ngx_int_t
ngx_http_credit_auth_keep_ctx(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }
    cln->handler = ngx_http_credit_auth_ctx_cleanup;
    cln->data = ctx;

    ctx->hold.wake.handler = ngx_http_credit_auth_wake_handler;
    ctx->hold.wake.data = r;
    ctx->hold.wake.log = r->connection->log;
    ctx->hold.conn.handler = ngx_http_credit_auth_reconnected;

    ngx_http_set_ctx(r, ctx, ngx_http_credit_auth_module);

    return NGX_OK;
}


/* The ctx, also after an internal redirect (then marked redirected). */
ngx_http_credit_auth_ctx_t *
ngx_http_credit_auth_get_ctx(ngx_http_request_t *r)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx != NULL || !r->internal || r != r->main) {
        return ctx;
    }

    ctx = ngx_http_credit_auth_find_ctx(r);
    if (ctx != NULL) {
        ctx->redirected = 1;
        ngx_http_set_ctx(r, ctx, ngx_http_credit_auth_module);
    }

    return ctx;
}


/* The ctx wherever it is kept, changing nothing (…_variables.c). */
ngx_http_credit_auth_ctx_t *
ngx_http_credit_auth_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t          *cln;
    ngx_http_credit_auth_ctx_t  *ctx;

    r = r->main;
    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx != NULL) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_credit_auth_ctx_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


/* Woken, the request runs handler rather than the phases (a withdrawal
 * runs its own steps, …_withdraw.c). */
void
ngx_http_credit_auth_on_wake(ngx_http_credit_auth_ctx_t *ctx,
    ngx_event_handler_pt handler)
{
    ctx->hold.wake.handler = handler;
}


void
ngx_http_credit_auth_wake(ngx_http_credit_auth_ctx_t *ctx)
{
    if (!ctx->hold.wake.posted) {
        ngx_post_event(&ctx->hold.wake, &ngx_posted_events);
    }
}


/*
 * A request that waited (for its audit: …_audit.c; for a registry key:
 * …_keyreg.c) goes on: the access handler takes the answer and releases
 * the hold.  Not r->write_event_handler: once a body was read it is
 * nginx's empty handler.
 */
static void
ngx_http_credit_auth_wake_handler(ngx_event_t *ev)
{
    ngx_http_request_t  *r = ev->data;
    ngx_connection_t    *c = r->connection;

    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/*
 * The worker's Redis connection is up, or its attempt failed
 * (…_redis_wait.c): the request parked for it runs again, whichever wait
 * parked it (its audit, a registry key, a withdrawal).  That wait sees
 * hold.conn no longer queued, and goes on or refuses.
 */
static void
ngx_http_credit_auth_reconnected(ngx_http_credit_auth_redis_waiter_t *w)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = (ngx_http_credit_auth_ctx_t *)
          ((u_char *) w - offsetof(ngx_http_credit_auth_ctx_t, hold.conn));
    ngx_http_credit_auth_wake(ctx);
}
