/*
 * Hex both ways and decimal digits (lib/core/util.c): the audit's hashes, the
 * banks' fingerprints and every length of a script call go through these
 * on every request, so they are table-driven; the tables must agree with
 * the plain definitions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "core/util.h"

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

static void
test_u64_str(void **state)
{
    char      out[21], want[21];
    uint64_t  v;
    size_t    n;

    (void) state;
    /* every length of number, each power of ten and its neighbours */
    for (v = 1; ; v *= 10) {
        for (uint64_t d = v - 1; d <= v + 1; d++) {
            snprintf(want, sizeof(want), "%llu", (unsigned long long) d);
            memset(out, 'x', sizeof(out));
            n = ca_u64_str(d, out);
            assert_int_equal(n, strlen(want));
            assert_string_equal(out, want);
        }
        if (v > UINT64_MAX / 10) {
            break;
        }
    }
    for (v = 0; v < 100000; v += 7) {
        snprintf(want, sizeof(want), "%llu", (unsigned long long) v);
        n = ca_u64_str(v, out);
        assert_int_equal(n, strlen(want));
        assert_string_equal(out, want);
    }
    n = ca_u64_str(UINT64_MAX, out);
    assert_int_equal(n, 20);
    assert_string_equal(out, "18446744073709551615");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_every_byte),
        cmocka_unit_test(test_unhex_upper_case),
        cmocka_unit_test(test_unhex_refusals),
        cmocka_unit_test(test_u64_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
