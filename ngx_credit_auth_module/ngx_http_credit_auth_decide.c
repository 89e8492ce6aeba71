/*
 * The decision, from the request alone: who is asking (the bank, by its
 * certificate), for what (route, mode, purpose), under which consent (the
 * token, verified or cached), and a verification's checks.  The access
 * phase (…_access.c) commits it.  ctx->decision is written here only.
 */
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "ngx_http_credit_auth.h"


static ca_reason ngx_http_credit_auth_identify_bank(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx);
static ca_reason ngx_http_credit_auth_verify(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx,
    ngx_str_t *token);


#define NGX_HTTP_CREDIT_AUTH_CERT_SLOTS  16
#define NGX_HTTP_CREDIT_AUTH_CERT_MAX    8192

typedef struct {
    u_char   *value;            /* a Client-Cert value, as sent */
    size_t    len;              /* 0: empty slot */
    size_t    cap;
    u_char    sha256[32];       /* of the certificate it decodes to */
} ngx_http_credit_auth_cert_slot_t;

static ngx_http_credit_auth_cert_slot_t
    ngx_http_credit_auth_certs[NGX_HTTP_CREDIT_AUTH_CERT_SLOTS];


static ngx_str_t  ngx_http_credit_auth_single[] = {
    ngx_string("Authorization"),
    ngx_string("X-Credit-Purpose"),
    ngx_string("X-Credit-Detail"),
    ngx_string("X-Request-Id"),
    ngx_null_string
};


/* Everything but the consent's own checks, which a verification makes
 * once its body is read (ngx_http_credit_auth_decide_consent()). */
ca_reason
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
        ctx->decision.verify = 0;

    } else if (r->method == NGX_HTTP_POST) {
        ctx->decision.verify = 1;

    } else {
        ngx_http_credit_auth_detail(ctx, "method %V is not GET (query) or "
                                    "POST (verification)%Z",
                                    &r->method_name);
        return CA_REQUEST_INVALID;
    }

    /* Each at most once (contract §2): the platform would see the copy that
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
                                  r->uri.len, &ctx->decision.category,
                                  ctx->decision.uscc);
    if (route == CA_ROUTE_NONE) {
        ctx->decision.category = NULL;
        return CA_ROUTE_NOT_IN_POLICY;
    }
    if (route == CA_ROUTE_BAD_USCC) {
        ngx_http_credit_auth_detail(ctx, "the enterprise code in the path "
                                    "is not a valid USCC%Z");
        ctx->decision.uscc[0] = '\0';
        return CA_REQUEST_INVALID;
    }

    /* The token comes only from the Authorization header (contract §2). */
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

    ctx->decision.claims = ngx_palloc(r->pool, sizeof(ca_claims));
    if (ctx->decision.claims == NULL) {
        return CA_AUDIT_UNAVAILABLE;
    }

    token.data = h->value.data + 7;
    token.len = h->value.len - 7;
    reason = ngx_http_credit_auth_verify(r, mcf, ctx, &token);
    if (reason != CA_OK || ctx->state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT) {
        return reason;
    }
    ctx->decision.has_claims = 1;

    reason = ca_claims_check_time(ctx->decision.claims, (int64_t) ngx_time(),
                                  mcf->policy->token.leeway, ctx->detail,
                                  sizeof(ctx->detail));
    if (reason != CA_OK) {
        return reason;
    }

    h = ngx_http_credit_auth_header(r, "X-Credit-Purpose", 16);
    if (h == NULL || h->value.len == 0) {
        return CA_PURPOSE_MISSING;
    }
    ctx->decision.purpose = h->value;

    /* looked up once: the audit, the counters and $credit_auth_purpose
     * record only a purpose the policy knows */
    ctx->decision.purpose_code[0] = '\0';
    if (h->value.len <= CA_CODE_MAX) {
        ngx_memcpy(ctx->decision.purpose_code, h->value.data, h->value.len);
        ctx->decision.purpose_code[h->value.len] = '\0';
        if (!ca_policy_knows_purpose(mcf->policy, ctx->decision.purpose_code)) {
            ctx->decision.purpose_code[0] = '\0';
        }
    }

    h = ngx_http_credit_auth_header(r, "X-Credit-Detail", 15);
    if (h != NULL) {
        if (h->value.len == 3 && ngx_strncmp(h->value.data, "raw", 3) == 0) {
            ctx->decision.want_raw = 1;

        } else if (!(h->value.len == 6
                     && ngx_strncmp(h->value.data, "masked", 6) == 0))
        {
            ngx_http_credit_auth_detail(ctx, "X-Credit-Detail must be "
                                        "\"masked\" or \"raw\"%Z");
            return CA_REQUEST_INVALID;
        }
    }

    if (ctx->decision.verify) {
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
    char           kid[CA_KID_MAX + 1];
    u_char         sha[32];
    ngx_int_t      cached;
    ca_reason      reason, key_reason;
    const ca_key  *key;

    /* A token verified before (by any worker) costs no signature check;
     * only successes are cached. */
    ca_sha256(token->data, token->len, sha);
    cached = ngx_http_credit_auth_cache_get(sha, ctx->decision.claims);

    if (cached == NGX_OK && !mcf->key_registry) {
        return CA_OK;
    }

    if (cached == NGX_OK) {
        ngx_cpystrn((u_char *) kid, (u_char *) ctx->decision.claims->kid,
                    sizeof(kid));
        if (ngx_http_credit_auth_key_find(r, ctx, kid, ngx_strlen(kid), &key,
                                          &key_reason)
            == NGX_AGAIN)
        {
            return CA_OK;
        }
        return key ? CA_OK : key_reason;
    }

    reason = ngx_http_credit_auth_verify_jws(r, mcf, ctx, token,
                                             ca_token_verify,
                                             ctx->decision.claims);
    if (reason == CA_OK && ctx->state != NGX_HTTP_CREDIT_AUTH_KEY_WAIT) {
        ngx_http_credit_auth_cache_put(sha, ctx->decision.claims);
    }
    return reason;
}


