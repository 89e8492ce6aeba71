/*
 * credit-audit report's text form (the default): the period's figures
 * for a terminal, each code with its name for people beside it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_report.h"

/* The name for people of a value of report_dims[d], or NULL. */
static const char *
dim_name(const names *nm, size_t d, const char *v, size_t len)
{
    switch (report_dims[d]) {
    case CA_F_BANK:     return bank_name(nm, v, len);
    case CA_F_CATEGORY: return category_name(nm, v, len);
    case CA_F_PURPOSE:  return purpose_name(nm, v, len);
    case CA_F_REASON:   return reason_name(v, len);
    default:            return word_zh(v, len);
    }
}

void
report_text(FILE *out, const common_opts *co, report_ctx *rp,
            const names *nm, const report_meta *meta)
{
    char since[48] = "beginning", until[48] = "end", when[48];

    if (rp->per.set && rp->per.since != INT64_MIN) {
        ca_time_format(rp->per.since, since, sizeof(since));
    }
    if (rp->per.set && rp->per.until != INT64_MAX) {
        ca_time_format(rp->per.until, until, sizeof(until));
    }
    fprintf(out, "audit report for %s, %s to %s (until exclusive)\n",
            co->stream, since, until);
    fputs("  issued by                    ", out);
    if (meta->issuer != NULL) {
        print_name(out, meta->issuer);
    } else {
        fputs("(not given: --issuer NAME)", out);
    }
    ca_time_format(meta->generated, when, sizeof(when));
    fprintf(out, "\n  generated                    %s\n", when);
    if (rp->first_ts >= 0) {
        ca_time_format(rp->first_ts, since, sizeof(since));
        ca_time_format(rp->last_ts, until, sizeof(until));
        fprintf(out, "  first decision               %s\n"
                "  last decision                %s\n", since, until);
    }
    fprintf(out, "  decisions                    %zu\n", rp->decisions);
    fprintf(out, "  outcomes                     %zu\n", rp->outcomes);
    fprintf(out, "  distinct enterprises served  %zu\n", rp->served.n);
    fprintf(out, "  checks verified              %zu (matched %zu, not "
            "matched %zu, absent %zu)\n", rp->checks, rp->matched,
            rp->unmatched, rp->absent);
    fprintf(out, "  consents withdrawn           %zu\n", rp->revocations);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        fprintf(out, "\n  %-28s %10s\n",
                ca_audit_schema[report_dims[d]].name, "decisions");
        for (size_t i = 0; i < rp->by[d].n; i++) {
            const char *name = dim_name(nm, d, s[i]->key, s[i]->len);
            int         w;

            fputs("  ", out);
            if (s[i]->len == 0) {
                fputs("(none)", out);
                w = 6;
            } else {
                text_value(out, s[i]->key, s[i]->len);
                w = (int) s[i]->len;
            }
            fprintf(out, "%*s %10zu", w < 28 ? 28 - w : 0, "", s[i]->count);
            if (name != NULL) {
                fputs("  ", out);
                print_name(out, name);
            }
            fputc('\n', out);
        }
        free(s);
    }
}

