/*
 * What the gateway answers of its own: the request id every response and
 * audit entry carries, and refusals as RFC 9457 problem details.
 */
#include <openssl/rand.h>

#include "ngx_http_credit_auth.h"


/*
 * RAND_bytes() per request costs a getpid() system call (its fork check)
 * and the DRBG's locking: draw 4 KiB at a time in the worker instead.
 * Refilled after a fork (ngx_pid differs), so no two processes hand out
 * the same bytes.
 */
static ngx_int_t
ngx_http_credit_auth_random(u_char *out, size_t len)
{
    static u_char      pool[4096];
    static size_t      left;
    static ngx_pid_t   owner;

    if (left < len || owner != ngx_pid) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) {
            left = 0;
            return NGX_ERROR;
        }
        left = sizeof(pool);
        owner = ngx_pid;
    }

    ngx_memcpy(out, pool + sizeof(pool) - left, len);
    /* handed out once */
    ngx_memzero(pool + sizeof(pool) - left, len);
    left -= len;

    return NGX_OK;
}


/*
 * The bank's X-Request-Id is used when it is 1-64 of [A-Za-z0-9._-] and
 * does not look like a personal identifier (lib/core/pii.h): the id goes into
 * every audit entry, and a mobile or resident ID number must not (contract
 * §7).  Otherwise a random id is generated; either way the response
 * carries the id used.
 */
ngx_int_t
ngx_http_credit_auth_set_request_id(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    u_char            rnd[16];
    ngx_uint_t        i, n, ok;
    ngx_table_elt_t  *h;

    /* the first one and how many, in one pass over the headers */
    h = ngx_http_credit_auth_header_n(r, "X-Request-Id", 12, &n);

    ok = (n == 1 && h->value.len >= 1 && h->value.len <= 64);
    for (i = 0; ok && i < h->value.len; i++) {
        u_char c = h->value.data[i];
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
             || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.';
    }

    if (ok && !ca_looks_personal((char *) h->value.data, h->value.len)) {
        ctx->rid = h->value;
        return NGX_OK;
    }

    if (ngx_http_credit_auth_random(rnd, sizeof(rnd)) != NGX_OK) {
        return NGX_ERROR;
    }
    ctx->rid.data = ngx_pnalloc(r->pool, 2 * sizeof(rnd));
    if (ctx->rid.data == NULL) {
        return NGX_ERROR;
    }
    ctx->rid.len = ngx_hex_dump(ctx->rid.data, rnd, sizeof(rnd))
                   - ctx->rid.data;
    return NGX_OK;
}


/* RFC 9457 problem details; built with jansson so `detail` is escaped. */
ngx_buf_t *
ngx_http_credit_auth_problem_body(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason)
{
    char        type[96], rid[80];
    char       *text;
    size_t      len;
    json_t     *doc;
    ngx_buf_t  *b;

    ngx_snprintf((u_char *) type, sizeof(type) - 1, "urn:credit-auth:%s%Z",
                 ca_reason_name(reason));
    ngx_snprintf((u_char *) rid, sizeof(rid) - 1, "%V%Z", &ctx->rid);

    doc = json_pack("{s:s, s:s, s:i, s:s, s:s}",
                    "type", type,
                    "title", ca_reason_title(reason),
                    "status", ca_reason_status(reason),
                    "detail", ctx->detail[0] && reason == ctx->reason
                              ? ctx->detail : ca_reason_title(reason),
                    "request_id", rid);
    if (doc == NULL) {
        return NULL;
    }
    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL) {
        return NULL;
    }

    len = ngx_strlen(text);
    b = ngx_create_temp_buf(r->pool, len + 1);
    if (b != NULL) {
        b->last = ngx_cpymem(b->pos, text, len);
        *b->last++ = '\n';
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
    }
    free(text);

    return b;
}


/* A quoted-string of RFC 9110 without escapes: printable, no quote or
 * backslash, so that the header needs no quoting at request time. */
char *
ngx_http_credit_auth_realm(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_loc_conf_t  *lcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (lcf->realm.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (value[1].len == 0 || value[1].len > 128) {
        return "must be 1 to 128 characters";
    }
    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] < 0x20 || value[1].data[i] > 0x7e
            || value[1].data[i] == '"' || value[1].data[i] == '\\')
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_realm \"%V\": only printable "
                               "ASCII without '\"' or '\\'", &value[1]);
            return NGX_CONF_ERROR;
        }
    }
    lcf->realm = value[1];

    return NGX_CONF_OK;
}


/*
 * One line per refusal at info, as auth_basic logs its own: the reason,
 * the request id, the bank and the detail.  The detail is what the bank
 * itself reads in the problem: never a byte of the token or the record.
 */
static void
ngx_http_credit_auth_log_refusal(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason)
{
    if (ctx->logged) {
        return;
    }
    ctx->logged = 1;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "credit_auth: refused %s, request %V, bank \"%s\": %s",
                  ca_reason_name(reason), &ctx->rid,
                  ctx->decision.bank ? ctx->decision.bank->code : "",
                  ctx->detail[0] && reason == ctx->reason
                  ? ctx->detail : ca_reason_title(reason));
}


ngx_int_t
ngx_http_credit_auth_send_problem(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_chain_t       out;

    ngx_http_credit_auth_log_refusal(r, ctx, reason);

    b = ngx_http_credit_auth_problem_body(r, ctx, reason);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* X-Request-Id, WWW-Authenticate, Cache-Control: the header filter;
     * an error_page that led here would impose its status */
    r->err_status = 0;
    r->headers_out.status = ca_reason_status(reason);
    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
