/*
 * Requests as a person reads them: one per decision, its outcome joined
 * by rid (audit_join.c).  `export --view requests` writes them for a
 * spreadsheet, with the names of banks, enterprises, categories,
 * purposes and reasons beside the codes and times as ISO text;
 * `query` shows one line each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_requests.h"
#include "core/core.h"

int
expects_outcome(const entry *e)
{
    return has_value(e, CA_F_DECISION, "allow")
           || has_value(e, CA_F_DECISION, "report");
}

/* ---- what a request says --------------------------------------------- */

typedef struct {
    const entry *d, *o;         /* decision, outcome (or NULL) */
    const names *nm;
} request;

/* The refusal the request met: the decision's, or for an allowed request
 * the one its answer met (record_not_found, upstream_invalid, ...). */
static const char *
req_reason(const request *r, size_t *len)
{
    const char *v = get(r->d, CA_F_REASON, len);

    if ((v == NULL || *len == 0) && r->o != NULL) {
        v = get(r->o, CA_F_REASON, len);
    }
    if (v == NULL) {
        *len = 0;
        return "";
    }
    return v;
}

/* The HTTP status the bank got: the outcome's; for a refusal (no outcome
 * is written), the status its reason answers (contract §4); "" while an
 * allowed request has no outcome. */
static const char *
req_status(const request *r, size_t *len, char *buf, size_t size)
{
    const char *v;
    size_t      rlen;
    int         st;

    if (r->o != NULL && (v = get(r->o, CA_F_STATUS, len)) != NULL) {
        return v;
    }
    *len = 0;
    if (has_value(r->d, CA_F_DECISION, "deny")) {
        v = req_reason(r, &rlen);
        if (rlen < 64) {
            char k[64];

            memcpy(k, v, rlen);
            k[rlen] = '\0';
            st = ca_reason_from_name(k);
            if (st > 0) {
                *len = (size_t) snprintf(buf, size, "%d",
                                         ca_reason_status((ca_reason) st));
                return buf;
            }
        }
    }
    return "";
}

/* ---- the requests view's columns ------------------------------------- */

enum {
    C_TIME, C_BANK, C_BANK_NAME, C_ENTERPRISE, C_ENTERPRISE_NAME,
    C_CATEGORY, C_CATEGORY_NAME, C_PURPOSE, C_PURPOSE_NAME, C_MODE,
    C_DETAIL, C_DECISION, C_REASON, C_REASON_NAME, C_CAUSE, C_STATUS,
    C_DISCLOSED, C_MASKED, C_WITHHELD, C_CHECKS, C_MATCHED, C_UNMATCHED,
    C_ABSENT, C_BYTES, C_UPSTREAM_MS, C_CONSENT, C_RID, C_GW, C_POLICY,
    C_ID, NCOLS
};

static const char *const col_name[NCOLS] = {
    "time", "bank", "bank_name", "enterprise", "enterprise_name",
    "category", "category_name", "purpose", "purpose_name", "mode",
    "detail", "decision", "reason", "reason_name", "cause", "status",
    "disclosed", "masked", "withheld", "checks", "matched", "unmatched",
    "absent", "bytes", "upstream_ms", "consent", "rid", "gw", "policy", "id"
};

/* where a column's value is stored: the decision's field, the outcome's */
static const struct {
    int          col;
    ca_audit_fid fid;
    int          outcome;
} stored[] = {
    {C_BANK, CA_F_BANK, 0}, {C_ENTERPRISE, CA_F_ENTERPRISE, 0},
    {C_CATEGORY, CA_F_CATEGORY, 0}, {C_PURPOSE, CA_F_PURPOSE, 0},
    {C_MODE, CA_F_MODE, 0}, {C_DETAIL, CA_F_DETAIL, 0},
    {C_DECISION, CA_F_DECISION, 0}, {C_CHECKS, CA_F_CHECKS, 0},
    {C_CONSENT, CA_F_CONSENT, 0}, {C_RID, CA_F_RID, 0}, {C_GW, CA_F_GW, 0},
    {C_POLICY, CA_F_POLICY, 0}, {C_CAUSE, CA_F_CAUSE, 1},
    {C_DISCLOSED, CA_F_DISCLOSED, 1}, {C_MASKED, CA_F_MASKED, 1},
    {C_WITHHELD, CA_F_WITHHELD, 1}, {C_MATCHED, CA_F_MATCHED, 1},
    {C_UNMATCHED, CA_F_UNMATCHED, 1}, {C_ABSENT, CA_F_ABSENT, 1},
    {C_BYTES, CA_F_BYTES, 1}, {C_UPSTREAM_MS, CA_F_UPSTREAM_MS, 1},
};

