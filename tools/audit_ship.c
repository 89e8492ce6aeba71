/*
 * credit-audit ship: the audit stream into the PostgreSQL archive (contract
 * §7.2; docs/archive.md says why each step is as it is).
 *
 * One shipper per stream is active: the one holding the stream's
 * PostgreSQL advisory lock (a session lock: it goes with the connection,
 * so a shipper killed or cut off releases it at once).  Any other stands
 * by, trying the lock every --interval, and takes over: it first claims
 * every entry the group delivered and nobody acknowledged (XAUTOCLAIM), in
 * stream order, then reads new ones.  Each batch is verified and archived
 * in one transaction (audit_shipbatch.c), then acknowledged and trimmed
 * (audit_shipredis.c); while the server inserts a batch, the next one is
 * read (delivered only: acknowledged after its own commit).  Whatever fails, the shipper drops the connection
 * that failed, waits (1 s, doubling to 30 s) and starts over from what the
 * archive says it holds: nothing is trimmed that is not committed, and an
 * entry committed twice is refused by the archive itself.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "audit_ship.h"

static const char usage_ship[] =
    "usage: credit-audit ship --archive CONNINFO (--pubkey FILE ... |\n"
    "         --keyring FILE) [--once] [--keep DURATION] [--batch N]\n"
    "         [--interval DURATION] [--group NAME] [--consumer NAME]\n"
    "         [--metrics FILE] [--log-key FILE --log-name NAME]\n"
    "         [--checkpoint-every DURATION] [--publish FILE]\n"
    "         [common options]\n"
    "       credit-audit ship --init --archive CONNINFO\n"
    "       credit-audit ship --print-schema\n"
    "\n"
    "Moves the audit stream into the PostgreSQL archive: reads it through\n"
    "a consumer group, verifies every entry as `verify` does (hash, prev,\n"
    "sequence, checkpoint signatures, listed heads, discontinuities),\n"
    "inserts each batch verbatim in one transaction, and only after the\n"
    "commit acknowledges it and trims the stream, keeping the last --keep.\n"
    "Runs until stopped (SIGTERM); several may run: one ships, the others\n"
    "stand by and take over.  A break is archived too, recorded as a\n"
    "finding (`credit-audit findings`), and its chain stays in Redis from\n"
    "that entry on until the finding is acknowledged.\n"
    "Exit status (--once): 0 shipped, 1 a finding was recorded, 2 usage,\n"
    "key, connection or schema error.\n"
    "\n" COMMON_OPTS TOOL_ARCHIVE_HELP
    "  --pubkey FILE, --keyring FILE the gateways' audit public keys\n"
    "  --init                        create or migrate the archive's\n"
    "                                schema (as its owner), then exit\n"
    "  --print-schema                the SQL --init runs on an empty\n"
    "                                database\n"
    "  --once                        ship what is there, then exit\n"
    "  --keep DURATION               what stays in Redis for live tools\n"
    "                                (default 15m; 0, 90s, 2h, 1d)\n"
    "  --batch N                     entries per transaction (default\n"
    "                                5000)\n"
    "  --interval DURATION           wait for new entries, and a standby\n"
    "                                tries the lock, this long (default 1s)\n"
    "  --group NAME                  consumer group (default\n"
    "                                credit-audit-ship)\n"
    "  --consumer NAME               this shipper's name in the group\n"
    "                                (default HOST-PID)\n"
    "  --metrics FILE                Prometheus text file, rewritten after\n"
    "                                every round (node_exporter's textfile\n"
    "                                collector: a .prom name)\n"
    "  --log-key FILE                the Merkle log's Ed25519 signing key\n"
    "                                (PEM): sign checkpoints (contract 7.3)\n"
    "  --log-name NAME               the log's name: its checkpoints'\n"
    "                                origin and key name\n"
    "  --checkpoint-every DURATION   sign the tree head this often while\n"
    "                                it grows (default 10s, at most 1m)\n"
    "  --publish FILE                write the latest checkpoint there\n"
    "                                (atomically) for witnesses and\n"
    "                                enterprises\n";

enum {
    OPT_ARCHIVE = 300, OPT_INIT, OPT_PRINT_SCHEMA, OPT_ONCE, OPT_KEEP,
    OPT_BATCH, OPT_INTERVAL, OPT_GROUP, OPT_CONSUMER, OPT_METRICS,
    OPT_LOG_KEY, OPT_LOG_NAME, OPT_PUBLISH, OPT_CKPT_EVERY
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void) sig;
    stop = 1;
}

/* "15m", "90s", "500ms", "2h", "1d", "0": milliseconds, or -1. */
static int64_t
duration_ms(const char *s)
{
    char      *end;
    long long  v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0 || v > 100LL * 365 * 86400) {
        return -1;
    }
    if (strcmp(end, "ms") == 0) {
        return v;
    }
    if (*end == '\0' || strcmp(end, "s") == 0) {
        return v * 1000;
    }
    if (strcmp(end, "m") == 0) {
        return v * 60000;
    }
    if (strcmp(end, "h") == 0) {
        return v * 3600000;
    }
    if (strcmp(end, "d") == 0) {
        return v * 86400000;
    }
    return -1;
}

