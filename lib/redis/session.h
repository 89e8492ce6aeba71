/*
 * Redis session: the gateway's Redis client without the I/O (issue 22).
 *
 * Everything the worker decides about Redis is decided here, in the
 * pattern of the audit writer (lib/audit/auditwriter.h): the caller owns
 * the sockets (hiredis on nginx's loop) and the clock; it feeds events in
 * (a connection made or failed or lost, a reply, a timer that fired) and
 * pulls actions out (connect, send, close, arm the timer, say this, the
 * connection is ready or not).  Decided here:
 *
 *  - which server is the primary: SENTINEL get-master-addr-by-name asked
 *    of the Sentinels in turn, one at a time, each bounded by
 *    connect_timeout; the answer must be an IPv4 literal (connected to
 *    without resolving) and is only a candidate: the server is used once
 *    its own INFO says role:master;
 *  - the handshake, pipelined in this order: AUTH, SELECT, SCRIPT LOAD of
 *    each script, INFO, CONFIG GET appendfsync, PING; the first refusal
 *    ends it (the refusals behind it follow from it);
 *  - the verdict on a new connection (contract §7.1, redisinfo.c): role,
 *    durability (AOF + appendfsync always, or connected replicas), a
 *    maxmemory-policy that can evict; a cluster node is refused louder
 *    and retried slowly; LOADING is a wait, not an error;
 *  - loss: the epoch key <stream>:epoch (SET NX, then GET) against the one
 *    seen before, and the chain heads (HGETALL, judged by the caller's
 *    heads hook, lib/audit); either lost: a discontinuity action;
 *  - the commands in flight in order, each with its deadline (the oldest
 *    late: the connection is dropped); under durability=replicas:N a WAIT
 *    N T pipelined behind each, whose count decides whether the caller
 *    sees the reply at all;
 *  - error replies: -READONLY (a replica: failover suspected) and
 *    -NOREPLICAS drop the connection, so that the next one is checked
 *    again; -OOM and others go to the caller as the refusal of that
 *    command only (ca_rs_classify);
 *  - Redis's memory: INFO memory once a second; a maxmemory-policy set to
 *    evict while connected drops the connection;
 *  - the archive's shipper: its hash <stream>:shipper (docs/archive.md)
 *    read in the same round (TIME, HMGET), judged ok, lagging, stale or
 *    absent (ca_rs_shipper_read);
 *  - the +switch-master / +promoted-slave watch on a Sentinel pub/sub
 *    connection of its own, retried on the next Sentinel a second after
 *    it is lost; a switch drops the connection and goes to the new
 *    primary at once;
 *  - the backoff between attempts: 50 ms doubling to 5 s, with jitter;
 *    a caller that needs Redis cuts it short (ca_rs_want), at most once
 *    per 200 ms.
 *
 * Times are milliseconds of a monotonic clock, given with every event.
 * The session asks for one timer at a time (CA_RS_TIMER); ca_rs_timer()
 * when it fires.  Strings of an action stay valid until the next call
 * into the session that is not ca_rs_next().
 */
#ifndef CA_REDIS_SESSION_H
#define CA_REDIS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "redisinfo.h"

/* The session's connections. */
#define CA_RS_PRIMARY   0           /* the primary: commands */
#define CA_RS_SENTINEL  1           /* asking a Sentinel for the primary */
#define CA_RS_WATCH     2           /* subscribed to +switch-master */
#define CA_RS_CONNS     3

/* A reply, as the caller's client library gave it. */
#define CA_RS_STATUS    1
#define CA_RS_ERROR     2
#define CA_RS_INTEGER   3
#define CA_RS_STRING    4
#define CA_RS_ARRAY     5
#define CA_RS_NIL       6

typedef struct ca_rs_reply  ca_rs_reply;

struct ca_rs_reply {
    int                 type;
    const char         *str;            /* STATUS, ERROR, STRING */
    size_t              len;
    long long           integer;
    size_t              elements;       /* ARRAY */
    const ca_rs_reply  *element;        /* elements, one after the other */
};

/* What an error reply means (ca_rs_classify). */
#define CA_RS_OK            0       /* not an error */
#define CA_RS_READONLY      1       /* a replica: the primary moved */
#define CA_RS_NOREPLICAS    2       /* too few replicas: not written */
#define CA_RS_OOM           3       /* memory full: not written */
#define CA_RS_LOADING       4       /* restarting: later */
#define CA_RS_REFUSED       5       /* any other error */

