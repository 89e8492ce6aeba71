/*
 * credit-audit ship: the entries' rows in COPY's binary format
 * (docs/archive.md, "Measured": the text format cost PostgreSQL a sixth
 * of its time parsing, and doubled `raw` into hex).
 *
 * A row is int16 field count, then per column int32 length (-1: NULL)
 * and the value as the type's binary receive function takes it: integers
 * big-endian of their width, timestamptz as microseconds since
 * 2000-01-01 UTC, text and bytea as their bytes.  The columns are the
 * table's, in order: ord, entry_time, stream, stream_id, copy_of, the
 * audit schema's typed columns (ca_audit_schema), raw.
 */
#include <stdlib.h>
#include <string.h>

#include "audit_ship.h"
#include "audit/audit.h"

/* 2000-01-01T00:00:00Z in Unix milliseconds (PostgreSQL's epoch) */
#define PG_EPOCH_MS 946684800000LL

static void
be(sbuf *b, uint64_t v, int width)
{
    unsigned char x[8];

    for (int i = 0; i < width; i++) {
        x[i] = (unsigned char) (v >> (8 * (width - 1 - i)));
    }
    sb_put(b, x, (size_t) width);
}

static void
col_int(sbuf *b, uint64_t v, int width)
{
    be(b, (uint64_t) width, 4);
    be(b, v, width);
}

static void
col_bytes(sbuf *b, const void *p, size_t len)
{
    be(b, len, 4);
    sb_put(b, p, len);
}

static void
col_null(sbuf *b)
{
    be(b, UINT32_MAX, 4);
}

/* Each typed column's binary width: 2, 4 or 8 for the integer types,
 * 0 for text. */
static int widths[CA_F_COUNT];

static void
init_widths(void)
{
    static int done;

    if (done) {
        return;
    }
    for (int f = 0; f < CA_F_COUNT; f++) {
        const char *sql = ca_audit_schema[f].sql;

        widths[f] = strcmp(sql, "smallint") == 0 ? 2
                    : strcmp(sql, "integer") == 0 ? 4
                    : strcmp(sql, "bigint") == 0 ? 8 : 0;
    }
    done = 1;
}

void
shipcopy_header(sbuf *b)
{
    static const char sig[11] = "PGCOPY\n\377\r\n";      /* and a NUL */

    init_widths();
    sb_put(b, sig, sizeof(sig));
    be(b, 0, 4);                /* flags: no OIDs */
    be(b, 0, 4);                /* no header extension */
}

void
shipcopy_trailer(sbuf *b)
{
    be(b, 0xffff, 2);
}

size_t
shipcopy_entry(sbuf *b, const char *stream, const ship_entry *x)
{
    const entry *e = &x->e;
    const char  *val[CA_F_COUNT];
    size_t       len[CA_F_COUNT], raw = 0;

    archive_columns(e, val, len);
    be(b, 5 + CA_F_COUNT + 1, 2);
    col_int(b, x->ord, 8);
    col_int(b, (uint64_t) ((x->ms - PG_EPOCH_MS) * 1000), 8);
    col_bytes(b, stream, strlen(stream));
    col_bytes(b, e->id, strlen(e->id));
    if (x->copy) {
        col_int(b, x->copy_of, 8);
    } else {
        col_null(b);
    }
    for (int f = 0; f < CA_F_COUNT; f++) {
        if (val[f] == NULL) {
            col_null(b);
        } else if (widths[f] > 0) {
            /* archive_columns let through only canonical decimals within
             * the column's range */
            col_int(b, strtoull(val[f], NULL, 10), widths[f]);
        } else {
            col_bytes(b, val[f], len[f]);
        }
    }
    for (size_t i = 0; i < e->n; i++) {
        raw += 8 + e->nlen[i] + e->vlen[i];
    }
    be(b, raw, 4);
    raw_encode(b, e);
    return raw;
}
