/*
 * The libpq layer of credit-audit (see audit_pg.h): connecting the libpq
 * way without ever taking a password on the command line, statements and
 * COPY, and the archived entries read back in archive order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_pg.h"

/* ---- sbuf ---------------------------------------------------------------- */

/* Room for len more bytes and a NUL; -1 (and failed) when there is none. */
static int
sb_reserve(sbuf *b, size_t len)
{
    size_t  ncap = b->cap ? b->cap : 4096;
    char   *np;

    if (b->failed) {
        return -1;
    }
    if (b->len + len + 1 <= b->cap) {
        return 0;
    }
    while (ncap < b->len + len + 1) {
        ncap *= 2;
    }
    if ((np = realloc(b->p, ncap)) == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    return 0;
}

void
sb_put(sbuf *b, const void *p, size_t len)
{
    if (sb_reserve(b, len) != 0) {
        return;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void
sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void
sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    char    small[512];
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
    } else if ((size_t) n < sizeof(small)) {
        sb_put(b, small, (size_t) n);
    } else {
        char *big = malloc((size_t) n + 1);

        if (big == NULL) {
            b->failed = 1;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t) n + 1, fmt, ap);
        va_end(ap);
        sb_put(b, big, (size_t) n);
        free(big);
    }
}

void
sb_free(sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

void
sb_copy_text(sbuf *b, const char *s, size_t len)
{
    size_t from = 0;

    for (size_t i = 0; i < len; i++) {
        const char *esc = NULL;

        switch (s[i]) {
        case '\\': esc = "\\\\"; break;
        case '\t': esc = "\\t"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        default: continue;
        }
        sb_put(b, s + from, i - from);
        sb_put(b, esc, 2);
        from = i + 1;
    }
    sb_put(b, s + from, len - from);
}

void
sb_copy_null(sbuf *b)
{
    sb_put(b, "\\N", 2);
}

void
sb_copy_bytea(sbuf *b, const unsigned char *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char             *o;

    sb_put(b, "\\\\x", 3);        /* COPY's backslash, then bytea's \x */
    /* room first, then written in place: the hex is the bulk of a row */
    if (sb_reserve(b, 2 * len) != 0) {
        return;
    }
    o = b->p + b->len;
    for (size_t i = 0; i < len; i++) {
        *o++ = hex[p[i] >> 4];
        *o++ = hex[p[i] & 15];
    }
    b->len += 2 * len;
    b->p[b->len] = '\0';
}

void
sb_copy_u64(sbuf *b, uint64_t v)
{
    sb_printf(b, "%llu", (unsigned long long) v);
}

void
sb_copy_time(sbuf *b, int64_t ms)
{
    time_t      t = (time_t) (ms / 1000);
    struct tm   tm;

    gmtime_r(&t, &tm);
    sb_printf(b, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
              (int) (ms % 1000));
}

/* ---- stream ids ------------------------------------------------------------- */

int
sid_parse(const char *s, uint64_t *ms, uint64_t *seq)
{
    char *end;

    *ms = strtoull(s, &end, 10);
    if (end == s || *end != '-') {
        return -1;
    }
    s = end + 1;
    *seq = strtoull(s, &end, 10);
    return end == s || *end != '\0' ? -1 : 0;
}

int
sid_cmp(const char *a, const char *b)
{
    uint64_t am = 0, as = 0, bm = 0, bs = 0;

    sid_parse(a, &am, &as);
    sid_parse(b, &bm, &bs);
    if (am != bm) {
        return am < bm ? -1 : 1;
    }
    return as < bs ? -1 : as > bs;
}

void
sid_next(const char *s, char *out, size_t len)
{
    uint64_t ms = 0, seq = 0;

    sid_parse(s, &ms, &seq);
    if (seq == UINT64_MAX) {
        ms++;
        seq = 0;
    } else {
        seq++;
    }
    snprintf(out, len, "%llu-%llu", (unsigned long long) ms,
             (unsigned long long) seq);
}


/* ---- what the archive makes of an entry ------------------------------------ */

int64_t
archive_entry_ms(const entry *e)
{
    size_t      len;
    const char *ts = get(e, CA_F_TS, &len);
    uint64_t    ms, seq;

    if (ts != NULL && ca_audit_column_fits(CA_F_TS, ts, len)) {
        int64_t v = strtoll(ts, NULL, 10);

        if (v >= 0 && v < 253402300800000LL) {
            return v;
        }
    }
    return sid_parse(e->id, &ms, &seq) == 0 ? (int64_t) ms : 0;
}

void
archive_columns(const entry *e, const char **val, size_t *len)
{
    int at = 0;

    memset(val, 0, CA_F_COUNT * sizeof(*val));
    for (size_t i = 0; i < e->n; i++) {
        int f = -1;

        /* fields come in schema order: look just after the last one */
        for (int k = 0; k < CA_F_COUNT && f < 0; k++) {
            int         j = (at + k) % CA_F_COUNT;
            const char *name = ca_audit_schema[j].name;

            if (strlen(name) == e->nlen[i] && name[0] == e->name[i][0]
                && memcmp(name, e->name[i], e->nlen[i]) == 0)
            {
                f = j;
            }
        }
        if (f >= 0 && val[f] == NULL) {
            val[f] = e->value[i];
            len[f] = e->vlen[i];
            at = f + 1;
        }
    }
    for (int f = 0; f < CA_F_COUNT; f++) {
        if (val[f] != NULL
            && !ca_audit_column_fits((ca_audit_fid) f, val[f], len[f]))
        {
            val[f] = NULL;
        }
    }
}

/* ---- libpq ---------------------------------------------------------------- */

int
pg_conninfo_check(const char *conninfo)
{
    char             *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err), *o;
    int               rc = 0;

    if (opts == NULL) {
        fprintf(stderr, "%s: --archive: %s", tool_name,
                err ? err : "out of memory\n");
        PQfreemem(err);
        return -1;
    }
    for (o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL) {
            fprintf(stderr, "%s: --archive holds a password: every user of "
                    "the machine can read a command line.  Put it in a "
                    "password file (PGPASSFILE, default ~/.pgpass), or "
                    "PGPASSWORD, or a service file (PGSERVICE)\n",
                    tool_name);
            rc = -1;
        }
    }
    PQconninfoFree(opts);
    return rc;
}

