/*
 * credit_auth_revocation_endpoint (contract §3 v3, docs/contract.md §3): the
 * enterprise withdraws its own consent, without asking the platform.
 *
 * A POST of a compact JWS, typ revocation+jwt, signed by a key registered
 * to the enterprise (key file or registry: the consent token's own
 * verifier, …_decide.c), claims iss, jti and iat; or, with
 * platform_keys=, one signed by the platform's key naming the enterprise
 * in sub.  The key may be asked of the registry (…_keyreg.c); then the
 * revocation is put in force and audited (…_revoke.c).  200 only once the
 * revocation is in force and its entry acknowledged or spooled; a refusal
 * is problem+json; with Redis away nothing is written (503
 * revocation_unavailable).
 *
 * The request's ctx is the module's own ctx type, kept as the access
 * phase keeps it (…_ctx.c), so that it waits as a bank's request does:
 * held once (ngx_http_credit_auth_hold), woken by one posted event (never
 * inside a Redis callback) whose handler here runs the steps again, not
 * the phases.  It waits for a registry key (command_timeout), for a
 * connection being made (the connection's waiter, once: connect_timeout),
 * for the revocation and its entry (command_timeout each), never longer;
 * an exiting worker stays for it (…_redis.c), and one told to stop at
 * once answers it before it goes (…_access.c).  Its state is REFUSED
 * except while it waits for a key (KEY_WAIT, as the lookup expects),
 * which makes the response filters treat whatever is answered here as the
 * module's own (X-Request-Id, Cache-Control: no-store) and keeps the
 * bank-side machinery (decision, outcome, nginx's own refusals) away from
 * it.
 */
#include "ngx_http_credit_auth.h"
#include <core/core.h>


/* a compact JWS, and room for the line break a client may add */
#define NGX_HTTP_CREDIT_AUTH_WITHDRAW_MAX    (CA_TOKEN_MAX + 256)


typedef enum {
    NGX_HTTP_CREDIT_AUTH_WD_VERIFY = 0,
    NGX_HTTP_CREDIT_AUTH_WD_REVOKE,
    NGX_HTTP_CREDIT_AUTH_WD_DONE                /* ctx.reason: the end */
} ngx_http_credit_auth_wd_step_e;


typedef struct ngx_http_credit_auth_wd_s  ngx_http_credit_auth_wd_t;

struct ngx_http_credit_auth_wd_s {
    ngx_http_credit_auth_ctx_t      ctx;        /* first: the module ctx */
    ngx_http_request_t             *r;
    ngx_str_t                       token;
    ca_claims                       claims;
    ngx_http_credit_auth_wd_step_e  step;
    void                           *revoking;   /* …_revoke.c's job */
    const char                     *enterprise; /* whose consent */
    const char                     *by;         /* who withdrew it */
    unsigned                        parked:1;   /* for the connection */
};


static void ngx_http_credit_auth_wd_run(ngx_http_credit_auth_wd_t *wd);
static void ngx_http_credit_auth_wd_body(ngx_http_request_t *r);


static void
ngx_http_credit_auth_wd_free_keys(void *data)
{
    ca_keyset_free(data);
}


/* credit_auth_revocation_endpoint [platform_keys=FILE]; (a location) */
char *
ngx_http_credit_auth_revocation_endpoint(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_auth_loc_conf_t   *lcf = conf;

    ca_error                           err;
    ngx_str_t                         *value, file;
    ngx_pool_cleanup_t                *cln;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    if (lcf->revocation_endpoint) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (cf->args->nelts == 2) {
        /* the platform's own keys: its revocations are audited too */
        if (ngx_strncmp(value[1].data, "platform_keys=", 14) != 0) {
            return "takes only platform_keys=FILE";
        }
        file.data = value[1].data + 14;
        file.len = value[1].len - 14;
        if (file.len == 0
            || ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK)
        {
            return "needs a file name in platform_keys=";
        }
        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }
        lcf->platform_keys = ca_keyset_load((char *) file.data, &err);
        if (lcf->platform_keys == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid platform "
                               "keys: %s", err.text);
            return NGX_CONF_ERROR;
        }
        cln->handler = ngx_http_credit_auth_wd_free_keys;
        cln->data = lcf->platform_keys;
    }

    /* a withdrawal is no bank request: the access phase stays out, even
     * under a server-wide "credit_auth on" */
    if (lcf->mode != NGX_CONF_UNSET_UINT
        && lcf->mode != NGX_HTTP_CREDIT_AUTH_OFF)
    {
        return "cannot share a location with \"credit_auth on|report\"";
    }
    lcf->mode = NGX_HTTP_CREDIT_AUTH_OFF;
    lcf->revocation_endpoint = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_credit_auth_withdraw_handler;

    /* the writer, the Redis connection and the keys: as for credit_auth */
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_credit_auth_module);
    mcf->used = 1;

    return NGX_CONF_OK;
}


