/*
 * Key registry loading: every error names the file and the JSON path of
 * the member at fault, so that nginx -t points the officer at it.
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
#include <openssl/bn.h>
#include <openssl/evp.h>

#include "jws/keys.h"

#define USCC "91350100M000100Y43"

static EVP_PKEY *ec, *rsa, *ed, *sm2, *rsa1024, *p384;
static char      file[] = "/tmp/test_keys_XXXXXX";
static ca_error  err;

static int
setup(void **state)
{
    int fd = mkstemp(file);

    if (fd < 0) {
        return -1;
    }
    close(fd);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    sm2 = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
    p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    (void) state;
    return ec && rsa && ed && sm2 && rsa1024 && p384 ? 0 : -1;
}

static int
teardown(void **state)
{
    EVP_PKEY_free(ec);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(sm2);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(p384);
    unlink(file);
    (void) state;
    return 0;
}

static json_t *
jwk(EVP_PKEY *pkey, ca_alg alg, const char *kid)
{
    json_t *j = ca_jwk_from_pkey(pkey, alg, kid, USCC);
    assert_non_null(j);
    return j;
}

/* Writes {"keys":[...]} (stealing the references) and loads it. */
static ca_keyset *
load(json_t *keys)
{
    json_t *root = json_pack("{s:o}", "keys", keys);

    assert_int_equal(json_dump_file(root, file, 0), 0);
    json_decref(root);
    memset(&err, 0, sizeof(err));
    return ca_keyset_load(file, &err);
}

static void
load_text(const char *text)
{
    FILE *f = fopen(file, "w");

    fputs(text, f);
    fclose(f);
    memset(&err, 0, sizeof(err));
    assert_null(ca_keyset_load(file, &err));
}

/* A one-key set whose only key fails; the error must name path. */
static void
expect_error(json_t *key, const char *path, const char *reason)
{
    ca_keyset *ks = load(json_pack("[o]", key));

    assert_null(ks);
    if (strstr(err.text, path) == NULL || strstr(err.text, file) == NULL
        || strstr(err.text, reason) == NULL)
    {
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err.text, path,
                 reason);
    }
}

static void
test_load_all_kinds(void **state)
{
    ca_keyset    *ks;
    const ca_key *k;

    ks = load(json_pack("[o,o,o,o,o]", jwk(sm2, CA_ALG_SM2, "e-sm2"),
                        jwk(rsa, CA_ALG_RS256, "b-rs"),
                        jwk(rsa, CA_ALG_PS256, "c-ps"),
                        jwk(ec, CA_ALG_ES256, "a-es"),
                        jwk(ed, CA_ALG_EDDSA, "d-ed")));
    if (ks == NULL) {
        fail_msg("%s", err.text);
    }
    assert_int_equal(ks->n, 5);
    /* Sorted by kid, for bsearch. */
    for (size_t i = 1; i < ks->n; i++) {
        assert_true(strcmp(ks->keys[i - 1].kid, ks->keys[i].kid) < 0);
    }
    k = ca_keyset_find(ks, "e-sm2", 5);
    assert_non_null(k);
    assert_int_equal(k->alg, CA_ALG_SM2);
    assert_true(EVP_PKEY_is_a(k->pkey, "SM2"));
    assert_string_equal(k->uscc, USCC);
    assert_non_null(strstr(k->pem, "BEGIN PUBLIC KEY"));
    assert_int_equal(strlen(k->pem), k->pem_len);
    assert_int_equal(ca_keyset_find(ks, "c-ps", 4)->alg, CA_ALG_PS256);
    assert_int_equal(ca_keyset_find(ks, "a-es", 4)->alg, CA_ALG_ES256);
    assert_int_equal(ca_keyset_find(ks, "d-ed", 4)->alg, CA_ALG_EDDSA);
    /* Length-bounded: a prefix or a longer name is another kid. */
    assert_null(ca_keyset_find(ks, "a-es", 3));
    assert_null(ca_keyset_find(ks, "a-esX", 5));
    assert_null(ca_keyset_find(ks, "zz", 2));
    assert_null(ca_keyset_find(ks, "", 0));
    ca_keyset_free(ks);
    (void) state;
}

