/*
 * ISO 8601 times for the command-line tools (contract §9): what a regulator
 * types and reads.  The audit trail stores Unix milliseconds (`ts`); the
 * tools read and show them in a zone, by default the machine's.
 *
 * The zone is the process's (TZ, tzset()): a time written without an
 * offset is taken in it, and ca_time_format() writes in it.
 */
#ifndef CA_ISOTIME_H
#define CA_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

/* How much of a date-time a string gave: "2026-11" names a month. */
typedef enum {
    CA_TIME_INSTANT = 0,    /* down to the minute or finer, or Unix s */
    CA_TIME_DAY,            /* 2026-11-01 */
    CA_TIME_MONTH           /* 2026-11 */
} ca_time_unit;

/*
 * Accepts
 *   Unix seconds                         1793462400
 *   YYYY-MM                              2026-11
 *   YYYY-MM-DD                           2026-11-01
 *   YYYY-MM-DD(T| )HH:MM[:SS[.fff…]][Z|±HH:MM|±HHMM|±HH]
 * and returns the start of what it names, in Unix milliseconds; *unit
 * (may be NULL) says whether that was a month, a day or an instant.  On
 * error returns -1 and writes what is wrong and what would be right.
 */
int ca_time_parse(const char *s, int64_t *ms, ca_time_unit *unit,
                  char *err, size_t errlen);

/* The start of the month, day (in the process's zone) after the one
 * that starts at ms; for an instant, ms itself. */
int64_t ca_time_next(int64_t ms, ca_time_unit unit);

/* 2026-11-01T00:00:00+08:00 (Z for a zero offset), with .mmm when the
 * milliseconds are not zero.  out: at least 32 bytes. */
void ca_time_format(int64_t ms, char *out, size_t outlen);

/* Sets the process's zone ("Asia/Shanghai", "UTC", "+08:00"); -1 with
 * err when the zone is not known (glibc would silently use UTC). */
int ca_time_set_zone(const char *zone, char *err, size_t errlen);

#endif
