/* The benchmarks' clock: user CPU seconds of this process, the divisor
 * `openssl speed` uses (without -elapsed): on a busy machine wall time
 * would count other processes' turns. */
#ifndef BENCH_USER_TIME_H
#define BENCH_USER_TIME_H

#include <sys/resource.h>

static inline double
user_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6;
}

#endif