int ca_rs_classify(const ca_rs_reply *r);

/* Log levels and the trouble an action's text belongs to (the caller says
 * each once while it lasts and counts the events). */
#define CA_RS_ALERT     1
#define CA_RS_ERR       2
#define CA_RS_WARN      3
#define CA_RS_NOTICE    4
#define CA_RS_INFO      5

#define CA_RS_NOTE_NONE     0       /* a plain log line */
#define CA_RS_NOTE_TROUBLE  1       /* the connection's trouble */
#define CA_RS_NOTE_WARNED   2       /* a ready connection's warning */
#define CA_RS_NOTE_WAIT     3       /* WAIT short of replicas */

#define CA_RS_EV_NONE           0   /* counted nowhere */
#define CA_RS_EV_DOWN           1   /* an attempt failed, a drop */
#define CA_RS_EV_LOADING        2
#define CA_RS_EV_NOT_WRITABLE   3   /* READONLY, NOREPLICAS, evicting */
#define CA_RS_EV_WAIT_SHORT     4

/* Actions. */
#define CA_RS_CONNECT       1       /* conn, host:port or unix; id */
#define CA_RS_SEND          2       /* conn, id, data: one RESP command */
#define CA_RS_CLOSE         3       /* conn, id; graceful: replies due
                                       still come, then ca_rs_closed() */
#define CA_RS_TIMER         4       /* ms from now; -1: none */
#define CA_RS_LOG           5       /* level, note, event, text; over:
                                       the note's trouble is over */
#define CA_RS_READY         6       /* text: a warning, or "" */
#define CA_RS_NOT_READY     7       /* text: why (an attempt ended) */
#define CA_RS_MEMORY        8       /* info: what INFO said of memory */
#define CA_RS_SAVE_EPOCH    9       /* text: the epoch to keep on disk */
#define CA_RS_LOST          10      /* missing, expected, found: Redis
                                       lost acknowledged data */
#define CA_RS_SHIPPER       11      /* shipper: what the shipper said */

/*
 * What the archive's shipper (credit-audit ship) last said of itself in
 * its hash <stream>:shipper: lag_ms (the age of the oldest entry not yet
 * archived), updated_ms (Redis's TIME when it wrote it), archived_id.
 * The report's age is Redis's TIME now less updated_ms: one clock, the
 * shipper's and the gateway's hosts' clocks do not matter.
 */
#define CA_RS_SHIP_ABSENT   0       /* no hash: no shipper has reported */
#define CA_RS_SHIP_OK       1
#define CA_RS_SHIP_LAGGING  2       /* lag over CA_RS_SHIP_LAG_MS */
#define CA_RS_SHIP_STALE    3       /* report older than
                                       CA_RS_SHIP_STALE_MS: it is down */
#define CA_RS_SHIP_UNKNOWN  4       /* unreadable: why says */

/* A third of ship's default --keep (15 min): lagging that long, entries
 * still in Redis are about to be kept past their time. */
#define CA_RS_SHIP_LAG_MS    300000
/* The shipper writes the hash after every round, and every few seconds
 * while the archive is down: a minute without one, it is not running. */
#define CA_RS_SHIP_STALE_MS  60000

typedef struct {
    int                 state;          /* CA_RS_SHIP_* */
    long long           lag_ms;         /* -1: not known */
    long long           age_ms;         /* of the report; -1: not known */
    char                archived_id[48];
    char                why[96];        /* UNKNOWN */
} ca_rs_shipper;

/*
 * The hash's reply judged (HMGET <key> lag_ms updated_ms archived_id, or
 * an error) at Redis's time now_ms (TIME; -1 when not known).
 */
void ca_rs_shipper_read(ca_rs_shipper *sh, long long now_ms,
                        const ca_rs_reply *hash);

typedef struct {
    int                 type;
    int                 conn;
    uint64_t            id;             /* the connection's (CONNECT) */
    const char         *host;           /* CONNECT: NULL for unix */
    int                 port;
    const char         *unix_path;      /* CONNECT: or NULL */
    const char         *data;           /* SEND: RESP bytes */
    size_t              len;
    int                 graceful;       /* CLOSE */
    long                ms;             /* TIMER */
    int                 level;          /* LOG */
    int                 note;
    int                 event;
    int                 over;
    const char         *text;           /* LOG, READY, NOT_READY, epoch */
    const char         *missing;        /* LOST */
    const char         *expected;
    const char         *found;
    const ca_redisinfo *info;           /* MEMORY */
    const ca_rs_shipper *shipper;       /* SHIPPER */
} ca_rs_action;

