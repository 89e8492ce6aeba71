/*
 * Registry records (lib/jws/keyreg.c): names, the round trip of encode and
 * parse, every malformed form refused with the kid and the member named,
 * the validity window, and the header kid the lookup starts from.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "jws/keyreg.h"
#include "jws/token.h"

#define USCC  "91350100M000100Y43"
#define USCC2 "91110108MA01ABCD0B"

static EVP_PKEY *ec;
static ca_error  err;

static int
setup(void **state)
{
    ec = ca_key_generate(CA_ALG_ES256);
    (void) state;
    return ec ? 0 : -1;
}

static int
teardown(void **state)
{
    EVP_PKEY_free(ec);
    (void) state;
    return 0;
}

static ca_keyreg_meta
meta(const char *kid)
{
    ca_keyreg_meta m;

    memset(&m, 0, sizeof(m));
    snprintf(m.kid, sizeof(m.kid), "%s", kid);
    memcpy(m.uscc, USCC, 19);
    m.version = 3;
    return m;
}

/* The encoded record of kid, with member set to value (JSON text) when
 * given; the caller frees. */
static char *
record(const char *kid, const char *member, const char *value)
{
    ca_keyreg_meta m = meta(kid);
    json_t        *jwk = ca_jwk_from_pkey(ec, CA_ALG_ES256, kid, USCC);
    json_t        *rec;
    char          *s;

    assert_non_null(jwk);
    s = ca_keyreg_encode(&m, jwk);
    json_decref(jwk);
    if (member == NULL) {
        return s;
    }
    rec = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(rec);
    json_object_set_new(rec, member, json_loads(value, JSON_DECODE_ANY,
                                                NULL));
    s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    return s;
}

static int
parse(const char *s, const char *kid)
{
    ca_keyreg_meta m;

    memset(&err, 0, sizeof(err));
    return ca_keyreg_parse(s, strlen(s), kid, &m, NULL, &err);
}

static void
test_names(void **state)
{
    char name[CA_KEYREG_NAME_MAX];
    char long_kid[CA_KID_MAX + 2];

    assert_int_equal(ca_keyreg_name("e1-2026", 7, name), 0);
    assert_string_equal(name, "credit:key:{e1-2026}");
    /* a brace would move the hash tag: no such kid */
    assert_int_equal(ca_keyreg_name("a{b}", 4, name), -1);
    assert_int_equal(ca_keyreg_name("", 0, name), -1);
    assert_int_equal(ca_keyreg_name("a\0b", 3, name), -1);
    assert_int_equal(ca_keyreg_name("a b", 3, name), -1);
    memset(long_kid, 'k', sizeof(long_kid));
    assert_int_equal(ca_keyreg_name(long_kid, CA_KID_MAX, name), 0);
    assert_int_equal(ca_keyreg_name(long_kid, CA_KID_MAX + 1, name), -1);
    (void) state;
}

static void
test_round_trip(void **state)
{
    char          *s = record("k1", NULL, NULL);
    ca_keyreg_meta m;
    ca_key         key;

    assert_int_equal(ca_keyreg_parse(s, strlen(s), "k1", &m, &key, &err), 0);
    assert_string_equal(m.kid, "k1");
    assert_string_equal(m.uscc, USCC);
    assert_int_equal(m.state, CA_KEYREG_ACTIVE);
    assert_int_equal(m.version, 3);
    assert_non_null(key.pkey);
    assert_int_equal(key.alg, CA_ALG_ES256);
    assert_int_equal(EVP_PKEY_eq(key.pkey, ec), 1);
    ca_key_clear(&key);
    assert_null(key.pkey);

    json_t *jwk = ca_keyreg_jwk(s, strlen(s));
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")),
                        "k1");
    json_decref(jwk);
    free(s);
    (void) state;
}

