/*
 * The audit entries of a request (SPEC §7): its decision, written before
 * anything goes upstream, and its outcome, in the log phase.  This file
 * builds the entries' fields; the worker's writer (…_writer.c, on
 * lib/audit/auditwriter.h) seals, sends and spools them.
 *
 * A request whose decision entry is on its way waits like one waiting for
 * an auth_request subrequest: the access handler returns NGX_DONE with the
 * request held (…_access.c), the writer's answer sets ctx->wait.done and
 * wakes the request (…_ctx.c); the access handler then reads the answer.
 */
#include "ngx_http_credit_auth.h"


/* Redis EXPIREAT refuses times past this (and a use counter needs none
 * later): year 9999. */
#define NGX_HTTP_CREDIT_AUTH_EXPIRE_MAX  253402300799LL


/*
 * The entry being built: the writer copies what it keeps before returning,
 * and a request resumes only from a posted event, so one per worker will
 * do; from the request pool it was two 9 KiB mallocs per request.
 */
static ca_entry     ngx_http_credit_auth_entry;


static int64_t
ngx_http_credit_auth_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


static void
ngx_http_credit_auth_answer(ngx_http_credit_auth_ctx_t *ctx,
    ngx_uint_t outcome, ca_reason reason)
{
    ctx->wait.done = 1;
    ctx->wait.outcome = outcome;
    ctx->wait.reason = reason;
    ngx_http_credit_auth_wake(ctx);
}


/*
 * The writer has settled the decision entry.  Runs inside a Redis reply:
 * the request resumes from a posted event, so that nothing it seals next
 * (its outcome) overtakes entries still being settled.
 */
static void
ngx_http_credit_auth_settled(ngx_http_credit_auth_waiter_t *w, int outcome,
    ca_reason reason)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = (ngx_http_credit_auth_ctx_t *)
          ((u_char *) w - offsetof(ngx_http_credit_auth_ctx_t, wait.waiter));
    ngx_http_credit_auth_answer(ctx, (ngx_uint_t) outcome, reason);
}


/* The connection is up, or the attempt failed: the parked decision goes
 * again. */
static void
ngx_http_credit_auth_reconnected(ngx_http_credit_auth_redis_waiter_t *w)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = (ngx_http_credit_auth_ctx_t *)
          ((u_char *) w - offsetof(ngx_http_credit_auth_ctx_t, conn));
    ngx_http_credit_auth_answer(ctx, NGX_HTTP_CREDIT_AUTH_AUDIT_RETRY, CA_OK);
}


static void
ngx_http_credit_auth_request_gone(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    ngx_http_credit_auth_writer_detach(&ctx->wait.waiter);
    ngx_http_credit_auth_redis_unwait(&ctx->conn);
}


static void
ngx_http_credit_auth_add_str(ca_entry *e, const char *name, ngx_str_t *s)
{
    ca_entry_add(e, name, s->len ? (char *) s->data : "", s->len);
}


/* Fields of the decision entry up to `detail`. */
static void
ngx_http_credit_auth_decision_fields(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_entry *e)
{
    char                               cert[65];
    const char                        *purpose;
    char                               consent[CA_CONSENT_ID_MAX + 1];
    ngx_str_t                          ip;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    ca_entry_init(e, "decision", ngx_http_credit_auth_now_ms(),
                  (char *) mcf->gateway_id.data);
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
    ngx_http_credit_auth_add_str(e, "method", &ctx->method);

    /*
     * Never a personal identifier in the audit (SPEC §7): a path is
     * recorded only once it matched a route (literal segments and a valid
     * USCC); a purpose only once the policy knows it.
     */
    if (ctx->category && ctx->uscc[0]) {
        ngx_http_credit_auth_add_str(e, "path", &r->uri);
    } else {
        ca_entry_add(e, "path", "", 0);
    }
    ca_entry_add(e, "category", ctx->category ? ctx->category->name : "",
                 ctx->category ? ngx_strlen(ctx->category->name) : 0);
    ca_entry_add(e, "enterprise", ctx->uscc, ngx_strlen(ctx->uscc));

    purpose = "";
    if (ctx->purpose.len && ctx->purpose.len <= CA_CODE_MAX) {
        purpose = ctx->purpose_code[0] ? ctx->purpose_code : "(unknown)";
    }
    ca_entry_add(e, "purpose", purpose, ngx_strlen(purpose));
    consent[0] = '\0';
    if (ctx->has_claims) {
        ca_audit_consent_id(ctx->claims->jti, ngx_strlen(ctx->claims->jti),
                            consent);
    }
    ca_entry_add(e, "consent", consent, ngx_strlen(consent));
    ca_entry_add(e, "mode", ctx->verify ? "verify" : "query",
                 ctx->verify ? 6 : 5);
    ca_entry_add(e, "detail", ctx->want_raw ? "raw" : "masked",
                 ctx->want_raw ? 3 : 6);
}


