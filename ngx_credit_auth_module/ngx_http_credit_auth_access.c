/*
 * Access phase: who is asking (bank), for what (route, mode, purpose),
 * under which consent (token).  The decision is written to the audit trail
 * and acknowledged before the request may go upstream: no audit, no data.
 */
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ngx_http_credit_auth.h"


static ca_reason ngx_http_credit_auth_decide(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx);
static ca_reason ngx_http_credit_auth_decide_consent(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx);
static ca_reason ngx_http_credit_auth_identify_bank(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx);
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
static ca_reason ngx_http_credit_auth_verify(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx,
    ngx_str_t *token);


static ngx_str_t  ngx_http_credit_auth_single[] = {
    ngx_string("Authorization"),
    ngx_string("X-Credit-Purpose"),
    ngx_string("X-Credit-Detail"),
    ngx_string("X-Request-Id"),
    ngx_null_string
};


#define ngx_http_credit_auth_detail(ctx, ...)                                \
    ngx_snprintf((u_char *) (ctx)->detail, sizeof((ctx)->detail) - 1,        \
                 __VA_ARGS__)[0] = '\0'


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
            if (!ctx->wait.done) {
                return NGX_DONE;
            }
            if (ctx->wait.outcome == NGX_HTTP_CREDIT_AUTH_AUDIT_RETRY) {
                /* parked until Redis connected (or failed to) */
                return ngx_http_credit_auth_commit(r, ctx);
            }
            return ngx_http_credit_auth_audited(r, ctx);

        case NGX_HTTP_CREDIT_AUTH_KEY_WAIT:
            if (ctx->key_waiting) {
                return NGX_DONE;
            }
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
        r->main->count++;
        return NGX_DONE;
    }

    /*
     * A compressed answer cannot be filtered (it would become a 502): ask
     * the platform for identity encoding whatever the bank accepts.
     */
    h = ngx_http_credit_auth_header(r, "Accept-Encoding", 15);
    if (h != NULL) {
        ngx_str_set(&h->value, "identity");
    }

    if (ctx->reason == CA_OK && ctx->verify) {
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
        r->main->count++;
        return NGX_DONE;
    }

    if (rc == NGX_ERROR) {
        /* Neither acknowledged nor spooled (SPEC §7): 503, whatever was
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


/* The audit writer has settled the decision entry (ctx->wait). */
static ngx_int_t
ngx_http_credit_auth_audited(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->wait.outcome == CA_AW_LOST) {
        /* not written and not spooled, or (a decision) revocation not
         * confirmed: 503 whatever was decided */
        ctx->reason = CA_AUDIT_UNAVAILABLE;
        ctx->report = 0;

    } else if (ctx->wait.reason != CA_OK) {
        /* the script chose a refusal: revoked, used up */
        ctx->reason = ctx->wait.reason;
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


static ca_reason
ngx_http_credit_auth_decide(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx)
{
    u_char            *raw_end;
    size_t             raw_len;
    ngx_str_t          token;
    ngx_uint_t         i;
    ca_reason          reason;
    ca_route_result    route;
    ngx_table_elt_t   *h;

    reason = ngx_http_credit_auth_identify_bank(r, mcf, lcf, ctx);
    if (reason != CA_OK) {
        return reason;
    }

    if (r->method == NGX_HTTP_GET) {
        ctx->verify = 0;

    } else if (r->method == NGX_HTTP_POST) {
        ctx->verify = 1;

    } else {
        ngx_http_credit_auth_detail(ctx, "method %V is not GET (query) or "
                                    "POST (verification)%Z",
                                    &r->method_name);
        return CA_REQUEST_INVALID;
    }

    /* Each at most once (SPEC §2): the platform would see the copy that
     * was neither checked nor audited. */
    for (i = 0; ngx_http_credit_auth_single[i].len; i++) {
        if (ngx_http_credit_auth_header_count(r,
                (char *) ngx_http_credit_auth_single[i].data,
                ngx_http_credit_auth_single[i].len) > 1)
        {
            ngx_http_credit_auth_detail(ctx, "the %V header is repeated%Z",
                                        &ngx_http_credit_auth_single[i]);
            return CA_REQUEST_INVALID;
        }
    }

    /*
     * The route is matched on the normalised URI; the upstream receives the
     * client's raw path.  Refuse any request where the two differ (percent
     * encoding, dot segments, merged slashes) so that both see one path.
     */
    if (r->valid_unparsed_uri) {
        raw_end = r->args_start ? r->args_start - 1
                                : r->unparsed_uri.data + r->unparsed_uri.len;
        raw_len = raw_end - r->unparsed_uri.data;
        if (raw_len != r->uri.len
            || ngx_memcmp(r->unparsed_uri.data, r->uri.data, raw_len) != 0)
        {
            ngx_http_credit_auth_detail(ctx, "the path must be sent in "
                                        "canonical form%Z");
            return CA_REQUEST_INVALID;
        }
    }

    route = ca_policy_match_route(mcf->policy, (char *) r->uri.data,
                                  r->uri.len, &ctx->category, ctx->uscc);
    if (route == CA_ROUTE_NONE) {
        ctx->category = NULL;
        return CA_ROUTE_NOT_IN_POLICY;
    }
    if (route == CA_ROUTE_BAD_USCC) {
        ngx_http_credit_auth_detail(ctx, "the enterprise code in the path "
                                    "is not a valid USCC%Z");
        ctx->uscc[0] = '\0';
        return CA_REQUEST_INVALID;
    }

    /* The token comes only from the Authorization header (SPEC §2). */
    h = r->headers_in.authorization;
    if (h == NULL) {
        return CA_TOKEN_MISSING;
    }
    if (h->value.len < 8
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) != 0)
    {
        ngx_http_credit_auth_detail(ctx, "Authorization must use the Bearer "
                                    "scheme%Z");
        return CA_TOKEN_MISSING;
    }

    ctx->claims = ngx_palloc(r->pool, sizeof(ca_claims));
    if (ctx->claims == NULL) {
        return CA_AUDIT_UNAVAILABLE;
    }

    token.data = h->value.data + 7;
    token.len = h->value.len - 7;
    reason = ngx_http_credit_auth_verify(r, mcf, ctx, &token);
    if (reason != CA_OK || ctx->state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT) {
        return reason;
    }
    ctx->has_claims = 1;

    reason = ca_claims_check_time(ctx->claims, (int64_t) ngx_time(),
                                  mcf->policy->token.leeway, ctx->detail,
                                  sizeof(ctx->detail));
    if (reason != CA_OK) {
        return reason;
    }

    h = ngx_http_credit_auth_header(r, "X-Credit-Purpose", 16);
    if (h == NULL || h->value.len == 0) {
        return CA_PURPOSE_MISSING;
    }
    ctx->purpose = h->value;

    /* looked up once: the audit, the counters and $credit_auth_purpose
     * record only a purpose the policy knows */
    ctx->purpose_code[0] = '\0';
    if (h->value.len <= CA_CODE_MAX) {
        ngx_memcpy(ctx->purpose_code, h->value.data, h->value.len);
        ctx->purpose_code[h->value.len] = '\0';
        if (!ca_policy_knows_purpose(mcf->policy, ctx->purpose_code)) {
            ctx->purpose_code[0] = '\0';
        }
    }

    h = ngx_http_credit_auth_header(r, "X-Credit-Detail", 15);
    if (h != NULL) {
        if (h->value.len == 3 && ngx_strncmp(h->value.data, "raw", 3) == 0) {
            ctx->want_raw = 1;

        } else if (!(h->value.len == 6
                     && ngx_strncmp(h->value.data, "masked", 6) == 0))
        {
            ngx_http_credit_auth_detail(ctx, "X-Credit-Detail must be "
                                        "\"masked\" or \"raw\"%Z");
            return CA_REQUEST_INVALID;
        }
    }

    if (ctx->verify) {
        /* the consent checks run once the checks are read */
        return CA_OK;
    }

    return ngx_http_credit_auth_decide_consent(r, mcf, ctx);
}


/*
 * The token alone: from the verified-token cache, or verified now with
 * the key its kid names.  A cached token is still refused once its
 * registry key is revoked.  ctx->state KEY_WAIT: the key is on its way.
 */
static ca_reason
ngx_http_credit_auth_verify(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx,
    ngx_str_t *token)
{
    char           kid[CA_KID_MAX + 1], why[sizeof(ctx->detail)];
    u_char         sha[32];
    size_t         kid_len;
    ngx_int_t      cached;
    ca_reason      reason, key_reason;
    ca_keyset      one;
    const ca_key  *key;

    /* A token verified before (by any worker) costs no signature check;
     * only successes are cached. */
    ca_sha256(token->data, token->len, sha);
    cached = ngx_http_credit_auth_cache_get(sha, ctx->claims);

    if (cached == NGX_OK && !mcf->key_registry) {
        return CA_OK;
    }

    if (cached == NGX_OK) {
        ngx_cpystrn((u_char *) kid, (u_char *) ctx->claims->kid,
                    sizeof(kid));
        kid_len = ngx_strlen(kid);

    } else if (!mcf->key_registry
               || ca_token_kid((char *) token->data, token->len, kid,
                               &kid_len) != 0)
    {
        /* the file alone, or no kid to look up: the verifier says why */
        reason = ca_token_verify((char *) token->data, token->len,
                                 mcf->keys, &mcf->policy->token,
                                 ctx->claims, ctx->detail,
                                 sizeof(ctx->detail));
        if (reason == CA_OK) {
            ngx_http_credit_auth_cache_put(sha, ctx->claims);
        }
        return reason;
    }

    if (ngx_http_credit_auth_key_find(r, ctx, kid, kid_len, &key,
                                      &key_reason)
        == NGX_AGAIN)
    {
        return CA_OK;
    }

    if (cached == NGX_OK) {
        return key ? CA_OK : key_reason;
    }

    /* with no key the verifier still reports an earlier check first */
    ngx_cpystrn((u_char *) why, (u_char *) ctx->detail, sizeof(why));
    one.keys = (ca_key *) key;
    one.n = key ? 1 : 0;
    reason = ca_token_verify((char *) token->data, token->len,
                             key ? &one : NULL, &mcf->policy->token,
                             ctx->claims, ctx->detail, sizeof(ctx->detail));
    if (reason == CA_KID_UNKNOWN && why[0] != '\0') {
        reason = key_reason;
        ngx_cpystrn((u_char *) ctx->detail, (u_char *) why,
                    sizeof(ctx->detail));
    }
    if (reason == CA_OK) {
        ngx_http_credit_auth_cache_put(sha, ctx->claims);
    }
    return reason;
}


/* Purpose limits and the consent's scope against this request. */
static ca_reason
ngx_http_credit_auth_decide_consent(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx)
{
    const char       *purpose;
    ca_reason         reason;
    ca_request_facts  facts;

    if (ctx->purpose.len > CA_CODE_MAX) {
        return CA_PURPOSE_NOT_ALLOWED;
    }
    purpose = ctx->purpose_code;

    /* Codes outside the policy are refused whatever the token says. */
    if (purpose[0] == '\0'
        || !ca_category_allows_purpose(ctx->category, purpose))
    {
        ngx_http_credit_auth_detail(ctx, "the policy does not allow this "
                                    "purpose for category %s%Z",
                                    ctx->category->name);
        return CA_PURPOSE_NOT_ALLOWED;
    }

    if (!ca_bank_allows_purpose(ctx->bank, purpose)) {
        ngx_http_credit_auth_detail(ctx, "the bank is not registered for "
                                    "this purpose%Z");
        return CA_PURPOSE_NOT_ALLOWED;
    }

    ngx_memzero(&facts, sizeof(ca_request_facts));
    facts.bank_code = ctx->bank->code;
    facts.path_uscc = ctx->uscc;
    facts.purpose = purpose;
    facts.category = ctx->category->name;
    facts.mode = ctx->verify ? CA_MODE_VERIFY : CA_MODE_QUERY;
    facts.want_raw = ctx->want_raw;
    facts.raw_allowed = ctx->category->raw_allowed;
    facts.require_cnf = mcf->policy->token.require_cnf;
    facts.cert_sha256 = ctx->has_cert ? ctx->cert_sha256 : NULL;

    reason = ca_claims_check_request(ctx->claims, &facts, ctx->detail,
                                     sizeof(ctx->detail));
    if (reason == CA_OK) {
        ctx->raw = ctx->want_raw && !ctx->verify;
    }

    return reason;
}


/*
 * The bank is the verified client certificate's SHA-256 (SPEC §2, §5):
 * from the TLS session, or, behind a TLS-terminating load balancer, from an
 * RFC 9440 Client-Cert value when credit_auth_client_cert is configured.
 */
static ca_reason
ngx_http_credit_auth_identify_bank(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx)
{
    long                  n;
    X509                 *cert;
    u_char               *der;
    ngx_str_t             v, b64, bin;
    unsigned int          len;

    if (lcf->client_cert) {
        if (ngx_http_complex_value(r, lcf->client_cert, &v) != NGX_OK) {
            return CA_BANK_UNKNOWN;
        }

        /* sf-binary: ":" base64 ":" */
        if (v.len < 3 || v.data[0] != ':' || v.data[v.len - 1] != ':') {
            return CA_BANK_UNKNOWN;
        }
        b64.data = v.data + 1;
        b64.len = v.len - 2;

        /* Strictly one sf-binary item: nginx's decoder would stop at '='
         * and accept whatever follows, e.g. a second certificate. */
        der = ngx_pnalloc(r->pool, b64.len);
        if (der == NULL) {
            return CA_BANK_UNKNOWN;
        }
        n = ca_b64std_decode((char *) b64.data, b64.len, der);
        if (n <= 0) {
            return CA_BANK_UNKNOWN;
        }
        bin.data = der;
        bin.len = n;

        /* No need to parse the DER: bytes that are not the registered
         * certificate cannot have its SHA-256. */
        ca_sha256(bin.data, bin.len, ctx->cert_sha256);
        ctx->has_cert = 1;

    } else {
#if (NGX_HTTP_SSL)
        if (r->connection->ssl == NULL) {
            return CA_BANK_UNKNOWN;
        }

        /* "ssl_verify_client optional" lets unverified peers through */
        if (SSL_get_verify_result(r->connection->ssl->connection)
            != X509_V_OK)
        {
            return CA_BANK_UNKNOWN;
        }

        cert = SSL_get_peer_certificate(r->connection->ssl->connection);
        if (cert == NULL) {
            return CA_BANK_UNKNOWN;
        }

        len = 32;
        if (X509_digest(cert, ca_md_sha256(), ctx->cert_sha256, &len) != 1) {
            X509_free(cert);
            return CA_BANK_UNKNOWN;
        }
        X509_free(cert);
        ctx->has_cert = 1;
#else
        return CA_BANK_UNKNOWN;
#endif
    }

    ctx->bank = ca_banks_find_cert(mcf->banks, ctx->cert_sha256);
    if (ctx->bank == NULL) {
        return CA_BANK_UNKNOWN;
    }

    if (ctx->bank->suspended) {
        return CA_BANK_SUSPENDED;
    }

    return CA_OK;
}


static void
ngx_http_credit_auth_free_checks(void *data)
{
    ca_checks_free(data);
}


static void
ngx_http_credit_auth_body_handler(ngx_http_request_t *r)
{
    u_char                      *p;
    size_t                       len;
    ngx_buf_t                   *b;
    ngx_chain_t                 *cl;
    ngx_pool_cleanup_t          *cln;
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

    ctx->checks = ngx_pcalloc(r->pool, sizeof(ca_checks));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx->checks == NULL || cln == NULL) {
        ctx->reason = CA_REQUEST_INVALID;
        goto done;
    }
    /* the checks hold malloc'd copies of the bank's fields and values */
    cln->handler = ngx_http_credit_auth_free_checks;
    cln->data = ctx->checks;

    ctx->reason = ca_checks_parse((char *) p, len, ctx->category, ctx->checks,
                                  ctx->detail, sizeof(ctx->detail));

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


static void
ngx_http_credit_auth_ctx_cleanup(void *data)
{
    /* a marker: ngx_http_credit_auth_get_ctx() finds the ctx by it */
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
