/*
 * credit-audit ship --metrics FILE: the shipper's progress and lag in the
 * Prometheus text format, for node_exporter's textfile collector
 * (docs/archive.md, "Metrics": why a file and not a listener).
 *
 * Written to FILE.tmp and renamed over FILE, so that the collector never
 * reads half a file; FILE should end in .prom.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_ship.h"

static void
metric(FILE *f, const char *name, const char *type, const char *help,
       const char *labels, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{%s} %.17g\n", name, help,
            name, type, name, labels, v);
}

int
ship_metrics_write(const ship *s)
{
    char        tmp[4096], labels[1024], kind[1200];
    const char *p;
    FILE       *f;
    size_t      n = 0;

    if (s->metrics == NULL) {
        return 0;
    }
    /* the stream name as a label value: \ and " escaped, no newline */
    n = (size_t) snprintf(labels, sizeof(labels), "stream=\"");
    for (p = s->co.stream; *p && n + 3 < sizeof(labels); p++) {
        if (*p == '\\' || *p == '"') {
            labels[n++] = '\\';
        }
        labels[n++] = *p == '\n' ? ' ' : *p;
    }
    snprintf(labels + n, sizeof(labels) - n, "\"");

    snprintf(tmp, sizeof(tmp), "%s.tmp", s->metrics);
    if ((f = fopen(tmp, "w")) == NULL) {
        ship_log("--metrics %s: %s", tmp, strerror(errno));
        return -1;
    }
    metric(f, "credit_audit_ship_active", "gauge", "1 while this shipper "
           "holds the stream (the others stand by)", labels, s->active);
    metric(f, "credit_audit_ship_entries_total", "counter", "Entries this "
           "process archived", labels, (double) s->st.entries);
    metric(f, "credit_audit_ship_batches_total", "counter", "Batches "
           "committed (one transaction each)", labels,
           (double) s->st.batches);
    metric(f, "credit_audit_ship_copies_total", "counter", "Entries archived "
           "beside another holding the same chain and seq", labels,
           (double) s->st.copies);
    metric(f, "credit_audit_ship_duplicates_total", "counter", "Of those, "
           "identical copies (the same entry written twice: no break)",
           labels, (double) s->st.duplicates);
    metric(f, "credit_audit_ship_redelivered_total", "counter", "Entries "
           "delivered again that were already archived (acknowledged only)",
           labels, (double) s->st.redelivered);
    metric(f, "credit_audit_ship_trimmed_total", "counter", "Entries removed "
           "from the stream after archiving", labels,
           (double) s->st.trimmed);
    fprintf(f, "# HELP credit_audit_ship_findings_total Breaks found while "
            "shipping, by kind\n# TYPE credit_audit_ship_findings_total "
            "counter\n");
    for (int k = 0; k < CA_AV_KINDS; k++) {
        snprintf(kind, sizeof(kind), "%s,kind=\"%s\"", labels,
                 ca_av_kind_name((ca_av_kind) k));
        fprintf(f, "credit_audit_ship_findings_total{%s} %llu\n", kind,
                (unsigned long long) s->st.findings[k]);
    }
    metric(f, "credit_audit_ship_findings_open", "gauge", "Findings not yet "
           "acknowledged (their chains stay in Redis)", labels,
           (double) s->st.open_findings);
    fprintf(f, "# HELP credit_audit_ship_errors_total Failed round trips, "
            "by server\n# TYPE credit_audit_ship_errors_total counter\n"
            "credit_audit_ship_errors_total{%s,server=\"postgresql\"} %llu\n"
            "credit_audit_ship_errors_total{%s,server=\"redis\"} %llu\n",
            labels, (unsigned long long) s->st.pg_errors, labels,
            (unsigned long long) s->st.redis_errors);
    metric(f, "credit_audit_ship_lag_seconds", "gauge", "Age of the oldest "
           "entry not yet archived (0: none); -1 unknown", labels,
           s->st.lag_ms < 0 ? -1.0 : (double) s->st.lag_ms / 1000.0);
    metric(f, "credit_audit_ship_stream_entries", "gauge", "Entries in the "
           "Redis stream", labels, (double) s->st.stream_len);
    metric(f, "credit_audit_ship_archive_entries", "gauge", "Entries in the "
           "archive (its next archive order), as last seen", labels,
           (double) s->st.archived_total);
    metric(f, "credit_audit_ship_last_commit_timestamp_seconds", "gauge",
           "When this process last committed a batch (0: never)", labels,
           s->st.last_commit);
    metric(f, "credit_audit_ship_checkpoints_total", "counter", "Checkpoints "
           "of the Merkle log this process signed", labels,
           (double) mklog_checkpoints(s->log));
    if (fclose(f) != 0 || rename(tmp, s->metrics) != 0) {
        ship_log("--metrics %s: %s", s->metrics, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}