typedef struct {
    const char         *host;
    int                 port;
} ca_rs_addr;

/* A command's reply for its owner; NULL: none will come (connection
 * lost, timed out, or WAIT short of replicas).  May call
 * ca_rs_command(). */
typedef void (*ca_rs_reply_pt)(void *ctx, void *owner,
                               const ca_rs_reply *reply);
/* The chain heads Redis holds (HGETALL) against those it acknowledged:
 * > 0 when some are behind, with both lists said in exp and found. */
typedef long (*ca_rs_heads_pt)(void *ctx, const ca_rs_reply *reply,
                               char *exp, char *found, size_t len);

typedef struct {
    const char         *host;           /* the primary, without Sentinel */
    int                 port;
    const char         *unix_path;      /* or this */
    const ca_rs_addr   *sentinels;      /* NULL: none */
    size_t              nsentinels;
    const char         *master;         /* Sentinel's name of it */
    size_t              watch_first;    /* Sentinel watched first */
    const char         *password;       /* NULL: no AUTH */
    long                db;             /* 0: no SELECT */
    const char *const  *scripts;        /* SCRIPT LOAD, NULL-ended */
    const char         *stream;         /* <stream>:epoch */
    const char         *heads_key;      /* HGETALL; NULL: credit:chains: */
    const char         *shipper_key;    /* HMGET each second; NULL: not
                                           read */
    int                 durability;     /* CA_DURABLE_* */
    long                wait_replicas;
    uint64_t            wait_timeout;   /* ms */
    uint64_t            connect_timeout;
    uint64_t            command_timeout;
    size_t              max_inflight;
    const char         *epoch;          /* seen before (state file), or
                                           NULL */
    int                 save_epoch;     /* CA_RS_SAVE_EPOCH when it moves */
    uint64_t            seed;           /* jitter and fresh epochs */
    ca_rs_reply_pt      reply;
    ca_rs_heads_pt      heads;          /* NULL: heads not checked */
    void               *ctx;
} ca_rs_conf;

typedef struct ca_rs  ca_rs;

ca_rs *ca_rs_new(const ca_rs_conf *conf);
void ca_rs_free(ca_rs *s);

/* The next action, 1; or 0 when there is none. */
int ca_rs_next(ca_rs *s, ca_rs_action *a);

/* Events. */
void ca_rs_start(ca_rs *s, uint64_t now);
void ca_rs_connected(ca_rs *s, int conn, uint64_t id, uint64_t now);
/* The connection could not be made, or is gone (a graceful CLOSE ends
 * here too): commands without a reply get NULL. */
void ca_rs_closed(ca_rs *s, int conn, uint64_t id, const char *why,
                  uint64_t now);
/* A reply or, on CA_RS_WATCH, a pub/sub message. */
void ca_rs_feed(ca_rs *s, int conn, uint64_t id, const ca_rs_reply *r,
                uint64_t now);
void ca_rs_timer(ca_rs *s, uint64_t now);
/* The worker stops: every connection closed, nothing more asked. */
void ca_rs_stop(ca_rs *s, uint64_t now);

/*
 * A command for the primary (argv, lens: any bytes).  0: sent, the reply
 * comes to conf.reply with owner; -1: declined (not ready, or
 * max_inflight commands out).
 */
int ca_rs_command(ca_rs *s, int argc, const char **argv, const size_t *lens,
                  void *owner, uint64_t now);

/*
 * The caller's answer to CA_RS_SAVE_EPOCH: 0 when the epoch could not be
 * kept (a full or read-only disk): it is asked for again at the next
 * connection's check, so that a write that failed once is not left
 * failed for the life of the worker.  Takes no action: may be called
 * while the actions are taken.
 */
void ca_rs_epoch_saved(ca_rs *s, int ok);

/* Whether commands are taken now. */
int ca_rs_ready(const ca_rs *s);
/*
 * A request needs Redis: 1 when ready, 0 when an attempt is under way
 * (its end comes as READY or NOT_READY), -1 when none is (failed at
 * once).  A backoff under way is cut short.
 */
int ca_rs_want(ca_rs *s, uint64_t now);
/* Why not ready, or the ready connection's warning; "" when none. */
const char *ca_rs_why(const ca_rs *s);
size_t ca_rs_inflight(const ca_rs *s);

#endif
