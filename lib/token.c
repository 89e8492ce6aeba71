/*
 * Consent tokens: compact JWS verified per RFC 8725.
 *
 * The header is trusted for nothing but naming the key: the key's pinned
 * alg decides how the signature is checked, and a header that disagrees
 * is refused before any cryptography runs.  Every claim is checked here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "token.h"
#include "uscc.h"

/* GM/T 0009-2012 default signer id for SM2 signatures. */
static const char sm2_default_id[] = "1234567812345678";

static ca_reason
fail(ca_reason r, char *detail, size_t detail_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Details name the rule that failed, never a byte of the token: they end
 * up in problem+json bodies and logs. */
static ca_reason
fail(ca_reason r, char *detail, size_t detail_len, const char *fmt, ...)
{
    va_list ap;

    if (detail != NULL && detail_len > 0) {
        va_start(ap, fmt);
        vsnprintf(detail, detail_len, fmt, ap);
        va_end(ap);
    }
    return r;
}

/* ---- signatures ------------------------------------------------------ */

/* Sets up mctx for alg over pkey.  *pctx_out must be freed by the caller
 * after mctx (SM2 attaches its own context to carry the signer id). */
static int
evp_init(EVP_MD_CTX *mctx, EVP_PKEY_CTX **pctx_out, ca_alg alg,
         EVP_PKEY *pkey, int sign)
{
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = ca_md_sha256();
    int           ok;

    *pctx_out = NULL;
    switch (alg) {
    case CA_ALG_EDDSA:
        if (!EVP_PKEY_is_a(pkey, "ED25519")) {
            return 0;
        }
        md = NULL;          /* Ed25519 hashes internally (one-shot) */
        break;
    case CA_ALG_SM2:
        if (!EVP_PKEY_is_a(pkey, "SM2")) {
            return 0;
        }
        pctx = EVP_PKEY_CTX_new(pkey, NULL);
        if (pctx == NULL
            || EVP_PKEY_CTX_set1_id(pctx, sm2_default_id,
                                    sizeof(sm2_default_id) - 1) <= 0)
        {
            EVP_PKEY_CTX_free(pctx);
            return 0;
        }
        EVP_MD_CTX_set_pkey_ctx(mctx, pctx);
        *pctx_out = pctx;
        md = EVP_sm3();
        break;
    case CA_ALG_ES256:
        if (!EVP_PKEY_is_a(pkey, "EC")) {
            return 0;
        }
        break;
    case CA_ALG_RS256:
    case CA_ALG_PS256:
        if (!EVP_PKEY_is_a(pkey, "RSA")) {
            return 0;
        }
        break;
    default:
        return 0;
    }

    ok = sign ? EVP_DigestSignInit(mctx, &pctx, md, NULL, pkey)
              : EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey);
    if (ok != 1) {
        return 0;
    }
    if (alg == CA_ALG_PS256) {
        /* RFC 7518 §3.5: MGF1 with SHA-256, salt as long as the hash. */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) <= 0
            || EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, ca_md_sha256()) <= 0)
        {
            return 0;
        }
    } else if (alg == CA_ALG_RS256) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0) {
            return 0;
        }
    }
    return 1;
}

/* JWS carries ECDSA and SM2 signatures as fixed-width r||s (RFC 7518
 * §3.4); OpenSSL speaks DER.  Returns the DER length or -1. */