/* The use counter lives as long as the token can be used; exp + leeway
 * saturates rather than overflow (exp may be near INT64_MAX). */
static int64_t
ngx_http_credit_auth_expire_at(int64_t exp, int64_t leeway)
{
    if (exp > NGX_HTTP_CREDIT_AUTH_EXPIRE_MAX - leeway) {
        return NGX_HTTP_CREDIT_AUTH_EXPIRE_MAX;
    }
    return exp + leeway;
}


/*
 * An allow candidate: the script checks revocation, counts the use and
 * charges a verification's budget per verify field (SPEC §2.1) atomically
 * with the write, in this order, and writes the variant the first refusal
 * chooses.  Only an allow counts and charges.
 */
static ngx_int_t
ngx_http_credit_auth_audit_allow(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_entry *e)
{
    char                               revoked[128], uses[128], budget[128];
    size_t                             n, k, nb;
    int64_t                            expire;
    ca_aw_check                        checks[2 + CA_CHECKS_MAX];
    ca_check_use                       spent[CA_CHECKS_MAX];
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);
    expire = ngx_http_credit_auth_expire_at(ctx->claims->exp,
                                            mcf->policy->token.leeway);
    ngx_memzero(checks, sizeof(checks));

    ngx_snprintf((u_char *) revoked, sizeof(revoked) - 1,
                 "credit:revoked:%s%Z", ctx->claims->jti);
    checks[0].op = 'E';
    checks[0].key = revoked;
    checks[0].reason = CA_CONSENT_REVOKED;
    n = 1;

    if (ctx->claims->max_uses > 0) {
        ngx_snprintf((u_char *) uses, sizeof(uses) - 1, "credit:uses:%s%Z",
                     ctx->claims->jti);
        checks[n].op = 'C';
        checks[n].key = uses;
        checks[n].by = 1;
        checks[n].max = ctx->claims->max_uses;
        checks[n].expire_at = expire;
        checks[n].reason = CA_CONSENT_EXHAUSTED;
        n++;
    }

    nb = (ctx->verify && ctx->checks) ? ca_checks_budget(ctx->checks, spent)
                                      : 0;
    ngx_snprintf((u_char *) budget, sizeof(budget) - 1,
                 "credit:vbudget:%s%Z", ctx->claims->jti);
    for (k = 0; k < nb; k++) {
        checks[n].op = 'C';
        checks[n].key = budget;
        checks[n].field = spent[k].field;
        checks[n].by = spent[k].count;
        checks[n].max = ctx->category->verify_budget;
        checks[n].expire_at = expire;
        checks[n].reason = CA_VERIFICATION_BUDGET_EXHAUSTED;
        n++;
    }

    return ngx_http_credit_auth_writer_decide(e,
                                              ctx->report ? "report" : "deny",
                                              checks, n, &ctx->wait.waiter);
}


/*
 * The decision entry.  NGX_AGAIN: wait (ctx->wait.done says when);
 * NGX_OK: durably spooled, decided now; NGX_ERROR: no audit.
 */