/* The client is gone: nothing of it is left waiting.  The ctx's own
 * cleanup drops the hold and a posted wake (…_ctx.c), the key lookup's its
 * place in a fetch (…_keyreg.c); the revocation goes on alone. */
static void
ngx_http_credit_auth_wd_gone(void *data)
{
    ngx_http_credit_auth_wd_t  *wd = data;

    if (wd->revoking) {
        ngx_http_credit_auth_revoke_detach(wd->revoking);
        wd->revoking = NULL;
    }
    ngx_http_credit_auth_redis_unwait(&wd->ctx.hold.conn);
}


/* A wait under way: a run that finds one changes nothing. */
static ngx_uint_t
ngx_http_credit_auth_wd_waiting(ngx_http_credit_auth_wd_t *wd)
{
    return (wd->ctx.state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT
            && ngx_http_credit_auth_key_waiting(&wd->ctx))
           || wd->ctx.hold.conn.queued
           || wd->revoking != NULL;
}


/* A wait is over (a key, the connection, the revocation): the steps go
 * on, the hold released here. */
static void
ngx_http_credit_auth_wd_wake(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_request_t         *r = ev->data;
    ngx_http_credit_auth_wd_t  *wd;

    c = r->connection;
    wd = (ngx_http_credit_auth_wd_t *) ngx_http_credit_auth_find_ctx(r);

    if (ngx_http_credit_auth_wd_waiting(wd)) {
        return;
    }
    ngx_http_credit_auth_resume(r, &wd->ctx);
    ngx_http_credit_auth_wd_run(wd);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_credit_auth_withdraw_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc;
    ngx_pool_cleanup_t         *cln;
    ngx_http_credit_auth_wd_t  *wd;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    wd = ngx_pcalloc(r->pool, sizeof(ngx_http_credit_auth_wd_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (wd == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    cln->handler = ngx_http_credit_auth_wd_gone;
    cln->data = wd;

    wd->r = r;
    if (ngx_http_credit_auth_keep_ctx(r, &wd->ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    /* woken, it runs its steps, not the phases */
    ngx_http_credit_auth_on_wake(&wd->ctx, ngx_http_credit_auth_wd_wake);
    wd->ctx.state = NGX_HTTP_CREDIT_AUTH_REFUSED;
    wd->ctx.method = r->method_name;

    if (ngx_http_credit_auth_set_request_id(r, &wd->ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        ngx_http_credit_auth_detail(&wd->ctx, "method %V: a withdrawal is "
                                    "sent with POST%Z", &r->method_name);
        wd->ctx.reason = CA_REQUEST_INVALID;

    } else if (r->headers_in.content_length_n
               > NGX_HTTP_CREDIT_AUTH_WITHDRAW_MAX)
    {
        ngx_http_credit_auth_detail(&wd->ctx, "a withdrawal is one compact "
                                    "JWS of at most %d bytes%Z",
                                    CA_TOKEN_MAX);
        wd->ctx.reason = CA_TOKEN_MALFORMED;
    }

    if (wd->ctx.reason != CA_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }
        return ngx_http_credit_auth_send_problem(r, &wd->ctx,
                                                 wd->ctx.reason);
    }

    r->request_body_in_single_buf = 1;
    rc = ngx_http_read_client_request_body(r, ngx_http_credit_auth_wd_body);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* The body, in one piece, with the white space around the JWS trimmed;
 * empty when it is not one buffer in memory (larger than configured). */
static void
ngx_http_credit_auth_wd_body(ngx_http_request_t *r)
{
    u_char                     *p, *last;
    ngx_buf_t                  *b;
    ngx_http_credit_auth_wd_t  *wd;

    wd = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);

    if (r->request_body && !r->request_body->temp_file
        && r->request_body->bufs && r->request_body->bufs->next == NULL)
    {
        b = r->request_body->bufs->buf;
        p = b->pos;
        last = b->last;
        while (p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                            || *p == '\n'))
        {
            p++;
        }
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'
                            || last[-1] == '\r' || last[-1] == '\n'))
        {
            last--;
        }
        wd->token.data = p;
        wd->token.len = last - p;
    }

    ngx_http_credit_auth_wd_run(wd);
}


/* The answer: 200 {"revoked", "enterprise", "by", "at"}, or the
 * refusal. */
static void
ngx_http_credit_auth_wd_finish(ngx_http_credit_auth_wd_t *wd,
    ca_reason reason)
{
    char                 at[48];
    ngx_int_t            rc;
    ngx_buf_t           *b;
    ngx_chain_t          out;
    ngx_time_t          *tp;
    ngx_http_request_t  *r = wd->r;

    if (reason != CA_OK) {
        /* a step's refusal: its detail is in ctx->detail */
        wd->ctx.reason = reason;
        ngx_http_finalize_request(r,
            ngx_http_credit_auth_send_problem(r, &wd->ctx, reason));
        return;
    }

    tp = ngx_timeofday();
    ca_time_format((int64_t) tp->sec * 1000 + tp->msec, at, sizeof(at));

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "credit_auth: consent \"%s\" of %s withdrawn by the %s, "
                  "request %V", wd->claims.jti, wd->enterprise, wd->by,
                  &wd->ctx.rid);

    /* jti, the USCC and the time need no JSON escaping */
    b = ngx_create_temp_buf(r->pool, 128 + CA_JTI_MAX + sizeof(at));
    if (b == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
    b->last = ngx_sprintf(b->pos, "{\"revoked\":\"%s\",\"enterprise\":"
                          "\"%s\",\"by\":\"%s\",\"at\":\"%s\"}\n",
                          wd->claims.jti, wd->enterprise, wd->by, at);
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    out.buf = b;
    out.next = NULL;
    ngx_http_finalize_request(r, ngx_http_output_filter(r, &out));
}


/* 1. the signature, the key (perhaps from the registry), iat. */
static ca_reason
ngx_http_credit_auth_wd_verify(ngx_http_credit_auth_wd_t *wd)
{
    char                               kid[CA_KID_MAX + 1], why[128];
    size_t                             len;
    ca_reason                          reason;
    ngx_http_credit_auth_loc_conf_t   *lcf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(wd->r, ngx_http_credit_auth_module);

    if (wd->token.len == 0) {
        ngx_http_credit_auth_detail(&wd->ctx, "the body must be one compact "
                                    "JWS of at most %d bytes%Z",
                                    CA_TOKEN_MAX);
        return CA_TOKEN_MALFORMED;
    }

    lcf = ngx_http_get_module_loc_conf(wd->r, ngx_http_credit_auth_module);
    if (lcf->platform_keys != NULL
        && ca_token_kid((char *) wd->token.data, wd->token.len, kid, &len)
           == 0
        && ca_keyset_find(lcf->platform_keys, kid, len) != NULL)
    {
        /* the platform's revocation: its own key, sub the enterprise */
        reason = ca_platform_withdrawal_verify((char *) wd->token.data,
                                               wd->token.len,
                                               lcf->platform_keys,
                                               &mcf->policy->token,
                                               &wd->claims, wd->ctx.detail,
                                               sizeof(wd->ctx.detail));
        wd->enterprise = wd->claims.sub;
        wd->by = "platform";
        goto verified;
    }

    wd->enterprise = wd->claims.iss;
    wd->by = "enterprise";
    wd->ctx.state = NGX_HTTP_CREDIT_AUTH_NEW;
    wd->ctx.detail[0] = '\0';
    reason = ngx_http_credit_auth_verify_jws(wd->r, mcf, &wd->ctx,
                                             &wd->token, ca_withdrawal_verify,
                                             &wd->claims);
    if (wd->ctx.state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT) {
        /* the lookup wakes the request (this file's wake handler);
         * KEY_WAIT meanwhile, as a stopping worker looks for it */
        (void) ngx_http_credit_auth_hold(wd->r, &wd->ctx);
        return CA_OK;
    }
    wd->ctx.state = NGX_HTTP_CREDIT_AUTH_REFUSED;

verified:

    if (reason == CA_REVOCATION_UNAVAILABLE) {
        /* the registry did not answer for the key */
        ngx_cpystrn((u_char *) why, (u_char *) wd->ctx.detail, sizeof(why));
        ngx_http_credit_auth_detail(&wd->ctx, "%s: nothing was withdrawn or "
                                    "written; send the withdrawal again "
                                    "later%Z", why);
    }
    if (reason != CA_OK) {
        return reason;
    }

    reason = ca_withdrawal_check_time(&wd->claims, (int64_t) ngx_time(),
                                      mcf->policy->token.leeway,
                                      wd->ctx.detail, sizeof(wd->ctx.detail));
    if (reason == CA_OK) {
        wd->step = NGX_HTTP_CREDIT_AUTH_WD_REVOKE;
    }
    return reason;
}


static void
ngx_http_credit_auth_wd_revoked(void *data, ca_reason reason)
{
    ngx_http_credit_auth_wd_t  *wd = data;

    wd->revoking = NULL;
    wd->ctx.reason = reason;
    if (reason == CA_REVOCATION_UNAVAILABLE) {
        /* not acknowledged in time or not on the durability configured:
         * Redis may still apply it, which a second withdrawal makes sure
         * of, audited */
        ngx_http_credit_auth_detail(&wd->ctx, "Redis did not acknowledge "
                                    "the revocation as durable in time (it "
                                    "may still apply it): nothing was "
                                    "audited; send the withdrawal again%Z");

    } else if (reason == CA_AUDIT_UNAVAILABLE) {
        ngx_http_credit_auth_detail(&wd->ctx, "the consent is withdrawn, "
                                    "but its audit entry was not confirmed "
                                    "written: send the withdrawal again%Z");
    }
    wd->step = NGX_HTTP_CREDIT_AUTH_WD_DONE;
    ngx_http_credit_auth_wake(&wd->ctx);
}


/* 2. the revocation, and its entry: until no consent with this jti
 * issued until now can still be valid. */
static ca_reason
ngx_http_credit_auth_wd_revoke(ngx_http_credit_auth_wd_t *wd)
{
    time_t                             until;
    ngx_int_t                          rc;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(wd->r, ngx_http_credit_auth_module);

    if (!ngx_http_credit_auth_redis_ready()) {
        rc = NGX_DECLINED;
        if (!wd->parked) {
            /* a worker just started or Redis just came back: wait for
             * that one attempt (connect_timeout) rather than refuse */
            wd->parked = 1;
            rc = ngx_http_credit_auth_redis_wait(&wd->ctx.hold.conn);
            if (rc == NGX_AGAIN) {
                (void) ngx_http_credit_auth_hold(wd->r, &wd->ctx);
                return CA_OK;
            }
        }
        if (rc != NGX_OK) {
            ngx_http_credit_auth_detail(&wd->ctx, "Redis is not connected: "
                                        "nothing was withdrawn or written; "
                                        "send the withdrawal again later%Z");
            return CA_REVOCATION_UNAVAILABLE;
        }
    }

    until = ngx_time() + (time_t) mcf->policy->token.max_lifetime
            + (time_t) mcf->policy->token.leeway;

    if (ngx_http_credit_auth_revoke(wd->enterprise, wd->claims.jti, wd->by,
                                    until, ngx_http_credit_auth_wd_revoked,
                                    wd, &wd->revoking)
        != NGX_AGAIN)
    {
        ngx_http_credit_auth_detail(&wd->ctx, "Redis did not take the "
                                    "command: nothing was withdrawn or "
                                    "written%Z");
        return CA_REVOCATION_UNAVAILABLE;
    }

    (void) ngx_http_credit_auth_hold(wd->r, &wd->ctx);
    return CA_OK;
}


/*
 * The steps in order, from wherever the request is: each either refuses,
 * goes on at once, or holds the request and returns until woken.
 */
static void
ngx_http_credit_auth_wd_run(ngx_http_credit_auth_wd_t *wd)
{
    ca_reason                       reason;
    ngx_http_credit_auth_wd_step_e  step;

    for ( ;; ) {
        step = wd->step;

        switch (step) {

        case NGX_HTTP_CREDIT_AUTH_WD_VERIFY:
            reason = ngx_http_credit_auth_wd_verify(wd);
            break;

        case NGX_HTTP_CREDIT_AUTH_WD_REVOKE:
            reason = ngx_http_credit_auth_wd_revoke(wd);
            break;

        default: /* NGX_HTTP_CREDIT_AUTH_WD_DONE */
            ngx_http_credit_auth_wd_finish(wd, wd->ctx.reason);
            return;
        }

        if (reason != CA_OK) {
            ngx_http_credit_auth_wd_finish(wd, reason);
            return;
        }

        if (wd->ctx.hold.held) {
            /* woken, this runs again */
            return;
        }

        if (wd->step == step) {
            /* no step stays where it is without waiting */
            ngx_http_credit_auth_wd_finish(wd, CA_REVOCATION_UNAVAILABLE);
            return;
        }
    }
}
