/*
 * Consent tokens (contract §3): compact JWS, verified per RFC 8725.
 *
 * Verification is split in two so that a verified-token cache can hold the
 * result of the expensive part:
 *   ca_token_verify()        signature and every rule that depends on the
 *                            token alone (cacheable until exp; token.c);
 *   ca_claims_check_time()   exp / nbf against now and leeway;
 *   ca_claims_check_request() audience, subject, purpose, category, mode,
 *                            detail and cnf against this request (claims.c).
 * The signatures themselves: signature.c.
 */
#ifndef CA_TOKEN_H
#define CA_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "core/core.h"

#define CA_TOKEN_MAX      16384     /* bytes of compact JWS we accept */
#define CA_LIST_MAX       16        /* entries of aud, purposes, categories */
#define CA_CODE_MAX       64        /* bytes of one code */
#define CA_JTI_MAX        64

#define CA_MODE_QUERY     1u
#define CA_MODE_VERIFY    2u

/* Flat and pointer-free so that it can be copied into shared memory. */
typedef struct {
    ca_alg   alg;
    char     kid[CA_KID_MAX + 1];
    char     iss[19];
    char     sub[19];
    char     jti[CA_JTI_MAX + 1];
    int64_t  iat;
    int64_t  exp;
    int64_t  nbf;                   /* 0 when absent */
    int      n_aud;
    char     aud[CA_LIST_MAX][CA_CODE_MAX + 1];
    int      n_purposes;
    char     purposes[CA_LIST_MAX][CA_CODE_MAX + 1];
    int      n_categories;
    char     categories[CA_LIST_MAX][CA_CODE_MAX + 1];
    unsigned modes;                 /* CA_MODE_* */
    int      detail_raw;
    int64_t  max_uses;              /* 0 when absent */
    char     cnf_x5t[64];           /* base64url SHA-256, "" when absent */
} ca_claims;

typedef struct {
    unsigned algs;                  /* CA_ALG_* allowed by the policy */
    int64_t  max_lifetime;          /* seconds */
    int64_t  leeway;                /* seconds, <= 60 */
    int      require_cnf;
} ca_token_rules;

/*
 * Parses and verifies a compact JWS.  On success fills *claims and returns
 * CA_OK; otherwise returns the reason and writes a short explanation (never
 * containing token bytes) into detail.
 */
ca_reason ca_token_verify(const char *token, size_t len, const ca_keyset *ks,
                          const ca_token_rules *rules, ca_claims *claims,
                          char *detail, size_t detail_len);

/*
 * What ca_token_verify() does for any typ: the header, the key its kid
 * names, the alg pin and the signature, then `parse` reads the payload
 * (a JSON object) as the key's enterprise made it.  Consent tokens
 * (typ consent+jwt) and withdrawals (typ revocation+jwt) share it, so
 * that a withdrawal is checked exactly as strictly as a consent.
 */
#include <jansson.h>
typedef ca_reason (*ca_jws_claims_pt)(json_t *payload, const ca_key *key,
                                      const ca_token_rules *rules,
                                      ca_claims *c, char *detail,
                                      size_t detail_len);

ca_reason ca_jws_verify(const char *token, size_t len, const char *typ,
                        const ca_keyset *ks, const ca_token_rules *rules,
                        ca_jws_claims_pt parse, ca_claims *claims,
                        char *detail, size_t detail_len);

/* The signature of ca_token_verify() and ca_withdrawal_verify(): what the
 * gateway calls once it has the key (…_decide.c). */
typedef ca_reason (*ca_jws_verify_pt)(const char *token, size_t len,
                                      const ca_keyset *ks,
                                      const ca_token_rules *rules,
                                      ca_claims *claims, char *detail,
                                      size_t detail_len);

/*
 * A withdrawal (contract §3 v3, withdrawal.c): a compact JWS of typ
 * revocation+jwt by the enterprise's own key, claims iss (its USCC, the
 * key's), jti (the consent withdrawn, the syntax of a consent's jti) and
 * iat.  Fills claims->iss, jti, iat, kid and alg; the rest stays zero.
 * Other claims are ignored.
 */
#define CA_WITHDRAWAL_TYP  "revocation+jwt"

ca_reason ca_withdrawal_verify(const char *token, size_t len,
                               const ca_keyset *ks,
                               const ca_token_rules *rules,
                               ca_claims *claims, char *detail,
                               size_t detail_len);

/*
 * The platform's revocation through the same endpoint, with a key of the
 * platform's own (credit_auth_revocation_endpoint platform_keys=): iss the
 * platform's USCC (its key's), sub the enterprise whose consent is
 * revoked (claims->sub), jti, iat.
 */
ca_reason ca_platform_withdrawal_verify(const char *token, size_t len,
                                        const ca_keyset *ks,
                                        const ca_token_rules *rules,
                                        ca_claims *claims, char *detail,
                                        size_t detail_len);

/* iat within leeway of now, either way: an older withdrawal is
 * token_expired (a captured one cannot be replayed later), a later one
 * token_not_yet_valid. */
ca_reason ca_withdrawal_check_time(const ca_claims *c, int64_t now,
                                   int64_t leeway, char *detail,
                                   size_t detail_len);

/*
 * The header's kid, before any check: where a registry lookup starts
 * (the gateway then verifies with the key found, or none).  kid holds
 * CA_KID_MAX + 1 bytes.  0, or -1 when there is no usable kid string.
 */
int ca_token_kid(const char *token, size_t len, char *kid, size_t *kid_len);

/*
 * The claim checks of ca_token_verify() on a claims object alone, with no
 * signature: what the tools apply (credit-policy explain, credit-consent
 * sign --policy).  enterprise: the USCC the signing key is registered to,
 * or NULL to check iss only for its form.  Adds nothing to what the
 * gateway checks and leaves nothing out.
 */
ca_reason ca_claims_parse(json_t *claims, const char *enterprise,
                          const ca_token_rules *rules, ca_claims *c,
                          char *detail, size_t detail_len);

ca_reason ca_claims_check_time(const ca_claims *c, int64_t now,
                               int64_t leeway, char *detail,
                               size_t detail_len);

typedef struct {
    const char          *bank_code;
    const char          *path_uscc;     /* 18 chars from the route */
    const char          *purpose;       /* X-Credit-Purpose */
    const char          *category;
    unsigned             mode;          /* CA_MODE_QUERY or CA_MODE_VERIFY */
    int                  want_raw;      /* X-Credit-Detail: raw */
    int                  raw_allowed;   /* category allows raw */
    int                  require_cnf;
    const unsigned char *cert_sha256;   /* 32 bytes, or NULL */
} ca_request_facts;

ca_reason ca_claims_check_request(const ca_claims *c,
                                  const ca_request_facts *f,
                                  char *detail, size_t detail_len);

/* Signature verification behind one interface: libjwt for ES256/RS256,
 * OpenSSL EVP for PS256, EdDSA and SM2.  1 if valid. */
int ca_sig_verify(const ca_key *key, const char *token, size_t signing_len,
                  const unsigned char *sig, size_t sig_len);

/* Produces a compact JWS over header and claims JSON with a private key
 * (tools and tests).  Returns malloc'd string or NULL. */
char *ca_token_sign(ca_alg alg, EVP_PKEY *priv, const char *header_json,
                    const char *claims_json);

#endif
