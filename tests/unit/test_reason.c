/* The reason codes of contract §4: every code has a name, a status, an English
 * title and a Chinese label, and the names read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/reason.h"

/* 1 if s holds at least one CJK ideograph (U+4E00..U+9FFF) and is valid
 * UTF-8 with no ASCII letter: a label a Chinese reader reads, not an
 * English one left untranslated. */
static int
chinese(const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    int                  cjk = 0;

    while (*p) {
        if (*p < 0x80) {
            if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')) {
                return 0;
            }
            p++;
        } else if ((*p & 0xf0) == 0xe0) {
            unsigned cp;

            if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) {
                return 0;
            }
            cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6)
                 | (p[2] & 0x3fu);
            cjk |= cp >= 0x4e00 && cp <= 0x9fff;
            p += 3;
        } else {
            return 0;       /* every label is in the BMP's 3-byte range */
        }
    }
    return cjk;
}

static void
test_every_reason_has_a_chinese_label(void **state)
{
    for (int r = 0; r < CA_REASON_COUNT; r++) {
        const char *zh = ca_reason_zh((ca_reason) r);

        assert_non_null(zh);
        if (!chinese(zh)) {
            fail_msg("reason %s: label \"%s\" is not Chinese",
                     ca_reason_name((ca_reason) r), zh);
        }
        /* two reasons never read alike */
        for (int o = 0; o < r; o++) {
            if (strcmp(zh, ca_reason_zh((ca_reason) o)) == 0) {
                fail_msg("reasons %s and %s share the label %s",
                         ca_reason_name((ca_reason) o),
                         ca_reason_name((ca_reason) r), zh);
            }
        }
    }
    assert_string_equal(ca_reason_zh(CA_PURPOSE_NOT_ALLOWED), "用途未获授权");
    assert_string_equal(ca_reason_zh(CA_TOKEN_EXPIRED), "授权已过期");
    /* out of range: a label, never NULL */
    assert_true(chinese(ca_reason_zh(CA_REASON_COUNT)));
    assert_true(chinese(ca_reason_zh((ca_reason) -1)));
    (void) state;
}

static void
test_every_reason_is_complete(void **state)
{
    for (int r = 1; r < CA_REASON_COUNT; r++) {
        const char *name = ca_reason_name((ca_reason) r);
        int         st = ca_reason_status((ca_reason) r);

        assert_true(name[0] != '\0');
        assert_int_equal(ca_reason_from_name(name), r);
        assert_true(st == 400 || st == 401 || st == 403 || st == 404
                    || st == 502 || st == 503);
        assert_true(ca_reason_title((ca_reason) r)[0] != '\0');
    }
    assert_int_equal(ca_reason_from_name("no_such_reason"), -1);
    assert_int_equal(ca_reason_from_name(""), -1);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reason_has_a_chinese_label),
        cmocka_unit_test(test_every_reason_is_complete),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
