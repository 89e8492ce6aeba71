/*
 * JWK (RFC 7517, 7518, 8037) to and from OpenSSL keys: the RSA, P-256,
 * SM2 and Ed25519 public keys a registry may hold.  Every coordinate is
 * decoded at its exact size and every key checked before use; which JWK
 * is acceptable at all (kid, uscc, pinned alg) is keys.c's to say.  The
 * algorithms' names are here too: the lowest file of jws/.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "keys.h"

/* The JOSE names of the algorithms a key may be pinned to (RFC 7518). */
static const struct {
    const char *name;
    ca_alg      alg;
} alg_names[] = {
    {"ES256", CA_ALG_ES256},
    {"RS256", CA_ALG_RS256},
    {"PS256", CA_ALG_PS256},
    {"EdDSA", CA_ALG_EDDSA},
    {"SM2",   CA_ALG_SM2},
};

ca_alg
ca_alg_from_name(const char *name)
{
    if (name == NULL) {
        return CA_ALG_NONE;
    }
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (strcmp(name, alg_names[i].name) == 0) {
            return alg_names[i].alg;
        }
    }
    return CA_ALG_NONE;
}

const char *
ca_alg_name(ca_alg alg)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++) {
        if (alg_names[i].alg == alg) {
            return alg_names[i].name;
        }
    }
    return "none";
}

/* Largest coordinate or modulus we decode: 8192-bit RSA. */
#define KEY_BYTES_MAX 1024

/*
 * Decodes a base64url member into out (room for cap bytes).  want > 0
 * demands exactly that many bytes; otherwise 1..cap.  The member is
 * decoded into a local buffer first: its length is the key's author's to
 * choose, out is the caller's fixed coordinate.  Returns the length or -1
 * with err set.
 */
static long
jwk_bytes(json_t *jwk, const char *member, unsigned char *out, size_t cap,
          size_t want, const char *file, const char *jpath, ca_error *err)
{
    json_t        *v = json_object_get(jwk, member);
    const char    *s;
    size_t         len;
    long           n;
    char           path[256];
    unsigned char  buf[KEY_BYTES_MAX + 3];

    snprintf(path, sizeof(path), "%s.%s", jpath, member);
    if (v == NULL) {
        ca_error_set(err, file, path, "missing");
        return -1;
    }
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, "must be a base64url string");
        return -1;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > (KEY_BYTES_MAX * 4 + 2) / 3) {
        ca_error_set(err, file, path, "bad length");
        return -1;
    }
    n = ca_b64url_decode(s, len, buf);
    if (n < 0) {
        ca_error_set(err, file, path, "not base64url (RFC 7515, no padding)");
        return -1;
    }
    if (want > 0 && (size_t) n != want) {
        ca_error_set(err, file, path, "must decode to %zu bytes, not %ld",
                     want, n);
        return -1;
    }
    if ((size_t) n > cap) {
        ca_error_set(err, file, path, "decodes to %ld bytes, at most %zu",
                     n, cap);
        return -1;
    }
    memcpy(out, buf, (size_t) n);
    return n;
}

/*
 * Builds a public key of keytype from params.  A curve point is checked
 * with OpenSSL's public check (deterministic for EC: on the curve, not
 * the point at infinity, in the prime-order subgroup), check_fails saying
 * what a failure means; RSA keys come with NULL, judged on their numbers
 * before (rsa_fault()).
 */
