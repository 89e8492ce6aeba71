/* credit-audit report: the period's work report (工作通报). */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_tool.h"

static const char usage_report[] =
    "usage: credit-audit report [--since T] [--until T] [common options]\n"
    "\n"
    "Counts the period's decision entries per bank, category, purpose,\n"
    "decision and reason, and the distinct enterprises served (distinct\n"
    "`enterprise` among allow decisions).  A text table, or with --json\n"
    "one JSON object.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS;

/* ---- report ---------------------------------------------------------- */

static const char *const dims[] = {
    "bank", "category", "purpose", "decision", "reason"
};
#define NDIMS (sizeof(dims) / sizeof(dims[0]))

typedef struct {
    period  per;
    size_t  decisions, outcomes;
    strmap  by[NDIMS];
    strmap  served;         /* distinct enterprises among allows */
} report_ctx;

static int
cb_report(const entry *e, void *data)
{
    report_ctx *rp = data;
    size_t      len;
    const char *v;

    if (!in_period(&rp->per, e)) {
        return 0;
    }
    if (has_value(e, "event", "outcome")) {
        rp->outcomes++;
        return 0;
    }
    if (!has_value(e, "event", "decision")) {
        return 0;
    }
    rp->decisions++;
    for (size_t d = 0; d < NDIMS; d++) {
        v = get(e, dims[d], &len);
        map_find(&rp->by[d], v ? v : "", len, 1)->count++;
    }
    v = get(e, "enterprise", &len);
    if (has_value(e, "decision", "allow") && v != NULL && len > 0) {
        map_find(&rp->served, v, len, 1)->count++;
    }
    return 0;
}

static void
report_period(const period *p, char *since, char *until, size_t len)
{
    snprintf(since, len, "beginning");
    snprintf(until, len, "end");
    if (p->set && p->since != INT64_MIN) {
        ca_time_format(p->since, since, len);
    }
    if (p->set && p->until != INT64_MAX) {
        ca_time_format(p->until, until, len);
    }
}

static void
report_json(const common_opts *co, report_ctx *rp)
{
    char since[40], until[40];

    fputs("{\"stream\":", stdout);
    json_str(stdout, co->stream, strlen(co->stream));
    fputs(",\"since\":", stdout);
    if (rp->per.set && rp->per.since != INT64_MIN) {
        ca_time_format(rp->per.since, since, sizeof(since));
        json_str(stdout, since, strlen(since));
    } else {
        fputs("null", stdout);
    }
    fputs(",\"until\":", stdout);
    if (rp->per.set && rp->per.until != INT64_MAX) {
        ca_time_format(rp->per.until, until, sizeof(until));
        json_str(stdout, until, strlen(until));
    } else {
        fputs("null", stdout);
    }
    printf(",\"decisions\":%zu,\"outcomes\":%zu,\"enterprises_served\":%zu",
           rp->decisions, rp->outcomes, rp->served.n);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        printf(",\"%s\":{", dims[d]);
        for (size_t i = 0; i < rp->by[d].n; i++) {
            if (i) {
                fputc(',', stdout);
            }
            json_str(stdout, s[i]->key, s[i]->len);
            printf(":%zu", s[i]->count);
        }
        fputc('}', stdout);
        free(s);
    }
    fputs("}\n", stdout);
}

static void
report_text(const common_opts *co, report_ctx *rp)
{
    char since[40], until[40];

    report_period(&rp->per, since, until, sizeof(since));
    printf("audit report for %s, %s to %s (until exclusive)\n", co->stream,
           since, until);
    printf("  decisions                    %zu\n", rp->decisions);
    printf("  outcomes                     %zu\n", rp->outcomes);
    printf("  distinct enterprises served  %zu\n", rp->served.n);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        printf("\n  %-28s %10s\n", dims[d], "decisions");
        for (size_t i = 0; i < rp->by[d].n; i++) {
            int w;

            fputs("  ", stdout);
            if (s[i]->len == 0) {
                fputs("(none)", stdout);
                w = 6;
            } else {
                text_value(stdout, s[i]->key, s[i]->len);
                w = (int) s[i]->len;
            }
            printf("%*s %10zu\n", w < 28 ? 28 - w : 0, "", s[i]->count);
        }
        free(s);
    }
}

int
cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    report_ctx    rp;
    int           ch, rv;
    size_t        count;
    redisContext *rc;

    common_init(&co);
    memset(&rp, 0, sizeof(rp));
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (common_opt(&co, ch)) {
        case 1:
            continue;
        case -1:
            return EXIT_USAGE;
        }
        switch (ch) {
        case OPT_SINCE:
        case OPT_UNTIL:
            if (period_opt(&rp.per, ch, optarg) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage_report, stdout);
            return 0;
        default:
            return usage_error(usage_report, NULL, NULL);
        }
    }
    if (optind != argc) {
        return usage_error(usage_report, "unexpected argument %s",
                           argv[optind]);
    }
    if ((rc = tool_redis_open(&co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    rv = scan_stream(rc, co.stream, cb_report, &rp, &count);
    redisFree(rc);
    if (rv == 0) {
        if (co.json) {
            report_json(&co, &rp);
        } else {
            report_text(&co, &rp);
        }
    }
    for (size_t d = 0; d < NDIMS; d++) {
        map_free(&rp.by[d]);
    }
    map_free(&rp.served);
    return rv;
}

