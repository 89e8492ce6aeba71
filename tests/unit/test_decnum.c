/* decnum: numbers as decimal digits, the range rule and exact buckets. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json/decnum.h"

/* 2^1024 - 2^970, from where a double rounds to infinity */
#define DBL_INF_FROM                                                        \
    "1797693134862315807937289714053034150799341327100378269361737789804449" \
    "6829276475094664901797758720709633028641669288791094655554785194040263" \
    "0657488671505820681908902000708383676273854845817711531764475730270069" \
    "8555713669596228429148198608349364752927190741684443655107043427115596" \
    "995080930428801779041744977920"

static void
expect_bucket(const char *num, double width, const char *want)
{
    ca_decnum n;
    char      buf[CA_DEC_BUCKET_MAX];
    size_t    len;

    if (ca_dec_parse(num, strlen(num), &n) != 0) {
        fail_msg("not a number: %s", num);
    }
    len = ca_dec_bucket(&n, width, buf);
    if (want == NULL) {
        if (len != 0) {
            fail_msg("bucket:%g of %s: %.*s, want none", width, num,
                     (int) len, buf);
        }
        return;
    }
    if (len != strlen(want) || memcmp(buf, want, len) != 0) {
        fail_msg("bucket:%g of %s: %.*s, want %s", width, num, (int) len,
                 buf, want);
    }
}

static void
test_bucket_exact(void **state)
{
    (void) state;
    expect_bucket("123456.78", 100000, "100000-200000");
    expect_bucket("123456.785", 0.01, "123456.78-123456.79");
    /* doubles: 0.3 / 0.1 = 2.9999999999999996, bucket 0.2-0.30000000000000004 */
    expect_bucket("0.3", 0.1, "0.3-0.4");
    expect_bucket("1.25", 0.5, "1-1.5");
    expect_bucket("350000.5", 100000, "300000-400000");
    /* one below a boundary by less than a double can tell */
    expect_bucket("199999.99999999999999999999", 100000, "100000-200000");
    expect_bucket("999.999999999999999999999999999999999999999999", 1000,
                  "0-1000");
    expect_bucket("200000.000", 100000, "200000-300000");
}

static void
test_bucket_long_digits(void **state)
{
    (void) state;
    expect_bucket("123456.780000000000000000000000000000000000000000000000"
                  "000000000000000000000000000000000000000000000000000001",
                  100000, "100000-200000");
    expect_bucket("0.00000000000000000000000000000000000000000000000000000"
                  "0000000000000000000000000000000000000001", 1000,
                  "0-1000");
    expect_bucket("12345678901234567890.5", 1000000,
                  "12345678901234000000-12345678901235000000");
    expect_bucket("123456789012345678901.123456789", 100000,
                  "123456789012345600000-123456789012345700000");
    /* a width with 17 significant digits */
    expect_bucket("1.5", 0.12345678901234568,
                  "1.48148146814814816-1.60493825716049384");
}

/* Bounds stop at 2^53 widths from zero, where doubles stopped: beyond,
 * the width is finer than the value can be read. */
static void
test_bucket_number_bound(void **state)
{
    (void) state;
    expect_bucket("9007199254740991.5", 1,
                  "9007199254740991-9007199254740992");
    expect_bucket("9007199254740992.5", 1, NULL);
    expect_bucket("-9007199254740990.5", 1,
                  "-9007199254740991--9007199254740990");
    expect_bucket("-9007199254740991.5", 1,
                  "-9007199254740992--9007199254740991");
    expect_bucket("-9007199254740992.5", 1, NULL);
    expect_bucket("1e308", 100000, NULL);
    {
        /* 309 digits each side */
        char want[2 * 320];
        memset(want, '0', sizeof(want));
        memcpy(want, "179769313", 9);
        want[309] = '-';
        memcpy(want + 310, "179769314", 9);
        want[310 + 309] = '\0';
        expect_bucket("1.7976931348623157e308", 1e300, want);
    }
    expect_bucket("123456789012345678901234567890.5", 100000, NULL);
    /* 64-bit integers keep their exact 64-bit path */
    expect_bucket("9223372036854775797", 10,
                  "9223372036854775790-9223372036854775800");
}

static void
test_bucket_negative(void **state)
{
    (void) state;
    expect_bucket("-123456.78", 100000, "-200000--100000");
    expect_bucket("-100000.0", 100000, "-100000-0");
    expect_bucket("-0.0", 100000, "0-100000");
    expect_bucket("-0", 100000, "0-100000");
    expect_bucket("-1e-400", 100000, "-100000-0");
    expect_bucket("-0.3", 0.1, "-0.3--0.2");
    expect_bucket("-0.35", 0.1, "-0.4--0.3");
    expect_bucket("-1", 100000, "-100000-0");
    expect_bucket("-100000", 100000, "-100000-0");
}

