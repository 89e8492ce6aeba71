/*
 * The Redis session (lib/redis/session.c) driven without a server: each
 * test plays the caller, takes the session's actions and answers with
 * scripted replies, on a clock of its own (milliseconds, no sleeping).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "redis/session.h"

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

/* --- the tests ------------------------------------------------------------ */

static void
test_connect_auth_select(void **state)
{
    static const char *const  scripts[] = { "return 1", NULL };
    ca_rs_conf                c = conf();
    act                      *a;

    c.password = "s3cret";
    c.db = 2;
    c.scripts = scripts;
    begin(&c);
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_PRIMARY);
    assert_string_equal(a->text, "127.0.0.1");
    assert_int_equal(a->port, 6379);
    assert_false(ca_rs_ready(t.s));
    assert_int_equal(ca_rs_want(t.s, t.now), 0);     /* under way */

    connected(CA_RS_PRIMARY);
    /* in this order: nothing runs unauthenticated or in another db */
    sent(CA_RS_PRIMARY, "AUTH s3cret");
    sent(CA_RS_PRIMARY, "SELECT 2");
    sent(CA_RS_PRIMARY, "SCRIPT LOAD return 1");
    feed(CA_RS_PRIMARY, R(CA_RS_STATUS, "OK"));
    feed(CA_RS_PRIMARY, R(CA_RS_STATUS, "OK"));
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, "e0c9035898dd52fc65c41454cec9c4d2"));
    checks(aof_primary, "always");
    assert_false(ca_rs_ready(t.s));                  /* loss not checked */
    assert_int_equal(command(&t), -1);
    loss("e1");
    assert_true(has(CA_RS_LOG, "redis connected (durability=aof)"));
    assert_true(has(CA_RS_READY, NULL));
    assert_false(has(CA_RS_LOST, NULL));
    assert_true(ca_rs_ready(t.s));
    assert_int_equal(ca_rs_want(t.s, t.now), 1);

    assert_int_equal(command(&c), 0);
    sent(CA_RS_PRIMARY, "INCR k");
    feed(CA_RS_PRIMARY, INT(7));
    assert_int_equal(t.nreplies, 1);
    assert_ptr_equal(t.owner[0], &c);
    assert_int_equal(t.rtype[0], CA_RS_INTEGER);
    assert_int_equal(ca_rs_inflight(t.s), 0);
    teardown();
    (void) state;
}

static void
test_auth_refused(void **state)
{
    ca_rs_conf  c = conf();

    c.password = "wrong";
    begin(&c);
    connected(CA_RS_PRIMARY);
    sent(CA_RS_PRIMARY, "AUTH wrong");
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "WRONGPASS invalid password"));
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_true(has(CA_RS_NOT_READY,
                    "AUTH refused: WRONGPASS invalid password"));
    assert_false(ca_rs_ready(t.s));
    /* what follows from it is not its verdict: the connection is gone */
    assert_int_equal(t.id[CA_RS_PRIMARY], 0);
    teardown();
    (void) state;
}

/* A refusal of the check: closed, not ready (why), another attempt after
 * a backoff of 25 to 50 ms. */
static void
refused(const char *info, const char *fsync, const char *why)
{
    ca_rs_start(t.s, t.now);
    take();
    connected(CA_RS_PRIMARY);
    checks(info, fsync);
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_true(has(CA_RS_NOT_READY, why));
    assert_false(has(CA_RS_READY, NULL));
    assert_false(ca_rs_ready(t.s));
    assert_string_equal(ca_rs_why(t.s), next(CA_RS_NOT_READY)->text);
    assert_true(t.timer >= (long) t.now + 25 && t.timer <= (long) t.now + 50);
    advance(50);
    assert_true(has(CA_RS_CONNECT, NULL));
}

