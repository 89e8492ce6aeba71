/*
 * What a new connection to the primary must show before it is used
 * (contract §7.1), pipelined on it: the session hears the replies in order
 * and gives one verdict, READY or NOT_READY with why.
 *
 *  0. The handshake: AUTH and SELECT ahead of anything else (nothing runs
 *     unauthenticated or in the wrong database), SCRIPT LOAD of the
 *     scripts (EVALSHA needs them, and Redis may have restarted).  The
 *     first refusal ends the check.
 *  1. What it keeps: INFO and CONFIG GET appendfsync, judged when the
 *     PING behind them comes back (redisinfo.c): role, durability,
 *     eviction.  A refused CONFIG GET is no error: durability=aof then
 *     cannot be verified, which the check says.
 *  2. What it lost: the epoch key <stream>:epoch, set once (NX) and then
 *     only read, is still the one seen before; and the chain heads still
 *     hold every head Redis acknowledged (the caller's heads hook).
 *     Either gone or behind: a LOST action, after READY (the entry that
 *     says so is written to this Redis).
 *
 * A verdict against closes the connection and returns -1: session.c then
 * schedules the next attempt.
 */
#include <stdio.h>
#include <string.h>

#include "session_int.h"


/* The verdict against: `rc` -1, or -2 never usable as configured (a
 * cluster node: loud, and retried slowly).  Returns -1. */
static int
ca_rs_check_fail(ca_rs *s, int rc, const char *what, const char *why,
                 size_t len)
{
    snprintf(s->why, sizeof(s->why), "%s%.*s", what, (int) len, why);
    s->checking = 0;
    if (rc == -2) {
        s->failures = 7;
        ca_rs_log(s, CA_RS_ALERT, CA_RS_NOTE_TROUBLE, CA_RS_EV_DOWN,
                  "redis %s", s->why);
    } else if (strstr(s->why, "LOADING") || strstr(s->why, "still loading"))
    {
        /* every restart of a Redis that persists: not an error */
        ca_rs_log(s, CA_RS_NOTICE, CA_RS_NOTE_TROUBLE, CA_RS_EV_LOADING,
                  "redis is loading its data: waiting (%s)", s->why);
    } else {
        ca_rs_log(s, CA_RS_ERR, CA_RS_NOTE_TROUBLE, CA_RS_EV_DOWN,
                  "redis %s", s->why);
    }
    ca_rs_shut(s, CA_RS_PRIMARY, 0);
    return -1;
}


void
ca_rs_check_start(ca_rs *s)
{
    char               db[24];
    size_t             i;
    const ca_rs_conf  *c = &s->conf;

    s->checking = 1;
    s->found[0] = '\0';
    memset(&s->info, 0, sizeof(s->info));

    if (c->password) {
        ca_rs_expect(s, CA_RS_K_AUTH, NULL, 0);
        ca_rs_sendv(s, CA_RS_PRIMARY, "AUTH", c->password, NULL, NULL);
    }
    if (c->db) {
        snprintf(db, sizeof(db), "%ld", c->db);
        ca_rs_expect(s, CA_RS_K_SELECT, NULL, 0);
        ca_rs_sendv(s, CA_RS_PRIMARY, "SELECT", db, NULL, NULL);
    }
    for (i = 0; c->scripts && c->scripts[i]; i++) {
        ca_rs_expect(s, CA_RS_K_SCRIPT, NULL, 0);
        ca_rs_sendv(s, CA_RS_PRIMARY, "SCRIPT", "LOAD", c->scripts[i], NULL);
    }
    /* what the server is and keeps: judged when the PING comes back */
    ca_rs_expect(s, CA_RS_K_INFO, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "INFO", NULL, NULL, NULL);
    ca_rs_expect(s, CA_RS_K_FSYNC, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "CONFIG", "GET", "appendfsync", NULL);
    ca_rs_expect(s, CA_RS_K_PING, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "PING", NULL, NULL, NULL);
}