PGconn *
pg_open(const char *conninfo, const char *application)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {conninfo, application, NULL};
    PGconn     *c;

    if (pg_conninfo_check(conninfo) != 0) {
        return NULL;
    }
    c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s: archive: %s\n", tool_name,
                c ? pg_error(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    /* times as UTC, whatever the role's or server's default; notices
     * ("already exists, skipping") are not the user's business */
    if (pg_exec(c, "SET TIME ZONE 'UTC'; SET client_min_messages = "
                "warning") != 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

const char *
pg_error(PGconn *c)
{
    static char line[512];
    const char *m = PQerrorMessage(c);
    size_t      n = strcspn(m, "\n");

    if (n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }
    memcpy(line, m, n);
    line[n] = '\0';
    return line[0] ? line : "connection lost";
}

static char last_sqlstate[6];

const char *
pg_sqlstate(void)
{
    return last_sqlstate;
}

int
pg_check(PGconn *c, PGresult *r, const char *sql)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    const char    *m = r ? PQresultErrorMessage(r) : "";
    const char    *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return 0;
    }
    snprintf(last_sqlstate, sizeof(last_sqlstate), "%s",
             state ? state : "");
    if (m[0] == '\0') {
        m = pg_error(c);
    }
    fprintf(stderr, "%s: archive: %.*s (%.60s%s)\n", tool_name,
            (int) strcspn(m, "\n"), m, sql, strlen(sql) > 60 ? "..." : "");
    return -1;
}

int
pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int       rc = pg_check(c, r, sql);

    PQclear(r);
    return rc;
}

PGresult *
pg_query(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

    if (pg_check(c, r, sql) != 0) {
        PQclear(r);
        return NULL;
    }
    return r;
}

int
pg_copy_begin(PGconn *c, const char *copy_sql)
{
    PGresult *r = PQexec(c, copy_sql);

    if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN) {
        pg_check(c, r, copy_sql);
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

int
pg_copy_put(PGconn *c, sbuf *buf)
{
    int rc = buf->failed ? -1 : 0;

    for (size_t off = 0; off < buf->len && rc == 0; off += 1 << 20) {
        size_t n = buf->len - off < (1u << 20) ? buf->len - off
                                               : (1u << 20);

        rc = PQputCopyData(c, buf->p + off, (int) n) == 1 ? 0 : -1;
    }
    buf->len = 0;
    return rc;
}

int
pg_copy_send_end(PGconn *c, int ok)
{
    /* an error message makes the server fail the COPY (and the
     * transaction): nothing half-sent is ever taken */
    return PQputCopyEnd(c, ok ? NULL : "the shipper failed") == 1 && ok
           ? 0 : -1;
}

int
pg_copy_result(PGconn *c, const char *copy_sql)
{
    PGresult *r;
    int       rc = 0;

    while ((r = PQgetResult(c)) != NULL) {
        if (pg_check(c, r, copy_sql) != 0) {
            rc = -1;
        }
        PQclear(r);
    }
    return rc;
}

int
pg_copy_in(PGconn *c, const char *copy_sql, const sbuf *buf)
{
    sbuf all = *buf;            /* put empties its length, not the rows */
    int  rc;

    if (pg_copy_begin(c, copy_sql) != 0) {
        return -1;
    }
    rc = pg_copy_put(c, &all);
    rc |= pg_copy_send_end(c, rc == 0);
    rc |= pg_copy_result(c, copy_sql);
    return rc ? -1 : 0;
}
