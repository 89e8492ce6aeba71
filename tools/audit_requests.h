/*
 * Requests as a person reads them (audit_requests.c): a decision with its
 * outcome (audit_join.h), as a row of `export --view requests` (CSV or
 * JSON Lines, names beside the codes) or a line of `query`'s short view.
 */
#ifndef CA_TOOLS_AUDIT_REQUESTS_H
#define CA_TOOLS_AUDIT_REQUESTS_H

#include <stdio.h>

#include "audit_archread.h"
#include "audit_join.h"
#include "audit_names.h"
#include "audit_tool.h"

/* 1 if a decision entry expects an outcome (allow, report). */
int expects_outcome(const entry *e);

/* export --view requests: the rows of the decisions in per, to out.
 * 0, or the scan's error. */
int export_requests(trail *t, redisContext *rc, const char *stream,
                    const period *per,
                    const names *nm, csv_out *csv, FILE *out, int is_csv,
                    size_t *written);

/* query's short view: one line for a request (out: its outcome or NULL),
 * a revocation, a discontinuity; the header before the first. */
void short_line(FILE *fp, const entry *e, const entry *out, int *header);

#endif
