/*
 * The trail read from the archive and Redis together (audit_archread.h):
 * the archive up to the shipper's committed boundary, filtered by its
 * indexes where the command allows; then Redis after the boundary, a page
 * at a time, each page read with the stream's XINFO (what was removed)
 * in one MULTI, so that a trim racing the read is seen and its entries
 * taken from the archive instead.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_archread.h"
#include "audit_pg.h"

#define ENTRIES ARCHIVE_SCHEMA ".entries"

redisContext *
trail_open(trail *t, const tool_redis *redis)
{
    redisContext *rc;

    if (t->conninfo != NULL) {
        if ((t->pg = pg_open(t->conninfo, "credit-audit")) == NULL) {
            fprintf(stderr, "%s: the archive cannot be read: nothing "
                    "answered (an answer from Redis alone would miss what "
                    "was shipped)\n", tool_name);
            return NULL;
        }
        /* the readers' queries read many rows once: compiling their
         * long expressions (JIT) cost more than it saved, 67 s of a
         * month's report; a month's groups are hashed in memory */
        if (pgschema_check(t->pg) != 0
            || pg_exec(t->pg, "SET jit = off; SET work_mem = '64MB'") != 0)
        {
            trail_close(t);
            return NULL;
        }
    }
    if ((rc = tool_redis_open(redis)) == NULL) {
        trail_close(t);
    }
    return rc;
}

void
trail_close(trail *t)
{
    if (t->pg != NULL) {
        PQfinish(t->pg);
        t->pg = NULL;
    }
}

/* ---- the query pushed down ------------------------------------------- */

typedef struct {
    sbuf        sql;
    sbuf        grouped;        /* trail_groups: the first read */
    const char *p[12];
    char        num[4][24];
    int         np, nnum;
    char        ord_from[24], ord_to[24];
} query;

static int
param(query *q, const char *v)
{
    q->p[q->np++] = v;
    return q->np;
}

static int
param_ms(query *q, int64_t ms)
{
    snprintf(q->num[q->nnum], sizeof(q->num[0]), "%lld", (long long) ms);
    return param(q, q->num[q->nnum++]);
}

/* The counting command's query (trail_groups): the period exactly by
 * ts, as in_period() judges it. */
static void
build_grouped(const trail *t, query *q, const char *tw)
{
    char where[256], in[160] = "true", tmp[64];

    if (t->per != NULL && t->per->set) {
        snprintf(in, sizeof(in), "ts >= 0");
        if (t->per->since != INT64_MIN) {
            snprintf(tmp, sizeof(tmp), " AND ts >= $%d::bigint",
                     param_ms(q, t->per->since));
            strcat(in, tmp);
        }
        if (t->per->until != INT64_MAX) {
            snprintf(tmp, sizeof(tmp), " AND ts < $%d::bigint",
                     param_ms(q, t->per->until));
            strcat(in, tmp);
        }
    }
    snprintf(where, sizeof(where), " WHERE stream = $1 AND ord >= $2 AND "
             "ord < $3%s", tw);
    trail_group_sql(&q->grouped, t->groups, where, in);
}

/*
 * One SELECT per branch, in archive order:
 *   A  the entries with the attributes asked (decisions, revocations;
 *      outcomes and checkpoints too when nothing is asked);
 *   B  the outcomes of A's decisions (by rid), for the requests' views;
 *   C  with --reason alone: the decisions whose outcome carries the
 *      reason (a filter failure after an allow).
 * Each on its index with the entries' time (docs/archive.md: indexes).
 */
