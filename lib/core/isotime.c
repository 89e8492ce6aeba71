/* ISO 8601 times in and out (see isotime.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "isotime.h"

#define FORMS "Unix seconds, 2026-11, 2026-11-01, " \
              "2026-11-01T08:00, 2026-11-01T08:00:00.250+08:00 or " \
              "2026-11-01T00:00:00Z"

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t  era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int
fail(char *err, size_t errlen, const char *s, const char *why)
{
    snprintf(err, errlen, "bad time \"%s\": %s (give " FORMS ")", s, why);
    return -1;
}

/*
 * The broken-down time ca_time_format() writes secs as: in the zone, or in
 * UTC when the zone's offset then is not whole minutes (local mean time:
 * Asia/Shanghai was +08:05:43 before 1901), which ISO 8601 cannot write.
 */
static int
shown_tm(int64_t secs, struct tm *tm)
{
    time_t t = (time_t) secs;

    if (localtime_r(&t, tm) == NULL) {
        return -1;
    }
    if (tm->tm_gmtoff % 60 != 0 && gmtime_r(&t, tm) == NULL) {
        return -1;
    }
    return 0;
}

/*
 * ca_time_format() writes four-digit years: an instant it would write
 * outside 0000..9999 (Unix seconds 277777777721, 9999-12-31T23:59Z at
 * +08:00, 0000-01-01 in Asia/Shanghai's local mean time, which is in the
 * year -1 in UTC) would be shown as text that does not read back.
 */
static int
writable(int64_t secs)
{
    struct tm tm;

    return shown_tm(secs, &tm) == 0 && tm.tm_year >= -1900
           && tm.tm_year <= 9999 - 1900;
}

static int
month_days(int y, int m)
{
    static const int md[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int              leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return md[m - 1] + (m == 2 && leap);
}

/* Wall-clock time in the process's zone to Unix seconds. */
static int
local_to_unix(int y, int mo, int d, int h, int mi, int se, int64_t *out)
{
    struct tm tm;
    time_t    t;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    tm.tm_isdst = -1;
    errno = 0;
    t = mktime(&tm);
    if (t == (time_t) -1 && errno != 0) {
        return -1;
    }
    *out = (int64_t) t;
    return 0;
}

int
ca_time_parse(const char *s, int64_t *ms, ca_time_unit *unit, char *err,
              size_t errlen)
{
    int          y, mo, d = 1, h = 0, mi = 0, se = 0, frac = 0, off = 0;
    int          has_off = 0;
    size_t       len = strlen(s), i;
    const char  *p;
    ca_time_unit u = CA_TIME_INSTANT;
    int64_t      secs;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        /* all digits: Unix seconds */
    }
    if (len > 4 && i == len) {
        if (len > 12) {
            return fail(err, errlen, s, "too many digits for Unix seconds");
        }
        secs = strtoll(s, NULL, 10);
        if (!writable(secs)) {
            return fail(err, errlen, s, "after the year 9999 in this zone");
        }
        *ms = secs * 1000;
        if (unit != NULL) {
            *unit = CA_TIME_INSTANT;
        }
        return 0;
    }
    if (len < 7 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo))
    {
        return fail(err, errlen, s, "expected YYYY-MM at the start");
    }
    if (mo < 1 || mo > 12) {
        return fail(err, errlen, s, "month 01 to 12");
    }
    p = s + 7;
    if (*p == '\0') {
        u = CA_TIME_MONTH;
        goto local;
    }
    if (*p != '-' || digits(p + 1, 2, &d)) {
        return fail(err, errlen, s, "expected -DD after the month");
    }
    if (d < 1 || d > month_days(y, mo)) {
        return fail(err, errlen, s, "no such day in that month");
    }
    p += 3;
    if (*p == '\0') {
        u = CA_TIME_DAY;
        goto local;
    }
    if ((*p != 'T' && *p != 't' && *p != ' ') || digits(p + 1, 2, &h)
        || p[3] != ':' || digits(p + 4, 2, &mi))
    {
        return fail(err, errlen, s, "expected THH:MM after the date");
    }
    p += 6;
    if (*p == ':') {
        if (digits(p + 1, 2, &se)) {
            return fail(err, errlen, s, "expected two digits of seconds");
        }
        p += 3;
        if (*p == '.' || *p == ',') {
            int n = 0, scale = 100;

            for (p++; *p >= '0' && *p <= '9'; p++, n++) {
                frac += (*p - '0') * scale;     /* ms; finer is dropped */
                scale /= 10;
            }
            if (n == 0) {
                return fail(err, errlen, s,
                            "expected digits after the decimal point");
            }
        }
    }
    if (h > 23 || mi > 59 || se > 60) {
        return fail(err, errlen, s, "hour 00-23, minute 00-59, second "
                    "00-60");
    }
    if (*p == 'Z' || *p == 'z') {
        has_off = 1;
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;

        if (digits(p + 1, 2, &oh)) {
            return fail(err, errlen, s, "offset must be ±HH:MM");
        }
        p += 3;
        /* ±HH, ±HHMM or ±HH:MM; "+08:" is a cut "+08:30", not "+08" */
        if (*p == ':' && digits(p + 1, 2, &om) != 0) {
            return fail(err, errlen, s, "offset must be ±HH:MM");
        }
        if (*p == ':') {
            p += 3;
        } else if (*p != '\0' && digits(p, 2, &om) == 0) {
            p += 2;
        }
        if (oh > 23 || om > 59) {
            return fail(err, errlen, s, "offset must be ±HH:MM up to 23:59");
        }
        has_off = 1;
        off = sign * (oh * 3600 + om * 60);
    }
    if (*p != '\0') {
        return fail(err, errlen, s, "unexpected text after the time");
    }
    if (has_off) {
        /* a leap second 60 is counted as the next second, like timegm */
        secs = days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400
               + h * 3600 + mi * 60 + se - off;
        goto done;
    }