static EVP_PKEY *
pkey_from_params(const char *keytype, OSSL_PARAM_BLD *bld,
                 const char *check_fails, const char *file,
                 const char *jpath, ca_error *err)
{
    OSSL_PARAM   *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY     *pkey = NULL;

    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, keytype, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
    {
        ca_error_set(err, file, jpath, "not a valid %s public key", keytype);
        goto done;
    }
    if (check_fails == NULL) {
        goto done;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL || EVP_PKEY_public_check(check) != 1) {
        ca_error_set(err, file, jpath, "%s", check_fails);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/*
 * What is wrong with an RSA public key (n, e), or NULL.  Decided on the
 * numbers alone, the same on every gateway at every load: OpenSSL 3's
 * EVP_PKEY_public_check() (and its _quick form, the same for RSA in 3.0)
 * runs SP 800-56B's Miller-Rabin test on n with random bases, and
 * accepted and refused the same key at random (fuzz finding 7).
 * Checked (docs/keys.md): n of at least 2048 bits (at most 8192: the
 * decoder's limit) and odd; e odd with 2^16 < e < 2^256 (the range of
 * FIPS 186-5 and SP 800-56B; OpenSSL outside FIPS mode took any odd
 * e > 1); no prime below 1000 divides n.  That n is the product of two large primes cannot be
 * established from the public key and is not claimed.
 */
static const char *
rsa_fault(const BIGNUM *n, const BIGNUM *e, char *buf, size_t size)
{
    if (BN_num_bits(n) < 2048) {
        snprintf(buf, size, "weak key: RSA modulus of %d bits, at least"
                 " 2048 required", BN_num_bits(n));
        return buf;
    }
    if (!BN_is_odd(n)) {
        return "bad RSA key: the modulus n is even";
    }
    if (!BN_is_odd(e) || BN_num_bits(e) <= 16 || BN_num_bits(e) > 256) {
        return "bad RSA public exponent: e must be odd, above 2^16 and"
               " below 2^256 (65537 is usual)";
    }
    for (BN_ULONG d = 3; d < 1000; d += 2) {
        BN_ULONG f = 3;

        while (f * f <= d && d % f != 0) {
            f += 2;
        }
        if (f * f <= d) {
            continue;                   /* d is not a prime */
        }
        if (BN_mod_word(n, d) == 0) {
            snprintf(buf, size, "bad RSA key: the modulus n is divisible"
                     " by %lu", (unsigned long) d);
            return buf;
        }
    }
    return NULL;
}

static EVP_PKEY *
rsa_to_pkey(json_t *jwk, const char *file, const char *jpath, ca_error *err)
{
    unsigned char   n[KEY_BYTES_MAX], e[KEY_BYTES_MAX];
    long            nlen, elen;
    BIGNUM         *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY       *pkey = NULL;
    const char     *fault;
    char            why[96];

    nlen = jwk_bytes(jwk, "n", n, sizeof(n), 0, file, jpath, err);
    if (nlen < 0) {
        return NULL;
    }
    elen = jwk_bytes(jwk, "e", e, sizeof(e), 0, file, jpath, err);
    if (elen < 0) {
        return NULL;
    }
    bn_n = BN_bin2bn(n, (int) nlen, NULL);
    bn_e = BN_bin2bn(e, (int) elen, NULL);
    if (bn_n == NULL || bn_e == NULL) {
        ca_error_set(err, file, jpath, "out of memory");
        goto done;
    }
    if ((fault = rsa_fault(bn_n, bn_e, why, sizeof(why))) != NULL) {
        ca_error_set(err, file, jpath, "%s", fault);
        goto done;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n)
        || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
    {
        ca_error_set(err, file, jpath, "out of memory");
        goto done;
    }
    pkey = pkey_from_params("RSA", bld, NULL, file, jpath, err);

done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return pkey;
}

/* P-256 and SM2 keys: x and y are 32-byte big-endian coordinates. */
static EVP_PKEY *
ec_to_pkey(json_t *jwk, const char *keytype, const char *group,
           const char *file, const char *jpath, ca_error *err)
{
    unsigned char   point[65];
    OSSL_PARAM_BLD *bld;
    EVP_PKEY       *pkey = NULL;

    point[0] = 0x04;        /* uncompressed, SEC 1 §2.3.3 */
    if (jwk_bytes(jwk, "x", point + 1, 32, 32, file, jpath, err) < 0
        || jwk_bytes(jwk, "y", point + 33, 32, 32, file, jpath, err) < 0)
    {
        return NULL;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                            group, 0)
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                             point, sizeof(point)))
    {
        ca_error_set(err, file, jpath, "out of memory");
    } else {
        pkey = pkey_from_params(keytype, bld, "public key fails its check:"
                                " not a point of the curve's prime-order"
                                " group", file, jpath, err);
    }
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static EVP_PKEY *
ed25519_to_pkey(json_t *jwk, const char *file, const char *jpath,
                ca_error *err)
{
    unsigned char   x[32];
    OSSL_PARAM_BLD *bld;
    EVP_PKEY       *pkey = NULL;

    if (jwk_bytes(jwk, "x", x, sizeof(x), 32, file, jpath, err) < 0) {
        return NULL;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                             x, sizeof(x)))
    {
        ca_error_set(err, file, jpath, "out of memory");
    } else {
        pkey = pkey_from_params("ED25519", bld, "public key fails its"
                                " check", file, jpath, err);
    }
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static const char *
jwk_crv(json_t *jwk, const char *file, const char *jpath, ca_error *err)
{
    json_t *crv = json_object_get(jwk, "crv");
    char    path[256];

    snprintf(path, sizeof(path), "%s.crv", jpath);
    if (!json_is_string(crv)) {
        ca_error_set(err, file, path, crv ? "must be a string" : "missing");
        return NULL;
    }
    return json_string_value(crv);
}

EVP_PKEY *
ca_jwk_to_pkey(const char *kty, json_t *jwk, ca_alg alg, const char *file,
               const char *jpath, ca_error *err)
{
    const char *crv;
    char        path[256];

    snprintf(path, sizeof(path), "%s.kty", jpath);
    if (strcmp(kty, "RSA") == 0) {
        if (alg != CA_ALG_RS256 && alg != CA_ALG_PS256) {
            ca_error_set(err, file, path, "an RSA key cannot be used with"
                         " alg %s", ca_alg_name(alg));
            return NULL;
        }
        return rsa_to_pkey(jwk, file, jpath, err);
    }

    if (strcmp(kty, "EC") == 0) {
        if (alg != CA_ALG_ES256 && alg != CA_ALG_SM2) {
            ca_error_set(err, file, path, "an EC key cannot be used with"
                         " alg %s", ca_alg_name(alg));
            return NULL;
        }
        if ((crv = jwk_crv(jwk, file, jpath, err)) == NULL) {
            return NULL;
        }
        snprintf(path, sizeof(path), "%s.crv", jpath);
        if (alg == CA_ALG_ES256) {
            if (strcmp(crv, "P-256") != 0) {
                ca_error_set(err, file, path, "wrong curve: alg ES256 needs"
                             " crv P-256");
                return NULL;
            }
            return ec_to_pkey(jwk, "EC", "prime256v1", file, jpath, err);
        }
        if (strcmp(crv, "SM2") != 0) {
            ca_error_set(err, file, path, "wrong curve: alg SM2 needs"
                         " crv SM2");
            return NULL;
        }
        return ec_to_pkey(jwk, "SM2", "SM2", file, jpath, err);
    }

    if (strcmp(kty, "OKP") == 0) {
        if (alg != CA_ALG_EDDSA) {
            ca_error_set(err, file, path, "an OKP key cannot be used with"
                         " alg %s", ca_alg_name(alg));
            return NULL;
        }
        if ((crv = jwk_crv(jwk, file, jpath, err)) == NULL) {
            return NULL;
        }
        if (strcmp(crv, "Ed25519") != 0) {
            snprintf(path, sizeof(path), "%s.crv", jpath);
            ca_error_set(err, file, path, "wrong curve: alg EdDSA needs"
                         " crv Ed25519");
            return NULL;
        }
        return ed25519_to_pkey(jwk, file, jpath, err);
    }

    ca_error_set(err, file, path, "unsupported kty (RSA, EC or OKP)");
    return NULL;
}

static int
set_b64(json_t *jwk, const char *member, const unsigned char *b, size_t n)
{
    char buf[4 * ((KEY_BYTES_MAX + 2) / 3) + 1];

    if (n > KEY_BYTES_MAX) {
        return -1;
    }
    ca_b64url_encode(b, n, buf);
    return json_object_set_new(jwk, member, json_string(buf));
}

static int
set_bn(json_t *jwk, const char *member, EVP_PKEY *pkey, const char *param)
{
    BIGNUM       *bn = NULL;
    unsigned char buf[KEY_BYTES_MAX];
    int           n, rc = -1;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) == 1
        && (n = BN_num_bytes(bn)) <= KEY_BYTES_MAX)
    {
        BN_bn2bin(bn, buf);
        rc = set_b64(jwk, member, buf, (size_t) n);
    }
    BN_free(bn);
    return rc;
}

