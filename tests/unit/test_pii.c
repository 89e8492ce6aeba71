/* ca_looks_personal: identifiers that must not ride into the audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "audit/audit.h"
#include "core/pii.h"

static int
personal(const char *s)
{
    return ca_looks_personal(s, strlen(s));
}

static void
test_mobile(void **state)
{
    (void) state;
    assert_true(personal("13812345678"));
    assert_true(personal("req-13812345678"));
    assert_true(personal("138-1234-5678"));
    assert_false(personal("12812345678"));      /* not a mobile prefix */
    assert_false(personal("1381234567"));       /* 10 digits */
}

static void
test_resident_id(void **state)
{
    (void) state;
    assert_true(personal("110101199003071234"));
    assert_true(personal("11010119900307123X"));    /* check char X */
    assert_true(personal("11010519491231002x"));
    assert_true(personal("id_11010519491231002X_end"));
    assert_true(personal("110101900307123"));       /* 15-digit, pre-1999 */
    assert_false(personal("X110101"));              /* X only ends an ID */
}

static void
test_cards_and_long_runs(void **state)
{
    (void) state;
    assert_true(personal("4111111111111111"));      /* 16 digits */
    assert_true(personal("4222222222222"));         /* 13, Luhn-valid */
    assert_false(personal("4222222222223"));        /* 13, not Luhn */
    assert_true(personal("123456789012345678901")); /* > 19 digits */
    assert_true(personal("1101-0119-9003-0712-3400-0000"));
}

/* SPEC §2.1: a jti the audit cannot hold as it is becomes its digest. */
static void
test_consent_id(void **state)
{
    char        out[CA_CONSENT_ID_MAX + 1];
    const char *id = "11010519491231002X";
    const char *hex = "sha256:";

    (void) state;
    assert_int_equal(ca_audit_consent_id("c-2026.11:7", 11, out), 11);
    assert_string_equal(out, "c-2026.11:7");
    /* a resident ID, a mobile: hashed, never written */
    assert_int_equal(ca_audit_consent_id(id, strlen(id), out), 71);
    assert_memory_equal(out, hex, 7);
    assert_null(strstr(out, "1101051949"));
    ca_audit_consent_id("13812345678", 11, out);
    assert_memory_equal(out, hex, 7);
    /* outside [A-Za-z0-9._:-]{1,128} */
    ca_audit_consent_id("a b", 3, out);
    assert_memory_equal(out, hex, 7);
    ca_audit_consent_id("x\"y", 3, out);
    assert_memory_equal(out, hex, 7);
    {
        char long_id[130];
        memset(long_id, 'a', sizeof(long_id));
        assert_int_equal(ca_audit_consent_id(long_id, 128, out), 128);
        assert_int_equal(ca_audit_consent_id(long_id, 129, out), 71);
    }
    /* the same jti always gives the same digest (queries find it) */
    {
        char again[CA_CONSENT_ID_MAX + 1];
        ca_audit_consent_id(id, strlen(id), again);
        ca_audit_consent_id(id, strlen(id), out);
        assert_string_equal(out, again);
    }
}

static void
test_random_ids_pass(void **state)
{
    (void) state;
    assert_false(personal("5f1c0a9e-7b3d-4c2e-9a8f-0d1e2f3a4b5c"));
    assert_false(personal("52a2c543032441488a983287c045d404"));
    assert_false(personal("rl-cfc963c6bf334f81b5ebc268721952c3"));
    assert_false(personal("req-2026-11-27-000123"));
    assert_false(personal(""));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mobile),
        cmocka_unit_test(test_resident_id),
        cmocka_unit_test(test_cards_and_long_runs),
        cmocka_unit_test(test_random_ids_pass),
        cmocka_unit_test(test_consent_id),
    };
    return cmocka_run_group_tests_name("pii", tests, NULL, NULL);
}