static const char *
named(const char *s, size_t *len)
{
    *len = s ? strlen(s) : 0;
    return s ? s : "";
}

/* Column c of r: len bytes (buf holds what is computed). */
static const char *
col_value(const request *r, int c, size_t *len, char *buf, size_t size)
{
    const char *v;
    size_t      vlen;

    for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++) {
        if (stored[i].col == c) {
            const entry *e = stored[i].outcome ? r->o : r->d;

            v = e ? get(e, stored[i].fid, len) : NULL;
            return v ? v : named(NULL, len);
        }
    }
    switch (c) {
    case C_TIME:
        if (entry_time(r->d, buf, size) != 0) {
            return named(NULL, len);
        }
        return named(buf, len);
    case C_BANK_NAME:
        v = get(r->d, CA_F_BANK, &vlen);
        return named(bank_name(r->nm, v, vlen), len);
    case C_ENTERPRISE_NAME:
        v = get(r->d, CA_F_ENTERPRISE, &vlen);
        return named(enterprise_name(r->nm, v, vlen), len);
    case C_CATEGORY_NAME:
        v = get(r->d, CA_F_CATEGORY, &vlen);
        return named(category_name(r->nm, v, vlen), len);
    case C_PURPOSE_NAME:
        v = get(r->d, CA_F_PURPOSE, &vlen);
        return named(purpose_name(r->nm, v, vlen), len);
    case C_REASON:
        return req_reason(r, len);
    case C_REASON_NAME:
        v = req_reason(r, &vlen);
        return named(reason_name(v, vlen), len);
    case C_STATUS:
        return req_status(r, len, buf, size);
    case C_ID:
        return named(r->d->id, len);
    }
    return named(NULL, len);
}

/* ---- export --view requests ------------------------------------------ */

typedef struct {
    const names *nm;
    const period *per;
    csv_out     *csv;
    FILE        *out;
    int          is_csv;
    size_t       written;
    request_join join;
} export_rq;

static void
emit_row(const entry *d, const entry *o, void *data)
{
    export_rq  *x = data;
    request     r = {d, o, x->nm};
    char        buf[64];
    size_t      len;
    const char *v;

    x->written++;
    if (!x->is_csv) {
        fputc('{', x->out);
    }
    for (int c = 0; c < NCOLS; c++) {
        v = col_value(&r, c, &len, buf, sizeof(buf));
        if (x->is_csv) {
            csv_cell(x->csv, v, len);
            continue;
        }
        if (c > 0) {
            fputc(',', x->out);
        }
        json_str(x->out, col_name[c], strlen(col_name[c]));
        fputc(':', x->out);
        json_str(x->out, v, len);
    }
    if (x->is_csv) {
        csv_row(x->csv);
    } else {
        fputs("}\n", x->out);
    }
}

static int
cb_requests(const entry *e, void *data)
{
    export_rq *x = data;

    if (is_event(e, CA_EV_DECISION)) {
        if (in_period(x->per, e)) {
            join_add(&x->join, e, expects_outcome(e), 0);
        }
    } else if (is_event(e, CA_EV_OUTCOME)) {
        join_outcome(&x->join, e, 0);
    }
    return 0;
}

int
export_requests(trail *t, redisContext *rc, const char *stream,
                const period *per,
                const names *nm, csv_out *csv, FILE *out, int is_csv,
                size_t *written)
{
    export_rq x = {nm, per, csv, out, is_csv, 0, {0}};
    size_t    count;
    int       rv;

    join_init(&x.join, emit_row, &x);
    if (is_csv) {
        for (int c = 0; c < NCOLS; c++) {
            csv_text(csv, col_name[c]);
        }
        csv_row(csv);
    }
    rv = trail_scan(t, rc, stream, cb_requests, &x, &count);
    join_finish(&x.join);
    *written = x.written;
    return rv;
}

