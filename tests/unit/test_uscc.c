/* Unified Social Credit Code, GB 32100-2015: format and check character. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/uscc.h"
#include "core/core_testing.h"

static int
valid(const char *s)
{
    return ca_uscc_valid(s, strlen(s));
}

static void
test_valid(void **state)
{
    assert_true(valid("91350100M000100Y43"));
    assert_int_equal(ca_uscc_check_char("91350100M000100Y4"), '3');
    (void) state;
}

static void
test_wrong_check_char(void **state)
{
    assert_false(valid("91350100M000100Y4Z"));
    assert_false(valid("91350100M000100Y44"));
    /* One changed body character moves the check character. */
    assert_false(valid("91350100M000101Y43"));
    (void) state;
}

static void
test_lowercase(void **state)
{
    assert_false(valid("91350100m000100y43"));
    assert_false(valid("91350100M000100y43"));
    (void) state;
}

static void
test_length(void **state)
{
    assert_false(valid(""));
    assert_false(valid("91350100M000100Y4"));
    assert_false(valid("91350100M000100Y433"));
    /* The length given is what counts, not a NUL further on. */
    assert_false(ca_uscc_valid("91350100M000100Y43", 17));
    assert_true(ca_uscc_valid("91350100M000100Y43XYZ", 18));
    (void) state;
}

static void
test_excluded_letters(void **state)
{
    /* I O S V Z are not in the alphabet anywhere, check char included. */
    static const char excluded[] = "IOSVZ";
    char s[19];

    for (size_t i = 0; i < 5; i++) {
        memcpy(s, "91350100M000100Y43", 19);
        s[8] = excluded[i];
        assert_int_equal(ca_uscc_check_char(s), 0);
        assert_false(valid(s));
        memcpy(s, "91350100M000100Y43", 19);
        s[17] = excluded[i];
        assert_false(valid(s));
    }
    (void) state;
}

static void
test_other_characters(void **state)
{
    assert_false(valid("91350100M000100Y-3"));
    assert_false(valid("91350100M000100Y 3"));
    assert_false(ca_uscc_valid("91350100M\0" "00100Y43", 18));
    (void) state;
}

/* What a person is told about a code that is not a USCC. */
static const char *
problem(const char *s)
{
    static char buf[200];

    return ca_uscc_problem(s, strlen(s), buf, sizeof(buf));
}

static void
test_problem_says_why(void **state)
{
    assert_null(problem("91350100M000100Y43"));
    assert_string_equal(problem("91350100m000100y43"),
                        "is in lower case: a USCC is written in upper case "
                        "(91350100M000100Y43)");
    assert_string_equal(problem("91350100M000100Y4"),
                        "has 17 characters, a USCC has 18");
    assert_string_equal(problem(""), "has 0 characters, a USCC has 18");
    assert_string_equal(problem("91350100M000100Y44"),
                        "check character (the 18th) is 4, the first 17 "
                        "give 3");
    assert_string_equal(problem("91350100I000100Y43"),
                        "character 9 'I' is not used in a USCC (0-9 and "
                        "A-Z without I, O, S, V, Z)");
    assert_string_equal(problem("91350100M000100Y\x01" "3"),
                        "character 17 (byte 0x01) is not used in a USCC "
                        "(0-9 and A-Z without I, O, S, V, Z)");
    /* lower case and a wrong check character: both said */
    assert_string_equal(problem("91350100m000100y44"),
                        "check character (the 18th) is 4, the first 17 "
                        "give 3; and a USCC is written in upper case");
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_wrong_check_char),
        cmocka_unit_test(test_lowercase),
        cmocka_unit_test(test_length),
        cmocka_unit_test(test_excluded_letters),
        cmocka_unit_test(test_other_characters),
        cmocka_unit_test(test_problem_says_why),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
