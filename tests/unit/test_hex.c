/*
 * Hex both ways (lib/util.c): the audit's hashes and the banks' fingerprints
 * go through these on every request, so they are table-driven; the table
 * must agree with the plain definition on every byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "util.h"

static void
test_hex_every_byte(void **state)
{
    unsigned char  in[256], back[256];
    char           out[513], want[3];

    (void) state;
    for (int i = 0; i < 256; i++) {
        in[i] = (unsigned char) i;
    }
    memset(out, 'x', sizeof(out));
    ca_hex(in, 256, out);
    assert_int_equal(out[512], '\0');
    for (int i = 0; i < 256; i++) {
        snprintf(want, sizeof(want), "%02x", i);
        assert_memory_equal(out + 2 * i, want, 2);
    }
    assert_int_equal(ca_unhex(out, back, 256), 0);
    assert_memory_equal(back, in, 256);
}

static void
test_unhex_upper_case(void **state)
{
    unsigned char  b[2];

    (void) state;
    assert_int_equal(ca_unhex("aBcD", b, 2), 0);
    assert_int_equal(b[0], 0xab);
    assert_int_equal(b[1], 0xcd);
}

/* A bad string is refused whole and leaves out as it was. */
static void
test_unhex_refusals(void **state)
{
    static const char *bad[] = {
        "",             /* short */
        "abc",          /* short, odd */
        "abcdef",       /* long */
        "abcg",         /* not hex */
        "ab d",
        "ab\xff" "d",
        "0x12",
    };
    unsigned char  b[2];

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b[0] = 0x55;
        b[1] = 0x66;
        assert_int_equal(ca_unhex(bad[i], b, 2), -1);
        assert_int_equal(b[0], 0x55);
        assert_int_equal(b[1], 0x66);
    }
    /* a NUL inside ends the string: shorter than asked */
    assert_int_equal(ca_unhex("ab\0d", b, 2), -1);
    assert_int_equal(b[0], 0x55);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_every_byte),
        cmocka_unit_test(test_unhex_upper_case),
        cmocka_unit_test(test_unhex_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