static void
build(const trail *t, query *q, const char *stream)
{
    static const char *const col[] = {"enterprise", "bank", "consent"};
    const char *val[] = {t->enterprise, t->bank, t->consent};
    char        tw[160] = "", attr[200] = "", tmp[80];
    int         reason_alone = 0, pr = 0;

    param(q, stream);                           /* $1 */
    param(q, q->ord_from);                      /* $2 */
    param(q, q->ord_to);                        /* $3 */
    if (t->per != NULL && t->per->set) {
        if (t->per->since != INT64_MIN) {
            snprintf(tw, sizeof(tw), " AND entry_time >= to_timestamp($%d"
                     "::bigint / 1000.0)",
                     param_ms(q, t->per->since - TRAIL_SLACK_MS));
        }
        if (t->per->until != INT64_MAX) {
            snprintf(tmp, sizeof(tmp), " AND entry_time < to_timestamp($%d"
                     "::bigint / 1000.0)",
                     param_ms(q, t->per->until + TRAIL_SLACK_MS));
            strcat(tw, tmp);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (val[i] != NULL) {
            snprintf(tmp, sizeof(tmp), " AND %s = $%d", col[i],
                     param(q, val[i]));
            strcat(attr, tmp);
        }
    }
    if (t->reason != NULL) {
        pr = param(q, t->reason);
        /* with another attribute, a decision refused for another reason
         * may still be shown (its outcome's reason): not filtered here */
        if (attr[0] == '\0') {
            snprintf(attr, sizeof(attr), " AND reason = $%d", pr);
            reason_alone = 1;
        }
    }
    if (t->groups != NULL) {
        build_grouped(t, q, tw);
    }
    sb_puts(&q->sql, "SELECT " ARCHIVE_SCAN_COLUMNS " FROM " ENTRIES
            " WHERE stream = $1 AND ord >= $2 AND ord < $3");
    sb_printf(&q->sql, "%s%s", tw, attr);
    /* B and C: a nested loop over the few rids, each a probe of the rid
     * index in the partitions of its hour (OFFSET 0 keeps the planner
     * from turning it into a scan of every outcome of the period) */
    if (t->requests && attr[0] != '\0') {
        sb_printf(&q->sql, " UNION ALL SELECT o.* FROM (SELECT rid, "
                  "min(entry_time) AS t FROM " ENTRIES " WHERE stream = $1%s%s"
                  " AND event = 'decision' AND rid IS NOT NULL GROUP BY rid) "
                  "d, LATERAL (SELECT " ARCHIVE_SCAN_COLUMNS " FROM " ENTRIES
                  " WHERE rid = d.rid AND entry_time >= d.t AND entry_time < "
                  "d.t + " TRAIL_SLACK_SQL " AND stream = $1 AND ord >= $2 "
                  "AND ord < $3%s AND event = 'outcome' AND (true%s) IS NOT "
                  "TRUE OFFSET 0) o", tw, attr, tw, attr);
    }
    if (t->requests && reason_alone) {
        sb_printf(&q->sql, " UNION ALL SELECT o.* FROM (SELECT rid, "
                  "max(entry_time) AS t FROM " ENTRIES " WHERE stream = $1%s"
                  " AND reason = $%d AND event = 'outcome' AND rid IS NOT "
                  "NULL GROUP BY rid) d, LATERAL (SELECT " ARCHIVE_SCAN_COLUMNS
                  " FROM " ENTRIES " WHERE rid = d.rid AND entry_time <= d.t "
                  "AND entry_time > d.t - " TRAIL_SLACK_SQL " AND stream = $1 "
                  "AND ord >= $2 AND ord < $3%s AND event = 'decision' AND "
                  "(true%s) IS NOT TRUE OFFSET 0) o", tw, pr, tw, attr);
    }
    sb_puts(&q->sql, " ORDER BY ord");
}

/* ---- archived entries between two stream ids -------------------------- */

typedef struct {
    trail      *t;
    entry_cb    cb;
    void       *data;
    const char *lo;         /* only after this stream id ("": any) */
    const char *hi;         /* only before this one (NULL: any) */
    uint64_t    next;       /* the archive order after the rows taken */
} fill_ctx;

static int
cb_fill(const entry *e, const archive_row *row, void *data)
{
    fill_ctx *f = data;

    if (f->hi != NULL && sid_cmp(e->id, f->hi) >= 0) {
        return 0;           /* still in Redis: read there */
    }
    f->t->archive_rows++;
    if (row->weight > 0) {
        /* a group of the first read (trail_groups), never of a later */
        f->t->from_archive += row->weight;
        return f->t->groups->cb(e, row->weight, f->data);
    }
    f->next = row->ord + 1;
    if (f->lo[0] != '\0' && sid_cmp(e->id, f->lo) <= 0) {
        return 0;           /* read from Redis before it was trimmed */
    }
    f->t->from_archive++;
    return f->cb(e, f->data);
}

/* The archive's rows of [from, to); grouped: the first read's query
 * (with trail_groups; a later read, after a trim, takes rows). */
static int
fill(query *q, fill_ctx *f, uint64_t from, uint64_t to, int grouped)
{
    size_t n;

    snprintf(q->ord_from, sizeof(q->ord_from), "%llu",
             (unsigned long long) from);
    snprintf(q->ord_to, sizeof(q->ord_to), "%llu", (unsigned long long) to);
    f->next = from;
    if (grouped && f->t->groups != NULL) {
        return archive_scan_sql(f->t->pg, &q->grouped, q->np, q->p,
                                ARCHIVE_SCAN_WEIGHT, cb_fill, f, &n);
    }
    return archive_scan_sql(f->t->pg, &q->sql, q->np, q->p, 0, cb_fill, f,
                            &n);
}

/* ---- Redis ----------------------------------------------------------- */

/* What XINFO STREAM says of removals: XTRIM leaves max-deleted-entry-id
 * alone (Redis 7.0) but moves recorded-first-entry-id; XDEL moves the
 * former. */
typedef struct {
    long long length, added;
    char      first[64];        /* the first entry's id; "" when empty */
    char      maxdel[64];
} xinfo;

static void
xinfo_read(const redisReply *x, xinfo *xi)
{
    memset(xi, 0, sizeof(*xi));
    snprintf(xi->maxdel, sizeof(xi->maxdel), "0-0");
    if (x == NULL || x->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (size_t i = 0; i + 1 < x->elements; i += 2) {
        const redisReply *k = x->element[i], *v = x->element[i + 1];

        if (k->type != REDIS_REPLY_STRING) {
            continue;
        }
        if (v->type == REDIS_REPLY_INTEGER) {
            if (strcmp(k->str, "length") == 0) {
                xi->length = v->integer;
            } else if (strcmp(k->str, "entries-added") == 0) {
                xi->added = v->integer;
            }
        } else if (v->type == REDIS_REPLY_STRING) {
            if (strcmp(k->str, "max-deleted-entry-id") == 0) {
                snprintf(xi->maxdel, sizeof(xi->maxdel), "%s", v->str);
            } else if (strcmp(k->str, "recorded-first-entry-id") == 0) {
                snprintf(xi->first, sizeof(xi->first), "%s", v->str);
            }
        }
    }
    if (xi->length == 0) {
        xi->first[0] = '\0';
    }
}

/* Something after `last` may have been removed before it was read. */
static int
removed_after(const xinfo *xi, const char *last)
{
    if (xi->added <= xi->length) {
        return 0;
    }
    return sid_cmp(xi->maxdel, last) > 0 || xi->first[0] == '\0'
           || sid_cmp(xi->first, last) > 0;
}

/* A page after `last` and the stream's XINFO, in one MULTI.  The EXEC
 * reply (caller frees), or NULL after a message. */
static redisReply *
page(redisContext *rc, const char *stream, const char *last)
{
    redisReply *x[4] = {NULL, NULL, NULL, NULL}, *r = NULL;
    int         i;

    redisAppendCommand(rc, "MULTI");
    redisAppendCommand(rc, "XRANGE %s (%s + COUNT %d", stream, last, PAGE);
    redisAppendCommand(rc, "XINFO STREAM %s", stream);
    redisAppendCommand(rc, "EXEC");
    for (i = 0; i < 4; i++) {
        if (redisGetReply(rc, (void **) &x[i]) != REDIS_OK) {
            reply_error(rc, NULL, "XRANGE");
            goto done;
        }
    }
    for (i = 0; i < 3; i++) {
        if (x[i]->type == REDIS_REPLY_ERROR) {
            reply_error(rc, x[i], "XRANGE");
            x[i] = NULL;
            goto done;
        }
    }
    if (x[3]->type != REDIS_REPLY_ARRAY || x[3]->elements != 2) {
        reply_error(rc, x[3], "EXEC");
        x[3] = NULL;
        goto done;
    }
    if (x[3]->element[0]->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "credit-audit: redis: XRANGE: %s\n",
                x[3]->element[0]->type == REDIS_REPLY_ERROR
                ? x[3]->element[0]->str : "unexpected reply");
        goto done;
    }
    r = x[3];
    x[3] = NULL;

done:
    for (i = 0; i < 4; i++) {
        freeReplyObject(x[i]);
    }
    return r;
}

static int
redis_part(trail *t, redisContext *rc, const char *stream, query *q,
           const char *boundary, uint64_t next, entry_cb cb, void *data,
           int *exists)
{
    char        last[64];
    xinfo       xi;
    redisReply *r, *p;
    fill_ctx    f = {t, cb, data, last, NULL, next};
    int         rv;

    snprintf(last, sizeof(last), "%s", boundary ? boundary : "0-0");
    *exists = 0;
    for (;;) {
        if ((r = page(rc, stream, last)) == NULL) {
            return EXIT_USAGE;
        }
        p = r->element[0];
        *exists |= r->element[1]->type == REDIS_REPLY_ARRAY;
        xinfo_read(r->element[1], &xi);
        if (removed_after(&xi, last)) {
            /* trimmed past what was read: the shipper has archived it
             * meanwhile (else it is gone, and verify says so) */
            f.hi = p->elements ? p->element[0]->element[0]->str : NULL;
            rv = fill(q, &f, f.next, INT64_MAX, 0);
            if (rv != 0) {
                freeReplyObject(r);
                return rv;
            }
        }
        rv = walk_entries(p, 0, cb, data);
        if (rv != 0) {
            freeReplyObject(r);
            if (rv < 0) {
                fputs("credit-audit: redis: malformed XRANGE reply\n",
                      stderr);
                return EXIT_USAGE;
            }
            return rv;
        }
        t->from_redis += p->elements;
        if (p->elements < PAGE) {
            freeReplyObject(r);
            return 0;
        }
        snprintf(last, sizeof(last), "%s",
                 p->element[p->elements - 1]->element[0]->str);
        freeReplyObject(r);
    }
}

/* ---- the trail ------------------------------------------------------- */

/* Without --archive: when the shipper has moved entries out of Redis, an
 * answer from Redis alone is partial; say so (the shipper's hash of
 * docs/archive.md, and fewer entries in the stream than were added:
 * cheap). */
static void
note_archived(redisContext *rc, const char *stream)
{
    redisReply *h = redisCommand(rc, "HMGET %s:shipper archived archived_id",
                                 stream);
    redisReply *x = NULL;
    xinfo       xi;

    if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 2
        && h->element[0]->type == REDIS_REPLY_STRING
        && h->element[1]->type == REDIS_REPLY_STRING
        && (x = redisCommand(rc, "XINFO STREAM %s", stream)) != NULL)
    {
        xinfo_read(x, &xi);
        if (xi.added > xi.length) {
            fprintf(stderr, "credit-audit: note: %s entries of %s were "
                    "shipped to the PostgreSQL archive (up to %s) and Redis "
                    "has been trimmed: this answer covers only what Redis "
                    "still holds; give --archive CONNINFO for the whole "
                    "trail\n", h->element[0]->str, stream,
                    h->element[1]->str);
        }
    }
    freeReplyObject(x);
    freeReplyObject(h);
}