static void
test_alg_names(void **state)
{
    assert_int_equal(ca_alg_from_name("ES256"), CA_ALG_ES256);
    assert_int_equal(ca_alg_from_name("EdDSA"), CA_ALG_EDDSA);
    assert_int_equal(ca_alg_from_name("SM2"), CA_ALG_SM2);
    assert_int_equal(ca_alg_from_name("es256"), CA_ALG_NONE);
    assert_int_equal(ca_alg_from_name("EDDSA"), CA_ALG_NONE);
    assert_int_equal(ca_alg_from_name("HS256"), CA_ALG_NONE);
    assert_int_equal(ca_alg_from_name("none"), CA_ALG_NONE);
    assert_int_equal(ca_alg_from_name(NULL), CA_ALG_NONE);
    assert_string_equal(ca_alg_name(CA_ALG_PS256), "PS256");
    (void) state;
}

static void
test_duplicate_kid(void **state)
{
    ca_keyset *ks = load(json_pack("[o,o,o]", jwk(ec, CA_ALG_ES256, "x"),
                                   jwk(ed, CA_ALG_EDDSA, "y"),
                                   jwk(rsa, CA_ALG_RS256, "x")));

    assert_null(ks);
    assert_non_null(strstr(err.text, "$.keys[2].kid"));
    assert_non_null(strstr(err.text, "duplicate kid"));
    assert_non_null(strstr(err.text, "$.keys[0]"));
    (void) state;
}

static void
test_missing_or_bad_alg(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");

    json_object_del(k, "alg");
    expect_error(k, "$.keys[0].alg", "missing");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "alg", json_string("HS256"));
    expect_error(k, "$.keys[0].alg", "must be one of");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "alg", json_string("es256"));
    expect_error(k, "$.keys[0].alg", "must be one of");
    (void) state;
}

static void
test_key_does_not_fit_alg(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");

    json_object_set_new(k, "alg", json_string("RS256"));
    expect_error(k, "$.keys[0].kty", "cannot be used with alg RS256");

    k = jwk(rsa, CA_ALG_RS256, "k");
    json_object_set_new(k, "alg", json_string("EdDSA"));
    expect_error(k, "$.keys[0].kty", "cannot be used with alg EdDSA");

    k = jwk(ed, CA_ALG_EDDSA, "k");
    json_object_set_new(k, "alg", json_string("ES256"));
    expect_error(k, "$.keys[0].kty", "cannot be used with alg ES256");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "kty", json_string("oct"));
    expect_error(k, "$.keys[0].kty", "unsupported kty");
    (void) state;
}

static void
test_weak_rsa(void **state)
{
    expect_error(jwk(rsa1024, CA_ALG_RS256, "k"), "$.keys[0]", "weak key");
    expect_error(jwk(rsa1024, CA_ALG_PS256, "k"), "$.keys[0]", "weak key");
    (void) state;
}

static void
test_wrong_curve(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");

    /* A P-384 key written as ES256. */
    json_object_set_new(k, "crv", json_string("P-384"));
    expect_error(k, "$.keys[0].crv", "wrong curve");

    /* The same P-256 point labelled SM2, and the other way round. */
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "alg", json_string("SM2"));
    expect_error(k, "$.keys[0].crv", "wrong curve");
    k = jwk(sm2, CA_ALG_SM2, "k");
    json_object_set_new(k, "alg", json_string("ES256"));
    expect_error(k, "$.keys[0].crv", "wrong curve");

    /* A P-256 point claimed as SM2 (crv SM2): not on the SM2 curve. */
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "alg", json_string("SM2"));
    json_object_set_new(k, "crv", json_string("SM2"));
    expect_error(k, "$.keys[0]", "SM2");

    k = jwk(ed, CA_ALG_EDDSA, "k");
    json_object_set_new(k, "crv", json_string("X25519"));
    expect_error(k, "$.keys[0].crv", "wrong curve");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_del(k, "crv");
    expect_error(k, "$.keys[0].crv", "missing");
    (void) state;
}

