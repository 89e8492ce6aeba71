/*
 * Reason codes of contract §4: the one vocabulary shared by refusals, the
 * audit trail, the status counters and the command-line tools.
 */
#ifndef CA_REASON_H
#define CA_REASON_H

typedef enum {
    CA_OK = 0,
    /* 400 */
    CA_PURPOSE_MISSING,
    CA_REQUEST_INVALID,
    /* 401 */
    CA_TOKEN_MISSING,
    CA_TOKEN_MALFORMED,
    CA_ALG_NOT_ALLOWED,
    CA_KID_UNKNOWN,
    CA_SIGNATURE_INVALID,
    CA_TYP_INVALID,
    CA_ISSUER_INVALID,
    CA_TOKEN_EXPIRED,
    CA_TOKEN_NOT_YET_VALID,
    CA_LIFETIME_TOO_LONG,
    CA_CNF_MISMATCH,
    CA_KEY_REVOKED,
    /* 403 */
    CA_BANK_UNKNOWN,
    CA_BANK_SUSPENDED,
    CA_AUDIENCE_MISMATCH,
    CA_SUBJECT_MISMATCH,
    CA_PURPOSE_NOT_ALLOWED,
    CA_CATEGORY_NOT_CONSENTED,
    CA_MODE_NOT_CONSENTED,
    CA_RAW_NOT_ALLOWED,
    CA_CONSENT_REVOKED,
    CA_CONSENT_EXHAUSTED,
    CA_ROUTE_NOT_IN_POLICY,
    CA_VERIFICATION_BUDGET_EXHAUSTED,
    /* 404 */
    CA_RECORD_NOT_FOUND,
    /* 502 */
    CA_UPSTREAM_INVALID,
    CA_UPSTREAM_TOO_LARGE,
    /* 503 */
    CA_AUDIT_UNAVAILABLE,
    CA_REVOCATION_UNAVAILABLE,

    CA_REASON_COUNT
} ca_reason;

/* "token_expired"; "" for CA_OK. */
const char *ca_reason_name(ca_reason r);
/* 400, 401, 403, 404, 502 or 503; 200 for CA_OK. */
int ca_reason_status(ca_reason r);
/* A short English title for problem+json. */
const char *ca_reason_title(ca_reason r);
/* The reason in Chinese, for a regulator's report or an enterprise's
 * statement: "用途未获授权"; shown beside the code, never instead of it. */
const char *ca_reason_zh(ca_reason r);
/* Inverse of ca_reason_name; -1 when unknown. */
int ca_reason_from_name(const char *name);

#include <stddef.h>
/*
 * Returns r, having written a printf-style detail into detail (when there
 * is one): the refusals of the token and claim checks say which rule
 * failed in one line.
 */
ca_reason ca_refuse(ca_reason r, char *detail, size_t detail_len,
                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