static void
test_aof_off_refused(void **state)
{
    ca_rs_conf  c = conf();

    setup(&c);
    refused("role:master\r\naof_enabled:0\r\nmaxmemory_policy:noeviction\r\n",
            "always", "not used: ");
    assert_non_null(strstr(ca_rs_why(t.s), "not used: "));
    teardown();
    (void) state;
}

static void
test_appendfsync_no_refused(void **state)
{
    ca_rs_conf  c = conf();

    setup(&c);
    refused(aof_primary, "no", "appendfsync is no");
    teardown();
    (void) state;
}

static void
test_eviction_refused(void **state)
{
    ca_rs_conf  c = conf();

    setup(&c);
    refused("role:master\r\naof_enabled:1\r\nmaxmemory_policy:allkeys-lru\r\n",
            "always", "maxmemory-policy is allkeys-lru");
    teardown();
    (void) state;
}

/* Set to evict while connected: found by INFO memory within a second. */
static void
test_eviction_while_connected(void **state)
{
    ca_rs_conf  c = conf();

    begin(&c);
    up();
    advance(1000);
    sent(CA_RS_PRIMARY, "INFO memory");
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, "used_memory:10\r\nmaxmemory:100\r\n"
                                        "maxmemory_policy:volatile-ttl\r\n"));
    assert_true(has(CA_RS_MEMORY, NULL));
    assert_true(has(CA_RS_LOG, "maxmemory-policy volatile-ttl can evict"));
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_false(ca_rs_ready(t.s));
    assert_int_equal(command(&c), -1);
    teardown();
    (void) state;
}

static void
sentinel_names(const char *host, const char *port)
{
    ca_rs_reply  addr[2] = { R(CA_RS_STRING, host), R(CA_RS_STRING, port) };

    connected(CA_RS_SENTINEL);
    sent(CA_RS_SENTINEL, "SENTINEL get-master-addr-by-name mymaster");
    feed(CA_RS_SENTINEL, ARR(2, addr));
}

static ca_rs_conf
sentinel_conf(void)
{
    ca_rs_conf  c = conf();

    c.host = NULL;
    c.sentinels = two_sentinels;
    c.nsentinels = 2;
    c.master = "mymaster";
    c.watch_first = 1;
    return c;
}

/* Sentinel 26379 names a primary that keeps nothing: refused, and the
 * next attempt asks the other Sentinel, which names a durable one. */
static void
test_sentinel_names_non_durable(void **state)
{
    ca_rs_conf  c = sentinel_conf();
    act        *a;

    begin(&c);
    a = next(CA_RS_CONNECT);                    /* the watch, first */
    assert_int_equal(a->conn, CA_RS_WATCH);
    assert_int_equal(a->port, 26380);
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_SENTINEL);
    assert_int_equal(a->port, 26379);
    sentinel_names("10.0.0.1", "7000");
    assert_true(has(CA_RS_LOG, "primary of \"mymaster\" is 10.0.0.1:7000"));
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_PRIMARY);
    assert_string_equal(a->text, "10.0.0.1");
    assert_int_equal(a->port, 7000);
    connected(CA_RS_PRIMARY);
    checks("role:master\r\naof_enabled:0\r\nmaxmemory_policy:noeviction\r\n",
           "always");
    assert_true(has(CA_RS_NOT_READY, "not used: "));
    advance(50);
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_SENTINEL);
    assert_int_equal(a->port, 26380);
    sentinel_names("10.0.0.2", "7001");
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_PRIMARY);
    assert_string_equal(a->text, "10.0.0.2");
    up();
    teardown();
    (void) state;
}