static void
test_point_not_on_curve(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");
    char    y[64];

    /* Flip one bit of y: (x, y') is not on P-256. */
    strcpy(y, json_string_value(json_object_get(k, "y")));
    y[10] = y[10] == 'A' ? 'B' : 'A';
    json_object_set_new(k, "y", json_string(y));
    expect_error(k, "$.keys[0]", "public key");
    (void) state;
}

/*
 * n = p q with p, q primes of about 1020 and 1030 bits, q - 1 = 1965 (p - 1)
 * / 2: a sound modulus (made by a script, its factors forgotten) whose
 * SP 800-56B check, a Miller-Rabin test with random bases, finds a factor
 * with about half the bases: OpenSSL's EVP_PKEY_public_check() accepted
 * it 33 times in 64.
 */
static const char flapping_n[] =
    "AopVYjW4koL0aULR967ptCybioVY0JiIzIRKtX-JG87hHGYbPGDOtJZX"
    "zMzL8qidtFj5vqFq4DFIDb5_RipwgrwGLmhvpUWoxQo3SG7b4TxcfKvZ"
    "F1iy3GX-QCYF2hR6cZrtFrM6O9g94b9qcOEjk1iBxyoQod_sTKe2Qa6i"
    "g1TOwd4n2UTxOJGy8xy9KXNOEg575hdMtVGHlU6UcceWz4n7PQnbyb48"
    "k7JT85WdIjvnEdoSjvqOQ8ZUN262XeUsiaUu89EzkskDYRbx3oanbTkp"
    "uG0KlCzJGg5ElS9kwsL8HooKyVssnhLhslJt-GrGO0K8nucJ4dkZ4-HJ"
    "J5iSOLE";

/* An RSA JWK with modulus n (base64url) and exponent e. */
static json_t *
rsa_jwk(const char *n, const char *e)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kid", "k", "kty", "RSA",
                     "alg", "PS256", "uscc", USCC, "n", n, "e", e);
}

/* The same with n given as a number. */
static json_t *
rsa_jwk_bn(const BIGNUM *n, const char *e)
{
    unsigned char bin[1100];
    char          b64[1500];
    int           len = BN_num_bytes(n);

    assert_true(len <= (int) sizeof(bin));
    BN_bn2bin(n, bin);
    ca_b64url_encode(bin, (size_t) len, b64);
    return rsa_jwk(b64, e);
}

/* Loads the key 50 times; every load must give the first one's verdict
 * (returned: 1 loaded).  Takes the reference. */
static int
same_verdict_50(json_t *key)
{
    int first = -1;

    for (int i = 0; i < 50; i++) {
        ca_keyset *ks = load(json_pack("[O]", key));
        int        ok = ks != NULL;

        ca_keyset_free(ks);
        if (first >= 0 && ok != first) {
            fail_msg("load %d: %s, the loads before: %s", i + 1,
                     ok ? "accepted" : "refused",
                     first ? "accepted" : "refused");
        }
        first = ok;
        /* an RSA refusal never speaks of curves */
        if (!ok && strstr(err.text, "curve") != NULL) {
            fail_msg("RSA key refused as a curve point: %s", err.text);
        }
    }
    json_decref(key);
    return first;
}

/*
 * An RSA key is accepted or refused the same way every time (fuzz finding
 * 7: OpenSSL's public check accepted a tampered PS256 key 58 times in 64).
 * The sound modulus above is accepted 50 times in a row; tampered forms
 * of a generated key (one base64url character of n changed) each give
 * one verdict 50 times.
 */
static void
test_rsa_verdict_is_deterministic(void **state)
{
    json_t *k = jwk(rsa, CA_ALG_PS256, "k");
    char    n[400];

    assert_int_equal(same_verdict_50(rsa_jwk(flapping_n, "AQAB")), 1);
    for (size_t i = 8; i < 340; i += 37) {
        json_t *t = json_deep_copy(k);

        strcpy(n, json_string_value(json_object_get(k, "n")));
        n[i] = n[i] == 'A' ? 'B' : 'A';
        json_object_set_new(t, "n", json_string(n));
        same_verdict_50(t);
    }
    json_decref(k);
    (void) state;
}

