/*
 * Consent token verification: every rule of ca_token_verify and the two
 * check functions, each reason asserted.  Keys are generated per run and
 * registered through a real JWKS file, as the gateway loads them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jws/keys.h"
#include "jws/token.h"
#include "core/uscc.h"
#include "core/core_testing.h"

#define USCC  "91350100M000100Y43"
#define NOW   1800000000LL

static const char *const alg_kids[] = {
    "k-ES256", "k-RS256", "k-PS256", "k-EdDSA", "k-SM2",
};
static const ca_alg algs[] = {
    CA_ALG_ES256, CA_ALG_RS256, CA_ALG_PS256, CA_ALG_EDDSA, CA_ALG_SM2,
};
#define N_ALGS 5

static EVP_PKEY      *priv[N_ALGS];
static ca_keyset     *ks;
static char           other_uscc[19];   /* valid, but not the key's */
static ca_token_rules rules = {CA_ALG_ALL, 90 * 86400, 60, 0};
static char           detail[256];

static int
idx_of(ca_alg alg)
{
    for (int i = 0; i < N_ALGS; i++) {
        if (algs[i] == alg) {
            return i;
        }
    }
    return -1;
}

static int
setup(void **state)
{
    char    path[] = "/tmp/test_token_XXXXXX";
    json_t *keys = json_array();
    int     fd;
    ca_error err;

    priv[0] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    priv[1] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    priv[2] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    priv[3] = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    priv[4] = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    for (int i = 0; i < N_ALGS; i++) {
        json_t *jwk = ca_jwk_from_pkey(priv[i], algs[i], alg_kids[i], USCC);
        if (jwk == NULL) {
            return -1;
        }
        json_array_append_new(keys, jwk);
    }
    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    keys = json_pack("{s:o}", "keys", keys);
    json_dump_file(keys, path, 0);
    json_decref(keys);
    ks = ca_keyset_load(path, &err);
    unlink(path);
    if (ks == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return -1;
    }

    memcpy(other_uscc, "91110000MA0000000", 17);
    other_uscc[17] = ca_uscc_check_char(other_uscc);
    other_uscc[18] = '\0';
    (void) state;
    return 0;
}

static int
teardown(void **state)
{
    for (int i = 0; i < N_ALGS; i++) {
        EVP_PKEY_free(priv[i]);
    }
    ca_keyset_free(ks);
    (void) state;
    return 0;
}

/* ---- building tokens ------------------------------------------------- */

static json_t *
base_claims(void)
{
    return json_pack("{s:s,s:s,s:[s],s:s,s:I,s:I,s:[s,s],s:[s]}",
                     "iss", USCC, "sub", USCC, "aud", "bankA",
                     "jti", "consent-1", "iat", (json_int_t) NOW,
                     "exp", (json_int_t) (NOW + 3600),
                     "purposes", "loan_application", "credit_assessment",
                     "categories", "tax");
}

static json_t *
base_header(ca_alg alg)
{
    return json_pack("{s:s,s:s,s:s}", "alg", ca_alg_name(alg),
                     "typ", "consent+jwt", "kid", alg_kids[idx_of(alg)]);
}

/* Compact text of a JSON value, which it consumes. */
static char *
dump(json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    return s;
}

/* Signs with the key registered for alg (the header may say anything). */
static char *
mint_raw(ca_alg key_alg, const char *hdr, const char *claims)
{
    char *t = ca_token_sign(key_alg, priv[idx_of(key_alg)], hdr, claims);
    assert_non_null(t);
    return t;
}

static char *
mint(ca_alg key_alg, json_t *hdr, json_t *claims)
{
    char *h = json_dumps(hdr, JSON_COMPACT);
    char *c = json_dumps(claims, JSON_COMPACT);
    char *t = mint_raw(key_alg, h, c);

    free(h);
    free(c);
    json_decref(hdr);
    json_decref(claims);
    return t;
}

static ca_reason
verify(const char *token, ca_claims *out)
{
    ca_claims scratch;
    return ca_token_verify(token, strlen(token), ks, &rules,
                           out ? out : &scratch, detail, sizeof(detail));
}

/* A token whose claims differ from the base in one member. */
static ca_reason
verify_claim(const char *name, json_t *value)
{
    json_t   *c = base_claims();
    char     *t;
    ca_reason r;

    if (value == NULL) {
        json_object_del(c, name);
    } else {
        json_object_set_new(c, name, value);
    }
    t = mint(CA_ALG_ES256, base_header(CA_ALG_ES256), c);
    r = verify(t, NULL);
    free(t);
    return r;
}