static void
nap(int64_t ms)
{
    for (int64_t t = 0; t < ms && !stop; t += 100) {
        struct timespec ts = {0, 100 * 1000000L};

        nanosleep(&ts, NULL);
    }
}

static void
drop_pg(ship *s)
{
    shipverify_close(s);
    if (s->pg != NULL) {
        PQfinish(s->pg);
        s->pg = NULL;
        s->st.pg_errors++;
    }
    if (s->active) {
        ship_log("PostgreSQL failed: standing down (nothing is trimmed "
                 "until the archive commits again)");
    }
    s->active = 0;
    s->staged = 0;
    s->nmonths = 0;
    shipdb_reset(s);
}

static void
drop_redis(ship *s)
{
    if (s->rc != NULL) {
        redisFree(s->rc);
        s->rc = NULL;
    }
}

/* 1 when this process holds the stream, 0 another does, -1 failed. */
static int
take_lock(ship *s)
{
    const char *p[1] = {s->co.stream};
    PGresult   *r = pg_query(s->pg, "SELECT pg_try_advisory_lock("
                             "hashtext('" ARCHIVE_SCHEMA ".ship'), "
                             "hashtext($1))", 1, p);
    int         got;

    if (r == NULL) {
        return -1;
    }
    got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return got;
}

static int
connect_all(ship *s)
{
    if (s->pg == NULL) {
        if ((s->pg = pg_open(s->archive, "credit-audit ship")) == NULL) {
            return -1;
        }
        if (pgschema_check(s->pg) != 0) {
            PQfinish(s->pg);
            s->pg = NULL;
            return -2;
        }
    }
    if (s->rc == NULL) {
        if ((s->rc = tool_redis_open(&s->co.redis)) == NULL) {
            return -1;
        }
        /* a batch's reply is megabytes: keep the read buffer between
         * replies rather than free and grow it again each time */
        s->rc->reader->maxbuf = 0;
    }
    return 0;
}

/* The next batch, read while the server inserts this one's rows: it is
 * only delivered (pending in the group, as any batch read and not yet
 * archived), acknowledged after its own commit. */
typedef struct {
    char       *claiming;
    size_t      clen;
    ship_batch *next;
    int         done, failed;
} read_ahead;

static void
cb_read_ahead(ship *s, void *data)
{
    read_ahead *ra = data;

    if (ra->done) {
        return;             /* a batch redone: read once */
    }
    ra->done = 1;
    /* never blocking: with nothing new the next round waits */
    ra->failed = shipredis_next(s, ra->next, ra->claiming, ra->clen, 0)
                 != 0;
}

/* One round: the next batch archived, acknowledged, trimmed.  *ahead
 * holds the batch read ahead (the next round's), or nothing.  0 (with
 * *got the number of entries read), -1 PostgreSQL failed, -2 Redis, -3
 * the archive's log has another name (stop). */
static int
round_trip(ship *s, char *claiming, size_t clen, size_t *got,
           ship_batch *ahead)
{
    ship_batch b;
    read_ahead ra = {claiming, clen, ahead, 0, 0};
    int        rc;

    *got = 0;
    ship_clock(s, -1);
    if (ahead->n > 0) {
        b = *ahead;
        memset(ahead, 0, sizeof(*ahead));
    } else {
        batch_free(ahead);
        memset(&b, 0, sizeof(b));
        if (shipredis_next(s, &b, claiming, clen, !s->once) != 0) {
            batch_free(&b);
            return -2;
        }
    }
    *got = b.n;
    if (b.n > 0) {
        /* another shipper moved the stream: reloaded, the batch again */
        for (int tries = 0;
             (rc = shipdb_commit(s, &b, cb_read_ahead, &ra)) == 1
             && tries < 5; tries++) {
        }
        if (rc != 0) {
            batch_free(&b);
            return -1;
        }
        ship_clock(s, -1);
        if (ra.failed || shipredis_ack(s, &b) != 0) {
            /* committed, not acknowledged: delivered again, found
             * archived, only acknowledged */
            batch_free(&b);
            return -2;
        }
        ship_clock(s, SP_ACK);
    }
    batch_free(&b);
    if ((rc = mklog_checkpoint(s->log, s->pg, 0)) != 0) {
        return rc == -2 ? -3 : -1;     /* -2: another log's name */
    }
    if (shipdb_holds(s) != 0) {
        return -1;
    }
    if (shipredis_trim(s) != 0) {
        return -2;
    }
    ship_metrics_write(s);
    ship_clock(s, SP_TRIM);
    return 0;
}