/*
 * A compact JWS (a consent token, or a withdrawal: `verify` says which)
 * verified with the key its kid names, from the key file or the registry.
 * CA_OK with ctx->state KEY_WAIT: the key is being fetched, run this again
 * once woken.  A kid found nowhere is refused naming the sources that
 * were asked, so that "not in the key registry" is said only where the
 * registry was read.
 */
ca_reason
ngx_http_credit_auth_verify_jws(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx,
    ngx_str_t *token, ca_jws_verify_pt verify, ca_claims *claims)
{
    char           kid[CA_KID_MAX + 1], why[sizeof(ctx->detail)];
    size_t         kid_len;
    ca_reason      reason, key_reason;
    ca_keyset      one;
    const ca_key  *key;

    why[0] = '\0';

    if (!mcf->key_registry
        || ca_token_kid((char *) token->data, token->len, kid, &kid_len)
           != 0)
    {
        /* the file alone, or no kid to look up: the verifier says why */
        reason = verify((char *) token->data, token->len, mcf->keys,
                        &mcf->policy->token, claims, ctx->detail,
                        sizeof(ctx->detail));
        goto done;
    }

    if (ngx_http_credit_auth_key_find(r, ctx, kid, kid_len, &key,
                                      &key_reason)
        == NGX_AGAIN)
    {
        return CA_OK;
    }

    /* with no key the verifier still reports an earlier check first */
    ngx_cpystrn((u_char *) why, (u_char *) ctx->detail, sizeof(why));
    one.keys = (ca_key *) key;
    one.n = key ? 1 : 0;
    reason = verify((char *) token->data, token->len, key ? &one : NULL,
                    &mcf->policy->token, claims, ctx->detail,
                    sizeof(ctx->detail));
    if (reason == CA_KID_UNKNOWN && why[0] != '\0') {
        reason = key_reason;
        ngx_cpystrn((u_char *) ctx->detail, (u_char *) why,
                    sizeof(ctx->detail));
    }

done:

    if (reason == CA_KID_UNKNOWN && why[0] == '\0') {
        ngx_http_credit_auth_detail(ctx, "%s%Z",
            !mcf->key_registry
            ? "kid is not in the key file (credit_auth_keys); this gateway "
              "does not read the key registry"
            : mcf->keys == NULL
            ? "kid is not in the key registry"
            : "kid is in neither the key file nor the key registry");
    }
    return reason;
}


/* Purpose limits and the consent's scope against this request. */
ca_reason
ngx_http_credit_auth_decide_consent(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx)
{
    const char       *purpose;
    ca_reason         reason;
    ca_request_facts  facts;

    if (ctx->decision.purpose.len > CA_CODE_MAX) {
        return CA_PURPOSE_NOT_ALLOWED;
    }
    purpose = ctx->decision.purpose_code;

    /* Codes outside the policy are refused whatever the token says. */
    if (purpose[0] == '\0'
        || !ca_category_allows_purpose(ctx->decision.category, purpose))
    {
        ngx_http_credit_auth_detail(ctx, "the policy does not allow this "
                                    "purpose for category %s%Z",
                                    ctx->decision.category->name);
        return CA_PURPOSE_NOT_ALLOWED;
    }

    if (!ca_bank_allows_purpose(ctx->decision.bank, purpose)) {
        ngx_http_credit_auth_detail(ctx, "the bank is not registered for "
                                    "this purpose%Z");
        return CA_PURPOSE_NOT_ALLOWED;
    }

    ngx_memzero(&facts, sizeof(ca_request_facts));
    facts.bank_code = ctx->decision.bank->code;
    facts.path_uscc = ctx->decision.uscc;
    facts.purpose = purpose;
    facts.category = ctx->decision.category->name;
    facts.mode = ctx->decision.verify ? CA_MODE_VERIFY : CA_MODE_QUERY;
    facts.want_raw = ctx->decision.want_raw;
    facts.raw_allowed = ctx->decision.category->raw_allowed;
    facts.require_cnf = mcf->policy->token.require_cnf;
    facts.cert_sha256 = ctx->decision.has_cert ? ctx->decision.cert_sha256
                                               : NULL;

    reason = ca_claims_check_request(ctx->decision.claims, &facts, ctx->detail,
                                     sizeof(ctx->detail));
    if (reason == CA_OK) {
        ctx->decision.raw = ctx->decision.want_raw && !ctx->decision.verify;
    }

    return reason;
}


