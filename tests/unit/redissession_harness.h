/*
 * The harness of the Redis session's unit tests (test_redissession.c,
 * test_redisshipper.c): the test plays the caller, takes the
 * session's actions and answers with scripted replies, on a clock of its
 * own (milliseconds, no sleeping).
 */
#ifndef TEST_REDISSESSION_HARNESS_H
#define TEST_REDISSESSION_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/session.h"

/* each test file uses some of these */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

#define MAXA  256

typedef struct {
    int         type, conn, port, graceful, level, note, event, over;
    uint64_t    id;
    long        ms;
    char        text[1024];             /* SEND: argv joined by spaces */
} act;

typedef struct {
    ca_rs      *s;
    act         a[MAXA];
    int         n, seen;                /* taken, looked at */
    uint64_t    now, id[CA_RS_CONNS];
    long        timer;                  /* at, or -1 */
    void       *owner[16];
    int         rtype[16], nreplies;
    char        rstr[16][64];
} T;

static T  t;

static const char aof_primary[] =
    "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"
    "# Persistence\r\nloading:0\r\naof_enabled:1\r\n"
    "# Memory\r\nused_memory:1000\r\nmaxmemory:0\r\n"
    "maxmemory_policy:noeviction\r\n";

static const ca_rs_addr  two_sentinels[] = {
    { "127.0.0.1", 26379 }, { "127.0.0.1", 26380 }
};

/* "*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\n" -> "AUTH x" */
static void
unresp(const char *p, size_t len, char *out, size_t outlen)
{
    const char  *end = p + len;
    size_t       o = 0, n, j;
    long         argc, i;

    argc = strtol(p + 1, (char **) &p, 10);
    p += 2;
    for (i = 0; i < argc && p < end; i++) {
        n = (size_t) strtol(p + 1, (char **) &p, 10);
        p += 2;
        if (o && o < outlen - 1) {
            out[o++] = ' ';
        }
        for (j = 0; j < n; j++) {
            if (o < outlen - 1) {
                out[o++] = p[j];
            }
        }
        p += n + 2;
    }
    out[o] = '\0';
}

static void
take(void)
{
    ca_rs_action  x;
    act          *a;

    while (ca_rs_next(t.s, &x)) {
        assert_true(t.n < MAXA);
        a = &t.a[t.n++];
        memset(a, 0, sizeof(*a));
        a->type = x.type;
        a->conn = x.conn;
        a->id = x.id;
        a->port = x.port;
        a->graceful = x.graceful;
        a->ms = x.ms;
        a->level = x.level;
        a->note = x.note;
        a->event = x.event;
        a->over = x.over;
        if (x.type == CA_RS_SEND) {
            unresp(x.data, x.len, a->text, sizeof(a->text));
        } else if (x.type == CA_RS_CONNECT) {
            snprintf(a->text, sizeof(a->text), "%s", x.host ? x.host
                                                          : x.unix_path);
            t.id[x.conn] = x.id;
        } else if (x.type == CA_RS_SHIPPER) {
            snprintf(a->text, sizeof(a->text), "state=%d lag=%lld age=%lld "
                     "id=%s why=%s", x.shipper->state, x.shipper->lag_ms,
                     x.shipper->age_ms, x.shipper->archived_id,
                     x.shipper->why);
        } else if (x.type == CA_RS_LOST) {
            snprintf(a->text, sizeof(a->text), "%s|%s|%s", x.missing,
                     x.expected, x.found);
        } else if (x.text) {
            snprintf(a->text, sizeof(a->text), "%s", x.text);
        }
        if (x.type == CA_RS_TIMER) {
            t.timer = x.ms < 0 ? -1 : (long) t.now + x.ms;
        }
        if (x.type == CA_RS_CLOSE && !x.graceful) {
            t.id[x.conn] = 0;
        }
    }
}

/* The next action of `type` (others of no interest skipped), on conn. */
static act *
next(int type)
{
    while (t.seen < t.n) {
        act  *a = &t.a[t.seen++];
        if (a->type == type) {
            return a;
        }
    }
    fail_msg("no action %d after %d taken", type, t.n);
    return NULL;
}

static void
sent(int conn, const char *text)
{
    act  *a = next(CA_RS_SEND);

    assert_int_equal(a->conn, conn);
    assert_string_equal(a->text, text);
}

/* Whether an action of `type` (with text containing `sub`) was taken
 * since the last look, without moving it. */
static int
has(int type, const char *sub)
{
    int  i;

    for (i = t.seen; i < t.n; i++) {
        if (t.a[i].type == type && (sub == NULL || strstr(t.a[i].text, sub)))
        {
            return 1;
        }
    }
    return 0;
}