/* ---- query's short view ---------------------------------------------- */

/* A value padded to width columns (a code point counts one). */
static void
cell(FILE *fp, const char *v, size_t len, int width)
{
    char   *buf = NULL;
    size_t  blen = 0, cols = 0;
    FILE   *m = open_memstream(&buf, &blen);

    if (m == NULL) {
        return;
    }
    if (len == 0) {
        fputc('-', m);
    } else {
        text_value(m, v, len);
    }
    fclose(m);
    fwrite(buf, 1, blen, fp);
    for (size_t i = 0; i < blen; i++) {
        cols += ((unsigned char) buf[i] & 0xc0) != 0x80;
    }
    /* width 0: the line's last cell, no padding */
    for (; width > 0 && (int) cols <= width; cols++) {
        fputc(' ', fp);
    }
    free(buf);
}

static void
field_cell(FILE *fp, const entry *e, ca_audit_fid id, int width)
{
    size_t      len;
    const char *v = get(e, id, &len);

    cell(fp, v, v ? len : 0, width);
}

static const struct {
    const char  *head;
    int          width;
    ca_audit_fid fid;
} short_cols[] = {
    {"time", 29, CA_F_TS}, {"bank", 14, CA_F_BANK},
    {"enterprise", 18, CA_F_ENTERPRISE}, {"category", 12, CA_F_CATEGORY},
    {"purpose", 20, CA_F_PURPOSE}, {"mode", 6, CA_F_MODE},
    {"decision/reason", 32, CA_F_DECISION}, {"status", 0, CA_F_STATUS},
};

void
short_line(FILE *fp, const entry *e, const entry *out, int *header)
{
    request     r = {e, out, NULL};
    char        iso[48], dec[160], st[16];
    size_t      len, rlen;
    const char *v, *reason;

    if (entry_time(e, iso, sizeof(iso)) != 0) {
        snprintf(iso, sizeof(iso), "-");
    }
    if (is_event(e, CA_EV_DECISION)) {
        size_t n = sizeof(short_cols) / sizeof(short_cols[0]);

        if (!*header) {
            for (size_t i = 0; i < n; i++) {
                cell(fp, short_cols[i].head, strlen(short_cols[i].head),
                     short_cols[i].width);
            }
            fputc('\n', fp);
            *header = 1;
        }
        cell(fp, iso, strlen(iso), short_cols[0].width);
        for (size_t i = 1; i < n - 2; i++) {
            field_cell(fp, e, short_cols[i].fid, short_cols[i].width);
        }
        v = get(e, CA_F_DECISION, &len);
        reason = req_reason(&r, &rlen);
        snprintf(dec, sizeof(dec), "%.*s%s%.*s", (int) (v ? len : 0),
                 v ? v : "", rlen ? "/" : "", (int) rlen, reason);
        cell(fp, dec, strlen(dec), short_cols[n - 2].width);
        v = req_status(&r, &len, st, sizeof(st));
        cell(fp, v, len, 0);
        fputc('\n', fp);
        return;
    }
    /* a withdrawal, a discontinuity: its own fields, without the chain's
     * plumbing (verify reads that) */
    fputs(iso, fp);
    fputs("  ", fp);
    v = get(e, CA_F_EVENT, &len);
    text_value(fp, v ? v : "?", v ? len : 1);
    for (size_t i = 0; i < e->n; i++) {
        int id = ca_audit_field_find(e->name[i], e->nlen[i]);

        if (id == CA_F_V || id == CA_F_EVENT || id == CA_F_TS
            || id == CA_F_CHAIN || id == CA_F_SEQ || id == CA_F_PREV
            || id == CA_F_HASH)
        {
            continue;
        }
        fputc(' ', fp);
        text_value(fp, e->name[i], e->nlen[i]);
        fputc('=', fp);
        text_value(fp, e->value[i], e->vlen[i]);
    }
    fputc('\n', fp);
}