static ca_reason
verify_header(const char *name, json_t *value)
{
    json_t   *h = base_header(CA_ALG_ES256);
    char     *t;
    ca_reason r;

    if (value == NULL) {
        json_object_del(h, name);
    } else {
        json_object_set_new(h, name, value);
    }
    t = mint(CA_ALG_ES256, h, base_claims());
    r = verify(t, NULL);
    free(t);
    return r;
}

/* header.payload.signature from raw segment texts, base64url-encoded. */
static char *
assemble(const char *hdr, size_t hlen, const char *payload, size_t plen,
         const char *sig_b64)
{
    char *t = malloc(2 * (hlen + plen) + strlen(sig_b64) + 8);
    size_t n;

    n = ca_b64url_encode((const unsigned char *) hdr, hlen, t);
    t[n++] = '.';
    n += ca_b64url_encode((const unsigned char *) payload, plen, t + n);
    t[n++] = '.';
    strcpy(t + n, sig_b64);
    return t;
}

/* ---- round trips and signatures -------------------------------------- */

static void
test_round_trip_all_algs(void **state)
{
    for (int i = 0; i < N_ALGS; i++) {
        ca_claims c;
        char     *t = mint(algs[i], base_header(algs[i]), base_claims());

        assert_int_equal(verify(t, &c), CA_OK);
        assert_int_equal(c.alg, algs[i]);
        assert_string_equal(c.kid, alg_kids[i]);
        assert_string_equal(c.iss, USCC);
        assert_string_equal(c.sub, USCC);
        assert_string_equal(c.jti, "consent-1");
        assert_int_equal(c.iat, NOW);
        assert_int_equal(c.exp, NOW + 3600);
        assert_int_equal(c.nbf, 0);
        assert_int_equal(c.n_aud, 1);
        assert_string_equal(c.aud[0], "bankA");
        assert_int_equal(c.n_purposes, 2);
        assert_string_equal(c.purposes[1], "credit_assessment");
        assert_int_equal(c.n_categories, 1);
        assert_int_equal(c.modes, CA_MODE_QUERY | CA_MODE_VERIFY);
        assert_int_equal(c.detail_raw, 0);
        assert_int_equal(c.max_uses, 0);
        assert_string_equal(c.cnf_x5t, "");
        free(t);
    }
    (void) state;
}

static void
test_tampered_signature(void **state)
{
    for (int i = 0; i < N_ALGS; i++) {
        char  *t = mint(algs[i], base_header(algs[i]), base_claims());
        char  *sig = strrchr(t, '.') + 1;

        /* A middle character: every bit of it is significant. */
        sig[5] = sig[5] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t, NULL), CA_SIGNATURE_INVALID);
        free(t);
    }
    (void) state;
}

static void
test_tampered_payload(void **state)
{
    json_t *c = base_claims();
    char   *t, *t2, *h, *p;

    t = mint(CA_ALG_PS256, base_header(CA_ALG_PS256), base_claims());
    /* Same header and signature, claims widened to another category. */
    json_object_set_new(c, "categories", json_pack("[s,s]", "tax", "rnd"));
    p = json_dumps(c, JSON_COMPACT);
    h = dump(base_header(CA_ALG_PS256));
    t2 = assemble(h, strlen(h), p, strlen(p), strrchr(t, '.') + 1);
    assert_int_equal(verify(t2, NULL), CA_SIGNATURE_INVALID);
    free(t);
    free(t2);
    free(h);
    free(p);
    json_decref(c);
    (void) state;
}

static void
test_signature_length_is_exact(void **state)
{
    const ca_key *k = ca_keyset_find(ks, "k-ES256", 7);
    unsigned char sig[65] = {0};

    assert_non_null(k);
    assert_int_equal(ca_sig_verify(k, "e30.e30", 7, sig, 63), 0);
    assert_int_equal(ca_sig_verify(k, "e30.e30", 7, sig, 65), 0);
    (void) state;
}

/* ---- algorithm rules ------------------------------------------------- */

/* RS256 -> HS256: the attacker MACs with the public key's PEM text, which
 * libjwt 1.10 would accept as the HMAC secret. */
static char *
hs256_forgery(const char *typ)
{
    const ca_key *k = ca_keyset_find(ks, "k-RS256", 7);
    char          hdr[128], *t, *dot, sig[64];
    unsigned char mac[32];
    unsigned int  maclen = 0;
    json_t       *c = base_claims();
    char         *cj = json_dumps(c, JSON_COMPACT);

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"%s\","
             "\"kid\":\"k-RS256\"}", typ);
    t = assemble(hdr, strlen(hdr), cj, strlen(cj), "");
    dot = strrchr(t, '.');
    HMAC(EVP_sha256(), k->pem, (int) k->pem_len, (unsigned char *) t,
         (size_t) (dot - t), mac, &maclen);
    ca_b64url_encode(mac, maclen, sig);
    t = realloc(t, strlen(t) + strlen(sig) + 1);
    strcat(t, sig);
    free(cj);
    json_decref(c);
    return t;
}

