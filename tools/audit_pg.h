/*
 * The PostgreSQL archive from the tools (contract §7.2, docs/archive.md): the
 * libpq layer (tools/audit_pg.c), the schema and its migrations
 * (tools/audit_pgschema.c), and the archived entries read back in archive
 * order as the tools' `entry` (audit_pg.c: the seam for every command that
 * reads the archive).
 *
 * CONNINFO is libpq's (`postgresql://...` or `key=value ...`; PGSERVICE,
 * PGPASSFILE, PGPASSWORD, sslmode and the rest read by libpq itself), never
 * with a password in it: one on the command line is readable by every
 * user of the machine.
 */
#ifndef CA_TOOLS_AUDIT_PG_H
#define CA_TOOLS_AUDIT_PG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "audit_tool.h"
#include "verify/verify.h"

#define ARCHIVE_SCHEMA      "credit_audit"
#define ROLE_SHIPPER        "credit_audit_shipper"
#define ROLE_READER         "credit_audit_reader"
#define ROLE_ACKNOWLEDGER   "credit_audit_acknowledger"

#define TOOL_ARCHIVE_HELP \
    "  --archive CONNINFO            the PostgreSQL archive, as libpq takes\n" \
    "                                it (postgresql://HOST/DB?sslmode=...,\n" \
    "                                or host=... dbname=... user=...; \"\"\n" \
    "                                for libpq's PG* variables); never a\n" \
    "                                password: PGPASSFILE, PGPASSWORD or\n" \
    "                                PGSERVICE\n"

/* ---- a growable buffer ------------------------------------------------- */

typedef struct {
    char   *p;
    size_t  len, cap;
    int     failed;         /* out of memory: every later append ignored */
} sbuf;

void sb_put(sbuf *b, const void *p, size_t len);
void sb_puts(sbuf *b, const char *s);
void sb_printf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sb_free(sbuf *b);

/* COPY ... FROM STDIN text format: a column's value (backslash, tab,
 * newline and carriage return escaped), NULL, a bytea (hex), the
 * separators. */
void sb_copy_text(sbuf *b, const char *s, size_t len);
void sb_copy_null(sbuf *b);
void sb_copy_bytea(sbuf *b, const unsigned char *p, size_t len);
void sb_copy_u64(sbuf *b, uint64_t v);
void sb_copy_time(sbuf *b, int64_t ms);     /* timestamptz, UTC */
#define sb_copy_tab(b)  sb_put(b, "\t", 1)
#define sb_copy_eol(b)  sb_put(b, "\n", 1)

/* ---- stream ids, and what the archive makes of an entry ------------------ */

/* Stream ids: compare as (ms, seq); parse; the id just after. */
int sid_cmp(const char *a, const char *b);
int sid_parse(const char *s, uint64_t *ms, uint64_t *seq);
void sid_next(const char *s, char *out, size_t len);

/* The time that files an entry in its month (entry_time): its `ts` when
 * that is a time of years 1970 to 9999, else its stream id's. */
int64_t archive_entry_ms(const entry *e);
/* The typed columns' values (schema order): the field's first value when
 * it fits its column (ca_audit_column_fits), else NULL. */
void archive_columns(const entry *e, const char **val, size_t *len);

/* ---- libpq ------------------------------------------------------------- */

/* Connects; NULL after an error message (a password in conninfo is
 * refused before anything is tried). */
PGconn *pg_open(const char *conninfo, const char *application);
/* -1 (after a message) when conninfo holds a password. */
int pg_conninfo_check(const char *conninfo);

/* 0 when r is a success, else -1 after a message naming sql. */
int pg_check(PGconn *c, PGresult *r, const char *sql);
/* A statement without a result set: 0, or -1 after a message. */
int pg_exec(PGconn *c, const char *sql);
/* With text parameters; the result (caller clears) or NULL after a
 * message. */
PGresult *pg_query(PGconn *c, const char *sql, int n,
                   const char *const *params);
/* COPY <copy_sql> FROM STDIN with buf's rows: 0 or -1 after a message. */
int pg_copy_in(PGconn *c, const char *copy_sql, const sbuf *buf);
/* The same in steps, for rows streamed while the server inserts the
 * first ones: begin; put (sends buf, empties it) as often as needed; send
 * the end (ok 0: the COPY fails, nothing is taken); then, possibly after
 * other work, the result.  Each 0 or -1 (begin and result after a
 * message). */
