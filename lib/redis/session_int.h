/*
 * The Redis session's insides, shared by its files, which call one way
 * only (tests/integration/test_layers.py fails on a cycle):
 *
 *   session.c         the primary's life, the events, the one timer
 *     sentinel.c      the lookup and the +switch-master watch
 *     sessioncheck.c  what a new connection must show
 *     sessioncmd.c    the callers' commands in flight, WAIT
 *     sessionpoll.c   what is read every second (memory, shipper)
 *       sessionio.c   actions, connections, commands out, replies expected
 *
 * A part drives its own job and returns what it decided (a primary found,
 * a check failed, a connection no longer writable); session.c acts on it.
 * Not for callers.
 */
#ifndef CA_REDIS_SESSION_INT_H
#define CA_REDIS_SESSION_INT_H

#include "session.h"

#define CA_RS_EPOCH_LEN     40
#define CA_RS_HOST_LEN      17          /* an IPv4 literal and its NUL */
#define CA_RS_LIST_LEN      1024        /* chain heads, said */
#define CA_RS_MEM_POLL      1000        /* INFO memory, ms */
#define CA_RS_WATCH_RETRY   1000        /* ms */
#define CA_RS_CLOSE_GRACE   100         /* replies on the wire, ms */
#define CA_RS_WANT_EVERY    200         /* ms between demanded attempts */

/* What a reply on the primary answers. */
enum {
    CA_RS_K_AUTH = 1, CA_RS_K_SELECT, CA_RS_K_SCRIPT, CA_RS_K_INFO,
    CA_RS_K_FSYNC, CA_RS_K_PING, CA_RS_K_SETNX, CA_RS_K_GET, CA_RS_K_HEADS,
    CA_RS_K_MEM, CA_RS_K_USER, CA_RS_K_WAIT, CA_RS_K_TIME, CA_RS_K_SHIP
};

typedef struct {
    int                 kind;
    void               *owner;          /* USER, WAIT */
    uint64_t            deadline;       /* 0: the connect deadline's */
    int                 held;           /* WAIT: 1 the command's reply,
                                           2 lost (no memory) */
    ca_rs_reply         reply;          /* held: str in heap */
} ca_rs_pending;

/* An action and its strings, as offsets (+1) into the arena. */
#define CA_RS_F_HOST      0
#define CA_RS_F_UNIX      1
#define CA_RS_F_DATA      2
#define CA_RS_F_TEXT      3
#define CA_RS_F_MISSING   4
#define CA_RS_F_EXPECTED  5
#define CA_RS_F_FOUND     6
#define CA_RS_F_INFO      7
#define CA_RS_F_SHIPPER   8
#define CA_RS_FIELDS      9

typedef struct {
    ca_rs_action        a;
    size_t              off[CA_RS_FIELDS];
} ca_rs_act;

struct ca_rs {
    ca_rs_conf          conf;
    char               *strings;        /* copies of the conf's */

    ca_rs_act          *acts;
    size_t              nacts, acts_cap, acts_next;
    char               *arena;
    size_t              arena_len, arena_cap;
    int                 oom;            /* an action could not be kept */

    uint64_t            last_id;
    uint64_t            id[CA_RS_CONNS];        /* 0: none */
    int                 up[CA_RS_CONNS];        /* connected */
    long                armed;                  /* timer: at + 1, 0 */

    /* the primary */
    int                 ready, checking, closing, exiting, asking;
    int                 troubled;               /* trouble said */
    unsigned            failures;
    uint64_t            connect_by, close_by, last_attempt;
    uint64_t            reconnect_at;           /* 0: none */
    uint64_t            poll_next;
    int                 polls;                  /* replies due */
    long long           redis_ms;               /* TIME's; -1 unknown */
    char                host[CA_RS_HOST_LEN];
    int                 port;                   /* 0: ask Sentinel */
    char                why[256];
    ca_redisinfo        info;
    char                found[CA_RS_EPOCH_LEN];
    char                epoch[CA_RS_EPOCH_LEN];
    char                saved[CA_RS_EPOCH_LEN];
    int                 wait_short;             /* said */

