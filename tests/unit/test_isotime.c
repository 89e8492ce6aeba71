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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
