/*
 * The claims of a consent token (contract §3): their form, read once into a
 * flat ca_claims, then checked against the clock and against the request.
 * The gateway and the tools (credit-policy explain, credit-consent sign)
 * run these same checks; ca_token_verify() and the withdrawals' verifiers
 * (token.c's JWS, then these claims) are here too.  Details name the rule
 * that failed, never a byte of the token: they end up in problem+json
 * bodies and logs.
 */
#include <stdio.h>
#include <string.h>

#include "token.h"
#include "core/core.h"

/* A non-empty array of codes (or, if one_ok, a single code string). */
static int
code_list(json_t *v, int one_ok, char out[][CA_CODE_MAX + 1], int *n)
{
    size_t  i;
    json_t *e;

    *n = 0;
    if (one_ok && json_is_string(v)) {
        if (!ca_json_is_code(v, CA_CODE_MAX)) {
            return -1;
        }
        strcpy(out[0], json_string_value(v));
        *n = 1;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0
        || json_array_size(v) > CA_LIST_MAX)
    {
        return -1;
    }
    json_array_foreach(v, i, e) {
        if (!ca_json_is_code(e, CA_CODE_MAX)) {
            return -1;
        }
        strcpy(out[i], json_string_value(e));
    }
    *n = (int) json_array_size(v);
    return 0;
}

static int
uscc_member(json_t *obj, const char *name, char out[19])
{
    json_t *v = json_object_get(obj, name);

    if (!json_is_string(v)
        || !ca_uscc_valid(json_string_value(v), json_string_length(v)))
    {
        return 0;
    }
    memcpy(out, json_string_value(v), 19);
    return 1;
}

static int
int_member(json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);

    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return 0;
    }
    *out = (int64_t) json_integer_value(v);
    return 1;
}

/* A consent's id: 1..64 of [A-Za-z0-9._-], no NUL inside. */
static int
jti_member(json_t *obj, char out[CA_JTI_MAX + 1])
{
    json_t *v = json_object_get(obj, "jti");

    if (!json_is_string(v) || json_string_length(v) > CA_JTI_MAX
        || json_string_length(v) != strlen(json_string_value(v))
        || !ca_is_token_chars(json_string_value(v), CA_JTI_MAX))
    {
        return 0;
    }
    strcpy(out, json_string_value(v));
    return 1;
}

static ca_reason
parse_claims(json_t *p, const ca_key *key, const ca_token_rules *rules,
             ca_claims *c, char *detail, size_t dl)
{
    json_t     *v, *e;
    const char *s;
    size_t      i;

    if (!uscc_member(p, "iss", c->iss)) {
        return ca_refuse(CA_ISSUER_INVALID, detail, dl,
                         "iss must be a valid USCC");
    }
    if (strcmp(c->iss, key->uscc) != 0) {
        return ca_refuse(CA_ISSUER_INVALID, detail, dl,
                         "iss is not the enterprise the key is registered to");
    }
    if (!uscc_member(p, "sub", c->sub) || strcmp(c->sub, c->iss) != 0) {
        return ca_refuse(CA_SUBJECT_MISMATCH, detail, dl,
                         "sub must be a valid USCC equal to iss");
    }
    if (code_list(json_object_get(p, "aud"), 1, c->aud, &c->n_aud) != 0) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "aud must be a bank"
                         " code or a non-empty array of at most %d codes",
                         CA_LIST_MAX);
    }

    if (!jti_member(p, c->jti)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "jti must be 1..64 characters of [A-Za-z0-9._-]");
    }

    if (!int_member(p, "iat", &c->iat) || !int_member(p, "exp", &c->exp)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "iat and exp must be non-negative integers");
    }
    if (c->exp <= c->iat) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "exp must be after iat");
    }
    if (c->exp - c->iat > rules->max_lifetime) {
        return ca_refuse(CA_LIFETIME_TOO_LONG, detail, dl, "exp - iat exceeds"
                         " the policy's max_lifetime of %lld s",
                         (long long) rules->max_lifetime);
    }
    c->nbf = 0;
    if (json_object_get(p, "nbf") != NULL && !int_member(p, "nbf", &c->nbf)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "nbf must be a non-negative integer");
    }

    if (code_list(json_object_get(p, "purposes"), 0, c->purposes,
                  &c->n_purposes) != 0)
    {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "purposes must be a"
                         " non-empty array of at most %d codes", CA_LIST_MAX);
    }
    if (code_list(json_object_get(p, "categories"), 0, c->categories,
                  &c->n_categories) != 0)
    {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "categories must be a"
                         " non-empty array of at most %d codes", CA_LIST_MAX);
    }

    v = json_object_get(p, "modes");
    c->modes = CA_MODE_QUERY | CA_MODE_VERIFY;
    if (v != NULL) {
        c->modes = 0;
        if (!json_is_array(v) || json_array_size(v) == 0) {
            return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "modes must be a"
                             " non-empty array of \"query\", \"verify\"");
        }
        json_array_foreach(v, i, e) {
            s = json_string_value(e);
            if (s != NULL && strcmp(s, "query") == 0) {
                c->modes |= CA_MODE_QUERY;
            } else if (s != NULL && strcmp(s, "verify") == 0) {
                c->modes |= CA_MODE_VERIFY;
            } else {
                return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "modes may"
                                 " hold only \"query\" and \"verify\"");
            }
        }
    }

    v = json_object_get(p, "detail");
    c->detail_raw = 0;
    if (v != NULL) {
        s = json_string_value(v);
        if (s != NULL && strcmp(s, "raw") == 0) {
            c->detail_raw = 1;
        } else if (s == NULL || strcmp(s, "masked") != 0) {
            return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                             "detail must be \"masked\" or \"raw\"");
        }
    }

    c->max_uses = 0;
    if (json_object_get(p, "max_uses") != NULL
        && (!int_member(p, "max_uses", &c->max_uses) || c->max_uses == 0))
    {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "max_uses must be a positive integer");
    }

    c->cnf_x5t[0] = '\0';
    v = json_object_get(p, "cnf");
    if (v != NULL) {
        unsigned char h[3 * 43 / 4 + 3];
        e = json_object_get(v, "x5t#S256");
        if (!json_is_object(v) || !json_is_string(e)
            || json_string_length(e) != 43
            || ca_b64url_decode(json_string_value(e), 43, h) != 32)
        {
            return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "cnf must be an"
                             " object with a base64url SHA-256 x5t#S256");
        }
        memcpy(c->cnf_x5t, json_string_value(e), 44);
    }
    return CA_OK;
}

