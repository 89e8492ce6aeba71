/* ISO 8601 times of the command-line tools: offsets, months, zones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/isotime.h"

static int64_t
ms_of(const char *s, ca_time_unit *u)
{
    int64_t ms = -42;
    char    err[256] = "";

    if (ca_time_parse(s, &ms, u, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", s, err);
    }
    return ms;
}

/* The end of the month or day s names (u must be read after the parse:
 * argument evaluation order is unspecified). */
static int64_t
next_of(const char *s)
{
    ca_time_unit u;
    int64_t      ms = ms_of(s, &u);

    return ca_time_next(ms, u);
}

static void
zone(const char *z)
{
    char err[256];

    assert_int_equal(ca_time_set_zone(z, err, sizeof(err)), 0);
}

/* 2026-11-01T00:00:00Z */
#define NOV1 1793491200000LL

static void
test_offsets(void **state)
{
    zone("UTC");
    assert_int_equal(ms_of("2026-11-01T00:00:00Z", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01T00:00:00+00:00", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01T08:00:00+08:00", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01T08:00+0800", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01T08:00:00+08", NULL), NOV1);
    assert_int_equal(ms_of("2026-10-31T19:00:00-05:00", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01 00:00:00z", NULL), NOV1);
    (void) state;
}

static void
test_fraction_and_unix(void **state)
{
    ca_time_unit u = CA_TIME_MONTH;

    zone("UTC");
    assert_int_equal(ms_of("2026-11-01T00:00:00.25Z", &u), NOV1 + 250);
    assert_int_equal(u, CA_TIME_INSTANT);
    assert_int_equal(ms_of("2026-11-01T00:00:00,123456Z", NULL), NOV1 + 123);
    assert_int_equal(ms_of("1793491200", NULL), NOV1);
    (void) state;
}

static void
test_local_zone_and_units(void **state)
{
    ca_time_unit u;

    zone("Asia/Shanghai");
    assert_int_equal(ms_of("2026-11", &u), NOV1 - 8 * 3600000LL);
    assert_int_equal(u, CA_TIME_MONTH);
    assert_int_equal(ms_of("2026-11-01", &u), NOV1 - 8 * 3600000LL);
    assert_int_equal(u, CA_TIME_DAY);
    assert_int_equal(ms_of("2026-11-01T08:00", &u), NOV1);
    /* an explicit offset wins over the zone */
    assert_int_equal(ms_of("2026-11-01T00:00Z", NULL), NOV1);
    /* the month after November 2026 in Beijing */
    assert_int_equal(next_of("2026-11"),
                     ms_of("2026-12-01T00:00:00+08:00", NULL));
    assert_int_equal(next_of("2026-12"),
                     ms_of("2027-01-01T00:00:00+08:00", NULL));
    assert_int_equal(next_of("2026-02-28"),
                     ms_of("2026-03-01T00:00:00+08:00", NULL));
    assert_int_equal(next_of("2026-11-01T08:00"), NOV1);
    zone("+08:00");
    assert_int_equal(ms_of("2026-11", NULL), NOV1 - 8 * 3600000LL);
    zone("-05:30");
    assert_int_equal(ms_of("2026-11-01", NULL), NOV1 + 5 * 3600000LL
                     + 1800000LL);
    (void) state;
}

static void
test_format(void **state)
{
    char out[40];

    zone("Asia/Shanghai");
    ca_time_format(NOV1, out, sizeof(out));
    assert_string_equal(out, "2026-11-01T08:00:00+08:00");
    ca_time_format(NOV1 + 7, out, sizeof(out));
    assert_string_equal(out, "2026-11-01T08:00:00.007+08:00");
    zone("UTC");
    ca_time_format(NOV1, out, sizeof(out));
    assert_string_equal(out, "2026-11-01T00:00:00Z");
    zone("America/New_York");
    ca_time_format(NOV1, out, sizeof(out));
    assert_string_equal(out, "2026-10-31T20:00:00-04:00");
    (void) state;
}

static void
bad(const char *s, const char *why)
{
    int64_t ms;
    char    err[256] = "";

    assert_int_equal(ca_time_parse(s, &ms, NULL, err, sizeof(err)), -1);
    if (strstr(err, why) == NULL || strstr(err, "2026-11-01T") == NULL) {
        fail_msg("%s: error \"%s\" lacks \"%s\" or the forms", s, err, why);
    }
}

static void
test_errors_say_why(void **state)
{
    char err[256];

    zone("UTC");
    bad("yesterday", "YYYY-MM");
    bad("2026-13", "month 01 to 12");
    bad("2026-02-29", "no such day");
    bad("2026-11-01T25:00", "hour");
    bad("2026-11-01T08", "THH:MM");
    bad("2026-11-01T08:00:00+8", "offset");
    bad("2026-11-01T08:00:00.", "decimal point");
    bad("2026-11-01T08:00:00 UTC", "unexpected text");
    bad("1234567890123", "too many digits");
    assert_int_equal(ca_time_set_zone("Mars/Olympus", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "Asia/Shanghai"));
    assert_int_equal(ca_time_set_zone("../etc/passwd", err, sizeof(err)),
                     -1);
    assert_int_equal(ca_time_set_zone("+8", err, sizeof(err)), -1);
    (void) state;
}

/*
 * What the tools write reads back: an instant whose year in the zone has
 * five digits was accepted and written as text the parser refuses (found
 * by tests/fuzz/fuzz_isotime.c).  The last second of 9999 in the zone is
 * the last accepted.
 */
static void
test_four_digit_years(void **state)
{
    char out[40];

    zone("Asia/Shanghai");
    bad("277777777721", "after the year 9999");
    bad("253402300799", "after the year 9999");     /* 10000-01-01 +08 */
    bad("9999-12-31T23:59:59Z", "0000 to 9999");
    assert_int_equal(ms_of("253402271999", NULL), 253402271999000LL);
    ca_time_format(253402271999000LL, out, sizeof(out));
    assert_string_equal(out, "9999-12-31T23:59:59+08:00");
    assert_int_equal(ms_of(out, NULL), 253402271999000LL);
    assert_int_equal(ms_of("9999-12-31T23:59:59+08:00", NULL),
                     253402271999000LL);
    zone("UTC");
    assert_int_equal(ms_of("253402300799", NULL), 253402300799000LL);
    assert_int_equal(ms_of("9999-12-31T23:59:59Z", NULL),
                     253402300799000LL);
    (void) state;
}

/*
 * Round trips over the whole accepted range (fuzz finding 9): in each zone,
 * every instant from the first millisecond of the year 0000 there to the
 * last of 9999 is written (ca_time_format) as text that reads back
 * (ca_time_parse) to the same millisecond -- before 1970 in a zone west
 * of UTC, in local mean time (offsets of seconds), across DST -- and the
 * instant just outside is written as text that is refused, not misread.
 */
static void
round_trip(int64_t ms)
{
    char    out[48], err[256] = "";
    int64_t back = -42;

    ca_time_format(ms, out, sizeof(out));
    if (ca_time_parse(out, &back, NULL, err, sizeof(err)) != 0
        || back != ms)
    {
        fail_msg("%lld written \"%s\", read %s%lld", (long long) ms, out,
                 err, (long long) back);
    }
}

static void
test_round_trip_whole_range(void **state)
{
    static const char *zones[] = {
        "UTC", "Asia/Shanghai", "America/New_York", "Africa/Monrovia",
        "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Marquesas",
        "Pacific/Kiritimati", "-05:30", "+08:00",
    };
    static const int64_t fixed[] = {
        0, 1, -1, 999, -999, -1000, -1001, -3600000, 3600000, NOV1,
        NOV1 + 7, -28800000, -2177481943000LL, 63000000000000LL,
    };
    unsigned long long seed = 0x853c49e6748fea9bULL;

    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        int64_t lo, hi, ms, back;
        char    out[48], err[256];

        zone(zones[z]);
        /* the first instant written in the year 0000: local midnight, or
         * in a zone then on local mean time (written in UTC) midnight UTC,
         * whichever is accepted and earlier */
        lo = INT64_MAX;
        if (ca_time_parse("0000-01-01", &ms, NULL, err, sizeof(err)) == 0) {
            lo = ms;
        }
        if (ca_time_parse("0000-01-01T00:00Z", &ms, NULL, err, sizeof(err))
            == 0 && ms < lo)
        {
            lo = ms;
        }
        assert_true(lo != INT64_MAX);
        hi = ms_of("9999-12-31T23:59:59.999", NULL);
        round_trip(lo);
        round_trip(hi);
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
            round_trip(fixed[i]);
        }
        for (int i = 0; i < 20000; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            ms = lo + (int64_t) (seed % (unsigned long long) (hi - lo + 1));
            round_trip(ms);
            /* and near 1970 and the DST changes of this century */
            round_trip((int64_t) (seed % 4000000000000ULL) - 1000000000000LL);
        }
        /* just outside: refused, not read as another instant */
        for (int end = 0; end < 2; end++) {
            ca_time_format(end ? hi + 1 : lo - 1, out, sizeof(out));
            if (ca_time_parse(out, &back, NULL, err, sizeof(err)) == 0) {
                fail_msg("%s: %lld, outside, written \"%s\" and read",
                         zones[z], (long long) (end ? hi + 1 : lo - 1), out);
            }
        }
    }
    (void) state;
}

