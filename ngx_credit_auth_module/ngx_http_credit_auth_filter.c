/*
 * Response filter (ENGINEERING §5): hold the upstream's headers, buffer its
 * body up to credit_auth_max_body, then send either the filtered document,
 * the verification results, or a problem+json 502.  Headers are held so
 * that a body we cannot filter still becomes a clean refusal: not one
 * upstream byte reaches the bank unless it passed the filter.
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


static ngx_int_t
ngx_http_credit_auth_header_filter(ngx_http_request_t *r)
{
    ngx_http_credit_auth_ctx_t       *ctx;
    ngx_http_credit_auth_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED
        || ctx->done)
    {
        return ngx_http_next_header_filter(r);
    }

    if (ngx_http_credit_auth_add_header(r, "X-Request-Id", &ctx->rid)
        == NULL)
    {
        return NGX_ERROR;
    }

    if (ctx->report) {
        /* report mode: decided and audited, disclosed unfiltered */
        return ngx_http_next_header_filter(r);
    }

    /*
     * A non-2xx answer from the platform carries no record: keep its status
     * and drop its body, which is not covered by any allowlist.
     */
    if (r->headers_out.status < NGX_HTTP_OK
        || r->headers_out.status >= NGX_HTTP_SPECIAL_RESPONSE
        || r->headers_out.status == NGX_HTTP_NO_CONTENT)
    {
        ctx->discard = 1;
        ngx_http_clear_content_length(r);
        ngx_http_clear_accept_ranges(r);
        ngx_http_clear_etag(r);
        ngx_http_clear_last_modified(r);
        r->headers_out.content_length_n = 0;
        r->headers_out.content_type.len = 0;
        r->headers_out.content_type.data = NULL;
        r->headers_out.content_type_len = 0;
        if (r->header_only) {
            ctx->done = 1;
            return ngx_http_next_header_filter(r);
        }
        return NGX_OK;
    }

    if (r->header_only) {
        /* nothing to filter and nothing to disclose */
        ctx->done = 1;
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);

    ctx->filtering = 1;
    ctx->body_last = &ctx->body;
    r->allow_ranges = 0;
    r->filter_need_in_memory = 1;

    /* A compressed body cannot be filtered (ENGINEERING §5). */
    if (r->headers_out.content_encoding
        && r->headers_out.content_encoding->value.len
        && !(r->headers_out.content_encoding->value.len == 8
             && ngx_strncasecmp(r->headers_out.content_encoding->value.data,
                                (u_char *) "identity", 8) == 0))
    {
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform answered with a compressed body%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (!ngx_http_credit_auth_is_json(r)) {
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform did not answer with JSON%Z");
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    if (r->headers_out.content_length_n > (off_t) lcf->max_body) {
        return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_TOO_LARGE);
    }

    /*
     * If the platform fails mid-body (closes early, times out), the
     * upstream module finalizes with an error and our held answer would
     * never leave: hear about it first and answer 502 ourselves.
     */
    if (r->upstream && r->upstream->finalize_request) {
        ctx->upstream_finalize = r->upstream->finalize_request;
        r->upstream->finalize_request = ngx_http_credit_auth_upstream_done;
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
        && ctx->filtering && !ctx->done)
    {
        ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                     "the platform's answer was cut short%Z");
        (void) ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
    }

    ctx->upstream_finalize(r, rc);
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
    if (ctx == NULL || !(ctx->filtering || ctx->discard)) {
        if (ctx != NULL && ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
            for (cl = in; cl; cl = cl->next) {
                ctx->bytes_out += ngx_buf_size(cl->buf);
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

    if (ctx->done) {
        /* our answer is out; swallow whatever the upstream still sends */
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }
        return NGX_OK;
    }

    if (ctx->discard) {
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }
        if (!last) {
            return NGX_OK;
        }
        ctx->done = 1;
        if (ngx_http_next_header_filter(r) == NGX_ERROR) {
            return NGX_ERROR;
        }
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NGX_ERROR;
        }
        b->last_buf = 1;
        return ngx_http_next_body_filter(r, &(ngx_chain_t) { b, NULL });
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);

    /* Copy: the proxy reuses its buffers once we return. */
    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        size = b->last - b->pos;

        if (ctx->body_len + size > lcf->max_body) {
            for (; cl; cl = cl->next) {
                cl->buf->pos = cl->buf->last;
            }
            return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_TOO_LARGE);
        }

        if (size) {
            ngx_chain_t *nl = ngx_alloc_chain_link(r->pool);
            ngx_buf_t   *nb = ngx_create_temp_buf(r->pool, size);
            if (nl == NULL || nb == NULL) {
                return NGX_ERROR;
            }
            nb->last = ngx_cpymem(nb->pos, b->pos, size);
            nl->buf = nb;
            nl->next = NULL;
            *ctx->body_last = nl;
            ctx->body_last = &nl->next;
            ctx->body_len += size;
        }

        b->pos = b->last;
    }

    if (!last) {
        return NGX_OK;
    }

    return ngx_http_credit_auth_finish(r, ctx);
}


/* Moves a malloc'd C string into the pool (NULL stays NULL). */
static char *
ngx_http_credit_auth_pool_str(ngx_pool_t *pool, char *s)
{
    char    *p;
    size_t   len;

    if (s == NULL) {
        return NULL;
    }
    len = ngx_strlen(s);
    p = ngx_pnalloc(pool, len + 1);
    if (p != NULL) {
        ngx_memcpy(p, s, len + 1);
    }
    free(s);
    return p;
}