static int
ca_rs_check_verdict(ca_rs *s, const ca_rs_reply *r, uint64_t now)
{
    char        why[256], mine[CA_RS_EPOCH_LEN], key[512];
    ca_rs_act  *a;
    int         rc;

    if (r->type == CA_RS_ERROR) {
        return ca_rs_check_fail(s, -1, "not ready: ", r->str, r->len);
    }
    /* the caller shows the memory of a Redis refused for it too */
    if (s->info.seen) {
        a = ca_rs_push(s, CA_RS_MEMORY);
        ca_rs_set(s, a, CA_RS_F_INFO, (const char *) &s->info,
                  sizeof(s->info));
    }
    rc = ca_redisinfo_check(&s->info, s->conf.durability,
                            s->conf.wait_replicas, why, sizeof(why));
    if (rc != 0) {
        return ca_rs_check_fail(s, rc, rc == -2 ? "refused: " : "not used: ",
                                why, strlen(why));
    }
    /* a warning, or "" */
    snprintf(s->why, sizeof(s->why), "%s", why);

    /*
     * A fresh epoch offered each time: if ours from before were offered
     * again, a Redis that lost it would get the same one back.  The heads
     * are read last, behind the GET: nothing of ours is written on this
     * connection before the verdict, so they are what Redis kept.
     */
    snprintf(mine, sizeof(mine), "%llx-%llx", (unsigned long long) now,
             (unsigned long long) (ca_rs_rand(s) >> 1));
    snprintf(key, sizeof(key), "%s:epoch", s->conf.stream);
    ca_rs_expect(s, CA_RS_K_SETNX, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "SET", key, mine, "NX");
    ca_rs_expect(s, CA_RS_K_GET, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "GET", key, NULL, NULL);
    ca_rs_expect(s, CA_RS_K_HEADS, NULL, 0);
    ca_rs_sendv(s, CA_RS_PRIMARY, "HGETALL", s->conf.heads_key, NULL, NULL);
    return 0;
}


static void
ca_rs_check_ready(ca_rs *s, uint64_t now)
{
    ca_rs_act  *a;

    s->checking = 0;
    s->ready = 1;
    s->failures = 0;
    s->poll_next = now + CA_RS_MEM_POLL;
    if (s->why[0]) {
        ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_WARNED, CA_RS_EV_NONE,
                  "redis: %s", s->why);
    } else {
        /* no warning: the last one is forgotten, silently */
        a = ca_rs_push(s, CA_RS_LOG);
        if (a) {
            a->a.note = CA_RS_NOTE_WARNED;
            a->a.over = 1;
        }
    }
    /* after trouble, said when the connection answers (ca_rs_answered) */
    if (!s->troubled) {
        ca_rs_log(s, CA_RS_INFO, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
                  "redis connected (durability=%s)",
                  ca_durability_name(s->conf.durability));
    }
    a = ca_rs_push(s, CA_RS_READY);
    ca_rs_set(s, a, CA_RS_F_TEXT, s->why, strlen(s->why));
}