/* What an RSA key is checked for (docs/keys.md), each refusal named. */
static void
test_rsa_numbers(void **state)
{
    BIGNUM     *n = NULL, *m = BN_new();
    const char *why = "the modulus n is divisible by";
    ca_keyset  *ks;

    assert_int_equal(EVP_PKEY_get_bn_param(rsa, "n", &n), 1);
    assert_non_null(m);

    /* an even modulus */
    assert_true(BN_sub(m, n, BN_value_one()));
    expect_error(rsa_jwk_bn(m, "AQAB"), "$.keys[0]", "modulus n is even");

    /* public exponents 3, 17, 65535 (at or below 2^16), 65538 (even),
     * 2^256 + 1; then the largest accepted, 2^256 - 1 */
    expect_error(rsa_jwk_bn(n, "Aw"), "$.keys[0]", "public exponent");
    expect_error(rsa_jwk_bn(n, "EQ"), "$.keys[0]", "public exponent");
    expect_error(rsa_jwk_bn(n, "__8"), "$.keys[0]", "public exponent");
    expect_error(rsa_jwk_bn(n, "AQAC"), "$.keys[0]", "public exponent");
    expect_error(rsa_jwk_bn(n, "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB"),
                 "$.keys[0]", "public exponent");
    ks = load(json_pack("[o]", rsa_jwk_bn(n, "_____________________"
                                             "_____________________8")));
    if (ks == NULL) {
        fail_msg("e = 2^256 - 1 refused: %s", err.text);
    }
    ca_keyset_free(ks);

    /* a prime factor below 1000 (3, 997), named; 1009 is not looked for */
    assert_true(BN_mul_word(BN_copy(m, n), 3));
    expect_error(rsa_jwk_bn(m, "AQAB"), "$.keys[0]", why);
    assert_true(BN_mul_word(BN_copy(m, n), 997));
    expect_error(rsa_jwk_bn(m, "AQAB"), "$.keys[0]", "divisible by 997");
    assert_true(BN_mul_word(BN_copy(m, n), 1009));
    ks = load(json_pack("[o]", rsa_jwk_bn(m, "AQAB")));
    assert_non_null(ks);
    ca_keyset_free(ks);
    BN_free(m);
    BN_free(n);
    (void) state;
}

static void
test_coordinates(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");

    json_object_set_new(k, "x", json_string("AAAA"));
    expect_error(k, "$.keys[0].x", "32 bytes");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "y", json_string("not base64url!"));
    expect_error(k, "$.keys[0].y", "base64url");

    k = jwk(ed, CA_ALG_EDDSA, "k");
    json_object_del(k, "x");
    expect_error(k, "$.keys[0].x", "missing");

    k = jwk(rsa, CA_ALG_RS256, "k");
    json_object_set_new(k, "e", json_integer(65537));
    expect_error(k, "$.keys[0].e", "base64url");
    (void) state;
}

/*
 * A coordinate longer than its curve: decoded straight into the 32-byte
 * coordinate it used to overrun the stack (fuzz finding 1, "QUFB" x 80
 * as y smashed ec_to_pkey's return address).  Every length up to the
 * largest member accepted is refused by length, for every key type.
 */