ca_reason
ca_claims_parse(json_t *claims, const char *enterprise,
                const ca_token_rules *rules, ca_claims *c, char *detail,
                size_t detail_len)
{
    ca_key      key;
    const char *iss = json_string_value(json_object_get(claims, "iss"));

    if (!json_is_object(claims)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, detail_len,
                         "payload is not a JSON object");
    }
    /* parse_claims reads only the key's uscc */
    memset(&key, 0, sizeof(key));
    snprintf(key.uscc, sizeof(key.uscc), "%s",
             enterprise ? enterprise : iss ? iss : "");
    memset(c, 0, sizeof(*c));
    return parse_claims(claims, &key, rules, c, detail, detail_len);
}

ca_reason
ca_claims_check_time(const ca_claims *c, int64_t now, int64_t leeway,
                     char *detail, size_t detail_len)
{
    /* now and leeway are small; exp is the token's to choose (up to
     * INT64_MAX, where exp + leeway would overflow). */
    if (now - leeway > c->exp) {
        return ca_refuse(CA_TOKEN_EXPIRED, detail, detail_len,
                         "exp has passed");
    }
    if (c->nbf != 0 && now + leeway < c->nbf) {
        return ca_refuse(CA_TOKEN_NOT_YET_VALID, detail, detail_len,
                         "nbf is in the future");
    }
    if (c->iat > now + leeway) {
        return ca_refuse(CA_TOKEN_NOT_YET_VALID, detail, detail_len,
                         "iat is in the future");
    }
    return CA_OK;
}