static void
test_bucket_exponents(void **state)
{
    (void) state;
    expect_bucket("1.5e3", 1000, "1000-2000");
    expect_bucket("12345e-2", 100, "100-200");
    expect_bucket("1E-5", 1e-6, "0.00001-0.000011");
    expect_bucket("0e999999999999999", 10, "0-10");
    expect_bucket("1e-999999999999999", 10, "0-10");
    expect_bucket("25", 1e20, "0-100000000000000000000");
    /* and the smallest width: 1e-323 is twice 5e-324 */
    {
        char want[2 * 330], *w = want;
        w += sprintf(w, "0.");
        memset(w, '0', 322);
        w += 322;
        w += sprintf(w, "1-0.");
        memset(w, '0', 322);
        w += 322;
        sprintf(w, "15");
        expect_bucket("1e-323", 5e-324, want);
    }
}

static void
test_bucket_integers(void **state)
{
    (void) state;
    /* 64-bit integers as before; beyond 64 bits no bucket */
    expect_bucket("9223372036854775797", 10,
                  "9223372036854775790-9223372036854775800");
    expect_bucket("9223372036854775802", 10, NULL);
    expect_bucket("-9223372036854775808", 100000, NULL);
    expect_bucket("123456789012345678901234567890", 1000, NULL);
    expect_bucket("99999", 100000, "0-100000");
    expect_bucket("3", 0.5, "3-3.5");
    expect_bucket("4503599627370495", 0.5,
                  "4503599627370495-4503599627370495.5");
    expect_bucket("9223372036854775807", 0.5, NULL);
    expect_bucket("5", 0, NULL);
    expect_bucket("5", -10, NULL);
    expect_bucket("5", INFINITY, NULL);
    expect_bucket("5", NAN, NULL);
}

/* The range rule agrees with the C library's strtod for any length. */
static void
test_overflow_matches_strtod(void **state)
{
    static const char *nums[] = {
        "1e308", "1e309", "-1e309", "0.1e310", "0.0001e312", "10e308",
        "1.7976931348623157e308", "1.7976931348623158e308",
        "1.7976931348623159e308", "179769313486231580793728971405301e276",
        "1" DBL_INF_FROM "e-309", "-0." DBL_INF_FROM "e309",
        "0." DBL_INF_FROM "0000000000000001e309",
        "1.5e388888888888888888888888888888888888888888888888888888888888"
        "888888888880",
        "-177E77777777777777777777777777777777777777777777777777777000077"
        "777777138",
        "1e0000000000000000000000000000000000000000000000000000000000000999",
        "1e0000000000000000000000000000000000000000000000000000000000000308",
        "0e99999999999999999999", "0.000e400", "1e-99999999999999999999",
        "0.0000000000000000000000000000000000000000000000000000000000001e370",
        "100000000000000000000000000000000000000000000000000000000000000000"
        "0000.0e236",
        "100000000000000000000000000000000000000000000000000000000000000000"
        "0000.0e237",
    };
    char      buf[1024];
    ca_decnum n;

    (void) state;
    /* T itself and one below it in the last digit */
    snprintf(buf, sizeof(buf), "%s.0", DBL_INF_FROM);
    assert_int_equal(ca_dec_parse(buf, strlen(buf), &n), 0);
    assert_true(ca_dec_overflows(&n));
    assert_true(isinf(strtod(buf, NULL)));
    snprintf(buf, sizeof(buf), "%.308s1.0", DBL_INF_FROM);
    assert_int_equal(ca_dec_parse(buf, strlen(buf), &n), 0);
    assert_false(ca_dec_overflows(&n));
    assert_false(isinf(strtod(buf, NULL)));

    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        int want = isinf(strtod(nums[i], NULL)) != 0;
        assert_int_equal(ca_dec_parse(nums[i], strlen(nums[i]), &n), 0);
        if (ca_dec_overflows(&n) != want) {
            fail_msg("%s: overflows %d, strtod says %d", nums[i], !want,
                     want);
        }
    }
    /* integers are copied as written, of any length */
    assert_int_equal(ca_dec_parse(DBL_INF_FROM "0", 310, &n), 0);
    assert_false(ca_dec_overflows(&n));
}

static void
test_grammar(void **state)
{
    static const char *bad[] = {
        "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.5", "0x10",
        "1 ", "--1", "1e5e5",
    };
    ca_decnum n;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ca_dec_parse(bad[i], strlen(bad[i]), &n) == 0) {
            fail_msg("accepted: \"%s\"", bad[i]);
        }
    }
    assert_int_equal(ca_dec_parse("-12.50e-3", 9, &n), 0);
    assert_true(n.neg);
    assert_false(n.is_int);
    assert_int_equal(n.ni, 2);
    assert_int_equal(n.nf, 2);
    assert_int_equal(n.exp, -3);
    assert_int_equal(ca_dec_parse("1e99999999999999999999", 22, &n), 0);
    assert_int_equal(n.exp, CA_DEC_EXP_SAT);
}

