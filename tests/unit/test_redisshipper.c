/*
 * The Redis session's read of the archive's shipper (lib/redis/
 * sessionpoll.c): its hash <stream>:shipper, read with Redis's TIME once
 * a second beside INFO memory, judged ok, lagging, stale, absent or
 * unknown, against scripted replies (redissession_harness.h).
 */
#include "redissession_harness.h"

#define NOW_S    "1765000000"
#define NOW_MS   1765000000000LL

static ca_rs_conf
shipconf(void)
{
    ca_rs_conf  c = conf();

    c.shipper_key = "credit:audit:shipper";
    return c;
}

/* Ready, then the next poll sent: INFO memory, TIME, HMGET. */
static void
polled(void)
{
    advance(1000);
    sent(CA_RS_PRIMARY, "INFO memory");
    sent(CA_RS_PRIMARY, "TIME");
    sent(CA_RS_PRIMARY, "HMGET credit:audit:shipper lag_ms updated_ms "
                        "archived_id");
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, aof_primary));
}

/* TIME answered NOW_MS + 250 ms, then the hash; the SHIPPER action's
 * text (the harness's "state= lag= age= id= why="). */
static const char *
answered(ca_rs_reply hash)
{
    ca_rs_reply  tm[2] = { R(CA_RS_STRING, NOW_S),
                           R(CA_RS_STRING, "250000") };

    feed(CA_RS_PRIMARY, ARR(2, tm));
    feed(CA_RS_PRIMARY, hash);
    return next(CA_RS_SHIPPER)->text;
}

static const char *
hash(const char *lag, const char *updated, const char *id)
{
    static ca_rs_reply  el[3];

    el[0] = lag ? R(CA_RS_STRING, lag) : R(CA_RS_NIL, NULL);
    el[1] = updated ? R(CA_RS_STRING, updated) : R(CA_RS_NIL, NULL);
    el[2] = id ? R(CA_RS_STRING, id) : R(CA_RS_NIL, NULL);
    return answered(ARR(3, el));
}

