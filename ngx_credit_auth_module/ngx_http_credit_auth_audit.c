/*
 * The audit entries of a request (contract §7): its decision, written before
 * anything goes upstream, and its outcome, in the log phase.  This file
 * builds the entries' fields; the worker's writer (…_writer.c, on
 * lib/audit/auditwriter.h) seals, sends and spools them.
 *
 * A request whose decision entry is on its way waits like one waiting for
 * an auth_request subrequest: the access handler returns NGX_DONE with the
 * request held (…_access.c), the writer's answer settles ctx->audit and
 * wakes the request (…_ctx.c); the access handler then reads the answer.
 * ctx->audit is written here only.
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
          ((u_char *) w - offsetof(ngx_http_credit_auth_ctx_t, audit.waiter));
    ctx->audit.settled = 1;
    ctx->audit.outcome = (ngx_uint_t) outcome;
    ctx->audit.reason = reason;
    ngx_http_credit_auth_wake(ctx);
}


/*
 * Whether the decision entry still waits: for the writer's answer, or,
 * parked, for the worker's connection (woken by …_ctx.c when the attempt
 * ends; then ctx->audit.parked says: ask again).
 */
ngx_uint_t
ngx_http_credit_auth_audit_waiting(ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->audit.parked) {
        return ctx->hold.conn.queued;
    }
    return !ctx->audit.settled;
}


/* No answer will come (the worker stops at once): an entry sent is lost
 * (503); one parked for the connection is asked again, not parked again,
 * and refused or spooled then. */
void
ngx_http_credit_auth_audit_abandon(ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->state != NGX_HTTP_CREDIT_AUTH_WAITING
        || !ngx_http_credit_auth_audit_waiting(ctx))
    {
        return;
    }

    ngx_http_credit_auth_redis_unwait(&ctx->hold.conn);
    ctx->audit.waited = 1;

    if (ctx->audit.waiter.job == NULL) {
        ctx->audit.parked = 1;
        return;
    }

    ngx_http_credit_auth_writer_detach(&ctx->audit.waiter);
    ctx->audit.outcome = CA_AW_LOST;
    ctx->audit.settled = 1;
}


static void
ngx_http_credit_auth_request_gone(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    ngx_http_credit_auth_writer_detach(&ctx->audit.waiter);
    ngx_http_credit_auth_redis_unwait(&ctx->hold.conn);
}


/*
 * What the request's entries say, in the engine's terms: which field
 * holds what, in which order, is the audit schema's
 * (lib/audit/auditschema.h).
 */
static void
ngx_http_credit_auth_audit_facts(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_audit_facts *f)
{
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    ngx_memzero(f, sizeof(ca_audit_facts));
    f->ts = ngx_http_credit_auth_now_ms();
    f->gw = (char *) mcf->gateway_id.data;

    f->rid.s = (char *) ctx->rid.data;
    f->rid.len = ctx->rid.len;
    f->bank = ctx->decision.bank ? ctx->decision.bank->code : NULL;
    f->cert_sha256 = ctx->decision.has_cert ? ctx->decision.cert_sha256 : NULL;
    f->ip.s = (char *) r->connection->addr_text.data;
    f->ip.len = r->connection->addr_text.len;
    f->method.s = (char *) ctx->method.data;
    f->method.len = ctx->method.len;
    f->path.s = (char *) r->uri.data;
    f->path.len = r->uri.len;
    f->category = ctx->decision.category ? ctx->decision.category->name : NULL;
    f->enterprise = ctx->decision.uscc;
    f->purpose.s = (char *) ctx->decision.purpose.data;
    f->purpose.len = ctx->decision.purpose.len;
    f->purpose_code = ctx->decision.purpose_code;
    if (ctx->decision.has_claims) {
        f->jti.s = ctx->decision.claims->jti;
        f->jti.len = ngx_strlen(ctx->decision.claims->jti);
    }
    f->verify = ctx->decision.verify;
    f->raw = ctx->decision.want_raw;
    f->report = ctx->report;
    f->reason = ctx->reason;
    f->policy.s = (char *) mcf->policy_field.data;
    f->policy.len = mcf->policy_field.len;
    f->checks = ctx->decision.checks;
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
 * charges a verification's budget per verify field (contract §2.1) atomically
 * with the write, in this order, and writes the variant the first refusal
 * chooses.  Only an allow counts and charges.  The consent is the issuing
 * enterprise's (contract §3, v3): every key is per (iss, jti), and a
 * revocation written under the jti alone before v3 still refuses.
 */
static ngx_int_t
ngx_http_credit_auth_audit_allow(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_entry *e)
{
    char                               revoked[CA_CONSENT_KEY_MAX],
                                       legacy[CA_CONSENT_KEY_MAX],
                                       uses[CA_CONSENT_KEY_MAX],
                                       budget[CA_CONSENT_KEY_MAX];
    size_t                             n, k, nb;
    int64_t                            expire;
    ca_claims                         *c;
    ca_aw_check                        checks[3 + CA_CHECKS_MAX];
    ca_check_use                       spent[CA_CHECKS_MAX];
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);
    c = ctx->decision.claims;
    expire = ngx_http_credit_auth_expire_at(c->exp,
                                            mcf->policy->token.leeway);
    ngx_memzero(checks, sizeof(checks));

    /* iss is a USCC and jti at most 64 characters: they always fit */
    (void) ca_consent_key(revoked, sizeof(revoked), "revoked", c->iss,
                          c->jti);
    (void) ca_consent_key(legacy, sizeof(legacy), "revoked", NULL, c->jti);
    (void) ca_consent_key(uses, sizeof(uses), "uses", c->iss, c->jti);
    (void) ca_consent_key(budget, sizeof(budget), "vbudget", c->iss, c->jti);

    checks[0].op = 'E';
    checks[0].key = revoked;
    checks[0].reason = CA_CONSENT_REVOKED;
    checks[1].op = 'E';
    checks[1].key = legacy;
    checks[1].reason = CA_CONSENT_REVOKED;
    n = 2;

    if (c->max_uses > 0) {
        checks[n].op = 'C';
        checks[n].key = uses;
        checks[n].by = 1;
        checks[n].max = c->max_uses;
        checks[n].expire_at = expire;
        checks[n].reason = CA_CONSENT_EXHAUSTED;
        n++;
    }

    nb = (ctx->decision.verify && ctx->decision.checks)
         ? ca_checks_budget(ctx->decision.checks, spent) : 0;
    for (k = 0; k < nb; k++) {
        checks[n].op = 'C';
        checks[n].key = budget;
        checks[n].field = spent[k].field;
        checks[n].by = spent[k].count;
        checks[n].max = ctx->decision.category->verify_budget;
        checks[n].expire_at = expire;
        checks[n].reason = CA_VERIFICATION_BUDGET_EXHAUSTED;
        n++;
    }

    return ngx_http_credit_auth_writer_decide(e,
                                              ctx->report ? "report" : "deny",
                                              checks, n, &ctx->audit.waiter);
}