static int
in_list(const char list[][CA_CODE_MAX + 1], int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

ca_reason
ca_claims_check_request(const ca_claims *c, const ca_request_facts *f,
                        char *detail, size_t detail_len)
{
    char x5t[44];

    if (f->bank_code == NULL || !in_list(c->aud, c->n_aud, f->bank_code)) {
        return ca_refuse(CA_AUDIENCE_MISMATCH, detail, detail_len,
                         "the bank is not in aud");
    }
    if (f->path_uscc == NULL || strncmp(c->sub, f->path_uscc, 18) != 0) {
        return ca_refuse(CA_SUBJECT_MISMATCH, detail, detail_len,
                         "sub is not the enterprise in the request path");
    }
    if (f->purpose == NULL
        || !in_list(c->purposes, c->n_purposes, f->purpose))
    {
        return ca_refuse(CA_PURPOSE_NOT_ALLOWED, detail, detail_len,
                         "the purpose is not in the token's purposes");
    }
    if (f->category == NULL
        || !in_list(c->categories, c->n_categories, f->category))
    {
        return ca_refuse(CA_CATEGORY_NOT_CONSENTED, detail, detail_len,
                         "the category is not in the token's categories");
    }
    if ((c->modes & f->mode) == 0 || f->mode == 0) {
        return ca_refuse(CA_MODE_NOT_CONSENTED, detail, detail_len,
                         "the access mode is not in the token's modes");
    }
    if (f->want_raw && !(c->detail_raw && f->raw_allowed)) {
        return ca_refuse(CA_RAW_NOT_ALLOWED, detail, detail_len,
                         c->detail_raw
                         ? "the category does not allow raw detail"
                         : "the token does not consent to raw detail");
    }
    if (c->cnf_x5t[0] == '\0') {
        if (f->require_cnf) {
            return ca_refuse(CA_CNF_MISMATCH, detail, detail_len,
                             "the policy requires a certificate-bound token");
        }
        return CA_OK;
    }
    if (f->cert_sha256 == NULL) {
        return ca_refuse(CA_CNF_MISMATCH, detail, detail_len,
                         "the token is certificate-bound but no certificate"
                         " was presented");
    }
    ca_b64url_encode(f->cert_sha256, 32, x5t);
    if (strcmp(x5t, c->cnf_x5t) != 0) {
        return ca_refuse(CA_CNF_MISMATCH, detail, detail_len,
                         "cnf x5t#S256 does not match the client certificate");
    }
    return CA_OK;
}


/* --- consent tokens --------------------------------------------------- */

static ca_reason
consent_claims(json_t *payload, const ca_key *key,
               const ca_token_rules *rules, ca_claims *c, char *detail,
               size_t detail_len)
{
    return ca_claims_parse(payload, key->uscc, rules, c, detail, detail_len);
}


ca_reason
ca_token_verify(const char *token, size_t len, const ca_keyset *ks,
                const ca_token_rules *rules, ca_claims *claims,
                char *detail, size_t detail_len)
{
    return ca_jws_verify(token, len, "consent+jwt", ks, rules,
                         consent_claims, claims, detail, detail_len);
}


/* --- withdrawals (contract §3 v3) -------------------------------------- */

/* iss the key's enterprise, jti a consent's id, iat an integer: the same
 * rules, and the same refusals, as a consent token's claims. */
static ca_reason
withdrawal_claims(json_t *p, const ca_key *key, const ca_token_rules *rules,
                  ca_claims *c, char *detail, size_t dl)
{
    if (!uscc_member(p, "iss", c->iss)) {
        return ca_refuse(CA_ISSUER_INVALID, detail, dl,
                         "iss must be a valid USCC");
    }
    if (strcmp(c->iss, key->uscc) != 0) {
        return ca_refuse(CA_ISSUER_INVALID, detail, dl, "iss is not the "
                         "USCC the key is registered to: an enterprise "
                         "withdraws only its own consents");
    }
    if (!jti_member(p, c->jti)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "jti (the consent "
                         "withdrawn) must be 1..64 characters of "
                         "[A-Za-z0-9._-]");
    }
    if (!int_member(p, "iat", &c->iat)) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, dl,
                         "iat must be a non-negative integer");
    }
    return CA_OK;
}

ca_reason
ca_withdrawal_verify(const char *token, size_t len, const ca_keyset *ks,
                     const ca_token_rules *rules, ca_claims *claims,
                     char *detail, size_t detail_len)
{
    return ca_jws_verify(token, len, CA_WITHDRAWAL_TYP, ks, rules,
                         withdrawal_claims, claims, detail, detail_len);
}

/* The platform's: iss the platform's own USCC (its key's), sub the
 * enterprise whose consent it revokes. */
static ca_reason
platform_withdrawal_claims(json_t *p, const ca_key *key,
                           const ca_token_rules *rules, ca_claims *c,
                           char *detail, size_t dl)
{
    ca_reason  r = withdrawal_claims(p, key, rules, c, detail, dl);

    if (r == CA_OK && !uscc_member(p, "sub", c->sub)) {
        r = ca_refuse(CA_TOKEN_MALFORMED, detail, dl, "sub (the enterprise "
                      "whose consent the platform revokes) must be a valid "
                      "USCC");
    }
    return r;
}

ca_reason
ca_platform_withdrawal_verify(const char *token, size_t len,
                              const ca_keyset *ks,
                              const ca_token_rules *rules, ca_claims *claims,
                              char *detail, size_t detail_len)
{
    return ca_jws_verify(token, len, CA_WITHDRAWAL_TYP, ks, rules,
                         platform_withdrawal_claims, claims, detail,
                         detail_len);
}

ca_reason
ca_withdrawal_check_time(const ca_claims *c, int64_t now, int64_t leeway,
                         char *detail, size_t detail_len)
{
    if (c->iat < now - leeway) {
        return ca_refuse(CA_TOKEN_EXPIRED, detail, detail_len, "iat is more"
                         " than the policy's leeway of %lld s ago: sign the"
                         " withdrawal again", (long long) leeway);
    }
    if (c->iat > now + leeway) {
        return ca_refuse(CA_TOKEN_NOT_YET_VALID, detail, detail_len, "iat is"
                         " more than the policy's leeway of %lld s ahead "
                         "(is the signer's clock right?)", (long long) leeway);
    }
    return CA_OK;
}