static void
test_shipper_present(void **state)
{
    ca_rs_conf  c = shipconf();
    char        want[128];

    begin(&c);
    up();
    polled();
    snprintf(want, sizeof(want), "state=%d lag=1500 age=250 "
             "id=1765000000000-3 why=", CA_RS_SHIP_OK);
    assert_string_equal(hash("1500", "1765000000000", "1765000000000-3"),
                        want);
    /* lagging: over 5 min; stale: reported over a minute ago */
    polled();
    snprintf(want, sizeof(want), "state=%d lag=300001 age=250 id=x why=",
             CA_RS_SHIP_LAGGING);
    assert_string_equal(hash("300001", "1765000000000", "x"), want);
    polled();
    snprintf(want, sizeof(want), "state=%d lag=20 age=60250 id=x why=",
             CA_RS_SHIP_STALE);
    assert_string_equal(hash("20", "1764999940000", "x"), want);
    /* exactly a minute: not yet */
    polled();
    snprintf(want, sizeof(want), "state=%d lag=20 age=60000 id=x why=",
             CA_RS_SHIP_OK);
    assert_string_equal(hash("20", "1764999940250", "x"), want);
    /* a report from Redis's future (its clock moved back): age 0 */
    polled();
    snprintf(want, sizeof(want), "state=%d lag=0 age=0 id= why=",
             CA_RS_SHIP_OK);
    assert_string_equal(hash("0", "1765000009000", NULL), want);
    assert_true(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

static void
test_shipper_absent(void **state)
{
    ca_rs_conf  c = shipconf();
    char        want[128];

    begin(&c);
    up();
    polled();
    snprintf(want, sizeof(want), "state=%d lag=-1 age=-1 id= why=",
             CA_RS_SHIP_ABSENT);
    assert_string_equal(hash(NULL, NULL, NULL), want);
    teardown();
    (void) state;
}

/* Whatever the hash holds, a state and a reason, never a number made up;
 * the connection stays. */
static void
test_shipper_garbage(void **state)
{
    static const char *const  bad[][3] = {
        { "12abc", "1765000000000", "lag_ms is not a number: 12abc" },
        { "-5", "1765000000000", "lag_ms is not a number: -5" },
        { "", "1765000000000", "lag_ms is not a number: " },
        { "1234567890123456789", "1765000000000", "lag_ms is not a number" },
        { NULL, "1765000000000", "lag_ms is not a number" },
        { "10", "yesterday", "updated_ms is not a time: yesterday" },
        { "10", "0", "updated_ms is not a time: 0" },
        { "10", NULL, "updated_ms is not a time" },
    };
    ca_rs_conf   c = shipconf();
    char         want[128];
    size_t       i;
    const char  *got;

    begin(&c);
    up();
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        polled();
        got = hash(bad[i][0], bad[i][1], "x");
        snprintf(want, sizeof(want), "state=%d lag=-1 age=-1 id= why=%s",
                 CA_RS_SHIP_UNKNOWN, bad[i][2]);
        assert_non_null(strstr(got, want));
    }
    assert_true(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

static void
test_shipper_error_reply(void **state)
{
    ca_rs_conf   c = shipconf();
    ca_rs_reply  el[1] = { R(CA_RS_STRING, "1") };
    char         want[160];

    begin(&c);
    up();
    polled();
    snprintf(want, sizeof(want), "state=%d lag=-1 age=-1 id= why=WRONGTYPE "
             "Operation against a key holding the wrong kind of value",
             CA_RS_SHIP_UNKNOWN);
    assert_string_equal(answered(R(CA_RS_ERROR, "WRONGTYPE Operation "
                                   "against a key holding the wrong kind "
                                   "of value")), want);
    /* not an array of three */
    polled();
    snprintf(want, sizeof(want), "state=%d lag=-1 age=-1 id= why=not an "
             "answer to HMGET", CA_RS_SHIP_UNKNOWN);
    assert_string_equal(answered(ARR(1, el)), want);
    /* TIME refused: the lag is known, its age is not */
    polled();
    feed(CA_RS_PRIMARY, R(CA_RS_ERROR, "NOPERM this user has no "
                          "permissions to run the 'time' command"));
    {
        ca_rs_reply  h[3] = { R(CA_RS_STRING, "7"),
                              R(CA_RS_STRING, "1765000000000"),
                              R(CA_RS_NIL, NULL) };

        feed(CA_RS_PRIMARY, ARR(3, h));
    }
    snprintf(want, sizeof(want), "state=%d lag=7 age=-1 id= why=Redis's "
             "TIME not read", CA_RS_SHIP_UNKNOWN);
    assert_string_equal(next(CA_RS_SHIPPER)->text, want);
    assert_true(ca_rs_ready(t.s));
    teardown();
    (void) state;
}

/* One round in flight at most; no key configured, no TIME, no HMGET. */
static void
test_shipper_one_round(void **state)
{
    ca_rs_conf  c = shipconf();

    begin(&c);
    up();
    polled();
    advance(900);           /* the round unanswered: nothing more sent */
    assert_false(has(CA_RS_SEND, NULL));
    hash("1", "1765000000000", NULL);
    advance(200);
    sent(CA_RS_PRIMARY, "INFO memory");
    teardown();

    c = conf();
    begin(&c);
    up();
    advance(1000);
    sent(CA_RS_PRIMARY, "INFO memory");
    assert_false(has(CA_RS_SEND, NULL));
    feed(CA_RS_PRIMARY, R(CA_RS_STRING, aof_primary));
    advance(1000);
    sent(CA_RS_PRIMARY, "INFO memory");
    assert_false(has(CA_RS_SEND, "TIME"));
    assert_false(has(CA_RS_SHIPPER, NULL));
    teardown();
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipper_present),
        cmocka_unit_test(test_shipper_absent),
        cmocka_unit_test(test_shipper_garbage),
        cmocka_unit_test(test_shipper_error_reply),
        cmocka_unit_test(test_shipper_one_round),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