static int
run(ship *s)
{
    char        claiming[64] = "0-0";
    int64_t     backoff = 1000;
    int         said_standby = 0, said_nostream = 0, rc;
    ship_batch  ahead;

    memset(&ahead, 0, sizeof(ahead));
    while (!stop) {
        size_t got;
        int    claim;

        if ((rc = connect_all(s)) != 0) {
            if (rc == -2 || s->once) {
                return EXIT_USAGE;
            }
            /* the archive is away: Redis grows, and says so */
            if (s->pg == NULL && s->rc != NULL && s->last_id[0] != '\0'
                && shipredis_lag(s) != 0)
            {
                drop_redis(s);
            }
            ship_metrics_write(s);
            nap(backoff);
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
            continue;
        }
        if (!s->active) {
            rc = take_lock(s);
            if (rc < 0) {
                drop_pg(s);
                continue;
            }
            if (rc == 0) {
                if (s->once) {
                    printf("another shipper is active on %s: nothing "
                           "done\n", s->co.stream);
                    return 0;
                }
                if (!said_standby++) {
                    ship_log("standing by: another shipper holds %s",
                             s->co.stream);
                }
                ship_metrics_write(s);
                nap(s->block_ms);
                continue;
            }
            rc = shipredis_group(s);
            if (rc != 0) {
                /* the lock goes with the session: let it go */
                drop_pg(s);
                if (rc < 0) {
                    drop_redis(s);
                } else if (s->once) {
                    fprintf(stderr, "credit-audit: stream %s does not "
                            "exist\n", s->co.stream);
                    return EXIT_USAGE;
                } else if (!said_nostream++) {
                    ship_log("waiting for stream %s to exist", s->co.stream);
                }
                nap(backoff);
                continue;
            }
            if (shipdb_load(s) != 0) {
                drop_pg(s);
                continue;
            }
            s->active = 1;
            said_standby = 0;
            snprintf(claiming, sizeof(claiming), "0-0");
            ship_log("active on %s as %s: archive holds up to %s",
                     s->co.stream, s->consumer, s->last_id);
        }
        claim = claiming[0] != '\0';
        rc = round_trip(s, claiming, sizeof(claiming), &got, &ahead);
        if (rc != 0) {
            /* what was read ahead is claimed again, in order */
            batch_free(&ahead);
        }
        if (rc == -3 || (rc != 0 && s->once)) {
            return EXIT_USAGE;      /* one try: say so, the next run redoes */
        }
        if (rc == -1) {
            drop_pg(s);
            nap(backoff);
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
            continue;
        }
        if (rc == -2) {
            drop_redis(s);
            snprintf(claiming, sizeof(claiming), "0-0");
            nap(backoff);
            backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
            continue;
        }
        backoff = 1000;
        if (s->once && !claim && got == 0) {
            /* what --once shipped is signed before it exits */
            if (mklog_checkpoint(s->log, s->pg, 1) != 0) {
                return EXIT_USAGE;
            }
            break;
        }
    }
    batch_free(&ahead);
    return 0;
}

static int
ship_init(const char *archive)
{
    PGconn *c = pg_open(archive, "credit-audit ship --init");
    int     rc;

    if (c == NULL) {
        return EXIT_USAGE;
    }
    rc = pgschema_init(c, stdout) == 0 ? 0 : EXIT_USAGE;
    PQfinish(c);
    return rc;
}