static int
ca_rs_check_heads(ca_rs *s, const ca_rs_reply *r, uint64_t now)
{
    char        exp[CA_RS_LIST_LEN], found[CA_RS_LIST_LEN];
    char        lost[CA_RS_EPOCH_LEN];
    char        m[32], e[CA_RS_LIST_LEN + 64], f[CA_RS_LIST_LEN + 64];
    long        behind = 0;
    int         epoch;
    ca_rs_act  *a;

    if (r->type != CA_RS_ARRAY) {
        return ca_rs_check_fail(s, -1, "not used: ",
                                "cannot read the chain heads", 27);
    }
    epoch = s->epoch[0] && strcmp(s->epoch, s->found) != 0;
    memcpy(lost, s->epoch, sizeof(lost));
    exp[0] = found[0] = '\0';
    if (s->conf.heads) {
        behind = s->conf.heads(s->conf.ctx, r, exp, found, sizeof(exp));
    }
    memcpy(s->epoch, s->found, sizeof(s->epoch));
    if (s->conf.save_epoch && strcmp(s->saved, s->found) != 0) {
        memcpy(s->saved, s->found, sizeof(s->saved));
        a = ca_rs_push(s, CA_RS_SAVE_EPOCH);
        ca_rs_set(s, a, CA_RS_F_TEXT, s->found, strlen(s->found));
    }

    /* ready first: the entry that says what is missing goes to Redis */
    ca_rs_check_ready(s, now);
    if (!epoch && behind <= 0) {
        return 0;
    }
    snprintf(m, sizeof(m), "%s%s%s", epoch ? "epoch" : "",
             epoch && behind > 0 ? " " : "", behind > 0 ? "chains" : "");
    snprintf(e, sizeof(e), "%s%s%s%s%s", epoch ? "epoch=" : "",
             epoch ? lost : "", epoch && behind > 0 ? " " : "",
             behind > 0 ? "chains=" : "", behind > 0 ? exp : "");
    snprintf(f, sizeof(f), "%s%s%s%s%s", epoch ? "epoch=" : "",
             epoch ? s->found : "", epoch && behind > 0 ? " " : "",
             behind > 0 ? "chains=" : "", behind > 0 ? found : "");
    ca_rs_log(s, CA_RS_ALERT, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
              "redis lost acknowledged data (missing: %s): expected %s, "
              "found %s: audit entries and revocations acknowledged before "
              "may be missing", m, e, f);
    a = ca_rs_push(s, CA_RS_LOST);
    ca_rs_set(s, a, CA_RS_F_MISSING, m, strlen(m));
    ca_rs_set(s, a, CA_RS_F_EXPECTED, e, strlen(e));
    ca_rs_set(s, a, CA_RS_F_FOUND, f, strlen(f));
    return 0;
}


/* 0: the check goes on (or is passed); -1: failed, the connection shut. */
int
ca_rs_check_reply(ca_rs *s, int kind, const ca_rs_reply *r, uint64_t now)
{
    const ca_rs_reply  *v;

    switch (kind) {

    case CA_RS_K_AUTH:
    case CA_RS_K_SELECT:
    case CA_RS_K_SCRIPT:
        if (r->type == CA_RS_ERROR) {
            return ca_rs_check_fail(s, -1, kind == CA_RS_K_AUTH
                                           ? "AUTH refused: "
                                           : kind == CA_RS_K_SELECT
                                             ? "SELECT refused: "
                                             : "SCRIPT LOAD refused: ",
                                    r->str, r->len);
        }
        break;

    case CA_RS_K_INFO:
        if (r->type == CA_RS_STRING) {
            ca_redisinfo_parse(&s->info, r->str, r->len);
        }
        break;

    case CA_RS_K_FSYNC:
        v = r->type == CA_RS_ARRAY && r->elements == 2 ? &r->element[1]
                                                       : NULL;
        if (v && v->type == CA_RS_STRING
            && v->len < sizeof(s->info.appendfsync))
        {
            memcpy(s->info.appendfsync, v->str, v->len);
            s->info.appendfsync[v->len] = '\0';
        }
        break;

    case CA_RS_K_PING:
        return ca_rs_check_verdict(s, r, now);

    case CA_RS_K_GET:
        if (r->type != CA_RS_STRING || r->len >= sizeof(s->found)) {
            return ca_rs_check_fail(s, -1, "not used: ",
                                    "cannot read the epoch key", 25);
        }
        memcpy(s->found, r->str, r->len);
        s->found[r->len] = '\0';
        break;

    case CA_RS_K_HEADS:
        return ca_rs_check_heads(s, r, now);

    default:                    /* SET NX: the GET behind it says */
        break;
    }
    return 0;
}