static void
test_alg_confusion_hs256(void **state)
{
    char *t = hs256_forgery("consent+jwt");

    assert_int_equal(verify(t, NULL), CA_ALG_NOT_ALLOWED);
    free(t);
    (void) state;
}

/* Why the pinning matters: libjwt alone accepts the forgery (with the typ
 * it insists on).  If this ever fails, libjwt changed; see docs/keys.md. */
static void
test_libjwt_accepts_forgery(void **state)
{
    const ca_key *k = ca_keyset_find(ks, "k-RS256", 7);
    char         *t = hs256_forgery("JWT");
    jwt_t        *jwt = NULL;

    assert_int_equal(jwt_decode(&jwt, t, (const unsigned char *) k->pem,
                                (int) k->pem_len), 0);
    assert_int_equal(jwt_get_alg(jwt), JWT_ALG_HS256);
    jwt_free(jwt);
    free(t);
    (void) state;
}

/* And libjwt refuses our typ even for a genuine RS256 token. */
static void
test_libjwt_refuses_consent_typ(void **state)
{
    const ca_key *k = ca_keyset_find(ks, "k-RS256", 7);
    char         *t = mint(CA_ALG_RS256, base_header(CA_ALG_RS256),
                           base_claims());
    jwt_t        *jwt = NULL;

    assert_int_equal(verify(t, NULL), CA_OK);
    assert_int_not_equal(jwt_decode(&jwt, t, (const unsigned char *) k->pem,
                                    (int) k->pem_len), 0);
    jwt_free(jwt);
    free(t);
    (void) state;
}

static void
test_alg_names_rejected(void **state)
{
    static const char *const names[] = {
        "es256", "Es256", "ES256 ", "none", "NONE", "None", "HS256", "hs256",
        "HS384", "HS512", "Hs512", "RS512", "ES384", "Ed25519", "sm2", "",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(verify_header("alg", json_string(names[i])),
                         CA_ALG_NOT_ALLOWED);
    }
    (void) state;
}

static void
test_alg_none_unsigned(void **state)
{
    const char *hdr = "{\"alg\":\"none\",\"typ\":\"consent+jwt\","
                      "\"kid\":\"k-ES256\"}";
    char *c = dump(base_claims());
    char *t = assemble(hdr, strlen(hdr), c, strlen(c), "");

    /* "alg":"none" with its empty signature is malformed before its alg
     * is even read; with any signature bytes it is alg_not_allowed. */
    assert_int_equal(verify(t, NULL), CA_TOKEN_MALFORMED);
    t = realloc(t, strlen(t) + 8);
    strcat(t, "AAAA");
    assert_int_equal(verify(t, NULL), CA_ALG_NOT_ALLOWED);
    free(t);
    free(c);
    (void) state;
}