/* No Sentinel knows: each said, then not ready and a backoff. */
static void
test_sentinel_none_knows(void **state)
{
    ca_rs_conf  c = sentinel_conf();

    begin(&c);
    connected(CA_RS_SENTINEL);
    feed(CA_RS_SENTINEL, R(CA_RS_NIL, NULL));
    assert_true(has(CA_RS_LOG, "Sentinel 127.0.0.1:26379: master unknown"));
    /* the second does not answer within connect_timeout */
    advance(500);
    assert_true(has(CA_RS_LOG, "Sentinel 127.0.0.1:26380: timed out"));
    assert_true(has(CA_RS_NOT_READY,
                    "no Sentinel knows the primary of \"mymaster\""));
    assert_false(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

/* +switch-master: the connection goes (its command gets NULL) and the new
 * primary is connected to at once, without asking or backing off. */
static void
test_switch_master(void **state)
{
    ca_rs_conf   c = sentinel_conf();
    ca_rs_reply  sub[3] = { R(CA_RS_STRING, "subscribe"),
                            R(CA_RS_STRING, "+promoted-slave"), INT(2) };
    ca_rs_reply  msg[3] = { R(CA_RS_STRING, "message"),
                            R(CA_RS_STRING, "+switch-master"),
                            R(CA_RS_STRING, "mymaster 10.0.0.1 7000 "
                                            "10.0.0.3 7002") };
    ca_rs_reply  other[3] = { R(CA_RS_STRING, "message"),
                              R(CA_RS_STRING, "+switch-master"),
                              R(CA_RS_STRING, "theirs 10.0.0.1 7000 "
                                              "10.0.0.9 7009") };
    act         *a;

    begin(&c);
    connected(CA_RS_WATCH);
    sent(CA_RS_WATCH, "SUBSCRIBE +switch-master +promoted-slave");
    feed(CA_RS_WATCH, ARR(3, sub));
    assert_true(has(CA_RS_LOG, "watching +switch-master on Sentinel "
                               "127.0.0.1:26380"));
    sentinel_names("10.0.0.1", "7000");
    up();
    assert_int_equal(command(&c), 0);
    t.seen = t.n;
    feed(CA_RS_WATCH, ARR(3, other));           /* another master's */
    assert_int_equal(t.seen, t.n);
    assert_true(ca_rs_ready(t.s));
    feed(CA_RS_WATCH, ARR(3, msg));
    assert_true(has(CA_RS_LOG, "the primary moved (+switch-master)"));
    a = next(CA_RS_CLOSE);
    assert_int_equal(a->conn, CA_RS_PRIMARY);
    assert_int_equal(t.nreplies, 1);
    assert_ptr_equal(t.owner[0], &c);
    assert_int_equal(t.rtype[0], 0);            /* no reply */
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_PRIMARY);
    assert_string_equal(a->text, "10.0.0.3");
    assert_int_equal(a->port, 7002);
    teardown();
    (void) state;
}

/* -READONLY: the primary became a replica.  The caller sees the refusal,
 * the connection goes gracefully, and the next attempt asks Sentinel. */
static void
test_readonly_after_failover(void **state)
{
    ca_rs_conf  c = sentinel_conf();
    act        *a;

    begin(&c);
    sentinel_names("10.0.0.1", "7000");
    up();
    assert_int_equal(command(&c), 0);
    feed(CA_RS_PRIMARY,
         R(CA_RS_ERROR, "READONLY You can't write against a read only "
                        "replica."));
    assert_int_equal(t.nreplies, 1);
    assert_int_equal(t.rtype[0], CA_RS_ERROR);
    assert_true(has(CA_RS_LOG, "no longer a primary to write to (READONLY)"));
    a = next(CA_RS_CLOSE);
    assert_true(a->graceful);
    assert_false(ca_rs_ready(t.s));
    assert_string_equal(ca_rs_why(t.s), "not used: READONLY");
    assert_int_equal(command(&c), -1);
    ca_rs_closed(t.s, CA_RS_PRIMARY, t.id[CA_RS_PRIMARY], NULL, t.now);
    take();
    assert_true(has(CA_RS_NOT_READY, "READONLY"));
    advance(50);
    a = next(CA_RS_CONNECT);
    assert_int_equal(a->conn, CA_RS_SENTINEL);
    teardown();
    (void) state;
}

/* replicas:1: WAIT behind each command; -NOREPLICAS drops the connection,
 * a WAIT short of replicas turns the reply into none. */
static void
test_noreplicas_and_wait(void **state)
{
    ca_rs_conf  c = conf();

    c.durability = CA_DURABLE_REPLICAS;
    c.wait_replicas = 1;
    c.wait_timeout = 100;
    begin(&c);
    up();
    assert_int_equal(command(&c), 0);
    sent(CA_RS_PRIMARY, "INCR k");
    sent(CA_RS_PRIMARY, "WAIT 1 100");
    feed(CA_RS_PRIMARY, INT(1));
    assert_int_equal(t.nreplies, 0);            /* held for WAIT */
    feed(CA_RS_PRIMARY, INT(0));
    assert_int_equal(t.nreplies, 1);
    assert_int_equal(t.rtype[0], 0);            /* not durable: none */
    assert_true(has(CA_RS_LOG, "WAIT 1: fewer replicas acknowledged"));
    assert_true(ca_rs_ready(t.s));

    assert_int_equal(command(&c), 0);
    feed(CA_RS_PRIMARY, INT(2));
    feed(CA_RS_PRIMARY, INT(1));
    assert_int_equal(t.nreplies, 2);
    assert_int_equal(t.rtype[1], CA_RS_INTEGER);
    assert_true(has(CA_RS_LOG, "WAIT counts the replicas"));

    /* a nil reply counted by WAIT is a reply like any other */
    assert_int_equal(command(&c), 0);
    feed(CA_RS_PRIMARY, R(CA_RS_NIL, NULL));
    feed(CA_RS_PRIMARY, INT(1));
    assert_int_equal(t.nreplies, 3);
    assert_int_equal(t.rtype[2], CA_RS_NIL);

    assert_int_equal(command(&c), 0);
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "NOREPLICAS Not enough good replicas"
                                       " to write."));
    feed(CA_RS_PRIMARY, INT(0));
    assert_int_equal(t.nreplies, 4);
    assert_int_equal(t.rtype[3], CA_RS_ERROR);
    assert_string_equal(t.rstr[3], "NOREPLICAS Not enough good replicas to "
                                   "write.");
    assert_true(has(CA_RS_LOG, "(NOREPLICAS): reconnecting"));
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_false(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

/* -OOM refuses that write only: the connection stays. */
static void
test_oom(void **state)
{
    ca_rs_conf   c = conf();
    ca_rs_reply  oom = R(CA_RS_ERROR, "OOM command not allowed when used "
                                      "memory > 'maxmemory'.");

    begin(&c);
    up();
    assert_int_equal(command(&c), 0);
    t.seen = t.n;
    feed(CA_RS_PRIMARY, oom);
    assert_int_equal(ca_rs_classify(&oom), CA_RS_OOM);
    assert_int_equal(t.rtype[0], CA_RS_ERROR);
    assert_false(has(CA_RS_CLOSE, NULL));
    assert_true(ca_rs_ready(t.s));
    assert_int_equal(command(&c), 0);
    teardown();
    (void) state;
}

static void
test_connect_timeout(void **state)
{
    ca_rs_conf  c = conf();

    begin(&c);
    assert_true(has(CA_RS_CONNECT, NULL));
    advance(499);
    assert_false(has(CA_RS_CLOSE, NULL));
    advance(1);
    assert_true(has(CA_RS_LOG, "redis: connect timed out"));
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_true(has(CA_RS_NOT_READY, NULL));
    /* demand cuts the backoff short, once per 200 ms of attempts: the
     * last one began 500 ms ago */
    t.seen = t.n;
    assert_int_equal(ca_rs_want(t.s, t.now), 0);
    take();
    assert_true(has(CA_RS_CONNECT, NULL));
    ca_rs_closed(t.s, CA_RS_PRIMARY, t.id[CA_RS_PRIMARY],
                 "Connection refused", t.now);
    take();
    assert_true(has(CA_RS_LOG, "redis connect failed: Connection refused"));
    advance(10);
    t.seen = t.n;
    assert_int_equal(ca_rs_want(t.s, t.now), -1);
    take();
    assert_false(has(CA_RS_CONNECT, NULL));
    advance(190);
    assert_int_equal(ca_rs_want(t.s, t.now), 0);
    take();
    assert_true(has(CA_RS_CONNECT, NULL));
    teardown();
    (void) state;
}

static void
test_command_timeout(void **state)
{
    ca_rs_conf  c = conf();

    begin(&c);
    up();
    assert_int_equal(command(&c), 0);
    advance(999);
    assert_int_equal(t.nreplies, 0);
    /* INFO memory went out meanwhile: it is no command of the caller's */
    advance(1);
    assert_true(has(CA_RS_LOG, "redis: command timed out"));
    assert_true(has(CA_RS_CLOSE, NULL));
    assert_int_equal(t.nreplies, 1);
    assert_int_equal(t.rtype[0], 0);
    assert_false(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

/* A Redis still loading its data: a wait, said as such, then again. */
static void
test_loading(void **state)
{
    ca_rs_conf  c = conf();
    act        *a;

    begin(&c);
    connected(CA_RS_PRIMARY);
    sent(CA_RS_PRIMARY, "INFO");
    sent(CA_RS_PRIMARY, "CONFIG GET appendfsync");
    sent(CA_RS_PRIMARY, "PING");
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "LOADING Redis is loading"));
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "LOADING Redis is loading"));
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "LOADING Redis is loading"));
    a = find(CA_RS_LOG, "loading");
    assert_int_equal(a->event, CA_RS_EV_LOADING);
    assert_int_equal(a->level, CA_RS_NOTICE);
    assert_non_null(strstr(a->text, "loading its data: waiting"));
    assert_true(has(CA_RS_NOT_READY, "not ready: LOADING"));
    advance(50);
    assert_true(has(CA_RS_CONNECT, NULL));
    connected(CA_RS_PRIMARY);
    checks(aof_primary, "always");
    loss("e1");
    assert_true(ca_rs_ready(t.s));
    /* after trouble, "connected" is said when it answers */
    assert_false(has(CA_RS_LOG, "redis connected"));
    assert_int_equal(command(&c), 0);
    feed(CA_RS_PRIMARY, INT(1));
    a = find(CA_RS_LOG, "redis answers");
    assert_true(a->over);
    teardown();
    (void) state;
}

