#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "reason.h"

static const struct {
    const char *name;
    int         status;
    const char *title;
    const char *zh;         /* for a Chinese reader: reports, statements */
} reasons[CA_REASON_COUNT] = {
    [CA_OK]                     = {"", 200, "OK",
                                   "通过"},
    [CA_PURPOSE_MISSING]        = {"purpose_missing", 400,
                                   "X-Credit-Purpose header is required",
                                   "未说明查询用途"},
    [CA_REQUEST_INVALID]        = {"request_invalid", 400,
                                   "The request is invalid",
                                   "请求无效"},
    [CA_TOKEN_MISSING]          = {"token_missing", 401,
                                   "A consent token is required",
                                   "未提供授权书"},
    [CA_TOKEN_MALFORMED]        = {"token_malformed", 401,
                                   "The consent token is malformed",
                                   "授权书格式错误"},
    [CA_ALG_NOT_ALLOWED]        = {"alg_not_allowed", 401,
                                   "The token's algorithm is not allowed",
                                   "签名算法不被接受"},
    [CA_KID_UNKNOWN]            = {"kid_unknown", 401,
                                   "The token's signing key is unknown",
                                   "签名密钥未登记"},
    [CA_SIGNATURE_INVALID]      = {"signature_invalid", 401,
                                   "The token's signature is invalid",
                                   "签名无效"},
    [CA_TYP_INVALID]            = {"typ_invalid", 401,
                                   "The token's typ must be consent+jwt",
                                   "授权书类型错误"},
    [CA_ISSUER_INVALID]         = {"issuer_invalid", 401,
                                   "The token's issuer is invalid",
                                   "授权书签发方无效"},
    [CA_TOKEN_EXPIRED]          = {"token_expired", 401,
                                   "The consent token has expired",
                                   "授权已过期"},
    [CA_TOKEN_NOT_YET_VALID]    = {"token_not_yet_valid", 401,
                                   "The consent token is not yet valid",
                                   "授权尚未生效"},
    [CA_LIFETIME_TOO_LONG]      = {"lifetime_too_long", 401,
                                   "The consent token lives too long",
                                   "授权期限过长"},
    [CA_CNF_MISMATCH]           = {"cnf_mismatch", 401,
                                   "The token is bound to another certificate",
                                   "授权书绑定了其他证书"},
    [CA_KEY_REVOKED]            = {"key_revoked", 401,
                                   "The token's signing key is revoked",
                                   "签名密钥已吊销"},
    [CA_BANK_UNKNOWN]           = {"bank_unknown", 403,
                                   "The client certificate is not a known bank",
                                   "未准入的银行"},
    [CA_BANK_SUSPENDED]         = {"bank_suspended", 403,
                                   "The bank is suspended",
                                   "银行已暂停接入"},
    [CA_AUDIENCE_MISMATCH]      = {"audience_mismatch", 403,
                                   "The consent was not given to this bank",
                                   "授权对象不是该银行"},
    [CA_SUBJECT_MISMATCH]       = {"subject_mismatch", 403,
                                   "The consent is for another enterprise",
                                   "授权企业与查询企业不符"},
    [CA_PURPOSE_NOT_ALLOWED]    = {"purpose_not_allowed", 403,
                                   "The purpose is not allowed",
                                   "用途未获授权"},
    [CA_CATEGORY_NOT_CONSENTED] = {"category_not_consented", 403,
                                   "The data category is not consented",
                                   "信息类别未获授权"},
    [CA_MODE_NOT_CONSENTED]     = {"mode_not_consented", 403,
                                   "The access mode is not consented",
                                   "使用方式未获授权"},
    [CA_RAW_NOT_ALLOWED]        = {"raw_not_allowed", 403,
                                   "Raw detail is not allowed",
                                   "不允许提供原始明细"},
    [CA_CONSENT_REVOKED]        = {"consent_revoked", 403,
                                   "The consent has been revoked",
                                   "授权已撤回"},
    [CA_CONSENT_EXHAUSTED]      = {"consent_exhausted", 403,
                                   "The consent has been used up",
                                   "授权次数已用完"},
    [CA_ROUTE_NOT_IN_POLICY]    = {"route_not_in_policy", 403,
                                   "The resource is not covered by the policy",
                                   "资源不在策略范围内"},
    [CA_VERIFICATION_BUDGET_EXHAUSTED] = {"verification_budget_exhausted", 403,
                                   "The consent's verification budget for a"
                                   " field is spent",
                                   "核验次数已用完"},
    [CA_RECORD_NOT_FOUND]       = {"record_not_found", 404,
                                   "The platform has no such record",
                                   "平台无此记录"},
    [CA_UPSTREAM_INVALID]       = {"upstream_invalid", 502,
                                   "The platform's response cannot be filtered",
                                   "平台响应无法过滤"},
    [CA_UPSTREAM_TOO_LARGE]     = {"upstream_too_large", 502,
                                   "The platform's response is too large",
                                   "平台响应过大"},
    [CA_AUDIT_UNAVAILABLE]      = {"audit_unavailable", 503,
                                   "The audit trail is unavailable",
                                   "审计服务不可用"},
    [CA_REVOCATION_UNAVAILABLE] = {"revocation_unavailable", 503,
                                   "Revocation status is unavailable",
                                   "无法查询撤回状态"},
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

const char *
ca_reason_zh(ca_reason r)
{
    return (unsigned) r < CA_REASON_COUNT ? reasons[r].zh : "内部错误";
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