/*
 * The decision entry.  NGX_AGAIN: wait (…_audit_waiting() says until
 * when); NGX_OK: durably spooled, decided now; NGX_ERROR: no audit.
 */
ngx_int_t
ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_int_t                          rc;
    ca_entry                          *e;
    ngx_uint_t                         candidate;
    ca_audit_facts                     f;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    if (!ctx->audit.cleanup) {
        /* once: a decision parked for the connection comes here again */
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
        cln->handler = ngx_http_credit_auth_request_gone;
        cln->data = ctx;
        ctx->audit.cleanup = 1;
        ctx->audit.waiter.handler = ngx_http_credit_auth_settled;
    }
    ctx->audit.settled = 0;
    ctx->audit.parked = 0;

    candidate = (ctx->reason == CA_OK && ctx->decision.has_claims);

    /*
     * A worker just started, or Redis just came back: wait for one
     * handshake (at most connect_timeout) rather than refuse an allow, or
     * answer 503 for a refusal that has no spool to go to.
     */
    if ((candidate || mcf->spool_path.len == 0)
        && !ngx_http_credit_auth_redis_ready())
    {
        rc = NGX_DECLINED;
        if (!ctx->audit.waited) {
            ctx->audit.waited = 1;
            rc = ngx_http_credit_auth_redis_wait(&ctx->hold.conn);
            if (rc == NGX_AGAIN) {
                ctx->audit.parked = 1;
                return NGX_AGAIN;
            }
        }
        if (rc != NGX_OK && candidate) {
            ctx->reason = CA_REVOCATION_UNAVAILABLE;
            candidate = 0;
        }
    }

    e = &ngx_http_credit_auth_entry;
    ngx_http_credit_auth_audit_facts(r, ctx, &f);
    if (ca_audit_build(e, CA_EV_DECISION, &f) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "credit_auth: the decision entry of request %V "
                      "cannot be built", &ctx->rid);
        return NGX_ERROR;
    }

    if (candidate) {
        rc = ngx_http_credit_auth_audit_allow(r, ctx, e);
        if (rc == NGX_AGAIN) {
            ctx->audit.decided = 1;
        }
        return rc;
    }

    rc = ngx_http_credit_auth_writer_final(e, &ctx->audit.waiter);
    if (rc != NGX_ERROR && (ctx->reason == CA_OK || ctx->report)) {
        ctx->audit.decided = 1;
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
    ca_entry                    *e;
    ngx_uint_t                   i;
    ngx_msec_t                   ms;
    ca_audit_facts               f;
    ngx_http_upstream_state_t   *st;
    ngx_http_credit_auth_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || !ctx->audit.decided) {
        return NGX_OK;
    }

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

    ngx_http_credit_auth_audit_facts(r, ctx, &f);
    f.status = r->headers_out.status;
    f.bytes = ctx->response.bytes_out;
    f.disclosed = ctx->response.disclosed;
    f.masked = ctx->response.masked;
    f.withheld = ctx->response.withheld;
    f.upstream_ms = ms;
    f.tally = ctx->response.tally;
    if (ctx->filter_reason != CA_OK
        || ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED)
    {
        f.refused = ctx->filter_reason != CA_OK ? ctx->filter_reason
                                                : ctx->reason;
    }
    /* which answer became upstream_invalid (docs/audit-format.md) */
    f.cause = ctx->cause;

    if (ca_audit_build(e, CA_EV_OUTCOME, &f) != 0
        || ngx_http_credit_auth_writer_final(e, NULL) == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: outcome of request %V not audited",
                      &ctx->rid);
    }

    return NGX_OK;
}
