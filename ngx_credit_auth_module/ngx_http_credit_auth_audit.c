/*
 * The audit trail (SPEC §7): decision entries before anything goes
 * upstream, outcome entries after the response, signed checkpoints.  Each
 * worker is one writer with its own hash chain; its entries are sent in
 * chain order on its one Redis connection, which keeps them in that order.
 */
#include <hiredis/hiredis.h>

#include "ngx_http_credit_auth.h"


struct ngx_http_credit_auth_pending_s {
    ngx_http_request_t  *r;         /* NULL once the request is gone */
};


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    ca_chain                           chain;
    char                               gw[128];
    uint64_t                           checkpointed;   /* seq covered */
    ngx_event_t                        checkpoint;
} ngx_http_credit_auth_audit_t;


static ngx_http_credit_auth_audit_t  ngx_http_credit_auth_audit;


static ngx_int_t ngx_http_credit_auth_audit_send(ca_entry *e,
    ngx_http_credit_auth_reply_pt handler, void *data);
static void ngx_http_credit_auth_outcome_reply(void *data, void *reply);


static int64_t
ngx_http_credit_auth_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


static void
ngx_http_credit_auth_add_str(ca_entry *e, const char *name, ngx_str_t *s)
{
    ca_entry_add(e, name, s->len ? (char *) s->data : "", s->len);
}


/* XADDs a sealed entry; entries leave in chain order on one connection. */
static ngx_int_t
ngx_http_credit_auth_audit_xadd(ca_entry *e,
    ngx_http_credit_auth_reply_pt handler, void *data)
{
    size_t                         i, n;
    ngx_int_t                      rc;
    const char                    *argv[3 + 2 * CA_ENTRY_FIELDS];
    size_t                         argvlen[3 + 2 * CA_ENTRY_FIELDS];
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    argv[0] = "XADD";
    argvlen[0] = 4;
    argv[1] = (char *) au->mcf->stream.data;
    argvlen[1] = au->mcf->stream.len;
    argv[2] = "*";
    argvlen[2] = 1;
    n = 3;
    for (i = 0; i < e->n; i++) {
        argv[n] = e->name[i];
        argvlen[n++] = ngx_strlen(e->name[i]);
        argv[n] = e->value[i];
        argvlen[n++] = e->len[i];
    }

    rc = ngx_http_credit_auth_redis_command((int) n, argv, argvlen, handler,
                                            data);
    if (rc != NGX_OK) {
        /* ready was checked, so this is the in-flight cap or memory; the
         * chain now has a hole that verify will report */
        ngx_log_error(NGX_LOG_ERR, au->log, 0,
                      "credit_auth: audit entry %s/%uL not sent",
                      au->chain.id, (uint64_t) au->chain.seq);
        return NGX_ERROR;
    }

    ngx_http_credit_auth_count_audit(NGX_HTTP_CREDIT_AUTH_AUDIT_SENT);

    return NGX_OK;
}


/* Seals the entry into this worker's chain and sends it. */
static ngx_int_t
ngx_http_credit_auth_audit_send(ca_entry *e,
    ngx_http_credit_auth_reply_pt handler, void *data)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    /* Seal only what can be sent now: a sealed entry that never reaches
     * the stream would read as a deletion. */
    if (!ngx_http_credit_auth_redis_ready()) {
        return NGX_DECLINED;
    }

    if (ca_chain_seal(&au->chain, e) != 0) {
        ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                      "credit_auth: audit entry too large");
        return NGX_ERROR;
    }

    if (au->mcf->audit_key && !au->checkpoint.timer_set) {
        ngx_add_timer(&au->checkpoint, au->mcf->checkpoint_interval);
    }

    return ngx_http_credit_auth_audit_xadd(e, handler, data);
}


static ngx_uint_t
ngx_http_credit_auth_reply_ok(void *reply)
{
    redisReply  *rep = reply;

    return rep != NULL && rep->type == REDIS_REPLY_STRING;
}


static void
ngx_http_credit_auth_request_gone(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    if (ctx->pending) {
        ctx->pending->r = NULL;
        ctx->pending = NULL;
    }
}


