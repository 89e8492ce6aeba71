/*
 * What the shipper says (audit_ship.h): its log lines on stderr, and with
 * CREDIT_AUDIT_SHIP_STATS where its time went, phase by phase.  Every
 * other file of ship calls down to here; nothing here calls them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "audit_ship.h"

void
ship_log(const char *fmt, ...)
{
    va_list ap;

    fputs("credit-audit ship: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- CREDIT_AUDIT_SHIP_STATS: where the time goes -------------------------- */

static double
mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

void
ship_clock(ship *s, int p)
{
    double now;

    if (!s->stats) {
        return;
    }
    now = mono();
    if (p >= 0) {
        s->st.phase[p] += now - s->tick;
    }
    s->tick = now;
}

void
ship_stats_print(const ship *s)
{
    static const char *const names[SP_COUNT] = {
        "read (XREADGROUP)", "parse", "lock (BEGIN, rows)", "verify",
        "encode (COPY rows)", "COPY entries", "state (chains, log)",
        "COMMIT", "XACK", "trim, lag, metrics"
    };
    double total = 0;

    if (!s->stats) {
        return;
    }
    for (int p = 0; p < SP_COUNT; p++) {
        total += s->st.phase[p];
    }
    fprintf(stderr, "credit-audit ship: %llu entries, %llu batches, "
            "%.3f s in the phases:\n", (unsigned long long) s->st.entries,
            (unsigned long long) s->st.batches, total);
    for (int p = 0; p < SP_COUNT; p++) {
        fprintf(stderr, "  %-22s %8.3f s %5.1f %% %7.2f us/entry\n", names[p],
                s->st.phase[p], total > 0 ? 100 * s->st.phase[p] / total : 0,
                s->st.entries ? 1e6 * s->st.phase[p] / s->st.entries : 0);
    }
}
