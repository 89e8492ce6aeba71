/*
 * Response filter (ENGINEERING §5): hold the upstream's headers, buffer its
 * body up to credit_auth_max_body, then send either the filtered document,
 * the verification results (both made by …_rewrite.c), or a problem+json
 * 502.  Headers are held so that a body we cannot filter still becomes a
 * clean refusal: not one upstream byte reaches the bank unless it passed
 * the filter.  ctx->response is written here only.
 */
#include "ngx_http_credit_auth.h"


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_int_t ngx_http_credit_auth_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_credit_auth_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_credit_auth_fail(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason);
static ngx_int_t ngx_http_credit_auth_finish(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
static ngx_int_t ngx_http_credit_auth_send(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_buf_t *b, const char *disclosure);
static void ngx_http_credit_auth_upstream_done(ngx_http_request_t *r,
    ngx_int_t rc);


ngx_int_t
ngx_http_credit_auth_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_credit_auth_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_credit_auth_body_filter;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_credit_auth_is_json(ngx_http_request_t *r)
{
    u_char  *p, *last;
    size_t   len;

    len = r->headers_out.content_type_len;
    p = r->headers_out.content_type.data;
    if (len == 0 || p == NULL) {
        return 0;
    }
    last = p + len;

    if (len >= 16 && ngx_strncasecmp(p, (u_char *) "application/json", 16)
                     == 0)
    {
        return 1;
    }

    /* application/<something>+json */
    if (len > 12 && ngx_strncasecmp(p, (u_char *) "application/", 12) == 0) {
        for (p += 12; p + 5 <= last; p++) {
            if (ngx_strncasecmp(p, (u_char *) "+json", 5) == 0) {
                return 1;
            }
        }
    }

    return 0;
}


/* nginx's own refusals of a request it could not read (contract §2.1) */
static ngx_uint_t
ngx_http_credit_auth_core_status(ngx_uint_t status)
{
    switch (status) {
    case NGX_HTTP_BAD_REQUEST:                  /* also 494, 495-497 */
    case NGX_HTTP_LENGTH_REQUIRED:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
    case NGX_HTTP_NOT_IMPLEMENTED:
    case NGX_HTTP_VERSION_NOT_SUPPORTED:
        return 1;
    }
    return 0;
}


/*
 * An answer nginx itself makes (no access phase ran, or the request body
 * could not be read) in a server with credit_auth: a refusal like the
 * module's own, audited in the log phase.
 */
static ngx_int_t
ngx_http_credit_auth_core_refusal(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_uint_t  status;

    status = r->headers_out.status;

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_auth_ctx_t));
        if (ctx == NULL || ngx_http_credit_auth_keep_ctx(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
        ctx->method = r->method_name;
        if (ngx_http_credit_auth_set_request_id(r, ctx) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    ctx->core = 1;
    ctx->state = NGX_HTTP_CREDIT_AUTH_REFUSED;
    ctx->reason = CA_REQUEST_INVALID;
    ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                 "nginx refused the request (%ui): a malformed, repeated "
                 "or oversized request line or header, a bad path or "
                 "body, or no valid client certificate%Z", status);

    return ngx_http_credit_auth_fail(r, ctx, CA_REQUEST_INVALID);
}


static ngx_int_t
ngx_http_credit_auth_header_filter(ngx_http_request_t *r)
{
    ngx_buf_t                        *b;
    ngx_uint_t                        status;
    ngx_http_upstream_t              *u;
    ngx_http_credit_auth_ctx_t       *ctx;
    ngx_http_credit_auth_srv_conf_t  *scf;
    ngx_http_credit_auth_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_credit_auth_get_ctx(r);
    status = r->headers_out.status;

    if (ctx == NULL
        || (ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED
            && ctx->state != NGX_HTTP_CREDIT_AUTH_REFUSED))
    {
        scf = ngx_http_get_module_srv_conf(r, ngx_http_credit_auth_module);
        if (scf != NULL && scf->on
            && ngx_http_credit_auth_core_status(status))
        {
            return ngx_http_credit_auth_core_refusal(r, ctx);
        }
        if (ctx == NULL) {
            return ngx_http_next_header_filter(r);
        }
    }

    if (ctx->response.last_sent) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED) {
        /* the module's own refusal */
        if (ngx_http_credit_auth_own_headers(r, ctx, NULL) != NGX_OK) {
            return NGX_ERROR;
        }
        return ngx_http_next_header_filter(r);
    }

    if (ctx->report && !ctx->redirected) {
        /* report mode: decided and audited, disclosed unfiltered; still
         * one X-Request-Id, the gateway's, and no disclosure claimed */
        ngx_http_credit_auth_drop_header(r, "X-Request-Id", 12);
        ngx_http_credit_auth_drop_header(r, "X-Credit-Disclosure", 19);
        if (ngx_http_credit_auth_add_header(r, "X-Request-Id", &ctx->rid)
            == NULL)
        {
            return NGX_ERROR;
        }
        return ngx_http_next_header_filter(r);
    }

    /* Only a complete 200 JSON body is filtered (contract §2.1). */

    if (ctx->redirected) {
        ctx->cause = "internal_redirect";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform's answer redirected the request inside "
                     "the gateway%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    u = r->upstream;

    if (u != NULL && r->http_version == NGX_HTTP_VERSION_9
        && r->http_major >= 1)
    {
        /* no status line: the proxy took it for an HTTP/0.9 answer and
         * would send the bank a bare body; the bank asked with 1.x */
        r->http_version = r->http_major * 1000 + r->http_minor;
        status = 0;
    }

    if (u == NULL || status == 0 || u->headers_in.status_n != status) {
        /* nginx's own error in place of an answer: refused, closed, timed
         * out, or a header it could not parse */
        ctx->cause = "no_answer";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform gave no usable answer (%ui)%Z", status);
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (status == NGX_HTTP_NOT_FOUND) {
        return ngx_http_credit_auth_fail(r, ctx, CA_RECORD_NOT_FOUND);
    }

    if (status != NGX_HTTP_OK) {
        ctx->cause = status == NGX_HTTP_PARTIAL_CONTENT ? "partial"
                     : status == NGX_HTTP_NOT_MODIFIED ? "not_modified"
                     : (status >= 300 && status < 400) ? "redirect"
                     : "status";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform answered %ui, not 200 or 404%Z", status);
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (u->headers_in.x_accel_redirect) {
        /* ignored (ngx_http_credit_auth_ignore_xaccel), and refused: the
         * platform meant another answer than this one */
        ctx->cause = "internal_redirect";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform answered with X-Accel-Redirect%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    /* asked with another method than GET (e.g. proxy_method); the
     * request line is sent by now, so read it from the buffer's start */
    b = u->request_bufs ? u->request_bufs->buf : NULL;
    if (b == NULL || b->start == NULL || b->last - b->start < 4
        || ngx_strncmp(b->start, "GET ", 4) != 0)
    {
        ctx->cause = "method";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform was not asked with GET%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (r->header_only) {
        /* nothing to filter and nothing to disclose */
        ctx->cause = "no_body";
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);

    ctx->response.filtering = 1;
    r->allow_ranges = 0;
    r->filter_need_in_memory = 1;

    /* A compressed body cannot be filtered (ENGINEERING §5). */
    if (r->headers_out.content_encoding
        && r->headers_out.content_encoding->value.len
        && !(r->headers_out.content_encoding->value.len == 8
             && ngx_strncasecmp(r->headers_out.content_encoding->value.data,
                                (u_char *) "identity", 8) == 0))
    {
        ctx->cause = "compressed";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform answered with a compressed body%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (!ngx_http_credit_auth_is_json(r)) {
        ctx->cause = "not_json";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform did not answer with JSON%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (r->headers_out.content_length_n > (off_t) lcf->max_body) {
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_TOO_LARGE);
    }
    if (r->headers_out.content_length_n > 0) {
        ctx->response.body_hint = (size_t) r->headers_out.content_length_n;
    }

    /*
     * If the platform fails mid-body (closes early, times out), the
     * upstream module finalizes with an error and our held answer would
     * never leave: hear about it first and answer 502 ourselves.
     */
    if (u->finalize_request) {
        ctx->response.upstream_finalize = u->finalize_request;
        u->finalize_request = ngx_http_credit_auth_upstream_done;
    }

    /* hold the headers until the body is filtered */
    return NGX_OK;
}


static void
ngx_http_credit_auth_upstream_done(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);

    if (rc != NGX_OK && rc != NGX_HTTP_CLIENT_CLOSED_REQUEST
        && ctx->response.filtering && !ctx->response.last_sent)
    {
        ctx->cause = "cut_short";
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform's answer was cut short%Z");
        (void) ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    ctx->response.upstream_finalize(r, rc);
}


/*
 * The body goes into one buffer as it arrives, sized by its Content-Length
 * when the platform sent one: the filter reads it in one piece, and a
 * body of many proxy buffers is copied once, not gathered again.
 */
static ngx_int_t
ngx_http_credit_auth_body_append(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_http_credit_auth_loc_conf_t *lcf,
    u_char *data, size_t size)
{
    size_t   cap, need;
    u_char  *p;

    need = ctx->response.body_len + size;

    if (need > ctx->response.body_cap) {
        cap = ctx->response.body_cap
              ? 2 * ctx->response.body_cap
              : ngx_max(ctx->response.body_hint, 16384);
        while (cap < need) {
            cap *= 2;
        }
        if (cap > lcf->max_body) {
            cap = ngx_max(lcf->max_body, need);
        }

        p = ngx_pnalloc(r->pool, cap + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (ctx->response.body) {
            ngx_memcpy(p, ctx->response.body, ctx->response.body_len);
            ngx_pfree(r->pool, ctx->response.body);
        }

        ctx->response.body = p;
        ctx->response.body_cap = cap;
    }

    ngx_memcpy(ctx->response.body + ctx->response.body_len, data, size);
    ctx->response.body_len = need;

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_auth_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                            size;
    ngx_buf_t                        *b;
    ngx_uint_t                        last;
    ngx_chain_t                      *cl;
    ngx_http_credit_auth_ctx_t       *ctx;
    ngx_http_credit_auth_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (ctx->response.last_sent) {
        /* our answer went out on its own (below this filter): swallow
         * whatever the platform, or nginx's error page, still sends */
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }
        return NGX_OK;
    }

    if (!ctx->response.filtering) {
        if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
            for (cl = in; cl; cl = cl->next) {
                ctx->response.bytes_out += ngx_buf_size(cl->buf);
            }
        }
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;
    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf) {
            last = 1;
        }
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);

    /* Copy: the proxy reuses its buffers once we return. */
    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = b->last - b->pos;

        if (ctx->response.body_len + size > lcf->max_body) {
            for (; cl; cl = cl->next) {
                cl->buf->pos = cl->buf->last;
            }
            return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_TOO_LARGE);
        }

        if (size
            && ngx_http_credit_auth_body_append(r, ctx, lcf, b->pos, size)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        b->pos = b->last;
    }

    if (!last) {
        return NGX_OK;
    }

    return ngx_http_credit_auth_finish(r, ctx);
}


/* The whole upstream body is here: rewrite it (…_rewrite.c), then send. */
static ngx_int_t
ngx_http_credit_auth_finish(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t                         rc;
    ngx_http_credit_auth_rewritten_t  rw;

    ngx_memzero(&rw, sizeof(ngx_http_credit_auth_rewritten_t));
    rc = ngx_http_credit_auth_rewrite(r, ctx, &rw);

    /* what the outcome entry says was disclosed */
    ctx->response.disclosed = rw.disclosed;
    ctx->response.masked = rw.masked;
    ctx->response.withheld = rw.withheld;
    ctx->response.tally = rw.tally;

    if (rc == NGX_DECLINED) {
        return ngx_http_credit_auth_fail(r, ctx, rw.refusal);
    }
    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_credit_auth_send(r, ctx, rw.answer,
                                     ctx->decision.verify ? "verify"
                                     : ctx->decision.raw ? "raw" : "masked");
}


static ngx_int_t
ngx_http_credit_auth_send(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_buf_t *b, const char *disclosure)
{
    ngx_int_t  rc;

    ctx->response.last_sent = 1;
    ctx->response.disclosure = disclosure;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    if (ngx_http_credit_auth_own_headers(r, ctx, disclosure) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_next_header_filter(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ctx->response.bytes_out = b->last - b->pos;
    return ngx_http_next_body_filter(r, &(ngx_chain_t) { b, NULL });
}


/*
 * Replaces the held upstream response (or nginx's own error page) with a
 * problem+json refusal.  The headers were never sent, so the bank sees
 * only the refusal.
 */
static ngx_int_t
ngx_http_credit_auth_fail(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason)
{
    ngx_int_t   rc;
    ngx_buf_t  *b;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "credit_auth: %s%s%s for request %V: %s",
                  ca_reason_name(reason), ctx->cause ? " " : "",
                  ctx->cause ? ctx->cause : "", &ctx->rid, ctx->detail);

    ctx->response.last_sent = 1;
    ctx->response.disclosed = NULL;
    ctx->response.masked = NULL;
    if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
        /* allowed, then refused on the answer: counted here, the
         * decision was counted when it was made */
        ctx->filter_reason = reason;
        ngx_http_credit_auth_count_reason(reason);
    }

    b = ngx_http_credit_auth_problem_body(r, ctx, reason);
    if (b == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.status = ca_reason_status(reason);
    r->headers_out.status_line.len = 0;
    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;
    r->keepalive = 0;

    if (ngx_http_credit_auth_own_headers(r, ctx, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_next_header_filter(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_next_body_filter(r, &(ngx_chain_t) { b, NULL });
}


/*
 * Log phase: the decision entry of a request nginx refused itself (no
 * access phase ran, or it stopped reading the body), written like any
 * refusal's; it does not wait, the answer is already out.
 */
ngx_int_t
ngx_http_credit_auth_core_log_handler(ngx_http_request_t *r)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || !ctx->core) {
        return NGX_OK;
    }
    ctx->core = 0;

    ngx_http_credit_auth_count_decision(ctx);

    if (ngx_http_credit_auth_audit_decision(r, ctx) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: refusal of request %V not audited",
                      &ctx->rid);
    }

    return NGX_OK;
}