static void
ngx_http_credit_auth_decision_reply(void *data, void *reply)
{
    ngx_uint_t                       ok;
    ngx_http_request_t              *r;
    ngx_http_credit_auth_ctx_t      *ctx;
    ngx_http_credit_auth_pending_t  *p = data;

    ok = ngx_http_credit_auth_reply_ok(reply);
    ngx_http_credit_auth_count_audit(ok ? NGX_HTTP_CREDIT_AUTH_AUDIT_ACKED
                                        : NGX_HTTP_CREDIT_AUTH_AUDIT_FAILED);

    r = p->r;
    ngx_free(p);

    if (r == NULL) {
        return;         /* the client went away while we waited */
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    ctx->pending = NULL;

    ngx_http_credit_auth_decision_acked(r, ctx, ok);
}


ngx_int_t
ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    char                               cert[65], purpose[CA_CODE_MAX + 1];
    ngx_int_t                          rc;
    ca_entry                          *e;
    ngx_str_t                          ip;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_pending_t    *p;
    ngx_http_credit_auth_audit_t      *au = &ngx_http_credit_auth_audit;
    ngx_http_credit_auth_main_conf_t  *mcf = au->mcf;

    e = ngx_palloc(r->pool, sizeof(ca_entry));
    if (e == NULL) {
        return NGX_ERROR;
    }

    ca_entry_init(e, "decision", ngx_http_credit_auth_now_ms(), au->gw);
    ngx_http_credit_auth_add_str(e, "rid", &ctx->rid);
    ca_entry_add(e, "bank", ctx->bank ? ctx->bank->code : "",
                 ctx->bank ? ngx_strlen(ctx->bank->code) : 0);
    if (ctx->has_cert) {
        ca_hex(ctx->cert_sha256, 32, cert);
    } else {
        cert[0] = '\0';
    }
    ca_entry_add(e, "cert", cert, ngx_strlen(cert));
    ip = r->connection->addr_text;
    ngx_http_credit_auth_add_str(e, "ip", &ip);
    ngx_http_credit_auth_add_str(e, "method", &r->method_name);

    /*
     * Never a personal identifier in the audit (SPEC §7): a path is
     * recorded only once it matched a route (literal segments and a valid
     * USCC); a code is recorded only once the policy knows it.
     */
    if (ctx->category && ctx->uscc[0]) {
        ngx_http_credit_auth_add_str(e, "path", &r->uri);
    } else {
        ca_entry_add(e, "path", "", 0);
    }
    ca_entry_add(e, "category", ctx->category ? ctx->category->name : "",
                 ctx->category ? ngx_strlen(ctx->category->name) : 0);
    ca_entry_add(e, "enterprise", ctx->uscc, ngx_strlen(ctx->uscc));

    purpose[0] = '\0';
    if (ctx->purpose.len && ctx->purpose.len <= CA_CODE_MAX) {
        ngx_memcpy(purpose, ctx->purpose.data, ctx->purpose.len);
        purpose[ctx->purpose.len] = '\0';
        if (!ca_policy_knows_purpose(mcf->policy, purpose)) {
            ngx_cpystrn((u_char *) purpose, (u_char *) "(unknown)",
                        sizeof(purpose));
        }
    }
    ca_entry_add(e, "purpose", purpose, ngx_strlen(purpose));
    ca_entry_add(e, "consent", ctx->has_claims ? ctx->claims->jti : "",
                 ctx->has_claims ? ngx_strlen(ctx->claims->jti) : 0);
    ca_entry_add(e, "mode", ctx->verify ? "verify" : "query",
                 ctx->verify ? 6 : 5);
    ca_entry_add(e, "detail", ctx->want_raw ? "raw" : "masked",
                 ctx->want_raw ? 3 : 6);
    if (ctx->report) {
        ca_entry_add(e, "decision", "report", 6);
    } else if (ctx->reason == CA_OK) {
        ca_entry_add(e, "decision", "allow", 5);
    } else {
        ca_entry_add(e, "decision", "deny", 4);
    }
    ca_entry_add(e, "reason", ca_reason_name(ctx->reason),
                 ngx_strlen(ca_reason_name(ctx->reason)));
    ca_entry_addf(e, "policy", "%s %s", mcf->policy->version,
                  mcf->policy->sha256);

    p = ngx_alloc(sizeof(ngx_http_credit_auth_pending_t), r->connection->log);
    if (p == NULL) {
        return NGX_ERROR;
    }
    p->r = r;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(p);
        return NGX_ERROR;
    }

    rc = ngx_http_credit_auth_audit_send(e,
                                         ngx_http_credit_auth_decision_reply,
                                         p);
    if (rc != NGX_OK) {
        ngx_free(p);
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: decision for request %V not audited",
                      &ctx->rid);
        return NGX_ERROR;
    }

    ctx->pending = p;
    cln->handler = ngx_http_credit_auth_request_gone;
    cln->data = ctx;

    return NGX_OK;
}