/* What the finding showed, one by one. */
static void
test_before_1970_and_offsets(void **state)
{
    char out[48];

    /* 0 shown in New York is in 1969, and reads back */
    zone("America/New_York");
    ca_time_format(0, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T19:00:00-05:00");
    assert_int_equal(ms_of(out, NULL), 0);
    /* 1970-01-01T00:00+01 read in UTC is in 1969 there */
    zone("UTC");
    assert_int_equal(ms_of("1970-01-01T00:00+01", NULL), -3600000);
    ca_time_format(-3600000, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:00:00Z");
    ca_time_format(-1, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
    assert_int_equal(ms_of(out, NULL), -1);
    /* four digits of year, always */
    assert_int_equal(ms_of("0005-03-01T00:00Z", NULL), -62004268800000LL);
    ca_time_format(-62004268800000LL, out, sizeof(out));
    assert_string_equal(out, "0005-03-01T00:00:00Z");
    /* local mean time has seconds in its offset: written in UTC */
    zone("Asia/Shanghai");
    assert_int_equal(ms_of("1900-01-01T00:00", NULL), -2209017943000LL);
    ca_time_format(-2209017943000LL, out, sizeof(out));
    assert_string_equal(out, "1899-12-31T15:54:17Z");
    /* midnight starting the year 0000 there is in the year -1 in UTC */
    bad("0000-01-01", "0000 to 9999");
    /* "+08:" is a cut "+08:30", not "+08:00" */
    zone("UTC");
    bad("2026-11-01T08:00:00+08:", "offset");
    bad("2026-11-01T08:00+08:3", "offset");
    bad("2026-11-01T08:00-05:", "offset");
    assert_int_equal(ms_of("2026-11-01T08:30+08:30", NULL), NOV1);
    assert_int_equal(ms_of("2026-11-01T08:30+0830", NULL), NOV1);
    (void) state;
}

/* Milliseconds near INT64_MIN: the floor of ms / 1000 without overflow
 * (it was (ms - 999) / 1000), the fraction from the floor. */
static void
test_format_extremes(void **state)
{
    char out[48];

    zone("UTC");
    ca_time_format(INT64_MIN, out, sizeof(out));
    assert_int_equal(out[0], '-');
    assert_non_null(strstr(out, ".192"));
    ca_time_format(INT64_MIN + 998, out, sizeof(out));
    assert_int_equal(out[0], '-');
    assert_non_null(strstr(out, ".190"));
    ca_time_format(INT64_MIN + 808, out, sizeof(out));
    assert_int_equal(out[0], '-');
    assert_null(strchr(out, '.'));
    ca_time_format(INT64_MAX, out, sizeof(out));
    assert_int_not_equal(out[0], '-');
    assert_non_null(strstr(out, ".807"));
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_fraction_and_unix),
        cmocka_unit_test(test_local_zone_and_units),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_errors_say_why),
        cmocka_unit_test(test_four_digit_years),
        cmocka_unit_test(test_round_trip_whole_range),
        cmocka_unit_test(test_before_1970_and_offsets),
        cmocka_unit_test(test_format_extremes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
