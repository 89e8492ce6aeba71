/*
 * Access phase: the request's way through it.  It decides (…_decide.c),
 * reads a verification's body first, and waits for the decision entry to
 * be acknowledged before the request may go upstream: no audit, no data.
 *
 * A wait (for a registry key, for the decision entry, for the Redis
 * connection) holds the request once: r->main->count++ when the handler
 * first returns NGX_DONE for it, released only where the answer is taken.
 * nginx runs this handler again on any write event of the client's
 * connection, before the answer too: such a run finds the request still
 * waiting and changes nothing.
 */
#include "ngx_http_credit_auth.h"


static ngx_int_t ngx_http_credit_auth_commit(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
static ngx_int_t ngx_http_credit_auth_refuse(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
static ngx_int_t ngx_http_credit_auth_audited(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
static void ngx_http_credit_auth_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_credit_auth_start(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx);


/*
 * The worker stops at once (nginx -s stop: ngx_terminate), its Redis
 * connection gone: every request still held is answered now rather than
 * dropped, with what Redis could not confirm refused (503) and its
 * refusal spooled by the writer, which exits after this.  A held
 * withdrawal (…_withdraw.c) is run by its own wake handler, as a bank's
 * request is by the phases.
 */
void
ngx_http_credit_auth_access_exit(void)
{
    ngx_uint_t                   n;
    ngx_http_request_t          *r;
    ngx_http_credit_auth_ctx_t  *ctx;

    /* each is answered or held again (then left): bounded either way */
    for (n = 0; n < 100000; n++) {
        ctx = ngx_http_credit_auth_first_held();
        if (ctx == NULL) {
            return;
        }
        r = ctx->hold.wake.data;

        ngx_http_credit_auth_key_abandon(ctx);
        ngx_http_credit_auth_audit_abandon(ctx);
        ngx_http_credit_auth_redis_unwait(&ctx->hold.conn);

        /* the phases (…_ctx.c), or a withdrawal's steps */
        ctx->hold.wake.handler(&ctx->hold.wake);

        if (ngx_http_credit_auth_first_held() == ctx) {
            /* held again: it cannot be answered now */
            ngx_http_credit_auth_release(r, ctx);
        }
    }
}


ngx_int_t
ngx_http_credit_auth_access_handler(ngx_http_request_t *r)
{
    ngx_http_credit_auth_ctx_t        *ctx;
    ngx_http_credit_auth_loc_conf_t   *lcf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);
    if (lcf->mode == NGX_HTTP_CREDIT_AUTH_OFF || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_credit_auth_get_ctx(r);

    if (ctx != NULL && ctx->redirected) {
        /*
         * The platform's answer sent this request elsewhere (an internal
         * redirect the upstream configuration still allowed): deciding
         * again would spend the consent twice, and the answer is not the
         * record that was asked for.
         */
        ctx->redirected = 0;
        if (r->header_sent) {
            ngx_http_finalize_request(r, NGX_ERROR);
            return NGX_DONE;
        }
        if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
            ctx->filter_reason = CA_UPSTREAM_INVALID;
            ctx->cause = "internal_redirect";
            ngx_http_credit_auth_count_reason(CA_UPSTREAM_INVALID);
            ctx->reason = CA_UPSTREAM_INVALID;
            ngx_http_credit_auth_detail(ctx, "the request was redirected "
                                        "inside the gateway after its "
                                        "decision%Z");

        } else if (ctx->reason == CA_OK) {
            ctx->reason = CA_REQUEST_INVALID;
        }
        ctx->state = NGX_HTTP_CREDIT_AUTH_REFUSED;
        return ngx_http_credit_auth_refuse(r, ctx);
    }

    if (ctx != NULL) {
        switch (ctx->state) {

        case NGX_HTTP_CREDIT_AUTH_ALLOWED:
            return NGX_DECLINED;

        case NGX_HTTP_CREDIT_AUTH_REFUSED:
            return ngx_http_credit_auth_refuse(r, ctx);

        case NGX_HTTP_CREDIT_AUTH_WAITING:
            /* the audit writer's answer (…_audit.c), or not yet */
            if (ngx_http_credit_auth_audit_waiting(ctx)) {
                return NGX_DONE;
            }
            ngx_http_credit_auth_resume(r, ctx);
            if (ctx->audit.parked) {
                /* parked until Redis connected (or failed to) */
                return ngx_http_credit_auth_commit(r, ctx);
            }
            return ngx_http_credit_auth_audited(r, ctx);

        case NGX_HTTP_CREDIT_AUTH_KEY_WAIT:
            if (ngx_http_credit_auth_key_waiting(ctx)) {
                return NGX_DONE;
            }
            ngx_http_credit_auth_resume(r, ctx);
            mcf = ngx_http_get_module_main_conf(r,
                                                ngx_http_credit_auth_module);
            return ngx_http_credit_auth_start(r, mcf, lcf, ctx);

        case NGX_HTTP_CREDIT_AUTH_NEW:
            /* the verification body has been read: decide and commit */
            if (ctx->reason == CA_OK) {
                mcf = ngx_http_get_module_main_conf(r,
                                                ngx_http_credit_auth_module);
                ctx->reason = ngx_http_credit_auth_decide_consent(r, mcf, ctx);
            }
            return ngx_http_credit_auth_commit(r, ctx);

        default:
            /* still waiting for the body */
            return NGX_DONE;
        }
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_auth_ctx_t));
    if (ctx == NULL || ngx_http_credit_auth_keep_ctx(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->start_us = ngx_http_credit_auth_now_us();
    ctx->report = (lcf->mode == NGX_HTTP_CREDIT_AUTH_REPORT);
    ctx->method = r->method_name;     /* a verification becomes a GET */

    if (ngx_http_credit_auth_set_request_id(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_credit_auth_start(r, mcf, lcf, ctx);
}


/* Decides, reads a verification's body, commits; from the top again once
 * a registry key has been fetched. */
static ngx_int_t
ngx_http_credit_auth_start(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t         rc;
    ngx_table_elt_t  *h;

    ctx->state = NGX_HTTP_CREDIT_AUTH_NEW;
    ctx->detail[0] = '\0';
    ctx->reason = ngx_http_credit_auth_decide(r, mcf, lcf, ctx);

    if (ctx->state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT) {
        /* the token's key is being fetched from the registry */
        return ngx_http_credit_auth_hold(r, ctx);
    }

    /*
     * A compressed answer cannot be filtered (it would become a 502): ask
     * the platform for identity encoding whatever the bank accepts.
     */
    h = ngx_http_credit_auth_header(r, "Accept-Encoding", 15);
    if (h != NULL) {
        ngx_str_set(&h->value, "identity");
    }

    if (ctx->reason == CA_OK && ctx->decision.verify) {
        /*
         * A verification carries its checks in the body; the decision needs
         * them (an unverifiable field is a refusal), so read it first.
         */
        ctx->state = NGX_HTTP_CREDIT_AUTH_READING_BODY;
        r->request_body_in_single_buf = 1;

        ctx->in_access = 1;
        rc = ngx_http_read_client_request_body(r,
                                        ngx_http_credit_auth_body_handler);
        ctx->in_access = 0;
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        if (ctx->state == NGX_HTTP_CREDIT_AUTH_READING_BODY) {
            return NGX_DONE;
        }

        /* the body was already here: the handler ran synchronously */
        if (ctx->reason == CA_OK) {
            ctx->reason = ngx_http_credit_auth_decide_consent(r, mcf, ctx);
        }
    }

    return ngx_http_credit_auth_commit(r, ctx);
}


/* Writes the decision entry and suspends the request until it is acked. */
static ngx_int_t
ngx_http_credit_auth_commit(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_http_credit_auth_audit_decision(r, ctx);

    if (rc == NGX_AGAIN) {
        /* counted when Redis has said allow, revoked or exhausted */
        ctx->state = NGX_HTTP_CREDIT_AUTH_WAITING;
        return ngx_http_credit_auth_hold(r, ctx);
    }

    if (rc == NGX_ERROR) {
        /* Neither acknowledged nor spooled (contract §7): 503, whatever was
         * decided; the bank learns nothing else. */
        ctx->reason = CA_AUDIT_UNAVAILABLE;
        ctx->report = 0;
    }

    /* NGX_OK: durably spooled, decided now */
    ngx_http_credit_auth_count_decision(ctx);

    ctx->state = (ctx->reason == CA_OK || ctx->report)
                 ? NGX_HTTP_CREDIT_AUTH_ALLOWED
                 : NGX_HTTP_CREDIT_AUTH_REFUSED;

    if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
        if (ngx_http_credit_auth_strip_request(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return NGX_DECLINED;
    }

    return ngx_http_credit_auth_refuse(r, ctx);
}


/* The audit writer has settled the decision entry (ctx->audit). */
static ngx_int_t
ngx_http_credit_auth_audited(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->audit.outcome == CA_AW_LOST
        || ctx->audit.outcome == CA_AW_REFUSED)
    {
        /* not written and not spooled, or (a decision) revocation not
         * confirmed, or Redis refused to write it (full): 503 whatever
         * was decided */
        ctx->reason = CA_AUDIT_UNAVAILABLE;
        ctx->report = 0;

    } else if (ctx->audit.reason != CA_OK) {
        /* the script chose a refusal: revoked, used up */
        ctx->reason = ctx->audit.reason;
    }

    ngx_http_credit_auth_count_decision(ctx);

    ctx->state = (ctx->reason == CA_OK || ctx->report)
                 ? NGX_HTTP_CREDIT_AUTH_ALLOWED
                 : NGX_HTTP_CREDIT_AUTH_REFUSED;

    if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED
        && ngx_http_credit_auth_strip_request(r) != NGX_OK)
    {
        ctx->state = NGX_HTTP_CREDIT_AUTH_REFUSED;
        ctx->reason = CA_AUDIT_UNAVAILABLE;
    }

    if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
        return NGX_DECLINED;
    }

    return ngx_http_credit_auth_refuse(r, ctx);
}


static ngx_int_t
ngx_http_credit_auth_refuse(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    rc = ngx_http_credit_auth_send_problem(r, ctx, ctx->reason);

    /* Finalised here rather than returned as 401/403 to the phase checker:
     * under "satisfy any" another module could otherwise grant access. */
    ngx_http_finalize_request(r, rc);
    return NGX_DONE;
}


static void
ngx_http_credit_auth_body_handler(ngx_http_request_t *r)
{
    u_char                      *p;
    size_t                       len;
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl;
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);

    /* release the reference ngx_http_read_client_request_body() took */
    r->main->count--;

    len = 0;
    if (r->request_body == NULL || r->request_body->temp_file) {
        len = CA_CHECKS_BODY_MAX + 1;

    } else {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }
    }

    if (len == 0 || len > CA_CHECKS_BODY_MAX) {
        ngx_http_credit_auth_detail(ctx, "the verification body must be "
                                    "1 to %d bytes of JSON%Z",
                                    CA_CHECKS_BODY_MAX);
        ctx->reason = CA_REQUEST_INVALID;
        goto done;
    }

    if (r->request_body->bufs->next == NULL) {
        /* request_body_in_single_buf: parsed where it lies, no copy */
        p = r->request_body->bufs->buf->pos;

    } else {
        p = ngx_pnalloc(r->pool, len);
        if (p == NULL) {
            ctx->reason = CA_REQUEST_INVALID;
            goto done;
        }
        len = 0;
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            b = cl->buf;
            len = ngx_cpymem(p + len, b->pos, b->last - b->pos) - p;
        }
    }

    ctx->reason = ngx_http_credit_auth_decide_checks(r, ctx, p, len);

done:

    /*
     * The upstream is asked for the record with GET and without the body;
     * the checks stay here.
     */
    r->method = NGX_HTTP_GET;
    ngx_str_set(&r->method_name, "GET");
    if (r->request_body) {
        r->request_body->bufs = NULL;
    }
    r->headers_in.content_length_n = -1;
    r->headers_in.content_length = NULL;
    r->headers_in.chunked = 0;

    if (ctx->state == NGX_HTTP_CREDIT_AUTH_READING_BODY) {
        ctx->state = NGX_HTTP_CREDIT_AUTH_NEW;
        if (ctx->in_access) {
            /* called synchronously from the access handler */
            return;
        }
    }

    ngx_http_core_run_phases(r);
}