/* The whole upstream body is here: filter or verify, then send. */
static ngx_int_t
ngx_http_credit_auth_finish(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    u_char                            *p;
    char                              *text;
    size_t                             len, out_len;
    json_t                            *doc, *out;
    ngx_buf_t                         *b;
    ca_reason                          reason;
    ngx_chain_t                       *cl;
    json_error_t                       je;
    ca_filter_opts                     opts;
    ca_filter_report                   rep;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    /* one contiguous copy of the body (usually a single buffer already) */
    if (ctx->body && ctx->body->next == NULL) {
        p = ctx->body->buf->pos;
        len = ctx->body->buf->last - p;

    } else {
        p = ngx_pnalloc(r->pool, ctx->body_len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }
        len = 0;
        for (cl = ctx->body; cl; cl = cl->next) {
            len = ngx_cpymem(p + len, cl->buf->pos,
                             cl->buf->last - cl->buf->pos) - p;
        }
    }

    if (ctx->verify) {
        doc = json_loadb((char *) p, len, JSON_REJECT_DUPLICATES, &je);
        if (doc == NULL || !json_is_object(doc)) {
            json_decref(doc);
            ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                         "the platform's answer is not a JSON object%Z");
            return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
        }

        reason = ca_checks_eval(ctx->checks, doc, &out, ctx->detail,
                                sizeof(ctx->detail));
        json_decref(doc);
        if (reason != CA_OK) {
            return ngx_http_credit_auth_fail(r, ctx, reason);
        }

        text = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (text == NULL) {
            return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
        }
        out_len = ngx_strlen(text);

    } else {
        /* the allowlist, in one pass over the bytes (lib/filter.c) */
        if (ca_filter_report_init(&rep, ctx->category) != 0) {
            return NGX_ERROR;
        }
        ngx_memzero(&opts, sizeof(ca_filter_opts));
        opts.hash_key = mcf->hash_key;
        opts.hash_key_len = mcf->hash_key_len;
        opts.raw = ctx->raw;

        text = ca_filter_text(ctx->category, (char *) p, len, &opts, &rep,
                              &out_len);
        if (text != NULL) {
            ctx->withheld = rep.withheld;
            ctx->disclosed = ngx_http_credit_auth_pool_str(r->pool,
                                 ca_filter_report_paths(&rep, ctx->category,
                                                        0));
            ctx->masked = ngx_http_credit_auth_pool_str(r->pool,
                                 ca_filter_report_paths(&rep, ctx->category,
                                                        1));
        }
        ca_filter_report_free(&rep);

        if (text == NULL) {
            ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                         "the platform's answer is not a JSON object that "
                         "can be filtered%Z");
            return ngx_http_credit_auth_fail(r, ctx, CA_UPSTREAM_INVALID);
        }
    }

    /* the string lives until the request's pool goes */
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        free(text);
        return NGX_ERROR;
    }
    cln->handler = free;
    cln->data = text;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }
    b->pos = (u_char *) text;
    b->last = b->pos + out_len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    return ngx_http_credit_auth_send(r, ctx, b,
                                     ctx->verify ? "verify"
                                     : ctx->raw ? "raw" : "masked");
}


static ngx_int_t
ngx_http_credit_auth_send(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_buf_t *b, const char *disclosure)
{
    ngx_int_t   rc;
    ngx_str_t   v;

    ctx->done = 1;

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_etag(r);
    ngx_http_clear_last_modified(r);
    r->headers_out.content_length_n = b->last - b->pos;

    v.data = (u_char *) disclosure;
    v.len = ngx_strlen(disclosure);
    if (ngx_http_credit_auth_add_header(r, "X-Credit-Disclosure", &v)
        == NULL)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_next_header_filter(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ctx->bytes_out = b->last - b->pos;
    return ngx_http_next_body_filter(r, &(ngx_chain_t) { b, NULL });
}


/*
 * Replaces the held upstream response with a problem+json refusal.  The
 * headers were never sent, so the bank sees only the refusal.
 */
static ngx_int_t
ngx_http_credit_auth_fail(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
    ngx_uint_t        i;

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "credit_auth: %s for request %V: %s",
                  ca_reason_name(reason), &ctx->rid, ctx->detail);

    ctx->done = 1;
    ctx->filter_reason = reason;
    ctx->disclosed = NULL;
    ctx->masked = NULL;

    /* Drop every upstream header but our own X-Request-Id. */
    part = &r->headers_out.headers.part;
    h = part->elts;
    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }
        if (!(h[i].key.len == 12
              && ngx_strncasecmp(h[i].key.data, (u_char *) "X-Request-Id",
                                 12) == 0))
        {
            h[i].hash = 0;
        }
    }

    r->headers_out.content_encoding = NULL;
    r->headers_out.location = NULL;
    r->headers_out.refresh = NULL;
    r->headers_out.www_authenticate = NULL;
    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_etag(r);
    ngx_http_clear_last_modified(r);

    b = ngx_http_credit_auth_problem_body(r, ctx, reason);
    if (b == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.status = ca_reason_status(reason);
    r->headers_out.status_line.len = 0;
    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    r->headers_out.content_length_n = b->last - b->pos;
    r->keepalive = 0;

    rc = ngx_http_next_header_filter(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_next_body_filter(r, &(ngx_chain_t) { b, NULL });
}