static void
ngx_http_credit_auth_free_checks(void *data)
{
    ca_checks_free(data);
}


/* A verification's checks, from its body (len bytes at p). */
ca_reason
ngx_http_credit_auth_decide_checks(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, u_char *p, size_t len)
{
    ngx_pool_cleanup_t  *cln;

    ctx->decision.checks = ngx_pcalloc(r->pool, sizeof(ca_checks));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx->decision.checks == NULL || cln == NULL) {
        return CA_REQUEST_INVALID;
    }
    /* the checks hold malloc'd copies of the bank's fields and values */
    cln->handler = ngx_http_credit_auth_free_checks;
    cln->data = ctx->decision.checks;

    return ca_checks_parse((char *) p, len, ctx->decision.category,
                           ctx->decision.checks, ctx->detail,
                           sizeof(ctx->detail));
}


/*
 * Behind a load balancer every request carries its bank's certificate,
 * about 1.3 KiB of base64: decoding and hashing it cost more than the rest
 * of the decision.  A worker remembers the fingerprint of the last value
 * seen in each of a few slots, by the header's exact bytes; a value that
 * does not decode is never remembered.
 */
static ngx_http_credit_auth_cert_slot_t *
ngx_http_credit_auth_cert_slot(ngx_str_t *v)
{
    size_t  h;

    /* certificates differ most at their end, in the signature */
    h = v->len;
    if (v->len >= 10) {
        h = h * 31 + v->data[v->len - 4];
        h = h * 31 + v->data[v->len - 7];
        h = h * 31 + v->data[v->len - 10];
    }
    return &ngx_http_credit_auth_certs[h % NGX_HTTP_CREDIT_AUTH_CERT_SLOTS];
}


/* The remembered values go with the worker (and with the module, which
 * a reload in single-process mode unloads). */
void
ngx_http_credit_auth_decide_exit_process(void)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_CREDIT_AUTH_CERT_SLOTS; i++) {
        ngx_free(ngx_http_credit_auth_certs[i].value);
        ngx_http_credit_auth_certs[i].value = NULL;
        ngx_http_credit_auth_certs[i].len = 0;
        ngx_http_credit_auth_certs[i].cap = 0;
    }
}


static void
ngx_http_credit_auth_cert_remember(ngx_http_credit_auth_cert_slot_t *slot,
    ngx_str_t *v, u_char *sha256)
{
    if (v->len > NGX_HTTP_CREDIT_AUTH_CERT_MAX) {
        return;
    }
    if (slot->cap < v->len) {
        ngx_free(slot->value);
        slot->len = 0;
        slot->cap = 0;
        slot->value = ngx_alloc(v->len, ngx_cycle->log);
        if (slot->value == NULL) {
            return;
        }
        slot->cap = v->len;
    }
    ngx_memcpy(slot->value, v->data, v->len);
    slot->len = v->len;
    ngx_memcpy(slot->sha256, sha256, 32);
}


/*
 * The bank is the verified client certificate's SHA-256 (contract §2, §5):
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
    ngx_http_credit_auth_cert_slot_t  *slot;

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

        slot = ngx_http_credit_auth_cert_slot(&v);
        if (slot->len == v.len && ngx_memcmp(slot->value, v.data, v.len) == 0)
        {
            ngx_memcpy(ctx->decision.cert_sha256, slot->sha256, 32);
            ctx->decision.has_cert = 1;
            goto found;
        }

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
        ca_sha256(bin.data, bin.len, ctx->decision.cert_sha256);
        ctx->decision.has_cert = 1;
        ngx_http_credit_auth_cert_remember(slot, &v, ctx->decision.cert_sha256);

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
        if (X509_digest(cert, ca_md_sha256(), ctx->decision.cert_sha256,
                        &len)
            != 1)
        {
            X509_free(cert);
            return CA_BANK_UNKNOWN;
        }
        X509_free(cert);
        ctx->decision.has_cert = 1;
#else
        return CA_BANK_UNKNOWN;
#endif
    }

found:

    ctx->decision.bank = ca_banks_find_cert(mcf->banks,
                                            ctx->decision.cert_sha256);
    if (ctx->decision.bank == NULL) {
        return CA_BANK_UNKNOWN;
    }

    if (ctx->decision.bank->suspended) {
        return CA_BANK_SUSPENDED;
    }

    return CA_OK;
}
