/*
 * The Redis session (lib/redis/session.c) driven without a server: each
 * test plays the caller, takes the session's actions and answers with
 * scripted replies, on a clock of its own (milliseconds, no sleeping;
 * redissession_harness.h).
 */
#include "redissession_harness.h"

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

/* The state file could not be written (a full or read-only disk): the
 * epoch is asked to be saved again at the next connection's check, and
 * no more once it was. */
static void
test_epoch_save_retried(void **state)
{
    ca_rs_conf  c = conf();
    act        *a;
    int         i;

    c.save_epoch = 1;
    begin(&c);
    for (i = 0; i < 3; i++) {
        if (i > 0) {
            ca_rs_closed(t.s, CA_RS_PRIMARY, t.id[CA_RS_PRIMARY], "gone",
                         t.now);
            take();
            advance(100);               /* the backoff: 25 to 50 ms */
            next(CA_RS_CONNECT);
        }
        up();
        if (i == 2) {
            assert_false(has(CA_RS_SAVE_EPOCH, NULL));
            break;
        }
        a = next(CA_RS_SAVE_EPOCH);
        assert_string_equal(a->text, "e1");
        ca_rs_epoch_saved(t.s, i == 1);     /* failed, then written */
    }
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
        cmocka_unit_test(test_epoch_save_retried),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