static void
test_malformed(void **state)
{
    static const struct {
        const char *member, *value, *says;
    } cases[] = {
        {"kid", "\"k2\"", "$.kid"},
        {"kid", "1", "$.kid"},
        {"uscc", "\"91350100M000100Y44\"", "$.uscc"},
        {"uscc", "\"" USCC2 "\"", "$.jwk"},       /* differs from the JWK's */
        {"state", "\"suspended\"", "$.state"},
        {"state", "null", "$.state"},
        {"not_before", "-1", "$.not_before"},
        {"not_before", "\"0\"", "$.not_before"},
        {"not_after", "1.5", "$.not_after"},
        {"version", "0", "$.version"},
        {"version", "\"3\"", "$.version"},
        /* bounded, so that the tools can show and bump them (finding 8) */
        {"not_before", "9223372036854775807", "$.not_before: must be Unix"
                                              " seconds from 0 to"
                                              " 253402300799"},
        {"not_after", "253402300800", "$.not_after"},
        {"not_after", "1e30", "$.not_after: must be Unix seconds from 0 to"
                              " 253402300799, not a real"},
        {"version", "9223372036854775807", "$.version"},
        {"version", "9007199254740992", "$.version"},
        {"jwk", "\"x\"", "$.jwk"},
        {"jwk", "{\"kty\":\"EC\"}", "$.jwk"},
    };
    char *s;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        s = record("k1", cases[i].member, cases[i].value);
        assert_int_equal(parse(s, "k1"), -1);
        /* the kid first, then the member at fault */
        assert_memory_equal(err.text, "k1: ", 4);
        if (strstr(err.text, cases[i].says) == NULL) {
            fail_msg("%s=%s: %s", cases[i].member, cases[i].value, err.text);
        }
        free(s);
    }

    s = record("k1", "not_before", "100");
    free(s);
    {
        char *t = record("k1", "not_after", "50");
        json_t *rec = json_loads(t, 0, NULL);

        free(t);
        json_object_set_new(rec, "not_before", json_integer(100));
        t = json_dumps(rec, JSON_COMPACT);
        assert_int_equal(parse(t, "k1"), -1);
        assert_non_null(strstr(err.text, "after not_before"));
        json_decref(rec);
        free(t);
    }

    assert_int_equal(parse("[1]", "k1"), -1);
    assert_string_equal(err.text, "k1: record is an array, not a JSON"
                        " object");
    assert_int_equal(parse("", "k1"), -1);
    assert_string_equal(err.text, "k1: record is empty");

    /* the JWK of another kid under this name */
    s = record("k1", NULL, NULL);
    assert_int_equal(parse(s, "k9"), -1);
    free(s);

    /* private material: the loader's own rule */
    {
        char   *t = record("k1", NULL, NULL);
        json_t *rec = json_loads(t, 0, NULL);

        free(t);
        json_object_set_new(json_object_get(rec, "jwk"), "d",
                            json_string("AAAA"));
        t = json_dumps(rec, JSON_COMPACT);
        assert_int_equal(parse(t, "k1"), -1);
        assert_non_null(strstr(err.text, "private key material"));
        json_decref(rec);
        free(t);
    }

    /* larger than a record may be */
    {
        size_t n = CA_KEYREG_RECORD_MAX + 1;
        char  *big = malloc(n + 1);
        ca_keyreg_meta m;

        memset(big, ' ', n);
        big[n] = '\0';
        assert_int_equal(ca_keyreg_parse(big, n, "k1", &m, NULL, &err), -1);
        assert_non_null(strstr(err.text, "larger than"));
        free(big);
    }
    (void) state;
}

/*
 * A record jansson cannot read is refused with jansson's words and where:
 * the byte, and the bytes before it, which name the member at fault (it
 * was "record is not a JSON object" for all of them).
 */
