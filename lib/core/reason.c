#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "reason.h"

static const struct {
    const char *name;
    int         status;
    const char *title;
} reasons[CA_REASON_COUNT] = {
    [CA_OK]                     = {"", 200, "OK"},
    [CA_PURPOSE_MISSING]        = {"purpose_missing", 400,
                                   "X-Credit-Purpose header is required"},
    [CA_REQUEST_INVALID]        = {"request_invalid", 400,
                                   "The request is invalid"},
    [CA_TOKEN_MISSING]          = {"token_missing", 401,
                                   "A consent token is required"},
    [CA_TOKEN_MALFORMED]        = {"token_malformed", 401,
                                   "The consent token is malformed"},
    [CA_ALG_NOT_ALLOWED]        = {"alg_not_allowed", 401,
                                   "The token's algorithm is not allowed"},
    [CA_KID_UNKNOWN]            = {"kid_unknown", 401,
                                   "The token's signing key is unknown"},
    [CA_SIGNATURE_INVALID]      = {"signature_invalid", 401,
                                   "The token's signature is invalid"},
    [CA_TYP_INVALID]            = {"typ_invalid", 401,
                                   "The token's typ must be consent+jwt"},
    [CA_ISSUER_INVALID]         = {"issuer_invalid", 401,
                                   "The token's issuer is invalid"},
    [CA_TOKEN_EXPIRED]          = {"token_expired", 401,
                                   "The consent token has expired"},
    [CA_TOKEN_NOT_YET_VALID]    = {"token_not_yet_valid", 401,
                                   "The consent token is not yet valid"},
    [CA_LIFETIME_TOO_LONG]      = {"lifetime_too_long", 401,
                                   "The consent token lives too long"},
    [CA_CNF_MISMATCH]           = {"cnf_mismatch", 401,
                                   "The token is bound to another certificate"},
    [CA_KEY_REVOKED]            = {"key_revoked", 401,
                                   "The token's signing key is revoked"},
    [CA_BANK_UNKNOWN]           = {"bank_unknown", 403,
                                   "The client certificate is not a known bank"},
    [CA_BANK_SUSPENDED]         = {"bank_suspended", 403,
                                   "The bank is suspended"},
    [CA_AUDIENCE_MISMATCH]      = {"audience_mismatch", 403,
                                   "The consent was not given to this bank"},
    [CA_SUBJECT_MISMATCH]       = {"subject_mismatch", 403,
                                   "The consent is for another enterprise"},
    [CA_PURPOSE_NOT_ALLOWED]    = {"purpose_not_allowed", 403,
                                   "The purpose is not allowed"},
    [CA_CATEGORY_NOT_CONSENTED] = {"category_not_consented", 403,
                                   "The data category is not consented"},
    [CA_MODE_NOT_CONSENTED]     = {"mode_not_consented", 403,
                                   "The access mode is not consented"},
    [CA_RAW_NOT_ALLOWED]        = {"raw_not_allowed", 403,
                                   "Raw detail is not allowed"},
    [CA_CONSENT_REVOKED]        = {"consent_revoked", 403,
                                   "The consent has been revoked"},
    [CA_CONSENT_EXHAUSTED]      = {"consent_exhausted", 403,
                                   "The consent has been used up"},
    [CA_ROUTE_NOT_IN_POLICY]    = {"route_not_in_policy", 403,
                                   "The resource is not covered by the policy"},
    [CA_VERIFICATION_BUDGET_EXHAUSTED] = {"verification_budget_exhausted", 403,
                                   "The consent's verification budget for a"
                                   " field is spent"},
    [CA_RECORD_NOT_FOUND]       = {"record_not_found", 404,
                                   "The platform has no such record"},
    [CA_UPSTREAM_INVALID]       = {"upstream_invalid", 502,
                                   "The platform's response cannot be filtered"},
    [CA_UPSTREAM_TOO_LARGE]     = {"upstream_too_large", 502,
                                   "The platform's response is too large"},
    [CA_AUDIT_UNAVAILABLE]      = {"audit_unavailable", 503,
                                   "The audit trail is unavailable"},
    [CA_REVOCATION_UNAVAILABLE] = {"revocation_unavailable", 503,
                                   "Revocation status is unavailable"},
};

const char *
ca_reason_name(ca_reason r)
{
    return (unsigned) r < CA_REASON_COUNT ? reasons[r].name : "internal";
}

int
ca_reason_status(ca_reason r)
{
    return (unsigned) r < CA_REASON_COUNT ? reasons[r].status : 500;
}

const char *
ca_reason_title(ca_reason r)
{
    return (unsigned) r < CA_REASON_COUNT ? reasons[r].title : "Internal error";
}

int
ca_reason_from_name(const char *name)
{
    for (int i = 1; i < CA_REASON_COUNT; i++) {
        if (strcmp(reasons[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

ca_reason
ca_refuse(ca_reason r, char *detail, size_t detail_len, const char *fmt, ...)
{
    va_list ap;

    if (detail != NULL && detail_len > 0) {
        va_start(ap, fmt);
        vsnprintf(detail, detail_len, fmt, ap);
        va_end(ap);
    }
    return r;
}