int
cmd_ship(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"init", no_argument, NULL, OPT_INIT},
        {"print-schema", no_argument, NULL, OPT_PRINT_SCHEMA},
        {"once", no_argument, NULL, OPT_ONCE},
        {"keep", required_argument, NULL, OPT_KEEP},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"group", required_argument, NULL, OPT_GROUP},
        {"consumer", required_argument, NULL, OPT_CONSUMER},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"log-key", required_argument, NULL, OPT_LOG_KEY},
        {"log-name", required_argument, NULL, OPT_LOG_NAME},
        {"publish", required_argument, NULL, OPT_PUBLISH},
        {"checkpoint-every", required_argument, NULL, OPT_CKPT_EVERY},
        {NULL, 0, NULL, 0}
    };
    ship              s;
    int               ch, init = 0, print = 0, rc;
    char             *end, host[64];
    struct sigaction  sa;

    memset(&s, 0, sizeof(s));
    common_init(&s.co);
    s.group = "credit-audit-ship";
    s.keep_ms = 15 * 60000;
    s.batch = 5000;
    s.block_ms = 1000;
    s.st.lag_ms = -1;
    s.logo.every_ms = 10000;
    s.stats = getenv("CREDIT_AUDIT_SHIP_STATS") != NULL;
    while ((ch = next_opt(&s.co, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE:  s.archive = optarg; break;
        case OPT_INIT:     init = 1; break;
        case OPT_PRINT_SCHEMA: print = 1; break;
        case OPT_ONCE:     s.once = 1; break;
        case OPT_GROUP:    s.group = optarg; break;
        case OPT_METRICS:  s.metrics = optarg; break;
        case OPT_LOG_KEY:  s.logo.key_file = optarg; break;
        case OPT_LOG_NAME: s.logo.name = optarg; break;
        case OPT_PUBLISH:  s.logo.publish = optarg; break;
        case OPT_CKPT_EVERY:
            s.logo.every_ms = duration_ms(optarg);
            if (s.logo.every_ms < 0 || s.logo.every_ms > 60000) {
                return usage_error(usage_ship, "bad --checkpoint-every %s "
                                   "(0 to 1m: at least every minute)",
                                   optarg);
            }
            break;
        case OPT_CONSUMER:
            snprintf(s.consumer, sizeof(s.consumer), "%s", optarg);
            break;
        case OPT_KEEP:
            if ((s.keep_ms = duration_ms(optarg)) < 0) {
                return usage_error(usage_ship, "bad --keep %s (15m, 90s, "
                                   "2h, 1d, 0)", optarg);
            }
            break;
        case OPT_INTERVAL:
            if ((s.block_ms = duration_ms(optarg)) <= 0) {
                return usage_error(usage_ship, "bad --interval %s (1s, "
                                   "500ms)", optarg);
            }
            break;
        case OPT_BATCH:
            errno = 0;
            s.batch = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || s.batch < 1
                || s.batch > 100000)
            {
                return usage_error(usage_ship, "bad --batch %s (1 to "
                                   "100000)", optarg);
            }
            break;
        case 'h':
            fputs(usage_ship, stdout);
            return 0;
        default:
            return usage_error(usage_ship, NULL, NULL);
        }
    }
    if (args_done(usage_ship, argc, argv, NULL) != 0) {
        return EXIT_USAGE;
    }
    if (print) {
        return pgschema_print(stdout) == 0 ? 0 : EXIT_USAGE;
    }
    if (s.archive == NULL) {
        return usage_error(usage_ship, "%s", "ship needs --archive CONNINFO");
    }
    if (init) {
        return ship_init(s.archive);
    }
    if (s.co.npubkeys == 0 && s.co.keyring == NULL) {
        return usage_error(usage_ship, "%s", "ship verifies what it "
                           "archives: give --pubkey FILE or --keyring FILE");
    }
    if (s.logo.publish != NULL && s.logo.key_file == NULL) {
        return usage_error(usage_ship, "%s", "--publish needs --log-key: "
                           "only a signed checkpoint is published");
    }
    if (pg_conninfo_check(s.archive) != 0 || av_keys_load(&s.co, &s.keys)
        != 0 || (s.log = mklog_new(&s.logo)) == NULL)
    {
        av_keys_free(&s.keys);
        return EXIT_USAGE;
    }
    if (s.logo.key_file == NULL) {
        ship_log("no --log-key: the Merkle log is kept but not signed (no "
                 "checkpoints, so no statements can be proven)");
    }
    if (s.consumer[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0) {
            snprintf(host, sizeof(host), "host");
        }
        host[sizeof(host) - 1] = '\0';
        snprintf(s.consumer, sizeof(s.consumer), "%s-%ld", host,
                 (long) getpid());
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    /* a round in flight finishes (libpq and hiredis retry interrupted
     * calls); the loop then sees `stop` */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = run(&s);
    if (rc == 0 && s.once && s.new_findings > 0) {
        rc = EXIT_FINDING;
    }
    if (s.once && rc != EXIT_USAGE) {
        printf("%llu entries archived from %s (%llu in the archive), %llu "
               "new finding%s, %llu trimmed; %lld left in Redis\n",
               (unsigned long long) s.st.entries, s.co.stream,
               (unsigned long long) s.st.archived_total,
               (unsigned long long) s.new_findings,
               s.new_findings == 1 ? "" : "s",
               (unsigned long long) s.st.trimmed, s.st.stream_len);
    }
    ship_stats_print(&s);
    s.active = 0;
    ship_metrics_write(&s);
    shipdb_reset(&s);
    if (s.pg != NULL) {
        PQfinish(s.pg);
    }
    shipverify_close(&s);
    drop_redis(&s);
    for (size_t i = 0; i < s.nholds; i++) {
        free(s.holds[i].chain);
    }
    free(s.holds);
    av_keys_free(&s.keys);
    mklog_free(s.log);
    return rc;
}