int pg_copy_begin(PGconn *c, const char *copy_sql);
int pg_copy_put(PGconn *c, sbuf *buf);
int pg_copy_send_end(PGconn *c, int ok);
int pg_copy_result(PGconn *c, const char *copy_sql);
/* The server's message of the last error, one line. */
const char *pg_error(PGconn *c);
/* The SQLSTATE of the last failed statement ("23505": a unique key). */
const char *pg_sqlstate(void);

/* ---- the schema (audit_pgschema.c) -------------------------------------- */

/* The version this build writes and reads. */
int pgschema_version(void);
/* Every statement --init runs on an empty database, as one SQL script. */
int pgschema_print(FILE *out);
/* Creates or migrates, in one transaction; prints what it did.  0, or -1
 * after a message. */
int pgschema_init(PGconn *c, FILE *out);
/* 0 when the archive is at this build's version, -1 after a message that
 * says what to run. */
int pgschema_check(PGconn *c);

/* ---- archived entries, in archive order (audit_pg.c) --------------------- */

typedef struct {
    const char *stream;         /* NULL: every stream */
    int         has_since, has_until;
    int64_t     since_ms, until_ms;     /* entry_time, [since, until) */
    int         has_ord;
    uint64_t    ord_from, ord_to;       /* [from, to) */
    int         columns;        /* also the typed columns (row->col) */
} archive_filter;

/* What the archive says of an entry besides its fields. */
typedef struct {
    uint64_t     ord;
    const char  *stream;
    int          is_copy;
    uint64_t     copy_of;       /* the entry that holds its seq */
    int64_t      entry_ms;      /* its month's time (entry_time) */
    /* with f->columns: the typed columns (schema order), NULL for NULL */
    const char  *col[CA_F_COUNT];
    size_t       col_len[CA_F_COUNT];
    /* with ARCHIVE_SCAN_WEIGHT: how many entries this row stands for (0:
     * itself); such a row has no raw, its entry is its typed columns */
    uint64_t     weight;
} archive_row;

/* Each archived entry as the tools' entry (its stream id as e->id, every
 * field as stored, from the verbatim copy), in archive order.  0, the
 * callback's non-zero result, or EXIT_USAGE after a message. */
typedef int (*archive_cb)(const entry *e, const archive_row *row,
                          void *data);
int archive_scan(PGconn *c, const archive_filter *f, archive_cb cb,
                 void *data, size_t *count);
/* The same with the query given: it selects ARCHIVE_SCAN_COLUMNS (then,
 * with columns, the typed columns as text, schema order; with columns
 * ARCHIVE_SCAN_WEIGHT, then a bigint weight: NULL for an entry's own row,
 * n for a row with NULL raw standing for n entries alike, its typed
 * columns).  No "$" in the query but its parameters. */
#define ARCHIVE_SCAN_WEIGHT 2
#define ARCHIVE_SCAN_COLUMNS \
    "ord, stream, stream_id, copy_of, (extract(epoch FROM entry_time) " \
    "* 1000)::bigint, raw"
int archive_scan_sql(PGconn *c, const sbuf *sql, int np,
                     const char *const *params, int columns, archive_cb cb,
                     void *data, size_t *count);

/* The archived entry that holds (chain, seq) of stream, archived before
 * archive order `before` (UINT64_MAX: any): 0 with m filled, 1 none, -1
 * after a message.  The step verifier's lookup (verify/auditstep.h). */
int archive_holder(PGconn *c, const char *stream, const char *chain,
                   size_t len, uint64_t seq, uint64_t before,
                   ca_as_mark *m);

/* The verbatim copy of an entry's fields: u32be(len) name u32be(len) value
 * for every field in stored order (`hash` too: the entry hash is the same
 * encoding without it, docs/audit-format.md §2). */
void raw_encode(sbuf *b, const entry *e);
/* Its fields back (pointing into raw); -1 when raw is malformed.  The
 * arrays are grown as needed and owned by the caller (free). */
int raw_decode(const unsigned char *raw, size_t len, entry *e,
               size_t *cap);

#endif
