/*
 * credit-audit ship (contract §7.2, docs/archive.md): the stream into the
 * PostgreSQL archive, verified, one transaction per batch, then
 * acknowledged and trimmed from Redis.
 *
 *   audit_ship.c         the command: options, active or standby, retries
 *   audit_shipbatch.c    a batch: its transaction (lock, COPY, commit)
 *   audit_shipverify.c   a batch's verification, findings, chain states
 *   audit_shipcopy.c     the entries' rows in COPY's binary format
 *   audit_shiparena.c    a batch's Redis reply in one allocation arena
 *   audit_shipredis.c    the consumer group, trimming, the published lag
 *   audit_shipmetrics.c  Prometheus text file
 *   audit_shipsay.c      its log lines, and where its time went
 */
#ifndef CA_TOOLS_AUDIT_SHIP_H
#define CA_TOOLS_AUDIT_SHIP_H

#include <stdint.h>

#include "audit_mklog.h"
#include "audit_pg.h"
#include "audit_verify.h"
#include "verify/verify.h"

/* A delivered entry: its fields point into the Redis reply it came in. */
typedef struct {
    entry       e;
    int         gone;           /* claimed, but deleted from the stream */
    /* set by the batch's verification, for its row */
    int         fresh;          /* not archived yet: it gets a row */
    int         copy;           /* another entry holds its seq ... */
    uint64_t    copy_of;        /* ... that one's archive order */
    uint64_t    ord;
    int64_t     ms;             /* entry_time */
} ship_entry;

typedef struct ship_arena ship_arena;

typedef struct {
    ship_arena *arena;          /* the replies the entries point into,
                                   built in it (audit_shipredis.c) */
    ship_entry *items;
    size_t      n, cap;
} ship_batch;

/* A chain an unacknowledged finding holds in Redis from one entry on. */
typedef struct {
    char       *chain;
    char        from[48];
} ship_hold;

/* Where a shipper's time goes, by phase (CREDIT_AUDIT_SHIP_STATS=1 in
 * the environment: printed at exit; docs/archive.md "Measured"). */
enum {
    SP_READ,        /* XREADGROUP / XAUTOCLAIM: the wait and hiredis */
    SP_PARSE,       /* the reply into entries */
    SP_LOCK,        /* BEGIN, the log's and the stream's rows */
    SP_VERIFY,      /* ca_as_add: hash, chain, signatures */
    SP_ENCODE,      /* the rows in COPY format */
    SP_COPY,        /* COPY entries: sending and the server's insert */
    SP_STATE,       /* findings, chains, log, stream rows */
    SP_COMMIT,
    SP_ACK,         /* XACK */
    SP_TRIM,        /* holds, XTRIM, the lag, metrics */
    SP_COUNT
};

typedef struct {
    uint64_t    entries, batches, copies, duplicates, redelivered, trimmed;
    uint64_t    findings[CA_AV_KINDS];
    uint64_t    pg_errors, redis_errors, stale;
    double      last_commit;    /* Unix seconds */
    int64_t     lag_ms;         /* -1: unknown */
    long long   stream_len;
    long long   open_findings;
    uint64_t    archived_total; /* the archive's next ord */
    double      phase[SP_COUNT];        /* seconds, when s->stats */
} ship_stats;

typedef struct {
    /* options */
    common_opts     co;
    const char     *archive;
    const char     *group;
    char            consumer[128];
    int64_t         keep_ms;
    long            batch;
    long            block_ms;
    const char     *metrics;
    int             once;
    mklog_opts      logo;       /* --log-key, --log-name, --publish */
    int             stats;      /* CREDIT_AUDIT_SHIP_STATS: time phases */
    double          tick;       /* ... the last ship_clock() */

    /* connections and verification */
    redisContext   *rc;
    PGconn         *pg;
    PGconn         *look;       /* the verifier's look-ups */
    av_keys         keys;
    ca_as          *ver;
    mklog          *log;        /* the Merkle tree log (audit_mklog.c) */
    int             active;     /* holds the stream's lock */
    int             staged;     /* the session's staging table exists */

    /* what the archive holds (as of the last commit) */
    uint64_t        next_ord;
    char            last_id[48];
    uint64_t        stream_entries;
    char            months[64][8];      /* partitions known to exist */
    size_t          nmonths;

    /* trimming */
    ship_hold      *holds;
    size_t          nholds;
    char            xdel_from[48];      /* XDEL beyond a hold: next id */

    ship_stats      st;
    uint64_t        new_findings;       /* this run (--once's status) */
} ship;

