/*
 * The archive read back (audit_pg.h): the verbatim copy of an entry
 * (raw), and archive_scan(), every archived entry in archive order as the
 * tools' entry, one row at a time (COPY ... TO STDOUT in the binary
 * format: memory stays that of one entry whatever the archive's size).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_pg.h"
#include "core/core.h"

/* ---- the verbatim copy ----------------------------------------------------- */

static void
put_u32(sbuf *b, size_t n)
{
    unsigned char x[4] = {
        (unsigned char) (n >> 24), (unsigned char) (n >> 16),
        (unsigned char) (n >> 8), (unsigned char) n
    };
    sb_put(b, x, 4);
}

void
raw_encode(sbuf *b, const entry *e)
{
    for (size_t i = 0; i < e->n; i++) {
        put_u32(b, e->nlen[i]);
        sb_put(b, e->name[i], e->nlen[i]);
        put_u32(b, e->vlen[i]);
        sb_put(b, e->value[i], e->vlen[i]);
    }
}

static int
get_u32(const unsigned char *p, size_t len, size_t *at, size_t *n)
{
    if (len - *at < 4) {
        return -1;
    }
    p += *at;
    *n = (size_t) p[0] << 24 | (size_t) p[1] << 16 | (size_t) p[2] << 8
         | p[3];
    *at += 4;
    return *n <= len - *at ? 0 : -1;
}

/* Room for `need` fields in e's arrays (owned by the caller). */
static int
entry_room(entry *e, size_t need, size_t *cap)
{
    size_t       ncap = *cap ? *cap : 64;
    const char **nn, **nv;
    size_t      *nl, *vl;

    if (need <= *cap) {
        return 0;
    }
    while (ncap < need) {
        ncap *= 2;
    }
    if ((nn = realloc(e->name, ncap * sizeof(*nn))) == NULL) {
        return -1;
    }
    e->name = nn;
    if ((nv = realloc(e->value, ncap * sizeof(*nv))) == NULL) {
        return -1;
    }
    e->value = nv;
    if ((nl = realloc(e->nlen, ncap * sizeof(*nl))) == NULL) {
        return -1;
    }
    e->nlen = nl;
    if ((vl = realloc(e->vlen, ncap * sizeof(*vl))) == NULL) {
        return -1;
    }
    e->vlen = vl;
    *cap = ncap;
    return 0;
}

int
raw_decode(const unsigned char *raw, size_t len, entry *e, size_t *cap)
{
    size_t at = 0, n;

    e->n = 0;
    while (at < len) {
        if (entry_room(e, e->n + 1, cap) != 0) {
            return -1;
        }
        if (get_u32(raw, len, &at, &n) != 0) {
            return -1;
        }
        e->name[e->n] = (const char *) raw + at;
        e->nlen[e->n] = n;
        at += n;
        if (get_u32(raw, len, &at, &n) != 0) {
            return -1;
        }
        e->value[e->n] = (const char *) raw + at;
        e->vlen[e->n] = n;
        at += n;
        e->n++;
    }
    return 0;
}

/* An entry of the typed columns that are not NULL, in schema order: what
 * a grouped row of the archive stands for (ARCHIVE_SCAN_WEIGHT). */
static int
entry_of_columns(const archive_row *row, entry *e, size_t *cap)
{
    if (entry_room(e, CA_F_COUNT, cap) != 0) {
        return -1;
    }
    e->n = 0;
    for (int i = 0; i < CA_F_COUNT; i++) {
        if (row->col[i] != NULL) {
            e->name[e->n] = ca_audit_schema[i].name;
            e->nlen[e->n] = strlen(ca_audit_schema[i].name);
            e->value[e->n] = row->col[i];
            e->vlen[e->n] = row->col_len[i];
            e->n++;
        }
    }
    return 0;
}

/* ---- reading the archive ----------------------------------------------------- */

static uint64_t
be64(const char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | (unsigned char) p[i];
    }
    return v;
}

/* One field of a COPY binary row: NULL when the value is. */
typedef struct {
    const char *p;
    size_t      len;
} field;

/* One row of archive_scan's query: ord, stream, stream_id, copy_of,
 * entry_time in ms, raw, then the typed columns as text. */