static void
test_alg_not_string(void **state)
{
    assert_int_equal(verify_header("alg", json_integer(1)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_header("alg", NULL), CA_TOKEN_MALFORMED);
    (void) state;
}

static void
test_alg_not_in_policy(void **state)
{
    char *t = mint(CA_ALG_SM2, base_header(CA_ALG_SM2), base_claims());

    rules.algs = CA_ALG_ALL & ~CA_ALG_SM2;
    assert_int_equal(verify(t, NULL), CA_ALG_NOT_ALLOWED);
    rules.algs = CA_ALG_ALL;
    assert_int_equal(verify(t, NULL), CA_OK);
    free(t);
    (void) state;
}

static void
test_alg_differs_from_pinned(void **state)
{
    /* The ES256 key's kid, an RS256 header, a valid RS256 signature by
     * another registered key: refused on the pin, never verified. */
    json_t *h = base_header(CA_ALG_RS256);
    char   *t;

    json_object_set_new(h, "kid", json_string("k-ES256"));
    t = mint(CA_ALG_RS256, h, base_claims());
    assert_int_equal(verify(t, NULL), CA_ALG_NOT_ALLOWED);
    free(t);

    /* PS256 header on the RS256 key: same family, still another alg. */
    h = base_header(CA_ALG_PS256);
    json_object_set_new(h, "kid", json_string("k-RS256"));
    t = mint(CA_ALG_PS256, h, base_claims());
    assert_int_equal(verify(t, NULL), CA_ALG_NOT_ALLOWED);
    free(t);
    (void) state;
}

/* ---- other header rules ---------------------------------------------- */

static void
test_typ(void **state)
{
    assert_int_equal(verify_header("typ", NULL), CA_TYP_INVALID);
    assert_int_equal(verify_header("typ", json_string("JWT")),
                     CA_TYP_INVALID);
    assert_int_equal(verify_header("typ", json_string("Consent+JWT")),
                     CA_TYP_INVALID);
    assert_int_equal(verify_header("typ",
                                   json_string("application/consent+jwt")),
                     CA_TYP_INVALID);
    assert_int_equal(verify_header("typ", json_integer(1)), CA_TYP_INVALID);
    (void) state;
}

static void
test_crit_rejected(void **state)
{
    assert_int_equal(verify_header("crit", json_pack("[s]", "exp")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_header("crit", json_array()),
                     CA_TOKEN_MALFORMED);
    (void) state;
}

static void
test_key_urls_ignored(void **state)
{
    json_t *h = base_header(CA_ALG_ES256);
    char   *t;

    json_object_set_new(h, "jku", json_string("http://127.0.0.1:1/jwks"));
    json_object_set_new(h, "x5u", json_string("http://127.0.0.1:1/x5u"));
    json_object_set_new(h, "jwk", json_pack("{s:s}", "kty", "oct"));
    json_object_set_new(h, "x5c", json_pack("[s]", "MIIB"));
    t = mint(CA_ALG_ES256, h, base_claims());
    assert_int_equal(verify(t, NULL), CA_OK);
    free(t);
    (void) state;
}

static void
test_kid(void **state)
{
    char long_kid[200];

    memset(long_kid, 'k', sizeof(long_kid) - 1);
    long_kid[sizeof(long_kid) - 1] = '\0';
    assert_int_equal(verify_header("kid", json_string("k-nobody")),
                     CA_KID_UNKNOWN);
    assert_int_equal(verify_header("kid", json_string("")), CA_KID_UNKNOWN);
    assert_int_equal(verify_header("kid", json_string(long_kid)),
                     CA_KID_UNKNOWN);
    assert_int_equal(verify_header("kid", json_string("K-ES256")),
                     CA_KID_UNKNOWN);
    assert_int_equal(verify_header("kid", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_header("kid", json_integer(7)),
                     CA_TOKEN_MALFORMED);
    (void) state;
}

/* ---- malformed input ------------------------------------------------- */

static ca_reason
verify_n(const char *t, size_t len)
{
    ca_claims c;
    return ca_token_verify(t, len, ks, &rules, &c, detail, sizeof(detail));
}

static void
test_malformed_shapes(void **state)
{
    char *t = mint(CA_ALG_EDDSA, base_header(CA_ALG_EDDSA), base_claims());
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    char  buf[4096];

    assert_int_equal(verify(t, NULL), CA_OK);
    assert_int_equal(verify_n(t, 0), CA_TOKEN_MALFORMED);
    /* Two segments. */
    assert_int_equal(verify_n(t, (size_t) (d2 - t)), CA_TOKEN_MALFORMED);
    /* Four segments. */
    snprintf(buf, sizeof(buf), "%s.e30", t);
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    /* Empty signature, header, payload. */
    assert_int_equal(verify_n(t, (size_t) (d2 - t) + 1), CA_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", d1);
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%.*s.%s", (int) (d1 - t), t, d2);
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    /* Standard base64 characters, padding, whitespace, a control char. */
    snprintf(buf, sizeof(buf), "%s", t);
    buf[3] = '+';
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%s=", t);
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", t);
    buf[d2 - t + 4] = ' ';
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    snprintf(buf, sizeof(buf), "%s", t);
    buf[2] = '\x01';
    assert_int_equal(verify(buf, NULL), CA_TOKEN_MALFORMED);
    /* A NUL inside the given length. */
    snprintf(buf, sizeof(buf), "%s", t);
    buf[2] = '\0';
    assert_int_equal(verify_n(buf, strlen(t)), CA_TOKEN_MALFORMED);
    free(t);
    (void) state;
}

static void
test_malformed_oversize(void **state)
{
    size_t n = 64 * 1024;
    char  *big = malloc(n + 1);
    char  *t = mint(CA_ALG_ES256, base_header(CA_ALG_ES256), base_claims());

    memset(big, 'A', n);
    big[n] = '\0';
    big[100] = '.';
    big[200] = '.';
    assert_int_equal(verify_n(big, n), CA_TOKEN_MALFORMED);
    /* A genuine token is refused on length alone, before any parsing. */
    assert_int_equal(verify_n(t, CA_TOKEN_MAX + 1), CA_TOKEN_MALFORMED);
    free(big);
    free(t);
    (void) state;
}

static ca_reason
verify_raw_header(const char *hdr, size_t hlen)
{
    char     *c = dump(base_claims());
    char     *t = assemble(hdr, hlen, c, strlen(c), "AAAA");
    ca_reason r = verify(t, NULL);

    free(c);
    free(t);
    return r;
}

static void
test_malformed_header(void **state)
{
    const char nul[] = "{\"alg\":\"ES256\",\"typ\":\"consent+jwt\"\0,"
                       "\"kid\":\"k-ES256\"}";
#define RAW(s) verify_raw_header(s, sizeof(s) - 1)
    assert_int_equal(RAW("not json"), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("[\"ES256\"]"), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("\"ES256\""), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("{\"alg\":\"ES256\""), CA_TOKEN_MALFORMED);
    /* Two algs: which one is meant is anyone's guess. */
    assert_int_equal(RAW("{\"alg\":\"HS256\",\"alg\":\"ES256\","
                         "\"typ\":\"consent+jwt\",\"kid\":\"k-ES256\"}"),
                     CA_TOKEN_MALFORMED);
    /* Invalid UTF-8, an escaped NUL, a raw NUL, a raw control char. */
    assert_int_equal(RAW("{\"alg\":\"ES256\",\"typ\":\"consent+jwt\","
                         "\"kid\":\"k-\xff\"}"), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("{\"alg\":\"ES256\",\"typ\":\"consent+jwt\","
                         "\"kid\":\"k-ES256\\u0000\"}"), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_raw_header(nul, sizeof(nul) - 1),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("{\"alg\":\"ES256\",\"typ\":\"consent+jwt\","
                         "\"kid\":\"k-\x01\"}"), CA_TOKEN_MALFORMED);
#undef RAW
    (void) state;
}

static ca_reason
verify_raw_payload(const char *payload, size_t plen)
{
    char     *h = dump(base_header(CA_ALG_ES256));
    char     *buf = malloc(plen + 1);
    char     *t;
    ca_reason r;

    memcpy(buf, payload, plen);
    buf[plen] = '\0';
    /* Signed for real: the payload itself is the only fault. */
    t = ca_token_sign(CA_ALG_ES256, priv[0], h, buf);
    r = verify(t, NULL);
    free(h);
    free(buf);
    free(t);
    return r;
}

static void
test_malformed_payload(void **state)
{
#define RAW(s) verify_raw_payload(s, sizeof(s) - 1)
    assert_int_equal(RAW("not json"), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("[1,2]"), CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("{\"iss\":\"" USCC "\",\"iss\":\"" USCC "\"}"),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(RAW("{\"iss\":\"" USCC "\",\"x\":\"\xc3\x28\"}"),
                     CA_TOKEN_MALFORMED);
#undef RAW
    (void) state;
}

/* ---- claims ---------------------------------------------------------- */

static void
test_issuer(void **state)
{
    assert_int_equal(verify_claim("iss", NULL), CA_ISSUER_INVALID);
    assert_int_equal(verify_claim("iss", json_integer(1)),
                     CA_ISSUER_INVALID);
    assert_int_equal(verify_claim("iss", json_string("91350100M000100Y4Z")),
                     CA_ISSUER_INVALID);
    assert_int_equal(verify_claim("iss", json_string("91350100m000100y43")),
                     CA_ISSUER_INVALID);
    /* A valid USCC, but not the one the key is registered to. */
    assert_int_equal(verify_claim("iss", json_string(other_uscc)),
                     CA_ISSUER_INVALID);
    (void) state;
}

static void
test_subject(void **state)
{
    assert_int_equal(verify_claim("sub", NULL), CA_SUBJECT_MISMATCH);
    assert_int_equal(verify_claim("sub", json_string(other_uscc)),
                     CA_SUBJECT_MISMATCH);
    assert_int_equal(verify_claim("sub", json_string("91350100M000100Y4Z")),
                     CA_SUBJECT_MISMATCH);
    (void) state;
}

static void
test_audience_shape(void **state)
{
    json_t *many = json_array();
    char    long_code[CA_CODE_MAX + 2];

    for (int i = 0; i <= CA_LIST_MAX; i++) {
        json_array_append_new(many, json_string("bank"));
    }
    memset(long_code, 'b', sizeof(long_code) - 1);
    long_code[sizeof(long_code) - 1] = '\0';

    assert_int_equal(verify_claim("aud", json_string("bankA")), CA_OK);
    assert_int_equal(verify_claim("aud", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", json_array()), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", json_integer(3)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", json_pack("[s,i]", "a", 1)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", many), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", json_string(long_code)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("aud", json_string("")),
                     CA_TOKEN_MALFORMED);
    (void) state;
}

static void
test_jti(void **state)
{
    char j64[65], j65[66];

    memset(j64, 'j', 64);
    j64[64] = '\0';
    memset(j65, 'j', 65);
    j65[65] = '\0';
    assert_int_equal(verify_claim("jti", json_string(j64)), CA_OK);
    assert_int_equal(verify_claim("jti", json_string(j65)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("jti", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("jti", json_string("")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("jti", json_string("a b")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("jti", json_string("a:b")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("jti", json_integer(5)),
                     CA_TOKEN_MALFORMED);
    (void) state;
}

static void
test_times_shape(void **state)
{
    assert_int_equal(verify_claim("exp", json_string("1800003600")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("exp", json_real(1800003600.0)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("iat", json_real(1800000000.5)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("iat", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("exp", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("exp", json_integer(NOW)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("exp", json_integer(NOW - 1)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("nbf", json_string("0")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("nbf", json_integer(NOW + 10)), CA_OK);
    (void) state;
}

static void
test_lifetime(void **state)
{
    assert_int_equal(verify_claim("exp", json_integer(NOW + 90 * 86400)),
                     CA_OK);
    assert_int_equal(verify_claim("exp",
                                  json_integer(NOW + 90 * 86400 + 1)),
                     CA_LIFETIME_TOO_LONG);
    (void) state;
}

static void
test_code_lists(void **state)
{
    assert_int_equal(verify_claim("purposes", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("purposes", json_array()),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("purposes", json_string("loan")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("purposes", json_pack("[s]", "a b")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("categories", NULL), CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("categories", json_array()),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("categories", json_pack("[i]", 1)),
                     CA_TOKEN_MALFORMED);
    (void) state;
}

static void
test_optional_claims(void **state)
{
    json_t   *c = base_claims();
    ca_claims cl;
    char     *t;

    assert_int_equal(verify_claim("modes", json_array()),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("modes", json_pack("[s]", "write")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("modes", json_string("query")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("detail", json_string("full")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("detail", json_true()),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("max_uses", json_integer(0)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("max_uses", json_integer(-3)),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("max_uses", json_string("3")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("cnf", json_string("x")),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("cnf", json_object()),
                     CA_TOKEN_MALFORMED);
    assert_int_equal(verify_claim("cnf", json_pack("{s:s}", "x5t#S256",
                                                   "too-short")),
                     CA_TOKEN_MALFORMED);

    json_object_set_new(c, "modes", json_pack("[s]", "verify"));
    json_object_set_new(c, "detail", json_string("raw"));
    json_object_set_new(c, "max_uses", json_integer(5));
    json_object_set_new(c, "nbf", json_integer(NOW + 60));
    json_object_set_new(c, "cnf", json_pack("{s:s}", "x5t#S256",
                        "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0"));
    t = mint(CA_ALG_ES256, base_header(CA_ALG_ES256), c);
    assert_int_equal(verify(t, &cl), CA_OK);
    assert_int_equal(cl.modes, CA_MODE_VERIFY);
    assert_int_equal(cl.detail_raw, 1);
    assert_int_equal(cl.max_uses, 5);
    assert_int_equal(cl.nbf, NOW + 60);
    assert_string_equal(cl.cnf_x5t,
                        "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg0");
    free(t);
    (void) state;
}

static void
test_detail_never_echoes(void **state)
{
    json_t *c = base_claims();
    char   *t;

    json_object_set_new(c, "iss", json_string(other_uscc));
    t = mint(CA_ALG_ES256, base_header(CA_ALG_ES256), c);
    assert_int_equal(verify(t, NULL), CA_ISSUER_INVALID);
    assert_true(strlen(detail) > 0);
    assert_null(strstr(detail, other_uscc));
    assert_null(strstr(detail, USCC));
    free(t);

    assert_int_equal(verify_header("kid", json_string("secret-kid")),
                     CA_KID_UNKNOWN);
    assert_null(strstr(detail, "secret-kid"));
    (void) state;
}

/* ---- time and request checks ----------------------------------------- */

static void
test_check_time(void **state)
{
    ca_claims c = {0};

    c.iat = NOW;
    c.exp = NOW + 3600;
    assert_int_equal(ca_claims_check_time(&c, NOW, 60, NULL, 0), CA_OK);
    assert_int_equal(ca_claims_check_time(&c, NOW + 3660, 60, NULL, 0),
                     CA_OK);
    assert_int_equal(ca_claims_check_time(&c, NOW + 3661, 60, detail,
                                          sizeof(detail)),
                     CA_TOKEN_EXPIRED);
    /* iat in the future beyond leeway: clock games or a forged token. */
    assert_int_equal(ca_claims_check_time(&c, NOW - 60, 60, NULL, 0), CA_OK);
    assert_int_equal(ca_claims_check_time(&c, NOW - 61, 60, NULL, 0),
                     CA_TOKEN_NOT_YET_VALID);
    c.nbf = NOW + 600;
    assert_int_equal(ca_claims_check_time(&c, NOW + 539, 60, NULL, 0),
                     CA_TOKEN_NOT_YET_VALID);
    assert_int_equal(ca_claims_check_time(&c, NOW + 540, 60, NULL, 0),
                     CA_OK);
    /* exp at the end of int64: exp + leeway overflowed (fuzz finding 3),
     * which made the token expired on gcc and is undefined behaviour. */
    c.nbf = 0;
    c.exp = INT64_MAX;
    assert_int_equal(ca_claims_check_time(&c, NOW, 60, NULL, 0), CA_OK);
    c.iat = INT64_MAX - 1;
    assert_int_equal(ca_claims_check_time(&c, NOW, 60, NULL, 0),
                     CA_TOKEN_NOT_YET_VALID);
    (void) state;
}

static ca_claims
request_claims(void)
{
    ca_claims c = {0};

    strcpy(c.iss, USCC);
    strcpy(c.sub, USCC);
    c.n_aud = 2;
    strcpy(c.aud[0], "bankA");
    strcpy(c.aud[1], "bankB");
    c.n_purposes = 1;
    strcpy(c.purposes[0], "loan_application");
    c.n_categories = 2;
    strcpy(c.categories[0], "tax");
    strcpy(c.categories[1], "utilities");
    c.modes = CA_MODE_QUERY;
    return c;
}

static void
test_check_request(void **state)
{
    ca_claims        c = request_claims();
    unsigned char    cert[32], other[32];
    char             x5t[44];
    ca_request_facts f = {"bankB", USCC "/tax", "loan_application", "tax",
                          CA_MODE_QUERY, 0, 0, 0, NULL};

    memset(cert, 0x5a, sizeof(cert));
    memset(other, 0x5b, sizeof(other));
    assert_int_equal(ca_claims_check_request(&c, &f, NULL, 0), CA_OK);

#define EXPECT(r) assert_int_equal(ca_claims_check_request(&c, &f, detail, \
                                   sizeof(detail)), r)
    f.bank_code = "bankC";
    EXPECT(CA_AUDIENCE_MISMATCH);
    f.bank_code = "bankA";
    f.path_uscc = other_uscc;
    EXPECT(CA_SUBJECT_MISMATCH);
    f.path_uscc = USCC;
    f.purpose = "marketing";
    EXPECT(CA_PURPOSE_NOT_ALLOWED);
    f.purpose = "loan_application";
    f.category = "rnd";
    EXPECT(CA_CATEGORY_NOT_CONSENTED);
    f.category = "utilities";
    f.mode = CA_MODE_VERIFY;
    EXPECT(CA_MODE_NOT_CONSENTED);
    f.mode = CA_MODE_QUERY;

    /* Raw needs the consent and the category, and only when asked. */
    f.want_raw = 1;
    EXPECT(CA_RAW_NOT_ALLOWED);
    c.detail_raw = 1;
    EXPECT(CA_RAW_NOT_ALLOWED);
    f.raw_allowed = 1;
    EXPECT(CA_OK);
    c.detail_raw = 0;
    f.want_raw = 0;
    EXPECT(CA_OK);

    /* Certificate binding. */
    f.require_cnf = 1;
    EXPECT(CA_CNF_MISMATCH);
    ca_b64url_encode(cert, 32, x5t);
    strcpy(c.cnf_x5t, x5t);
    EXPECT(CA_CNF_MISMATCH);            /* no certificate presented */
    f.cert_sha256 = other;
    EXPECT(CA_CNF_MISMATCH);
    f.cert_sha256 = cert;
    EXPECT(CA_OK);
    f.require_cnf = 0;
    f.cert_sha256 = other;
    EXPECT(CA_CNF_MISMATCH);            /* bound even when not required */

    /* The order is the documented one: audience first. */
    f.bank_code = "bankC";
    f.purpose = "marketing";
    EXPECT(CA_AUDIENCE_MISMATCH);
#undef EXPECT
    (void) state;
}

/* ---- withdrawals (contract §3 v3) ------------------------------------ */

static char *
mint_withdrawal(ca_alg alg, const char *typ, json_t *claims)
{
    return mint(alg, json_pack("{s:s,s:s,s:s}", "alg", ca_alg_name(alg),
                               "typ", typ, "kid", alg_kids[idx_of(alg)]),
                claims);
}

static ca_reason
verify_withdrawal(const char *t, ca_claims *c)
{
    return ca_withdrawal_verify(t, strlen(t), ks, &rules, c, detail,
                                sizeof(detail));
}

static void
test_withdrawal(void **state)
{
    ca_claims  c;
    char      *t;

    /* every alg, the claims a withdrawal needs and nothing more */
    for (int i = 0; i < N_ALGS; i++) {
        t = mint_withdrawal(algs[i], "revocation+jwt",
                            json_pack("{s:s,s:s,s:I}", "iss", USCC,
                                      "jti", "consent-1",
                                      "iat", (json_int_t) NOW));
        assert_int_equal(verify_withdrawal(t, &c), CA_OK);
        assert_string_equal(c.iss, USCC);
        assert_string_equal(c.jti, "consent-1");
        assert_int_equal(c.iat, NOW);
        assert_string_equal(c.kid, alg_kids[i]);
        /* a withdrawal is not a consent, and a consent no withdrawal */
        assert_int_equal(verify(t, NULL), CA_TYP_INVALID);
        assert_non_null(strstr(detail, "consent+jwt"));
        free(t);
    }
    t = mint(CA_ALG_ES256, base_header(CA_ALG_ES256), base_claims());
    assert_int_equal(verify_withdrawal(t, &c), CA_TYP_INVALID);
    assert_non_null(strstr(detail, "revocation+jwt"));
    free(t);

    /* another enterprise's iss with this key: never */
    t = mint_withdrawal(CA_ALG_ES256, "revocation+jwt",
                        json_pack("{s:s,s:s,s:I}", "iss", other_uscc,
                                  "jti", "consent-1",
                                  "iat", (json_int_t) NOW));
    assert_int_equal(verify_withdrawal(t, &c), CA_ISSUER_INVALID);
    free(t);

    /* jti of a consent's form; iat an integer */
    t = mint_withdrawal(CA_ALG_ES256, "revocation+jwt",
                        json_pack("{s:s,s:s,s:I}", "iss", USCC,
                                  "jti", "a b", "iat", (json_int_t) NOW));
    assert_int_equal(verify_withdrawal(t, &c), CA_TOKEN_MALFORMED);
    free(t);
    t = mint_withdrawal(CA_ALG_ES256, "revocation+jwt",
                        json_pack("{s:s,s:s}", "iss", USCC, "jti", "x"));
    assert_int_equal(verify_withdrawal(t, &c), CA_TOKEN_MALFORMED);
    free(t);
    t = mint_withdrawal(CA_ALG_ES256, "revocation+jwt",
                        json_pack("{s:s,s:s,s:f}", "iss", USCC, "jti", "x",
                                  "iat", 1.0));
    assert_int_equal(verify_withdrawal(t, &c), CA_TOKEN_MALFORMED);
    free(t);

    /* the alg pin holds for withdrawals too */
    t = mint_raw(CA_ALG_ES256, "{\"alg\":\"EdDSA\",\"typ\":"
                 "\"revocation+jwt\",\"kid\":\"k-ES256\"}",
                 "{\"iss\":\"" USCC "\",\"jti\":\"x\",\"iat\":1}");
    assert_int_equal(verify_withdrawal(t, &c), CA_ALG_NOT_ALLOWED);
    free(t);
    (void) state;
}

static void
test_withdrawal_time(void **state)
{
    ca_claims c = {0};

    c.iat = NOW;
    assert_int_equal(ca_withdrawal_check_time(&c, NOW + 60, 60, NULL, 0),
                     CA_OK);
    assert_int_equal(ca_withdrawal_check_time(&c, NOW - 60, 60, NULL, 0),
                     CA_OK);
    assert_int_equal(ca_withdrawal_check_time(&c, NOW + 61, 60, detail,
                                              sizeof(detail)),
                     CA_TOKEN_EXPIRED);
    assert_int_equal(ca_withdrawal_check_time(&c, NOW - 61, 60, detail,
                                              sizeof(detail)),
                     CA_TOKEN_NOT_YET_VALID);
    c.iat = INT64_MAX;
    assert_int_equal(ca_withdrawal_check_time(&c, NOW, 60, NULL, 0),
                     CA_TOKEN_NOT_YET_VALID);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_algs),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_signature_length_is_exact),
        cmocka_unit_test(test_alg_confusion_hs256),
        cmocka_unit_test(test_libjwt_accepts_forgery),
        cmocka_unit_test(test_libjwt_refuses_consent_typ),
        cmocka_unit_test(test_alg_names_rejected),
        cmocka_unit_test(test_alg_none_unsigned),
        cmocka_unit_test(test_alg_not_string),
        cmocka_unit_test(test_alg_not_in_policy),
        cmocka_unit_test(test_alg_differs_from_pinned),
        cmocka_unit_test(test_typ),
        cmocka_unit_test(test_crit_rejected),
        cmocka_unit_test(test_key_urls_ignored),
        cmocka_unit_test(test_kid),
        cmocka_unit_test(test_malformed_shapes),
        cmocka_unit_test(test_malformed_oversize),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_malformed_payload),
        cmocka_unit_test(test_issuer),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_audience_shape),
        cmocka_unit_test(test_jti),
        cmocka_unit_test(test_times_shape),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_code_lists),
        cmocka_unit_test(test_optional_claims),
        cmocka_unit_test(test_detail_never_echoes),
        cmocka_unit_test(test_check_time),
        cmocka_unit_test(test_check_request),
        cmocka_unit_test(test_withdrawal),
        cmocka_unit_test(test_withdrawal_time),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
