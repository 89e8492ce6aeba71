/*
 * JWS signatures (RFC 7515, 7518, 8037; GM/T 0009 for SM2): ES256, RS256,
 * PS256, EdDSA and SM2, all through OpenSSL EVP.  A signature is checked
 * only with the key's pinned alg, and only in its exact fixed size.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "token.h"

/* GM/T 0009-2012 default signer id for SM2 signatures. */
static const char sm2_default_id[] = "1234567812345678";

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