static int
scan_row(const field *v, const archive_filter *f, archive_cb cb, void *data,
         entry *e, size_t *cap)
{
    archive_row row;
    char        stream[256], id[64];

    memset(&row, 0, sizeof(row));
    row.ord = be64(v[0].p);
    snprintf(stream, sizeof(stream), "%.*s", (int) v[1].len, v[1].p);
    snprintf(id, sizeof(id), "%.*s", (int) v[2].len, v[2].p);
    row.stream = stream;
    row.is_copy = v[3].p != NULL;
    row.copy_of = row.is_copy ? be64(v[3].p) : 0;
    row.entry_ms = (int64_t) be64(v[4].p);
    for (int i = 0; f->columns && i < CA_F_COUNT; i++) {
        row.col[i] = v[6 + i].p;
        row.col_len[i] = v[6 + i].len;
    }
    if (f->columns == ARCHIVE_SCAN_WEIGHT && v[6 + CA_F_COUNT].p != NULL) {
        row.weight = be64(v[6 + CA_F_COUNT].p);
    }
    e->id = id;
    if (v[5].p == NULL && row.weight > 0) {
        if (entry_of_columns(&row, e, cap) != 0) {
            fprintf(stderr, "%s: out of memory\n", tool_name);
            return EXIT_USAGE;
        }
    } else if (v[5].p == NULL
               || raw_decode((const unsigned char *) v[5].p, v[5].len, e,
                             cap) != 0)
    {
        fprintf(stderr, "%s: archive: entry %llu: its verbatim copy is "
                "malformed\n", tool_name, (unsigned long long) row.ord);
        return EXIT_USAGE;
    }
    return cb(e, &row, data);
}

int
archive_scan(PGconn *c, const archive_filter *f, archive_cb cb, void *data,
             size_t *count)
{
    sbuf        sql = {0};
    const char *params[8];
    char        num[6][24];
    int         np = 0, rv;

    sb_puts(&sql, "SELECT " ARCHIVE_SCAN_COLUMNS);
    for (int i = 0; f->columns && i < CA_F_COUNT; i++) {
        sb_printf(&sql, ", %s::text", ca_audit_schema[i].column);
    }
    sb_puts(&sql, " FROM " ARCHIVE_SCHEMA ".entries WHERE true");
    if (f->stream != NULL) {
        params[np++] = f->stream;
        sb_printf(&sql, " AND stream = $%d", np);
    }
    if (f->has_since) {
        snprintf(num[np], sizeof(num[0]), "%lld", (long long) f->since_ms);
        params[np] = num[np];
        np++;
        sb_printf(&sql, " AND entry_time >= to_timestamp($%d::bigint / "
                  "1000.0)", np);
    }
    if (f->has_until) {
        snprintf(num[np], sizeof(num[0]), "%lld", (long long) f->until_ms);
        params[np] = num[np];
        np++;
        sb_printf(&sql, " AND entry_time < to_timestamp($%d::bigint / "
                  "1000.0)", np);
    }
    if (f->has_ord) {
        snprintf(num[np], sizeof(num[0]), "%llu",
                 (unsigned long long) f->ord_from);
        params[np] = num[np];
        np++;
        sb_printf(&sql, " AND ord >= $%d", np);
        snprintf(num[np], sizeof(num[0]), "%llu",
                 (unsigned long long) f->ord_to);
        params[np] = num[np];
        np++;
        sb_printf(&sql, " AND ord < $%d", np);
    }
    sb_puts(&sql, " ORDER BY ord");
    rv = archive_scan_sql(c, &sql, np, params, f->columns, cb, data, count);
    sb_free(&sql);
    return rv;
}

/*
 * The query with its parameters as literals: COPY takes no parameters.
 * Only "$n" is replaced; the queries given hold no "$" otherwise.
 */
static char *
inline_params(PGconn *c, const char *sql, int np, const char *const *params)
{
    sbuf b = {0};

    sb_puts(&b, "COPY (");
    for (const char *s = sql; *s != '\0';) {
        char *end;
        long  n;

        if (*s != '$' || s[1] < '1' || s[1] > '9') {
            sb_put(&b, s++, 1);
            continue;
        }
        n = strtol(s + 1, &end, 10);
        if (n > np) {
            b.failed = 1;
            break;
        }
        char *lit = PQescapeLiteral(c, params[n - 1], strlen(params[n - 1]));
        if (lit == NULL) {
            b.failed = 1;
            break;
        }
        sb_puts(&b, lit);
        PQfreemem(lit);
        s = end;
    }
    sb_puts(&b, ") TO STDOUT (FORMAT binary)");
    sb_put(&b, "", 1);
    if (b.failed) {
        sb_free(&b);
        return NULL;
    }
    return b.p;
}

static uint32_t
be32(const char *p)
{
    return (uint32_t) (unsigned char) p[0] << 24
           | (uint32_t) (unsigned char) p[1] << 16
           | (uint32_t) (unsigned char) p[2] << 8 | (unsigned char) p[3];
}

/* COPY's binary header: the signature, flags, the extension's length. */
#define COPY_SIGNATURE "PGCOPY\n\377\r\n"
#define COPY_HEADER    19

/*
 * The rows of one COPY message (the server sends a row a message, the
 * header in the first): fields into v.  The row's field count, 0 for
 * the trailer, -1 when malformed.
 */