static int
raw_to_der(const unsigned char *raw, size_t len, unsigned char **der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM    *r, *s;
    int        n = -1;

    r = BN_bin2bn(raw, (int) (len / 2), NULL);
    s = BN_bin2bn(raw + len / 2, (int) (len / 2), NULL);
    if (es != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(es, r, s)) {
        r = s = NULL;       /* owned by es now */
        *der = NULL;
        n = i2d_ECDSA_SIG(es, der);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

static int
der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG           *es = d2i_ECDSA_SIG(NULL, &p, (long) len);
    const BIGNUM        *r, *s;
    int                  ok = 0;

    if (es != NULL) {
        ECDSA_SIG_get0(es, &r, &s);
        ok = BN_bn2binpad(r, raw, 32) == 32
             && BN_bn2binpad(s, raw + 32, 32) == 32;
    }
    ECDSA_SIG_free(es);
    return ok;
}

static int
evp_verify(const ca_key *key, const char *data, size_t len,
           const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX    *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX  *own = NULL;
    unsigned char *der = NULL;
    int            ok = 0, n;

    if (mctx == NULL || !evp_init(mctx, &own, key->alg, key->pkey, 0)) {
        goto done;
    }
    if (key->alg == CA_ALG_ES256 || key->alg == CA_ALG_SM2) {
        if ((n = raw_to_der(sig, sig_len, &der)) <= 0) {
            goto done;
        }
        ok = EVP_DigestVerify(mctx, der, (size_t) n,
                              (const unsigned char *) data, len) == 1;
    } else {
        ok = EVP_DigestVerify(mctx, sig, sig_len,
                              (const unsigned char *) data, len) == 1;
    }

done:
    OPENSSL_free(der);
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_CTX_free(own);
    return ok;
}

/* The header's alg exactly as written, decoded from the first segment. */
static int
header_alg_is(const char *token, size_t signing_len, const char *want)
{
    const char    *dot = memchr(token, '.', signing_len);
    unsigned char *buf;
    json_t        *hdr;
    long           n;
    int            ok = 0;

    if (dot == NULL) {
        return 0;
    }
    buf = malloc((size_t) (dot - token) * 3 / 4 + 3);
    if (buf == NULL) {
        return 0;
    }
    n = ca_b64url_decode(token, (size_t) (dot - token), buf);
    if (n > 0) {
        hdr = json_loadb((char *) buf, (size_t) n, JSON_REJECT_DUPLICATES,
                         NULL);
        ok = json_is_string(json_object_get(hdr, "alg"))
             && strcmp(json_string_value(json_object_get(hdr, "alg")),
                       want) == 0;
        json_decref(hdr);
    }
    free(buf);
    return ok;
}

int
ca_sig_verify(const ca_key *key, const char *token, size_t signing_len,
              const unsigned char *sig, size_t sig_len)
{
    size_t want;

    if (key == NULL || key->pkey == NULL) {
        return 0;
    }
    /* Fixed sizes: a short or padded signature is never "close enough". */
    switch (key->alg) {
    case CA_ALG_ES256:
    case CA_ALG_SM2:
    case CA_ALG_EDDSA:
        want = 64;
        break;
    case CA_ALG_RS256:
    case CA_ALG_PS256:
        want = (size_t) EVP_PKEY_get_size(key->pkey);
        break;
    default:
        return 0;
    }
    if (sig_len != want) {
        return 0;
    }

    /* The key's pinned alg decides the check; a header naming another
     * alg is refused here too, for callers that skip ca_token_verify. */
    if (!header_alg_is(token, signing_len, ca_alg_name(key->alg))) {
        return 0;
    }
    /* All five through EVP, none through libjwt: libjwt 1.10 refuses any
     * typ other than "JWT", and consent tokens say "consent+jwt" (see
     * docs/keys.md, "Why not libjwt"). */
    return evp_verify(key, token, signing_len, sig, sig_len);
}

char *
ca_token_sign(ca_alg alg, EVP_PKEY *priv, const char *header_json,
              const char *claims_json)
{
    size_t         hlen = strlen(header_json), clen = strlen(claims_json);
    size_t         cap, n, sig_len = 0;
    char          *out = NULL;
    unsigned char *sig = NULL, raw[64];
    EVP_MD_CTX    *mctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX  *own = NULL;

    cap = 4 * ((hlen + 2) / 3) + 1 + 4 * ((clen + 2) / 3) + 1
          + 4 * (((size_t) EVP_PKEY_get_size(priv) + 2) / 3) + 1 + 4;
    out = malloc(cap);
    if (mctx == NULL || out == NULL
        || !evp_init(mctx, &own, alg, priv, 1))
    {
        goto fail;
    }
    n = ca_b64url_encode((const unsigned char *) header_json, hlen, out);
    out[n++] = '.';
    n += ca_b64url_encode((const unsigned char *) claims_json, clen,
                          out + n);

    if (EVP_DigestSign(mctx, NULL, &sig_len, (unsigned char *) out, n) != 1
        || (sig = malloc(sig_len)) == NULL
        || EVP_DigestSign(mctx, sig, &sig_len, (unsigned char *) out, n)
           != 1)
    {
        goto fail;
    }
    out[n++] = '.';
    if (alg == CA_ALG_ES256 || alg == CA_ALG_SM2) {
        if (!der_to_raw(sig, sig_len, raw)) {
            goto fail;
        }
        ca_b64url_encode(raw, sizeof(raw), out + n);
    } else {
        ca_b64url_encode(sig, sig_len, out + n);
    }
    free(sig);
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_CTX_free(own);
    return out;

fail:
    free(sig);
    free(out);
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_CTX_free(own);
    return NULL;
}

/* ---- claims ---------------------------------------------------------- */

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

static ca_reason
parse_claims(json_t *p, const ca_key *key, const ca_token_rules *rules,
             ca_claims *c, char *detail, size_t dl)
{
    json_t     *v, *e;
    const char *s;
    size_t      i;

    if (!uscc_member(p, "iss", c->iss)) {
        return fail(CA_ISSUER_INVALID, detail, dl,
                    "iss must be a valid USCC");
    }
    if (strcmp(c->iss, key->uscc) != 0) {
        return fail(CA_ISSUER_INVALID, detail, dl,
                    "iss is not the enterprise the key is registered to");
    }
    if (!uscc_member(p, "sub", c->sub) || strcmp(c->sub, c->iss) != 0) {
        return fail(CA_SUBJECT_MISMATCH, detail, dl,
                    "sub must be a valid USCC equal to iss");
    }
    if (code_list(json_object_get(p, "aud"), 1, c->aud, &c->n_aud) != 0) {
        return fail(CA_TOKEN_MALFORMED, detail, dl, "aud must be a bank"
                    " code or a non-empty array of at most %d codes",
                    CA_LIST_MAX);
    }

    v = json_object_get(p, "jti");
    if (!json_is_string(v) || json_string_length(v) > CA_JTI_MAX
        || json_string_length(v) != strlen(json_string_value(v))
        || !ca_is_token_chars(json_string_value(v), CA_JTI_MAX))
    {
        return fail(CA_TOKEN_MALFORMED, detail, dl,
                    "jti must be 1..64 characters of [A-Za-z0-9._-]");
    }
    strcpy(c->jti, json_string_value(v));

    if (!int_member(p, "iat", &c->iat) || !int_member(p, "exp", &c->exp)) {
        return fail(CA_TOKEN_MALFORMED, detail, dl,
                    "iat and exp must be non-negative integers");
    }
    if (c->exp <= c->iat) {
        return fail(CA_TOKEN_MALFORMED, detail, dl, "exp must be after iat");
    }
    if (c->exp - c->iat > rules->max_lifetime) {
        return fail(CA_LIFETIME_TOO_LONG, detail, dl, "exp - iat exceeds"
                    " the policy's max_lifetime of %lld s",
                    (long long) rules->max_lifetime);
    }
    c->nbf = 0;
    if (json_object_get(p, "nbf") != NULL && !int_member(p, "nbf", &c->nbf)) {
        return fail(CA_TOKEN_MALFORMED, detail, dl,
                    "nbf must be a non-negative integer");
    }

    if (code_list(json_object_get(p, "purposes"), 0, c->purposes,
                  &c->n_purposes) != 0)
    {
        return fail(CA_TOKEN_MALFORMED, detail, dl, "purposes must be a"
                    " non-empty array of at most %d codes", CA_LIST_MAX);
    }
    if (code_list(json_object_get(p, "categories"), 0, c->categories,
                  &c->n_categories) != 0)
    {
        return fail(CA_TOKEN_MALFORMED, detail, dl, "categories must be a"
                    " non-empty array of at most %d codes", CA_LIST_MAX);
    }

    v = json_object_get(p, "modes");
    c->modes = CA_MODE_QUERY | CA_MODE_VERIFY;
    if (v != NULL) {
        c->modes = 0;
        if (!json_is_array(v) || json_array_size(v) == 0) {
            return fail(CA_TOKEN_MALFORMED, detail, dl, "modes must be a"
                        " non-empty array of \"query\", \"verify\"");
        }
        json_array_foreach(v, i, e) {
            s = json_string_value(e);
            if (s != NULL && strcmp(s, "query") == 0) {
                c->modes |= CA_MODE_QUERY;
            } else if (s != NULL && strcmp(s, "verify") == 0) {
                c->modes |= CA_MODE_VERIFY;
            } else {
                return fail(CA_TOKEN_MALFORMED, detail, dl, "modes may"
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
            return fail(CA_TOKEN_MALFORMED, detail, dl,
                        "detail must be \"masked\" or \"raw\"");
        }
    }

    c->max_uses = 0;
    if (json_object_get(p, "max_uses") != NULL
        && (!int_member(p, "max_uses", &c->max_uses) || c->max_uses == 0))
    {
        return fail(CA_TOKEN_MALFORMED, detail, dl,
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
            return fail(CA_TOKEN_MALFORMED, detail, dl, "cnf must be an"
                        " object with a base64url SHA-256 x5t#S256");
        }
        memcpy(c->cnf_x5t, json_string_value(e), 44);
    }
    return CA_OK;
}

/* ---- verification ---------------------------------------------------- */

/* Decodes one segment into a fresh buffer; NULL when not base64url. */
static unsigned char *
segment(const char *s, size_t len, size_t *out_len)
{
    unsigned char *buf = malloc(3 * len / 4 + 3);
    long           n;

    if (buf == NULL) {
        return NULL;
    }
    n = ca_b64url_decode(s, len, buf);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    *out_len = (size_t) n;
    return buf;
}

/* A JSON object with no duplicate member, no NUL, valid UTF-8. */
static json_t *
json_object_from(const unsigned char *buf, size_t len)
{
    json_t *v;

    if (memchr(buf, '\0', len) != NULL) {
        return NULL;
    }
    v = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* "none", every HS*, and every other name than our five exact ones. */
static ca_alg
header_alg(json_t *hdr)
{
    json_t *v = json_object_get(hdr, "alg");

    if (!json_is_string(v)
        || json_string_length(v) != strlen(json_string_value(v)))
    {
        return CA_ALG_NONE;
    }
    return ca_alg_from_name(json_string_value(v));
}

int
ca_token_kid(const char *token, size_t len, char *kid, size_t *kid_len)
{
    const char    *d1;
    unsigned char *hbuf;
    size_t         hlen = 0;
    json_t        *hdr, *v;
    int            rc = -1;

    if (len == 0 || len > CA_TOKEN_MAX
        || (d1 = memchr(token, '.', len)) == NULL || d1 == token)
    {
        return -1;
    }
    hbuf = segment(token, (size_t) (d1 - token), &hlen);
    hdr = hbuf ? json_object_from(hbuf, hlen) : NULL;
    v = json_object_get(hdr, "kid");
    if (json_is_string(v) && json_string_length(v) > 0
        && json_string_length(v) <= CA_KID_MAX)
    {
        *kid_len = json_string_length(v);
        memcpy(kid, json_string_value(v), *kid_len);
        kid[*kid_len] = '\0';
        rc = 0;
    }
    json_decref(hdr);
    free(hbuf);
    return rc;
}

ca_reason
ca_token_verify(const char *token, size_t len, const ca_keyset *ks,
                const ca_token_rules *rules, ca_claims *claims,
                char *detail, size_t detail_len)
{
    const char    *d1, *d2;
    unsigned char *hbuf = NULL, *pbuf = NULL, *sbuf = NULL;
    size_t         hlen = 0, plen = 0, slen = 0, signing_len;
    json_t        *hdr = NULL, *payload = NULL, *v;
    const ca_key  *key;
    ca_alg         alg;
    ca_reason      r;
    ca_claims      c;

    if (detail != NULL && detail_len > 0) {
        detail[0] = '\0';
    }
    if (len == 0 || len > CA_TOKEN_MAX) {
        return fail(CA_TOKEN_MALFORMED, detail, detail_len,
                    "token length must be 1..%d bytes", CA_TOKEN_MAX);
    }
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - token)) : NULL;
    if (d1 == NULL || d2 == NULL
        || memchr(d2 + 1, '.', len - (size_t) (d2 + 1 - token)) != NULL)
    {
        return fail(CA_TOKEN_MALFORMED, detail, detail_len,
                    "not a compact JWS of three segments");
    }
    signing_len = (size_t) (d2 - token);
    if (d1 == token || d2 == d1 + 1 || signing_len + 1 == len) {
        return fail(CA_TOKEN_MALFORMED, detail, detail_len,
                    "empty segment");
    }

    r = CA_TOKEN_MALFORMED;
    hbuf = segment(token, (size_t) (d1 - token), &hlen);
    pbuf = segment(d1 + 1, (size_t) (d2 - d1 - 1), &plen);
    sbuf = segment(d2 + 1, len - signing_len - 1, &slen);
    if (hbuf == NULL || pbuf == NULL || sbuf == NULL) {
        fail(r, detail, detail_len, "segment is not base64url");
        goto done;
    }
    hdr = json_object_from(hbuf, hlen);
    if (hdr == NULL) {
        fail(r, detail, detail_len, "header is not a JSON object");
        goto done;
    }

    v = json_object_get(hdr, "alg");
    if (!json_is_string(v)) {
        fail(r, detail, detail_len, "header alg must be a string");
        goto done;
    }
    alg = header_alg(hdr);
    if (alg == CA_ALG_NONE) {
        r = fail(CA_ALG_NOT_ALLOWED, detail, detail_len,
                 "alg is not one of ES256 RS256 PS256 EdDSA SM2");
        goto done;
    }
    if ((rules->algs & alg) == 0) {
        r = fail(CA_ALG_NOT_ALLOWED, detail, detail_len,
                 "alg %s is not allowed by the policy", ca_alg_name(alg));
        goto done;
    }

    v = json_object_get(hdr, "typ");
    if (!json_is_string(v) || strcmp(json_string_value(v), "consent+jwt")
        || json_string_length(v) != sizeof("consent+jwt") - 1)
    {
        r = fail(CA_TYP_INVALID, detail, detail_len,
                 "typ must be consent+jwt");
        goto done;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        fail(r, detail, detail_len, "crit names extensions we do not"
             " understand");
        goto done;
    }
    /* jku, x5u, jwk, x5c: never followed; keys come from the registry. */

    v = json_object_get(hdr, "kid");
    if (!json_is_string(v)) {
        fail(r, detail, detail_len, "header kid must be a string");
        goto done;
    }
    key = ca_keyset_find(ks, json_string_value(v), json_string_length(v));
    if (key == NULL) {
        r = fail(CA_KID_UNKNOWN, detail, detail_len,
                 "kid is not in the key registry");
        goto done;
    }
    if (key->alg != alg) {
        r = fail(CA_ALG_NOT_ALLOWED, detail, detail_len,
                 "alg %s differs from the key's pinned alg %s",
                 ca_alg_name(alg), ca_alg_name(key->alg));
        goto done;
    }
    if (!ca_sig_verify(key, token, signing_len, sbuf, slen)) {
        r = fail(CA_SIGNATURE_INVALID, detail, detail_len,
                 "%s signature does not verify", ca_alg_name(alg));
        goto done;
    }

    payload = json_object_from(pbuf, plen);
    if (payload == NULL) {
        fail(r, detail, detail_len, "payload is not a JSON object");
        goto done;
    }
    memset(&c, 0, sizeof(c));
    r = parse_claims(payload, key, rules, &c, detail, detail_len);
    if (r == CA_OK) {
        c.alg = alg;
        strcpy(c.kid, key->kid);
        *claims = c;
    }

done:
    json_decref(hdr);
    json_decref(payload);
    free(hbuf);
    free(pbuf);
    free(sbuf);
    return r;
}

ca_reason
ca_claims_parse(json_t *claims, const char *enterprise,
                const ca_token_rules *rules, ca_claims *c, char *detail,
                size_t detail_len)
{
    ca_key      key;
    const char *iss = json_string_value(json_object_get(claims, "iss"));

    if (!json_is_object(claims)) {
        return fail(CA_TOKEN_MALFORMED, detail, detail_len,
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
        return fail(CA_TOKEN_EXPIRED, detail, detail_len,
                    "exp has passed");
    }
    if (c->nbf != 0 && now + leeway < c->nbf) {
        return fail(CA_TOKEN_NOT_YET_VALID, detail, detail_len,
                    "nbf is in the future");
    }
    if (c->iat > now + leeway) {
        return fail(CA_TOKEN_NOT_YET_VALID, detail, detail_len,
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
        return fail(CA_AUDIENCE_MISMATCH, detail, detail_len,
                    "the bank is not in aud");
    }
    if (f->path_uscc == NULL || strncmp(c->sub, f->path_uscc, 18) != 0) {
        return fail(CA_SUBJECT_MISMATCH, detail, detail_len,
                    "sub is not the enterprise in the request path");
    }
    if (f->purpose == NULL
        || !in_list(c->purposes, c->n_purposes, f->purpose))
    {
        return fail(CA_PURPOSE_NOT_ALLOWED, detail, detail_len,
                    "the purpose is not in the token's purposes");
    }
    if (f->category == NULL
        || !in_list(c->categories, c->n_categories, f->category))
    {
        return fail(CA_CATEGORY_NOT_CONSENTED, detail, detail_len,
                    "the category is not in the token's categories");
    }
    if ((c->modes & f->mode) == 0 || f->mode == 0) {
        return fail(CA_MODE_NOT_CONSENTED, detail, detail_len,
                    "the access mode is not in the token's modes");
    }
    if (f->want_raw && !(c->detail_raw && f->raw_allowed)) {
        return fail(CA_RAW_NOT_ALLOWED, detail, detail_len,
                    c->detail_raw ? "the category does not allow raw detail"
                                  : "the token does not consent to raw"
                                    " detail");
    }
    if (c->cnf_x5t[0] == '\0') {
        if (f->require_cnf) {
            return fail(CA_CNF_MISMATCH, detail, detail_len,
                        "the policy requires a certificate-bound token");
        }
        return CA_OK;
    }
    if (f->cert_sha256 == NULL) {
        return fail(CA_CNF_MISMATCH, detail, detail_len,
                    "the token is certificate-bound but no certificate"
                    " was presented");
    }
    ca_b64url_encode(f->cert_sha256, 32, x5t);
    if (strcmp(x5t, c->cnf_x5t) != 0) {
        return fail(CA_CNF_MISMATCH, detail, detail_len,
                    "cnf x5t#S256 does not match the client certificate");
    }
    return CA_OK;
}