json_t *
ca_jwk_from_pkey(EVP_PKEY *pkey, ca_alg alg, const char *kid,
                 const char *uscc)
{
    json_t       *jwk = json_object();
    unsigned char pub[65];
    size_t        n = 0;
    int           rc = -1;

    if (jwk == NULL) {
        return NULL;
    }
    json_object_set_new(jwk, "kid", json_string(kid));
    switch (alg) {
    case CA_ALG_RS256:
    case CA_ALG_PS256:
        if (EVP_PKEY_is_a(pkey, "RSA")) {
            json_object_set_new(jwk, "kty", json_string("RSA"));
            rc = set_bn(jwk, "n", pkey, OSSL_PKEY_PARAM_RSA_N) == 0
                 && set_bn(jwk, "e", pkey, OSSL_PKEY_PARAM_RSA_E) == 0
                 ? 0 : -1;
        }
        break;
    case CA_ALG_ES256:
    case CA_ALG_SM2:
        if (EVP_PKEY_is_a(pkey, alg == CA_ALG_SM2 ? "SM2" : "EC")
            && EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
                                               pub, sizeof(pub), &n) == 1
            && n == 65 && pub[0] == 0x04)
        {
            json_object_set_new(jwk, "kty", json_string("EC"));
            json_object_set_new(jwk, "crv", json_string(alg == CA_ALG_SM2
                                                        ? "SM2" : "P-256"));
            rc = set_b64(jwk, "x", pub + 1, 32) == 0
                 && set_b64(jwk, "y", pub + 33, 32) == 0 ? 0 : -1;
        }
        break;
    case CA_ALG_EDDSA:
        if (EVP_PKEY_is_a(pkey, "ED25519")
            && EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
                                               pub, 32, &n) == 1 && n == 32)
        {
            json_object_set_new(jwk, "kty", json_string("OKP"));
            json_object_set_new(jwk, "crv", json_string("Ed25519"));
            rc = set_b64(jwk, "x", pub, 32);
        }
        break;
    default:
        break;
    }
    if (rc != 0) {
        json_decref(jwk);
        return NULL;
    }
    json_object_set_new(jwk, "alg", json_string(ca_alg_name(alg)));
    json_object_set_new(jwk, "use", json_string("sig"));
    json_object_set_new(jwk, "uscc", json_string(uscc));
    return jwk;
}