local:
    if (local_to_unix(y, mo, d, h, mi, se, &secs) != 0) {
        return fail(err, errlen, s, "not representable in this zone");
    }

done:
    if (!writable(secs)) {
        return fail(err, errlen, s, "outside the years 0000 to 9999 in this"
                    " zone");
    }
    *ms = secs * 1000 + frac;
    if (unit != NULL) {
        *unit = u;
    }
    return 0;
}

int64_t
ca_time_next(int64_t ms, ca_time_unit unit)
{
    time_t    t = (time_t) (ms / 1000);
    struct tm tm;

    if (unit == CA_TIME_INSTANT || localtime_r(&t, &tm) == NULL) {
        return ms;
    }
    if (unit == CA_TIME_MONTH) {
        tm.tm_mon++;
        tm.tm_mday = 1;
    } else {
        tm.tm_mday++;
    }
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    return (int64_t) mktime(&tm) * 1000;
}

/*
 * Every instant the parser accepts is written as text it reads back to the
 * same millisecond (writable(): years 0000 to 9999 as written), before
 * 1970 too (0 in America/New_York is 1969-12-31T19:00:00-05:00), in UTC
 * where the zone's offset has seconds (shown_tm()).  The seconds are the
 * floor of ms / 1000, computed without overflow down to INT64_MIN; the
 * year has at least four digits.
 */
void
ca_time_format(int64_t ms, char *out, size_t outlen)
{
    int64_t   secs = ms / 1000;
    int       msr = (int) (ms % 1000);
    struct tm tm;
    char      base[80], frac[8] = "", zone[24];
    long      off;

    if (msr < 0) {
        msr += 1000;
        secs--;
    }
    if (shown_tm(secs, &tm) != 0) {
        snprintf(out, outlen, "%lld", (long long) ms);
        return;
    }
    /* strftime's %Y writes the year 5 as "5" */
    snprintf(base, sizeof(base), "%04lld-%02d-%02dT%02d:%02d:%02d",
             (long long) tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (msr != 0) {
        snprintf(frac, sizeof(frac), ".%03d", msr);
    }
    off = tm.tm_gmtoff;
    if (off == 0) {
        snprintf(zone, sizeof(zone), "Z");
    } else {
        snprintf(zone, sizeof(zone), "%c%02d:%02d", off < 0 ? '-' : '+',
                 (int) (labs(off) / 3600 % 100), (int) (labs(off) % 3600 / 60));
    }
    snprintf(out, outlen, "%s%s%s", base, frac, zone);
}

int
ca_time_set_zone(const char *zone, char *err, size_t errlen)
{
    char  path[512], posix[64];
    int   oh, om = 0;

    if (zone[0] == '+' || zone[0] == '-') {
        /* POSIX TZ counts west: +08:00 is "<+0800>-08:00" */
        if (strlen(zone) < 3 || sscanf(zone + 1, "%2d", &oh) != 1
            || (zone[3] != '\0'
                && sscanf(zone + (zone[3] == ':' ? 4 : 3), "%2d", &om) != 1)
            || oh > 23 || om > 59)
        {
            snprintf(err, errlen, "bad --tz %s (a zone name such as "
                     "Asia/Shanghai or UTC, or an offset such as +08:00)",
                     zone);
            return -1;
        }
        snprintf(posix, sizeof(posix), "<%c%02d%02d>%c%02d:%02d", zone[0],
                 oh, om, zone[0] == '+' ? '-' : '+', oh, om);
        setenv("TZ", posix, 1);
        tzset();
        return 0;
    }
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", zone);
    if (zone[0] == '\0' || strstr(zone, "..") != NULL || zone[0] == '/'
        || access(path, R_OK) != 0)
    {
        snprintf(err, errlen, "unknown --tz %s (a zone name such as "
                 "Asia/Shanghai or UTC, see /usr/share/zoneinfo, or an "
                 "offset such as +08:00)", zone);
        return -1;
    }
    setenv("TZ", zone, 1);
    tzset();
    return 0;
}