    ca_rs_pending      *q;                      /* ring, in sending order */
    size_t              qcap, qhead, qlen;
    size_t              inflight;               /* USER */

    /* the Sentinel asked, and the one watched */
    size_t              s_next, s_at, s_tried;
    uint64_t            s_by;
    size_t              w_next, w_at;
    int                 w_subscribed;
    uint64_t            w_at_ms;                /* timeout or retry, 0 */

    uint64_t            rng;
};

/* A primary's address, as a part found it. */
typedef struct {
    char                host[CA_RS_HOST_LEN];
    int                 port;
} ca_rs_where;

/* What a caller's command's reply says of the connection (sessioncmd.c). */
#define CA_RS_HEARD_NOTHING     0       /* nothing delivered, or NULL */
#define CA_RS_HEARD_ANSWER      1       /* an answer: the primary works */
#define CA_RS_HEARD_READONLY    2
#define CA_RS_HEARD_NOREPLICAS  3

/* What a Sentinel lookup came to (sentinel.c). */
#define CA_RS_ASKING    0               /* still asking, or not asked */
#define CA_RS_FOUND     1
#define CA_RS_NOBODY    (-1)            /* no Sentinel knows */

/* sessionio.c */
ca_rs_act *ca_rs_push(ca_rs *s, int type);
void ca_rs_set(ca_rs *s, ca_rs_act *a, int field, const char *str,
               size_t len);
void ca_rs_log(ca_rs *s, int level, int note, int event, const char *fmt,
               ...)
#ifdef __GNUC__
    __attribute__((format(printf, 5, 6)))
#endif
    ;
uint64_t ca_rs_open(ca_rs *s, int conn, const char *host, int port,
                    const char *unix_path);
void ca_rs_shut(ca_rs *s, int conn, int graceful);
void ca_rs_send(ca_rs *s, int conn, int argc, const char **argv,
                const size_t *lens);
void ca_rs_sendv(ca_rs *s, int conn, const char *a0, const char *a1,
                 const char *a2, const char *a3);
int ca_rs_expect(ca_rs *s, int kind, void *owner, uint64_t deadline);
ca_rs_pending *ca_rs_head(ca_rs *s);
void ca_rs_pop(ca_rs *s);
uint64_t ca_rs_rand(ca_rs *s);
void ca_rs_begin(ca_rs *s);

/* sessioncmd.c */
int ca_rs_command_send(ca_rs *s, int argc, const char **argv,
                       const size_t *lens, void *owner, uint64_t now);
int ca_rs_reply_cmd(ca_rs *s, ca_rs_pending *p, const ca_rs_reply *r);
void ca_rs_fail_pending(ca_rs *s);

/* sessionpoll.c */
void ca_rs_poll(ca_rs *s, uint64_t now);
int ca_rs_mem_reply(ca_rs *s, const ca_rs_reply *r, char *why, size_t len);
void ca_rs_ship_reply(ca_rs *s, int kind, const ca_rs_reply *r);

/* sessioncheck.c */
void ca_rs_check_start(ca_rs *s);
int ca_rs_check_reply(ca_rs *s, int kind, const ca_rs_reply *r,
                      uint64_t now);

/* sentinel.c */
void ca_rs_sentinel_ask(ca_rs *s, uint64_t now);
void ca_rs_sentinel_connected(ca_rs *s);
int ca_rs_sentinel_reply(ca_rs *s, const ca_rs_reply *r, ca_rs_where *at,
                         uint64_t now);
int ca_rs_sentinel_lost(ca_rs *s, const char *why, uint64_t now);
void ca_rs_watch_start(ca_rs *s, uint64_t now);
void ca_rs_watch_connected(ca_rs *s);
int ca_rs_watch_reply(ca_rs *s, const ca_rs_reply *r, ca_rs_where *at);
void ca_rs_watch_lost(ca_rs *s, const char *why, uint64_t now);
void ca_rs_watch_timer(ca_rs *s, uint64_t now);

#endif