static void
test_oversized_coordinates(void **state)
{
    static const size_t lens[] = {44, 48, 240, 320, 1364, 1366};
    static const char  *fills[] = {"QUFB", "AAAA"};
    const struct {
        EVP_PKEY   *pkey;
        ca_alg      alg;
        const char *member, *path;
    } coords[] = {
        {ec, CA_ALG_ES256, "y", "$.keys[0].y"},
        {ec, CA_ALG_ES256, "x", "$.keys[0].x"},
        {sm2, CA_ALG_SM2, "y", "$.keys[0].y"},
        {ed, CA_ALG_EDDSA, "x", "$.keys[0].x"},
    };
    char                big[1367];
    json_t             *k;

    for (size_t f = 0; f < 2; f++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            for (size_t j = 0; j < lens[i]; j++) {
                big[j] = fills[f][j % 4];
            }
            if (lens[i] % 4 != 0) {
                big[lens[i] - 1] = 'A';     /* canonical: no stray bits */
            }
            big[lens[i]] = '\0';
            for (size_t c = 0; c < sizeof(coords) / sizeof(coords[0]); c++) {
                k = jwk(coords[c].pkey, coords[c].alg, "k");
                json_object_set_new(k, coords[c].member, json_string(big));
                expect_error(k, coords[c].path, "must decode to 32 bytes");
            }
        }
    }
    /* One past the largest member: refused before decoding. */
    memset(big, 'Q', 1367);
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "y", json_stringn(big, 1367));
    expect_error(k, "$.keys[0].y", "bad length");
    (void) state;
}

static void
test_private_member(void **state)
{
    static const char *const members[] = {"d", "p", "q", "dp", "dq", "qi",
                                          "k"};
    char path[32];

    for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        json_t *k = jwk(rsa, CA_ALG_RS256, "k");
        json_object_set_new(k, members[i], json_string("AQAB"));
        snprintf(path, sizeof(path), "$.keys[0].%s", members[i]);
        expect_error(k, path, "private key");
    }
    (void) state;
}

static void
test_uscc_use_kid(void **state)
{
    json_t *k = jwk(ec, CA_ALG_ES256, "k");
    char    long_kid[130];

    json_object_set_new(k, "uscc", json_string("91350100M000100Y4Z"));
    expect_error(k, "$.keys[0].uscc", "USCC");
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_del(k, "uscc");
    expect_error(k, "$.keys[0].uscc", "missing");

    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_set_new(k, "use", json_string("enc"));
    expect_error(k, "$.keys[0].use", "sig");

    memset(long_kid, 'a', 129);
    long_kid[129] = '\0';
    expect_error(jwk(ec, CA_ALG_ES256, long_kid), "$.keys[0].kid", "1..128");
    expect_error(jwk(ec, CA_ALG_ES256, "a/b"), "$.keys[0].kid", "1..128");
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_del(k, "kid");
    expect_error(k, "$.keys[0].kid", "missing");

    /* use is optional. */
    k = jwk(ec, CA_ALG_ES256, "k");
    json_object_del(k, "use");
    ca_keyset_free(load(json_pack("[o]", k)));
    assert_string_equal(err.text, "");
    (void) state;
}

static void
test_file_shape(void **state)
{
    ca_keyset *ks = load(json_array());

    assert_null(ks);
    assert_non_null(strstr(err.text, "$.keys"));
    assert_non_null(strstr(err.text, "no keys"));

    load_text("{\"keys\": {}}");
    assert_non_null(strstr(err.text, "$.keys"));
    load_text("[]");
    assert_non_null(strstr(err.text, "$"));
    load_text("{\"keys\": [1]}");
    assert_non_null(strstr(err.text, "$.keys[0]"));
    load_text("{\"keys\": [], \"keys\": []}");
    assert_non_null(strstr(err.text, file));
    load_text("{\"keys\": [");
    assert_non_null(strstr(err.text, "invalid JSON"));
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all_kinds),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_duplicate_kid),
        cmocka_unit_test(test_missing_or_bad_alg),
        cmocka_unit_test(test_key_does_not_fit_alg),
        cmocka_unit_test(test_weak_rsa),
        cmocka_unit_test(test_wrong_curve),
        cmocka_unit_test(test_point_not_on_curve),
        cmocka_unit_test(test_rsa_verdict_is_deterministic),
        cmocka_unit_test(test_rsa_numbers),
        cmocka_unit_test(test_coordinates),
        cmocka_unit_test(test_oversized_coordinates),
        cmocka_unit_test(test_private_member),
        cmocka_unit_test(test_uscc_use_kid),
        cmocka_unit_test(test_file_shape),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