/* audit_shipverify.c */
/* The archive's state of the stream, and a fresh verifier over it. */
int shipdb_load(ship *s);
void shipdb_reset(ship *s);
/* s->ver, over the archive's chain states (made if missing): 0 or -1. */
int shipverify_open(ship *s);
/* Which entries of the batch are new (they get rows, ords from
 * s->next_ord): their months (yyyymm) and the last one's id. */
void shipverify_plan(ship *s, ship_batch *b, char (*months)[8],
                     size_t *nmonths, size_t *n, char *last, size_t lastlen);
/* Verifies one new entry (in stream order): its copy_of, its findings'
 * COPY rows into found.  0, or -1 (s->ver is then no longer the
 * archive's: shipdb_reset). */
int shipverify_entry(ship *s, ship_entry *x, sbuf *found, size_t *nfound);
/* The verifier's own connection (it looks up while the batch's COPY
 * runs): closed. */
void shipverify_close(ship *s);
/* The chains the batch moved, as COPY rows of the staging table. */
void shipverify_chain_rows(ship *s, sbuf *b);

/* audit_shipbatch.c */
/* Work done while the server inserts a batch's rows (the next batch
 * read from Redis). */
typedef void (*ship_meanwhile)(ship *s, void *data);
/* Verifies and archives the batch in one transaction, calling meanwhile
 * (if not NULL) once the rows are sent.  0 done, 1 the archive moved
 * under us (another shipper: state reloaded, redo), -1 PostgreSQL
 * failed. */
int shipdb_commit(ship *s, ship_batch *b, ship_meanwhile meanwhile,
                  void *data);
/* The unacknowledged findings' holds on this stream into s->holds. */
int shipdb_holds(ship *s);

/* audit_shipredis.c */
void batch_free(ship_batch *b);
/* 0 group there (created if missing), -1 Redis failed, 1 no stream. */
int shipredis_group(ship *s);
/* The next entries: first every pending one (a shipper that stopped,
 * this one's before a failure), then new ones.  *claiming carries the
 * claim cursor ("0-0" to start, "" when done).  0 (b->n may be 0: none
 * now), -1 Redis failed. */
int shipredis_next(ship *s, ship_batch *b, char *claiming, size_t len,
                   int block);
int shipredis_ack(ship *s, const ship_batch *b);
/* Trims what is archived, older than --keep, and not held; publishes the
 * lag.  0 or -1 (Redis failed). */
int shipredis_trim(ship *s);
/* Only the lag, the stream's length and the published state (the
 * archive is away: nothing is trimmed).  0 or -1. */
int shipredis_lag(ship *s);

/* audit_shiparena.c */
/* A command whose reply is built in b's arena (never freeReplyObject it:
 * batch_free frees the arena); NULL as redisCommand. */
redisReply *shiparena_command(ship *s, ship_batch *b, const char *fmt, ...);
void shiparena_free(ship_arena *a);

/* audit_shipcopy.c: the entries' rows, COPY's binary format */
void shipcopy_header(sbuf *b);
/* The entry's row; its verbatim copy (raw_encode) is the row's last
 * bytes, their number returned. */
size_t shipcopy_entry(sbuf *b, const char *stream, const ship_entry *x);
void shipcopy_trailer(sbuf *b);

/* audit_shipmetrics.c */
int ship_metrics_write(const ship *s);

/* audit_shipsay.c */
/* With s->stats: the time since the last call to phase p (none: -1). */
void ship_clock(ship *s, int p);
void ship_stats_print(const ship *s);

void ship_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