static act *
find(int type, const char *sub)
{
    while (t.seen < t.n) {
        act  *a = &t.a[t.seen++];
        if (a->type == type && strstr(a->text, sub)) {
            return a;
        }
    }
    fail_msg("no action %d with \"%s\"", type, sub);
    return NULL;
}

static void
on_reply(void *ctx, void *owner, const ca_rs_reply *r)
{
    int  i = t.nreplies++;

    (void) ctx;
    t.owner[i] = owner;
    t.rtype[i] = r ? r->type : 0;
    snprintf(t.rstr[i], sizeof(t.rstr[i]), "%.*s",
             r && r->str ? (int) r->len : 0, r && r->str ? r->str : "");
}

static void
setup(ca_rs_conf *c)
{
    memset(&t, 0, sizeof(t));
    t.now = 1000;
    t.timer = -1;
    t.s = ca_rs_new(c);
    assert_non_null(t.s);
}

/* A session, started. */
static void
begin(ca_rs_conf *c)
{
    setup(c);
    ca_rs_start(t.s, t.now);
    take();
}

static ca_rs_conf
conf(void)
{
    ca_rs_conf  c;

    memset(&c, 0, sizeof(c));
    c.host = "127.0.0.1";
    c.port = 6379;
    c.stream = "credit:audit";
    c.durability = CA_DURABLE_AOF;
    c.connect_timeout = 500;
    c.command_timeout = 1000;
    c.max_inflight = 8;
    c.seed = 42;
    c.reply = on_reply;
    return c;
}

static void
teardown(void)
{
    ca_rs_free(t.s);
    t.s = NULL;
}

/* Time passes; the session's timer fires when due. */
static void
advance(uint64_t ms)
{
    uint64_t  to = t.now + ms;

    while (t.timer >= 0 && (uint64_t) t.timer <= to) {
        t.now = (uint64_t) t.timer;
        t.timer = -1;
        ca_rs_timer(t.s, t.now);
        take();
    }
    t.now = to;
}

static void
feed(int conn, ca_rs_reply r)
{
    ca_rs_feed(t.s, conn, t.id[conn], &r, t.now);
    take();
}

static ca_rs_reply
R(int type, const char *str)
{
    ca_rs_reply  r;

    memset(&r, 0, sizeof(r));
    r.type = type;
    r.str = str;
    r.len = str ? strlen(str) : 0;
    return r;
}

static ca_rs_reply
INT(long long v)
{
    ca_rs_reply  r = R(CA_RS_INTEGER, NULL);

    r.integer = v;
    return r;
}

static ca_rs_reply
ARR(size_t n, const ca_rs_reply *el)
{
    ca_rs_reply  r = R(CA_RS_ARRAY, NULL);

    r.elements = n;
    r.element = el;
    return r;
}

static void
connected(int conn)
{
    ca_rs_connected(t.s, conn, t.id[conn], t.now);
    take();
}

/* The handshake's checks answered: INFO, CONFIG GET appendfsync, PING. */
static void
checks(const char *info, const char *fsync)
{
    ca_rs_reply  cfg[2] = { R(CA_RS_STRING, "appendfsync"),
                            R(CA_RS_STRING, fsync) };

    sent(CA_RS_PRIMARY, "INFO");
    sent(CA_RS_PRIMARY, "CONFIG GET appendfsync");
    sent(CA_RS_PRIMARY, "PING");
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, info));
    feed(CA_RS_PRIMARY, ARR(2, cfg));
    feed(CA_RS_PRIMARY, R(CA_RS_STATUS, "PONG"));
}

/* The loss check, with the epoch Redis has. */
static void
loss(const char *epoch)
{
    act  *a = next(CA_RS_SEND);

    assert_non_null(strstr(a->text, "SET credit:audit:epoch "));
    assert_non_null(strstr(a->text, " NX"));
    sent(CA_RS_PRIMARY, "GET credit:audit:epoch");
    sent(CA_RS_PRIMARY, "HGETALL credit:chains:");
    feed(CA_RS_PRIMARY, R(CA_RS_STATUS, "OK"));
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, epoch));
    feed(CA_RS_PRIMARY, ARR(0, NULL));
}

/* Connected, checked, ready (no AUTH, no SELECT). */
static void
up(void)
{
    connected(CA_RS_PRIMARY);
    checks(aof_primary, "always");
    loss("e1");
    assert_true(has(CA_RS_READY, NULL));
    assert_true(ca_rs_ready(t.s));
}

static int
command(void *owner)
{
    const char  *argv[2] = { "INCR", "k" };
    size_t       lens[2] = { 4, 1 };
    int          rc;

    rc = ca_rs_command(t.s, 2, argv, lens, owner, t.now);
    take();
    return rc;
}

#endif
