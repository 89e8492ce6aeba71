/*
 * The platform's whole answer, rewritten (ENGINEERING §5): a query's
 * document through the category's allowlist (lib/policy/filter.c), or a
 * verification's checks evaluated against it (lib/policy/checks.c).  The
 * response filter (…_filter.c) holds the answer and sends what this makes.
 */
#include "ngx_http_credit_auth.h"


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


/*
 * The buffered body (ctx->response.body), rewritten into *rw, which the
 * filter keeps.  NGX_OK: rw->answer is what the bank receives;
 * NGX_DECLINED: refused for rw->refusal (ctx->cause and ctx->detail say
 * why); NGX_ERROR: out of memory.
 */
ngx_int_t
ngx_http_credit_auth_rewrite(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_http_credit_auth_rewritten_t *rw)
{
    u_char                            *p;
    char                              *text;
    size_t                             len, out_len;
    json_t                            *doc, *out;
    ngx_buf_t                         *b;
    ca_reason                          reason;
    json_error_t                       je;
    ca_filter_opts                     opts;
    ca_filter_report                   rep;
    const ca_category                 *cat;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    /* held in one piece as it arrived (ngx_http_credit_auth_filter.c) */
    p = ctx->response.body ? ctx->response.body : (u_char *) "";
    len = ctx->response.body_len;

    if (ctx->decision.verify) {
        doc = json_loadb((char *) p, len, JSON_REJECT_DUPLICATES, &je);
        if (doc == NULL || !json_is_object(doc)) {
            json_decref(doc);
            ctx->cause = "unparsable";
            ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                         "the platform's answer is not a JSON object%Z");
            rw->refusal = CA_UPSTREAM_INVALID;
            return NGX_DECLINED;
        }

        reason = ca_checks_eval(ctx->decision.checks, doc, &out,
                                ctx->detail, sizeof(ctx->detail));
        json_decref(doc);
        if (reason != CA_OK) {
            rw->refusal = reason;
            return NGX_DECLINED;
        }

        ca_checks_count(out, &rw->tally);
        text = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (text == NULL) {
            rw->refusal = CA_UPSTREAM_INVALID;
            return NGX_DECLINED;
        }
        out_len = ngx_strlen(text);

    } else {
        /* the allowlist, in one pass over the bytes (lib/policy/filter.c) */
        cat = ctx->decision.category;
        if (ca_filter_report_init(&rep, cat) != 0) {
            return NGX_ERROR;
        }
        ngx_memzero(&opts, sizeof(ca_filter_opts));
        opts.hash_key = mcf->hash_key;
        opts.hash_key_len = mcf->hash_key_len;
        opts.raw = ctx->decision.raw;

        text = ca_filter_text(cat, (char *) p, len, &opts, &rep, &out_len);
        if (text != NULL) {
            rw->withheld = rep.withheld;
            rw->disclosed = ngx_http_credit_auth_pool_str(r->pool,
                                ca_filter_report_paths(&rep, cat, 0));
            rw->masked = ngx_http_credit_auth_pool_str(r->pool,
                                ca_filter_report_paths(&rep, cat, 1));
        }
        ca_filter_report_free(&rep);

        if (text == NULL) {
            ctx->cause = "unparsable";
            ngx_snprintf((u_char *) ctx->detail, sizeof(ctx->detail) - 1,
                         "the platform's answer is not a JSON object that "
                         "can be filtered%Z");
            rw->refusal = CA_UPSTREAM_INVALID;
            return NGX_DECLINED;
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

    rw->answer = b;
    return NGX_OK;
}