ngx_int_t
ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t                          rc;
    ca_entry                          *e;
    ngx_uint_t                         candidate;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    if (!ctx->wait.cleanup) {
        /* once: a decision parked for the connection comes here again */
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
        cln->handler = ngx_http_credit_auth_request_gone;
        cln->data = ctx;
        ctx->wait.cleanup = 1;
        ctx->wait.waiter.handler = ngx_http_credit_auth_settled;
    }
    ctx->wait.done = 0;

    candidate = (ctx->reason == CA_OK && ctx->has_claims);

    /*
     * A worker just started, or Redis just came back: wait for one
     * handshake (at most connect_timeout) rather than refuse an allow, or
     * answer 503 for a refusal that has no spool to go to.
     */
    if ((candidate || mcf->spool_path.len == 0)
        && !ngx_http_credit_auth_redis_ready())
    {
        rc = NGX_DECLINED;
        if (!ctx->wait.waited) {
            ctx->wait.waited = 1;
            ctx->conn.handler = ngx_http_credit_auth_reconnected;
            rc = ngx_http_credit_auth_redis_wait(&ctx->conn);
            if (rc == NGX_AGAIN) {
                return NGX_AGAIN;
            }
        }
        if (rc != NGX_OK && candidate) {
            ctx->reason = CA_REVOCATION_UNAVAILABLE;
            candidate = 0;
        }
    }

    e = &ngx_http_credit_auth_entry;
    ngx_http_credit_auth_decision_fields(r, ctx, e);
    ca_entry_add(e, "decision", ctx->report ? "report"
                 : ctx->reason == CA_OK ? "allow" : "deny",
                 ctx->report ? 6 : ctx->reason == CA_OK ? 5 : 4);
    ca_entry_add(e, "reason", ca_reason_name(ctx->reason),
                 ngx_strlen(ca_reason_name(ctx->reason)));
    ngx_http_credit_auth_add_str(e, "policy", &mcf->policy_field);

    if (candidate) {
        rc = ngx_http_credit_auth_audit_allow(r, ctx, e);
        if (rc == NGX_AGAIN) {
            ctx->decided = 1;
        }
        return rc;
    }

    rc = ngx_http_credit_auth_writer_final(e, &ctx->wait.waiter);
    if (rc != NGX_ERROR && (ctx->reason == CA_OK || ctx->report)) {
        ctx->decided = 1;
    }

    if (rc == NGX_OK && ctx->report) {
        /* report mode discloses on a spooled decision: make it durable
         * before anything goes upstream */
        if (ngx_http_credit_auth_writer_sync() != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return rc;
}


/* Log phase: what was actually sent, for every allowed request. */
ngx_int_t
ngx_http_credit_auth_log_handler(ngx_http_request_t *r)
{
    ca_entry                          *e;
    ca_reason                          why;
    ngx_uint_t                         i;
    ngx_msec_t                         ms;
    ngx_http_upstream_state_t         *st;
    ngx_http_credit_auth_ctx_t        *ctx;
    ngx_http_credit_auth_main_conf_t  *mcf;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || !ctx->decided) {
        return NGX_OK;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);
    e = &ngx_http_credit_auth_entry;

    ms = 0;
    if (r->upstream_states) {
        st = r->upstream_states->elts;
        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (st[i].response_time != (ngx_msec_t) -1) {
                ms += st[i].response_time;
            }
        }
        if (r->upstream_states->nelts) {
            /* the platform was asked: its time, as the outcome says */
            ngx_http_credit_auth_observe(NGX_HTTP_CREDIT_AUTH_HIST_UPSTREAM,
                                         (uint64_t) ms * 1000);
        }
    }

    ca_entry_init(e, "outcome", ngx_http_credit_auth_now_ms(),
                  (char *) mcf->gateway_id.data);
    ngx_http_credit_auth_add_str(e, "rid", &ctx->rid);
    ca_entry_add_uint(e, "status", r->headers_out.status);
    ca_entry_add_int(e, "bytes", ctx->bytes_out);
    ca_entry_add(e, "disclosed", ctx->disclosed ? ctx->disclosed : "",
                 ctx->disclosed ? ngx_strlen(ctx->disclosed) : 0);
    ca_entry_add(e, "masked", ctx->masked ? ctx->masked : "",
                 ctx->masked ? ngx_strlen(ctx->masked) : 0);
    ca_entry_add_uint(e, "withheld", ctx->withheld);
    ca_entry_add_uint(e, "upstream_ms", ms);
    if (ctx->filter_reason != CA_OK
        || ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED)
    {
        why = ctx->filter_reason != CA_OK ? ctx->filter_reason : ctx->reason;
        ca_entry_add(e, "reason", ca_reason_name(why),
                     ngx_strlen(ca_reason_name(why)));
    }
    if (ctx->cause) {
        /* which answer became upstream_invalid (docs/audit-format.md) */
        ca_entry_add(e, "cause", ctx->cause, ngx_strlen(ctx->cause));
    }

    if (ngx_http_credit_auth_writer_final(e, NULL) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: outcome of request %V not audited",
                      &ctx->rid);
    }

    return NGX_OK;
}