static void
ngx_http_credit_auth_outcome_reply(void *data, void *reply)
{
    ngx_http_credit_auth_count_audit(ngx_http_credit_auth_reply_ok(reply)
                                     ? NGX_HTTP_CREDIT_AUTH_AUDIT_ACKED
                                     : NGX_HTTP_CREDIT_AUTH_AUDIT_FAILED);
}


/* Log phase: what was actually sent, for every allowed request. */
ngx_int_t
ngx_http_credit_auth_log_handler(ngx_http_request_t *r)
{
    ca_entry                     *e;
    ngx_uint_t                    i;
    ngx_msec_t                    ms;
    ngx_http_upstream_state_t    *st;
    ngx_http_credit_auth_ctx_t   *ctx;
    ngx_http_credit_auth_audit_t *au = &ngx_http_credit_auth_audit;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED) {
        return NGX_OK;
    }

    e = ngx_palloc(r->pool, sizeof(ca_entry));
    if (e == NULL) {
        return NGX_OK;
    }

    ms = 0;
    if (r->upstream_states) {
        st = r->upstream_states->elts;
        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (st[i].response_time != (ngx_msec_t) -1) {
                ms += st[i].response_time;
            }
        }
    }

    ca_entry_init(e, "outcome", ngx_http_credit_auth_now_ms(), au->gw);
    ngx_http_credit_auth_add_str(e, "rid", &ctx->rid);
    ca_entry_addf(e, "status", "%u", (unsigned) r->headers_out.status);
    ca_entry_addf(e, "bytes", "%lld", (long long) ctx->bytes_out);
    ca_entry_add(e, "disclosed", ctx->disclosed ? ctx->disclosed : "",
                 ctx->disclosed ? ngx_strlen(ctx->disclosed) : 0);
    ca_entry_add(e, "masked", ctx->masked ? ctx->masked : "",
                 ctx->masked ? ngx_strlen(ctx->masked) : 0);
    ca_entry_addf(e, "withheld", "%zu", ctx->withheld);
    ca_entry_addf(e, "upstream_ms", "%lu", (unsigned long) ms);
    if (ctx->filter_reason != CA_OK) {
        ca_entry_add(e, "reason", ca_reason_name(ctx->filter_reason),
                     ngx_strlen(ca_reason_name(ctx->filter_reason)));
    }

    if (ngx_http_credit_auth_audit_send(e, ngx_http_credit_auth_outcome_reply,
                                        NULL)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: outcome of request %V not audited",
                      &ctx->rid);
    }

    return NGX_OK;
}


static void
ngx_http_credit_auth_checkpoint_handler(ngx_event_t *ev)
{
    ca_entry                       e;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (au->chain.seq == au->checkpointed || ngx_exiting) {
        return;
    }

    if (!ngx_http_credit_auth_redis_ready()) {
        ngx_add_timer(ev, au->mcf->checkpoint_interval);
        return;
    }

    if (ca_checkpoint_build(&au->chain, &e, ngx_http_credit_auth_now_ms(),
                            au->gw, au->mcf->audit_key) != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "credit_auth: cannot sign checkpoint");
        return;
    }

    au->checkpointed = au->chain.seq;
    (void) ngx_http_credit_auth_audit_xadd(&e,
                                           ngx_http_credit_auth_outcome_reply,
                                           NULL);
}


ngx_int_t
ngx_http_credit_auth_audit_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    char                           id[96];
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    ngx_memzero(au, sizeof(ngx_http_credit_auth_audit_t));
    au->mcf = mcf;
    au->log = cycle->log;

    ngx_cpystrn((u_char *) au->gw, mcf->gateway_id.data,
                ngx_min(mcf->gateway_id.len + 1, sizeof(au->gw)));

    /* one writer = one worker process incarnation */
    ngx_snprintf((u_char *) id, sizeof(id) - 1, "%s/%P/%L%Z", au->gw,
                 ngx_pid, (int64_t) ngx_http_credit_auth_now_ms());
    ca_chain_init(&au->chain, id);

    au->checkpoint.handler = ngx_http_credit_auth_checkpoint_handler;
    au->checkpoint.log = cycle->log;
    au->checkpoint.data = au;
    au->checkpoint.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_credit_auth_audit_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (au->checkpoint.timer_set) {
        ngx_del_timer(&au->checkpoint);
    }
}