static int
copy_fields(const char *p, size_t len, int want, field *v)
{
    size_t at = 2;
    int    n;

    if (len < 2) {
        return -1;
    }
    n = (int16_t) ((unsigned char) p[0] << 8 | (unsigned char) p[1]);
    if (n == -1) {
        return 0;
    }
    if (n != want) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        uint32_t l;

        if (len - at < 4) {
            return -1;
        }
        l = be32(p + at);
        at += 4;
        if (l == 0xffffffffu) {
            v[i].p = NULL;
            v[i].len = 0;
            continue;
        }
        if (l > len - at) {
            return -1;
        }
        v[i].p = p + at;
        v[i].len = l;
        at += l;
    }
    /* the fixed-width columns read as such (raw: see scan_row) */
    if (v[0].len != 8 || v[4].len != 8 || (v[3].p && v[3].len != 8)
        || v[0].p == NULL || v[1].p == NULL || v[2].p == NULL
        || v[4].p == NULL || (n > 6 + CA_F_COUNT && v[n - 1].p != NULL
                              && v[n - 1].len != 8))
    {
        return -1;
    }
    return n;
}

/*
 * The rows arrive by COPY (SELECT ...) TO STDOUT in the binary format,
 * one message a row: no result object a row as in single-row mode, raw
 * as its bytes.  Memory stays that of one row whatever the archive's
 * size.
 */
int
archive_scan_sql(PGconn *c, const sbuf *sql, int np,
                 const char *const *params, int columns, archive_cb cb,
                 void *data, size_t *count)
{
    archive_filter f = {.columns = columns};
    int            rv = 0, failed = 0, header = 1, n, len;
    int            want = 6 + (columns ? CA_F_COUNT : 0)
                          + (columns == ARCHIVE_SCAN_WEIGHT);
    field          v[6 + CA_F_COUNT + 1];
    entry          e;
    size_t         cap = 0;
    char          *copy, *buf;
    PGresult      *r;

    memset(&e, 0, sizeof(e));
    *count = 0;
    if (sql->failed || (copy = inline_params(c, sql->p, np, params)) == NULL)
    {
        fprintf(stderr, "%s: archive: out of memory\n", tool_name);
        return EXIT_USAGE;
    }
    r = PQexec(c, copy);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        pg_check(c, r, sql->p);
        PQclear(r);
        free(copy);
        return EXIT_USAGE;
    }
    PQclear(r);
    while ((len = PQgetCopyData(c, &buf, 0)) > 0) {
        const char *p = buf;
        size_t      l = (size_t) len;

        if (header) {
            if (l < COPY_HEADER || memcmp(p, COPY_SIGNATURE, 11) != 0
                || l - COPY_HEADER < be32(p + 15))
            {
                n = -1;
                goto row;
            }
            l -= COPY_HEADER + be32(p + 15);
            p += COPY_HEADER + be32(p + 15);
            header = 0;
            if (l == 0) {
                PQfreemem(buf);
                continue;
            }
        }
        n = copy_fields(p, l, want, v);
    row:
        if (n < 0 && !failed) {
            fprintf(stderr, "%s: archive: a malformed row from the "
                    "server\n", tool_name);
            failed = 1;
        } else if (n > 0 && rv == 0 && !failed) {
            (*count)++;
            rv = scan_row(v, &f, cb, data, &e, &cap);
            failed = rv == EXIT_USAGE;
        }
        PQfreemem(buf);
    }
    if (len == -2) {
        fprintf(stderr, "%s: archive: %s\n", tool_name, pg_error(c));
        failed = 1;
    }
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg_check(c, r, sql->p);
            failed = 1;
        }
        PQclear(r);
    }
    free(copy);
    free(e.name);
    free(e.value);
    free(e.nlen);
    free(e.vlen);
    return failed ? EXIT_USAGE : rv;
}

int
archive_holder(PGconn *c, const char *stream, const char *chain, size_t len,
               uint64_t seq, uint64_t before, ca_as_mark *m)
{
    char       *name = strndup(chain, len), num[24], ord[24];
    const char *p[4] = {stream, name, num, ord};
    PGresult   *r;
    int         rc = 1;

    if (name == NULL) {
        return -1;
    }
    snprintf(num, sizeof(num), "%llu", (unsigned long long) seq);
    snprintf(ord, sizeof(ord), "%llu", (unsigned long long)
             (before > INT64_MAX ? INT64_MAX : before));
    r = pg_query(c, "SELECT ord, hash FROM " ARCHIVE_SCHEMA ".entries WHERE "
                 "chain = $2 AND seq = $3 AND copy_of IS NULL AND stream = $1 "
                 "AND ord < $4 ORDER BY ord LIMIT 1", 4, p);
    free(name);
    if (r == NULL) {
        return -1;
    }
    if (PQntuples(r) == 1) {
        m->seq = seq;
        m->ord = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        rc = ca_unhex(PQgetvalue(r, 0, 1), m->hash, 32) == 0 ? 0 : -1;
    }
    PQclear(r);
    return rc;
}