int
trail_scan_from(trail *t, redisContext *rc, const char *stream,
                const char *from, entry_cb cb, void *data, size_t *count)
{
    query       q;
    fill_ctx    f = {t, cb, data, "", NULL, 0};
    PGresult   *r;
    char       *boundary = NULL;
    uint64_t    next;
    int         rv, exists;

    if (t == NULL || t->pg == NULL) {
        rv = scan_stream_from(rc, stream, from, cb, data, count);
        if (t != NULL) {
            t->from_redis = *count;
            note_archived(rc, stream);
        }
        return rv;
    }
    *count = 0;
    /* the boundary: archive orders below next_ord are committed, and of
     * this stream they are its entries up to last_id (one statement:
     * one snapshot) */
    r = pg_query(t->pg, "SELECT l.next_ord, s.last_id FROM " ARCHIVE_SCHEMA
                 ".log l LEFT JOIN " ARCHIVE_SCHEMA ".streams s ON s.stream "
                 "= $1", 1, &stream);
    if (r == NULL || PQntuples(r) != 1) {
        if (r != NULL) {
            fprintf(stderr, "%s: archive: no log row (run ship --init)\n",
                    tool_name);
        }
        PQclear(r);
        return EXIT_USAGE;
    }
    next = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (!PQgetisnull(r, 0, 1) && (boundary = strdup(PQgetvalue(r, 0, 1)))
        == NULL)
    {
        PQclear(r);
        fputs("credit-audit: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    PQclear(r);
    memset(&q, 0, sizeof(q));
    build(t, &q, stream);
    rv = boundary != NULL ? fill(&q, &f, 0, next, 1) : 0;
    if (rv == 0) {
        rv = redis_part(t, rc, stream, &q, boundary, next, cb, data,
                        &exists);
        if (rv == 0 && !exists && boundary == NULL) {
            fprintf(stderr, "credit-audit: stream %s does not exist, in "
                    "Redis or in the archive\n", stream);
            rv = EXIT_USAGE;
        }
    }
    *count = t->from_archive + t->from_redis;
    if (getenv("CREDIT_AUDIT_READ_STATS") != NULL) {
        fprintf(stderr, "%s: read %zu entries from the archive in %zu "
                "rows, %zu from Redis\n", tool_name, t->from_archive,
                t->archive_rows, t->from_redis);
    }
    sb_free(&q.sql);
    sb_free(&q.grouped);
    free(boundary);
    return rv;
}

int
trail_scan(trail *t, redisContext *rc, const char *stream, entry_cb cb,
           void *data, size_t *count)
{
    return trail_scan_from(t, rc, stream, "-", cb, data, count);
}
