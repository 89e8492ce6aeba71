/*
 * $credit_auth_* variables: what the module decided, for access_log
 * formats and proxy_set_header.  Each is "not found" (an empty string,
 * "-" in a log) where the module did not decide.  Only registry names,
 * the audit's consent id and certificate digest and the gateway's own
 * request id: never a byte of the token or of the record.  They are how
 * the platform learns what was decided: the bank's own credentials never
 * reach it (…_headers.c).
 */
#include "ngx_http_credit_auth.h"


typedef enum {
    NGX_HTTP_CREDIT_AUTH_VAR_BANK = 0,
    NGX_HTTP_CREDIT_AUTH_VAR_DECISION,
    NGX_HTTP_CREDIT_AUTH_VAR_REASON,
    NGX_HTTP_CREDIT_AUTH_VAR_CONSENT,
    NGX_HTTP_CREDIT_AUTH_VAR_CATEGORY,
    NGX_HTTP_CREDIT_AUTH_VAR_DISCLOSURE,
    NGX_HTTP_CREDIT_AUTH_VAR_REQUEST_ID,
    NGX_HTTP_CREDIT_AUTH_VAR_ENTERPRISE,
    NGX_HTTP_CREDIT_AUTH_VAR_PURPOSE,
    NGX_HTTP_CREDIT_AUTH_VAR_MODE,
    NGX_HTTP_CREDIT_AUTH_VAR_CERT
} ngx_http_credit_auth_var_e;


static ngx_int_t ngx_http_credit_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


/* Not cacheable: the reason can still change when the answer is refused
 * (upstream_invalid), after proxy_set_header has read the variables. */
static ngx_http_variable_t  ngx_http_credit_auth_vars[] = {

    { ngx_string("credit_auth_bank"), NULL, ngx_http_credit_auth_variable,
      NGX_HTTP_CREDIT_AUTH_VAR_BANK, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_decision"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_DECISION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_reason"), NULL, ngx_http_credit_auth_variable,
      NGX_HTTP_CREDIT_AUTH_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_consent"), NULL, ngx_http_credit_auth_variable,
      NGX_HTTP_CREDIT_AUTH_VAR_CONSENT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_category"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_CATEGORY,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_disclosure"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_DISCLOSURE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_request_id"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_REQUEST_ID,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_enterprise"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_ENTERPRISE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_purpose"), NULL,
      ngx_http_credit_auth_variable, NGX_HTTP_CREDIT_AUTH_VAR_PURPOSE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_mode"), NULL, ngx_http_credit_auth_variable,
      NGX_HTTP_CREDIT_AUTH_VAR_MODE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("credit_auth_cert"), NULL, ngx_http_credit_auth_variable,
      NGX_HTTP_CREDIT_AUTH_VAR_CERT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_credit_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_credit_auth_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }
        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_credit_auth_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    char                        *consent;
    u_char                      *hex;
    ca_reason                    reason;
    ngx_uint_t                   decided;
    const char                  *s;
    ngx_http_credit_auth_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_credit_auth_find_ctx(r);
    if (ctx == NULL) {
        return NGX_OK;
    }

    decided = (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED
               || ctx->state == NGX_HTTP_CREDIT_AUTH_REFUSED);
    s = NULL;

    switch (data) {

    case NGX_HTTP_CREDIT_AUTH_VAR_REQUEST_ID:
        /* also for nginx's own refusals, which carry it (…_filter.c) */
        if (ctx->rid.len) {
            v->data = ctx->rid.data;
            v->len = ctx->rid.len;
            v->valid = 1;
            v->no_cacheable = 1;
            v->not_found = 0;
        }
        return NGX_OK;

    case NGX_HTTP_CREDIT_AUTH_VAR_BANK:
        s = ctx->decision.bank ? ctx->decision.bank->code : NULL;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_DECISION:
        if (ctx->state == NGX_HTTP_CREDIT_AUTH_ALLOWED) {
            s = ctx->report ? "report" : "allow";
        } else if (ctx->state == NGX_HTTP_CREDIT_AUTH_REFUSED) {
            s = "deny";
        }
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_REASON:
        /* the refusal the bank got, or report mode's would-be one */
        reason = ctx->filter_reason != CA_OK ? ctx->filter_reason
                                             : ctx->reason;
        if (reason != CA_OK) {
            s = ca_reason_name(reason);
        }
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_CONSENT:
        if (ctx->decision.has_claims) {
            consent = ngx_pnalloc(r->pool, CA_CONSENT_ID_MAX + 1);
            if (consent == NULL) {
                return NGX_ERROR;
            }
            ca_audit_consent_id(ctx->decision.claims->jti,
                                ngx_strlen(ctx->decision.claims->jti), consent);
            s = consent;
        }
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_CATEGORY:
        s = ctx->decision.category ? ctx->decision.category->name : NULL;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_DISCLOSURE:
        s = ctx->response.disclosure;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_ENTERPRISE:
        /* as the audit: only once the path matched a route */
        s = (ctx->decision.category && ctx->decision.uscc[0])
            ? ctx->decision.uscc : NULL;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_PURPOSE:
        /* as the audit records it: only one the policy knows */
        s = ctx->decision.has_claims ? ctx->decision.purpose_code : NULL;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_MODE:
        s = ctx->decision.category
            ? (ctx->decision.verify ? "verify" : "query") : NULL;
        break;

    case NGX_HTTP_CREDIT_AUTH_VAR_CERT:
        /* the certificate the bank was identified by (the audit's cert):
         * what the gateway derived, never a header the bank sent */
        if (ctx->decision.has_cert) {
            hex = ngx_pnalloc(r->pool, 2 * 32 + 1);
            if (hex == NULL) {
                return NGX_ERROR;
            }
            *ngx_hex_dump(hex, ctx->decision.cert_sha256, 32) = '\0';
            s = (char *) hex;
        }
        break;
    }

    if (!decided || s == NULL || s[0] == '\0') {
        return NGX_OK;
    }

    v->data = (u_char *) s;
    v->len = ngx_strlen(s);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
