/* ca_looks_personal: identifiers that must not ride into the audit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "pii.h"

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
    };
    return cmocka_run_group_tests_name("pii", tests, NULL, NULL);
}
