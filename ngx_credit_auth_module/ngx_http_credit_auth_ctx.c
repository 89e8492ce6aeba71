/*
 * The request's ctx, kept where an internal redirect does not clear it:
 * every phase and filter finds the same one (…_access.c sets it); and the
 * wake-up of a request that waited (for its audit, for a registry key).
 */
#include "ngx_http_credit_auth.h"


static void ngx_http_credit_auth_wake_handler(ngx_event_t *ev);


/* Also a marker: ngx_http_credit_auth_get_ctx() finds the ctx by it. */
static void
ngx_http_credit_auth_ctx_cleanup(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    if (ctx->wake.posted) {
        ngx_delete_posted_event(&ctx->wake);
    }
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

    ctx->wake.handler = ngx_http_credit_auth_wake_handler;
    ctx->wake.data = r;
    ctx->wake.log = r->connection->log;

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


void
ngx_http_credit_auth_wake(ngx_http_credit_auth_ctx_t *ctx)
{
    if (!ctx->wake.posted) {
        ngx_post_event(&ctx->wake, &ngx_posted_events);
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