/*
 * A real without exponent, up to 18 integer digits, by a whole width
 * takes a 64-bit path; the same value written with an exponent takes the
 * general one (digits, long division).  They must agree everywhere: near
 * bounds, negative, zero fractions, and up to the 2^53 quotient limit.
 */
static void
test_bucket_short_path_matches_general(void **state)
{
    static const double widths[] = {1, 7, 10, 100, 1000, 100000, 1000000,
                                    123456789, 1e15, 9e17, 9.1e18};
    unsigned long long  seed = 88172645463325252ULL;
    char                plain[64], expo[64], a[CA_DEC_BUCKET_MAX],
                        b[CA_DEC_BUCKET_MAX];
    ca_decnum           x, y;
    size_t              la, lb;

    (void) state;
    for (int k = 0; k < 200000; k++) {
        char   ip[20], fp[8];
        int    ni, nf, neg;
        double w = widths[k % (int) (sizeof(widths) / sizeof(widths[0]))];

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        ni = 1 + (int) (seed % 18);
        nf = 1 + (int) ((seed >> 8) % 6);
        neg = (seed >> 16) & 1;
        for (int i = 0; i < ni; i++) {
            /* a skewed digit mix: many zeros and nines meet bounds */
            unsigned r = (unsigned) ((seed >> (20 + i)) % 13);
            ip[i] = (char) ('0' + (r >= 10 ? (r == 10 ? 0 : 9) : r));
        }
        if (ni > 1 && ip[0] == '0') {
            ip[0] = '1';
        }
        if ((seed >> 40) % 4 == 0) {
            ni = 1;
            ip[0] = '0';
        }
        for (int i = 0; i < nf; i++) {
            fp[i] = (seed >> (44 + i)) % 3 ? '0' : (char) ('1' + i);
        }
        snprintf(plain, sizeof(plain), "%s%.*s.%.*s", neg ? "-" : "", ni, ip,
                 nf, fp);
        {
            /* the same digits as one integer: no leading zero there */
            char   all[32];
            size_t z = 0, n = (size_t) snprintf(all, sizeof(all), "%.*s%.*s",
                                                ni, ip, nf, fp);
            while (z + 1 < n && all[z] == '0') {
                z++;
            }
            snprintf(expo, sizeof(expo), "%s%se-%d", neg ? "-" : "",
                     all + z, nf);
        }
        assert_int_equal(ca_dec_parse(plain, strlen(plain), &x), 0);
        assert_int_equal(ca_dec_parse(expo, strlen(expo), &y), 0);
        la = ca_dec_bucket(&x, w, a);
        lb = ca_dec_bucket(&y, w, b);
        if (la != lb || memcmp(a, b, la) != 0) {
            fail_msg("bucket:%g of %s: %.*s, of %s: %.*s", w, plain,
                     (int) la, a, expo, (int) lb, b);
        }
    }
    /* the quotient limit holds on the short path too */
    expect_bucket("9007199254740991.5", 1,
                  "9007199254740991-9007199254740992");
    expect_bucket("9007199254740992.5", 1, NULL);
    expect_bucket("-0.5", 100000, "-100000-0");
    expect_bucket("-100000.000", 100000, "-100000-0");
    expect_bucket("-100000.001", 100000, "-200000--100000");
}

/* Integers written as printf writes them, at every length. */
static void
test_fmt_int_matches_printf(void **state)
{
    static const int64_t edge[] = {0, 9, 10, 99, 100, 999, 1000, 9999, 10000,
                                   99999, 100000, 9999999, 10000000,
                                   99999999, 100000000, 100000001,
                                   1000000000000000000LL, INT64_MAX,
                                   INT64_MIN, -1, -10, -100000000};
    char    got[32], want[32];
    int64_t v = 1;

    (void) state;
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        size_t n = ca_dec_fmt_int(edge[i], got);
        snprintf(want, sizeof(want), "%lld", (long long) edge[i]);
        assert_int_equal(n, strlen(want));
        assert_string_equal(got, want);
    }
    /* every length, and a digit pattern that moves through each place */
    for (int k = 1; k <= 19; k++) {             /* v has k digits */
        for (int sign = -1; sign <= 1; sign += 2) {
            size_t n = ca_dec_fmt_int(sign * v, got);
            snprintf(want, sizeof(want), "%lld", (long long) (sign * v));
            assert_int_equal(n, strlen(want));
            assert_string_equal(got, want);
        }
        if (k < 19) {
            v = v * 10 + (k % 10);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_exact),
        cmocka_unit_test(test_bucket_long_digits),
        cmocka_unit_test(test_bucket_number_bound),
        cmocka_unit_test(test_bucket_negative),
        cmocka_unit_test(test_bucket_exponents),
        cmocka_unit_test(test_bucket_integers),
        cmocka_unit_test(test_bucket_short_path_matches_general),
        cmocka_unit_test(test_fmt_int_matches_printf),
        cmocka_unit_test(test_overflow_matches_strtod),
        cmocka_unit_test(test_grammar),
    };
    return cmocka_run_group_tests_name("decnum", tests, NULL, NULL);
}