/* The epoch seen before is gone: Redis lost what it acknowledged. */
static void
test_epoch_lost(void **state)
{
    ca_rs_conf  c = conf();
    act        *a;

    c.epoch = "old-epoch";
    c.save_epoch = 1;
    begin(&c);
    connected(CA_RS_PRIMARY);
    checks(aof_primary, "always");
    loss("new-epoch");
    assert_true(ca_rs_ready(t.s));
    a = next(CA_RS_SAVE_EPOCH);
    assert_string_equal(a->text, "new-epoch");
    a = next(CA_RS_READY);
    a = next(CA_RS_LOST);
    assert_string_equal(a->text, "epoch|epoch=old-epoch|epoch=new-epoch");
    teardown();
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_auth_select),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_aof_off_refused),
        cmocka_unit_test(test_appendfsync_no_refused),
        cmocka_unit_test(test_eviction_refused),
        cmocka_unit_test(test_eviction_while_connected),
        cmocka_unit_test(test_sentinel_names_non_durable),
        cmocka_unit_test(test_sentinel_none_knows),
        cmocka_unit_test(test_switch_master),
        cmocka_unit_test(test_readonly_after_failover),
        cmocka_unit_test(test_noreplicas_and_wait),
        cmocka_unit_test(test_oom),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_loading),
        cmocka_unit_test(test_epoch_lost),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