static void
test_unreadable_says_why(void **state)
{
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"not json", "record is not valid JSON: '[' or '{' expected near"
                     " 'not' (at byte 3: not)"},
        {"{\"kid\":\"k1\",\"not_after\":1000000000000000000000000000000}",
         "too big integer (at byte 55: \"not_after\":1000000000000000000000"
         "000000000)"},
        {"{\"kid\":\"k1\",\"version\":10000000000000000000000000000000000"
         "00000000000}",
         "too big integer (at byte 68: \"version\":10000000000000000000000000"
         "00000000...)"},
        {"{\"kid\":\"k1\",\"version\":-99999999999999999999}",
         "too big negative integer (at byte 43: \"version\":"
         "-99999999999999999999)"},
        {"{\"kid\":\"k1\",\"not_before\":1e400}",
         "real number overflow near '1e400' (at byte 30: \"not_before\":"
         "1e400)"},
        {"{\"kid\":\"k\\u0000\"}",
         "\\u0000 is not allowed without JSON_ALLOW_NUL near '\"k\\u0000\"'"
         " (at byte 16: \"kid\":\"k\\u0000\")"},
        {"{\"kid\":\"k1\",\"version\":1,\"kid\":\"k1\"}",
         "duplicate object key near '\"kid\"' (at byte 29: \"kid\")"},
        {"{\"jwk\":{\"x\":\"a\",\"x\":\"b\"}}",
         "duplicate object key near '\"x\"'"},
        {"{\"kid\":\"k1\",", "end of file"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(cases[i].text, "k1"), -1);
        if (strncmp(err.text, "k1: ", 4) != 0
            || strstr(err.text, cases[i].says) == NULL)
        {
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].text, err.text,
                     cases[i].says);
        }
    }

    /* what a record holds goes to logs as printable ASCII only */
    assert_int_equal(parse("{\"kid\":\"k1\",\n\x1b[31m\xff\"a\":}", "k1"),
                     -1);
    for (const char *c = err.text; *c; c++) {
        if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f) {
            fail_msg("a raw byte 0x%02x in \"%s\"", (unsigned char) *c,
                     err.text);
        }
    }
    (void) state;
}

/* Times up to 9999-12-31T23:59:59Z and versions up to 2^53 - 1 parse; the
 * tools multiply the one by 1000 and add 1 to the other. */
static void
test_bounds(void **state)
{
    char          *s, *t;
    json_t        *rec;
    ca_keyreg_meta m;

    s = record("k1", NULL, NULL);
    rec = json_loads(s, 0, NULL);
    free(s);
    json_object_set_new(rec, "not_before", json_integer(253402300798));
    json_object_set_new(rec, "not_after", json_integer(CA_KEYREG_TIME_MAX));
    json_object_set_new(rec, "version", json_integer(CA_KEYREG_VERSION_MAX));
    t = json_dumps(rec, JSON_COMPACT);
    assert_int_equal(ca_keyreg_parse(t, strlen(t), "k1", &m, NULL, &err), 0);
    assert_int_equal(m.not_after, 253402300799);
    assert_int_equal(m.version, 9007199254740991);
    /* what credit-consent key list shows */
    assert_true(m.not_after <= INT64_MAX / 1000);
    json_decref(rec);
    free(t);
    (void) state;
}

static void
test_window(void **state)
{
    ca_keyreg_meta m = meta("k1");

    assert_null(ca_keyreg_unusable(&m, 1000));
    m.not_before = 1000;
    m.not_after = 2000;
    assert_non_null(ca_keyreg_unusable(&m, 999));
    assert_null(ca_keyreg_unusable(&m, 1000));
    assert_null(ca_keyreg_unusable(&m, 1999));
    assert_non_null(strstr(ca_keyreg_unusable(&m, 2000), "ended"));
    m.state = CA_KEYREG_REVOKED;
    assert_non_null(strstr(ca_keyreg_unusable(&m, 1500), "revoked"));
    (void) state;
}

static void
test_header_kid(void **state)
{
    char   kid[CA_KID_MAX + 1];
    size_t len;
    char  *tok;

    tok = ca_token_sign(CA_ALG_ES256, ec, "{\"alg\":\"ES256\",\"typ\":"
                        "\"consent+jwt\",\"kid\":\"e1-2026\"}", "{}");
    assert_non_null(tok);
    assert_int_equal(ca_token_kid(tok, strlen(tok), kid, &len), 0);
    assert_string_equal(kid, "e1-2026");
    assert_int_equal(len, 7);
    free(tok);

    tok = ca_token_sign(CA_ALG_ES256, ec, "{\"alg\":\"ES256\",\"kid\":7}",
                        "{}");
    assert_int_equal(ca_token_kid(tok, strlen(tok), kid, &len), -1);
    free(tok);
    assert_int_equal(ca_token_kid("garbage", 7, kid, &len), -1);
    assert_int_equal(ca_token_kid(".x.y", 4, kid, &len), -1);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_unreadable_says_why),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_header_kid),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
