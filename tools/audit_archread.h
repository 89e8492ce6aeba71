/*
 * --archive for the reading commands (contract §7.2, docs/archive.md "Reading
 * the archive"): query, report, verify and export read the PostgreSQL
 * archive for what `ship` moved out of Redis and Redis for the rest, each
 * entry once, in stream order (tools/audit_archread.c).
 *
 * The boundary is the shipper's committed state: every entry of the
 * stream up to `streams.last_id` is archived (the active shipper archives
 * in stream order), none after it.  Those come from the archive, the
 * others from Redis; an entry shipped but not yet trimmed is in both and
 * read once.  A trim while the command reads is noticed (the stream's
 * first id and max-deleted-entry-id, read with each page) and what it
 * removed is read from the archive in its place.
 */
#ifndef CA_TOOLS_AUDIT_ARCHREAD_H
#define CA_TOOLS_AUDIT_ARCHREAD_H

#include <stddef.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "audit_pg.h"
#include "audit_tool.h"

enum { OPT_ARCHIVE_READ = 350 };

#define ARCHIVE_READ_LONGOPT \
    {"archive", required_argument, NULL, OPT_ARCHIVE_READ}

#define ARCHIVE_READ_HELP \
    "  --archive CONNINFO            also the PostgreSQL archive: what left\n" \
    "                                Redis is read there, each entry once\n" \
    "                                (libpq's CONNINFO; never a password:\n" \
    "                                PGPASSFILE, PGPASSWORD or PGSERVICE)\n"

/* An outcome is looked for in the archive up to this long (entry time)
 * after its decision, and the period widened by as much: the requests
 * joined by rid (the views join within 10 minutes, audit_join.h). */
#define TRAIL_SLACK_MS  (60 * 60 * 1000)
#define TRAIL_SLACK_SQL "interval '1 hour'"

/*
 * For a command that only counts (report without keys): the archived
 * entries whose every field is its typed column (nothing else in raw:
 * the lengths add up) and that the command would count, grouped in SQL
 * by the fields it reads, each group given once with its size (and
 * twice when its entries' ts differ: the least and the greatest), in the
 * archive order of its first entry.  The others come one by one, from
 * raw.  audit_archgroup.c.
 */
typedef struct {
    const ca_audit_fid *by;     /* the fields read of a counted entry */
    size_t              nby;
    const char         *events; /* SQL list of the events counted */
    const char         *alone;  /* SQL: of those, the entries counted one
                                   by one (joined to others, say) */
    /* n entries alike (n >= 1) */
    int               (*cb)(const entry *e, size_t n, void *data);
} trail_groups;

typedef struct {
    const char   *conninfo;     /* --archive; NULL: Redis alone */
    PGconn       *pg;
    /* Pushed down to the archive's indexes: a superset of what the
     * command keeps (it filters every entry itself, as over Redis). */
    const period *per;          /* the entries' time (NULL: any) */
    const char   *enterprise, *bank, *consent, *reason;
    const trail_groups *groups; /* NULL: every entry on its own */
    int           requests;     /* with those: the outcomes of matching
                                   decisions too (joined by rid), and for
                                   --reason the decisions of matching
                                   outcomes */
    /* what was read (entries; rows of the archive: fewer when grouped);
     * CREDIT_AUDIT_READ_STATS=1 prints them */
    size_t        from_archive, from_redis, archive_rows;
} trail;

/* The archive (with --archive: an archive that cannot be reached, or of
 * another schema version, is an error before anything is read), then
 * Redis.  NULL after an error message. */
redisContext *trail_open(trail *t, const tool_redis *redis);
/* Every entry of the stream in stream order: the archive's, then Redis's
 * after them (from `from` when there is no archive; "-": the start).
 * Without --archive, a note on stderr when the shipper has moved entries
 * out of Redis.  0, the callback's result, or EXIT_USAGE after a
 * message. */
int trail_scan_from(trail *t, redisContext *rc, const char *stream,
                    const char *from, entry_cb cb, void *data,
                    size_t *count);
int trail_scan(trail *t, redisContext *rc, const char *stream, entry_cb cb,
               void *data, size_t *count);
void trail_close(trail *t);

/* The grouped query (trail_groups): the rows of `where` (a WHERE clause)
 * one by one where they must be, grouped where they may; in_period: SQL,
 * the entries of the period exactly (by ts, as in_period() does). */
void trail_group_sql(sbuf *sql, const trail_groups *g, const char *where,
                     const char *in_period);

#endif
