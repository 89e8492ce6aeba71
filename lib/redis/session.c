/*
 * The Redis session: the primary's connection from one attempt to the
 * next (see session.h for what is decided where).  Every end of an
 * attempt, ready or not, is one action, READY or NOT_READY, which the
 * caller tells whoever waits; between attempts the session backs off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_int.h"


static void ca_rs_end(ca_rs *s, uint64_t now);


/* --- the primary's life -------------------------------------------------- */

static void
ca_rs_not_ready(ca_rs *s)
{
    ca_rs_act  *a;

    a = ca_rs_push(s, CA_RS_NOT_READY);
    ca_rs_set(s, a, CA_RS_F_TEXT, s->why, strlen(s->why));
}


/* The attempt has ended without a connection: whoever waited hears so,
 * and the next one comes after a backoff, from 50 ms to 5 s, with jitter
 * so that the workers of a fleet do not reconnect in step. */
static void
ca_rs_schedule(ca_rs *s, uint64_t now)
{
    uint64_t  delay;

    /* whatever went wrong, Sentinel is asked again: the primary may have
     * moved (contract §7.1) */
    if (s->conf.sentinels) {
        s->port = 0;
    }
    ca_rs_not_ready(s);
    if (s->exiting || s->reconnect_at) {
        return;
    }
    delay = 50u << (s->failures < 7 ? s->failures : 7);
    delay = delay < 5000 ? delay : 5000;
    delay = delay / 2 + ca_rs_rand(s) % (delay / 2 + 1);
    s->failures++;
    s->reconnect_at = now + delay;
}


/* The primary's connection is gone (closed already): its commands get
 * NULL, then the next attempt is scheduled. */
static void
ca_rs_gone(ca_rs *s, uint64_t now)
{
    s->id[CA_RS_PRIMARY] = 0;
    s->up[CA_RS_PRIMARY] = 0;
    s->ready = 0;
    s->checking = 0;
    s->closing = 0;
    ca_rs_fail_pending(s);
    ca_rs_schedule(s, now);
}


static void
ca_rs_connect(ca_rs *s, uint64_t now)
{
    const ca_rs_conf  *c = &s->conf;

    if (s->exiting || s->id[CA_RS_PRIMARY] || s->asking) {
        return;
    }
    s->last_attempt = now;
    if (c->sentinels && s->port == 0) {
        s->asking = 1;
        ca_rs_sentinel_ask(s, now);
        return;
    }
    s->ready = 0;
    s->checking = 0;
    s->closing = 0;
    s->connect_by = now + c->connect_timeout;
    if (c->unix_path) {
        ca_rs_open(s, CA_RS_PRIMARY, NULL, 0, c->unix_path);
    } else if (c->sentinels) {
        ca_rs_open(s, CA_RS_PRIMARY, s->host, s->port, NULL);
    } else {
        ca_rs_open(s, CA_RS_PRIMARY, c->host, c->port, NULL);
    }
}


/* Dropped now: every pending command gets NULL. */
static void
ca_rs_drop(ca_rs *s, const char *why, uint64_t now)
{
    if (s->id[CA_RS_PRIMARY] == 0) {
        return;
    }
    ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_TROUBLE, CA_RS_EV_DOWN, "redis: %s",
              why);
    ca_rs_shut(s, CA_RS_PRIMARY, 0);
    ca_rs_gone(s, now);
}


/* Sentinel's answer: NULL when none knew. */
static void
ca_rs_found(ca_rs *s, const char *host, int port, uint64_t now)
{
    s->asking = 0;
    /* exiting, or already moved by +switch-master while this was asked */
    if (s->exiting || s->id[CA_RS_PRIMARY]) {
        return;
    }
    if (host == NULL) {
        snprintf(s->why, sizeof(s->why), "no Sentinel knows the primary of "
                 "\"%s\"", s->conf.master);
        ca_rs_schedule(s, now);
        return;
    }
    if (s->port != port || strcmp(s->host, host) != 0) {
        ca_rs_log(s, CA_RS_NOTICE, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
                  "redis: Sentinel says the primary of \"%s\" is %s:%d",
                  s->conf.master, host, port);
    }
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    ca_rs_connect(s, now);
}


/*
 * Sentinel has just made host:port the primary: whatever the connection
 * does there is no longer acknowledged durably, and the new primary is
 * connected to now, not after a backoff.
 */
static void
ca_rs_switched(ca_rs *s, const char *host, int port, uint64_t now)
{
    if (s->exiting
        || (s->id[CA_RS_PRIMARY] && !s->closing && s->port == port
            && strcmp(s->host, host) == 0))
    {
        return;
    }
    ca_rs_drop(s, "the primary moved (+switch-master)", now);
    if (s->asking && s->id[CA_RS_SENTINEL]) {
        ca_rs_shut(s, CA_RS_SENTINEL, 0);
    }
    s->s_by = 0;
    s->reconnect_at = 0;
    s->failures = 0;
    ca_rs_found(s, host, port, now);
}


/*
 * A command's reply came.  refusal: a replica (READONLY), a primary short
 * of replicas (NOREPLICAS), or one that may now evict: the connection
 * goes, gracefully (the replies on the wire still reach their owners),
 * and the next one is checked again.  NULL: it works, and trouble said
 * before is over.
 */
static void
ca_rs_answered(ca_rs *s, const char *refusal, uint64_t now)
{
    if (!s->ready) {
        return;
    }
    if (refusal == NULL) {
        if (s->troubled) {
            ca_rs_log(s, CA_RS_NOTICE, CA_RS_NOTE_TROUBLE, CA_RS_EV_NONE,
                      "redis answers");
            s->acts[s->nacts - 1].a.over = 1;
            s->troubled = 0;
        }
        return;
    }
    ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_TROUBLE, CA_RS_EV_NOT_WRITABLE,
              "redis: no longer a primary to write to (%s): reconnecting",
              refusal);
    snprintf(s->why, sizeof(s->why), "not used: %s", refusal);
    s->ready = 0;
    s->closing = 1;
    s->close_by = now + CA_RS_CLOSE_GRACE;
    ca_rs_shut(s, CA_RS_PRIMARY, 1);
}


/* What a Sentinel lookup came to (sentinel.c): a primary to connect to,
 * or nobody knows it (a backoff). */
static void
ca_rs_looked_up(ca_rs *s, int rc, const ca_rs_where *at, uint64_t now)
{
    if (rc == CA_RS_FOUND) {
        ca_rs_found(s, at->host, at->port, now);
    } else if (rc == CA_RS_NOBODY) {
        ca_rs_found(s, NULL, 0, now);
    }
}


/* A caller's command's reply was delivered (sessioncmd.c): what it says
 * of the connection. */
static void
ca_rs_heard(ca_rs *s, int heard, uint64_t now)
{
    if (heard != CA_RS_HEARD_NOTHING) {
        ca_rs_answered(s, heard == CA_RS_HEARD_READONLY ? "READONLY"
                          : heard == CA_RS_HEARD_NOREPLICAS ? "NOREPLICAS"
                          : NULL, now);
    }
}


/* --- events --------------------------------------------------------------- */

void
ca_rs_start(ca_rs *s, uint64_t now)
{
    ca_rs_begin(s);
    if (s->conf.sentinels) {
        ca_rs_watch_start(s, now);
    }
    ca_rs_connect(s, now);
    ca_rs_end(s, now);
}


void
ca_rs_connected(ca_rs *s, int conn, uint64_t id, uint64_t now)
{
    ca_rs_begin(s);
    if (conn < 0 || conn >= CA_RS_CONNS || id == 0 || s->id[conn] != id
        || s->up[conn])
    {
        return;
    }
    s->up[conn] = 1;
    if (conn == CA_RS_PRIMARY) {
        ca_rs_check_start(s);
    } else if (conn == CA_RS_SENTINEL) {
        ca_rs_sentinel_connected(s);
    } else {
        ca_rs_watch_connected(s);
    }
    ca_rs_end(s, now);
}


void
ca_rs_closed(ca_rs *s, int conn, uint64_t id, const char *why,
             uint64_t now)
{
    int  up;

    ca_rs_begin(s);
    if (conn < 0 || conn >= CA_RS_CONNS || id == 0 || s->id[conn] != id) {
        return;
    }
    up = s->up[conn];
    s->id[conn] = 0;
    s->up[conn] = 0;
    why = why && why[0] ? why : "closed";
    if (conn == CA_RS_SENTINEL) {
        ca_rs_looked_up(s, ca_rs_sentinel_lost(s, up ? "connection lost"
                                                     : "cannot connect", now),
                        NULL, now);
    } else if (conn == CA_RS_WATCH) {
        ca_rs_watch_lost(s, up ? "connection lost" : "cannot connect", now);
    } else {
        /* a close asked for is no trouble */
        if (!s->closing) {
            ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_TROUBLE, CA_RS_EV_DOWN,
                      up ? "redis disconnected: %s"
                         : "redis connect failed: %s", why);
        }
        ca_rs_gone(s, now);
    }
    ca_rs_end(s, now);
}


void
ca_rs_feed(ca_rs *s, int conn, uint64_t id, const ca_rs_reply *r,
           uint64_t now)
{
    ca_rs_pending  p;
    ca_rs_where    at;
    char           why[64];
    int            rc;

    ca_rs_begin(s);
    if (conn < 0 || conn >= CA_RS_CONNS || id == 0 || s->id[conn] != id
        || r == NULL)
    {
        return;
    }
    if (conn == CA_RS_SENTINEL) {
        rc = ca_rs_sentinel_reply(s, r, &at, now);
        ca_rs_looked_up(s, rc, &at, now);
    } else if (conn == CA_RS_WATCH) {
        if (ca_rs_watch_reply(s, r, &at)) {
            ca_rs_switched(s, at.host, at.port, now);
        }
    } else if (s->qlen == 0) {
        ca_rs_drop(s, "a reply to no command", now);
    } else {
        p = *ca_rs_head(s);
        ca_rs_pop(s);
        if (p.kind == CA_RS_K_USER || p.kind == CA_RS_K_WAIT) {
            ca_rs_heard(s, ca_rs_reply_cmd(s, &p, r), now);
        } else if (p.kind == CA_RS_K_MEM) {
            if (ca_rs_mem_reply(s, r, why, sizeof(why))) {
                ca_rs_answered(s, why, now);
            }
        } else if (p.kind == CA_RS_K_TIME || p.kind == CA_RS_K_SHIP) {
            ca_rs_ship_reply(s, p.kind, r);
        } else if (s->checking && ca_rs_check_reply(s, p.kind, r, now) < 0) {
            ca_rs_gone(s, now);
        }
    }
    ca_rs_end(s, now);
}


void
ca_rs_timer(ca_rs *s, uint64_t now)
{
    ca_rs_pending  *p;
    size_t          i;

    ca_rs_begin(s);
    s->armed = 0;
    if (s->exiting) {
        return;
    }
    if (s->s_by && now >= s->s_by && s->id[CA_RS_SENTINEL]) {
        ca_rs_shut(s, CA_RS_SENTINEL, 0);
        s->s_by = 0;
        ca_rs_looked_up(s, ca_rs_sentinel_lost(s, "timed out", now), NULL,
                        now);
    }
    if (s->w_at_ms && now >= s->w_at_ms) {
        ca_rs_watch_timer(s, now);
    }
    if (s->id[CA_RS_PRIMARY]) {
        p = NULL;
        for (i = 0; i < s->qlen; i++) {
            p = &s->q[(s->qhead + i) % s->qcap];
            if (p->deadline) {
                break;
            }
            p = NULL;
        }
        if (s->closing && now >= s->close_by) {
            ca_rs_shut(s, CA_RS_PRIMARY, 0);
            ca_rs_gone(s, now);
        } else if (!s->ready && !s->closing && now >= s->connect_by) {
            ca_rs_drop(s, "connect timed out", now);
        } else if (p && now >= p->deadline) {
            ca_rs_drop(s, "command timed out", now);
        } else if (s->ready && !s->polls && now >= s->poll_next) {
            ca_rs_poll(s, now);
        }
    } else if (s->reconnect_at && now >= s->reconnect_at) {
        s->reconnect_at = 0;
        ca_rs_connect(s, now);
    }
    ca_rs_end(s, now);
}


void
ca_rs_stop(ca_rs *s, uint64_t now)
{
    int  c;

    ca_rs_begin(s);
    s->exiting = 1;
    s->ready = 0;
    for (c = 0; c < CA_RS_CONNS; c++) {
        if (s->id[c]) {
            ca_rs_shut(s, c, 0);
        }
    }
    ca_rs_fail_pending(s);
    s->reconnect_at = s->s_by = s->w_at_ms = 0;
    ca_rs_end(s, now);
}


int
ca_rs_ready(const ca_rs *s)
{
    return s->ready && !s->exiting;
}


/* The backoff protects Redis from idle reconnect loops, not from demand:
 * a request that needs Redis starts an attempt now, once per 200 ms. */
int
ca_rs_want(ca_rs *s, uint64_t now)
{
    int  rc;

    if (ca_rs_ready(s)) {
        return 1;
    }
    if (s->exiting) {
        return -1;
    }
    ca_rs_begin(s);
    if (s->id[CA_RS_PRIMARY] == 0 && s->reconnect_at
        && now - s->last_attempt >= CA_RS_WANT_EVERY)
    {
        s->reconnect_at = 0;
        ca_rs_connect(s, now);
    }
    rc = s->id[CA_RS_PRIMARY] || s->asking ? 0 : -1;
    ca_rs_end(s, now);
    return rc;
}


void
ca_rs_epoch_saved(ca_rs *s, int ok)
{
    if (!ok) {
        s->saved[0] = '\0';
    }
}


int
ca_rs_command(ca_rs *s, int argc, const char **argv, const size_t *lens,
              void *owner, uint64_t now)
{
    ca_rs_begin(s);
    if (!ca_rs_ready(s) || s->inflight >= s->conf.max_inflight
        || ca_rs_command_send(s, argc, argv, lens, owner, now) != 0)
    {
        return -1;
    }
    ca_rs_end(s, now);
    return 0;
}


size_t
ca_rs_inflight(const ca_rs *s)
{
    return s->inflight;
}


const char *
ca_rs_why(const ca_rs *s)
{
    return s->why;
}


/* --- the one timer --------------------------------------------------------- */

static void
ca_rs_soonest(uint64_t *at, uint64_t t)
{
    if (t && (*at == 0 || t < *at)) {
        *at = t;
    }
}


/* After every event: an action lost for want of memory drops what the
 * session was doing (fail closed); the timer is asked for the soonest
 * deadline when that moved. */
static void
ca_rs_end(ca_rs *s, uint64_t now)
{
    uint64_t    at = 0;
    size_t      i;
    ca_rs_act  *a;

    if (s->oom) {
        s->oom = 0;
        ca_rs_drop(s, "out of memory", now);
    }
    if (!s->exiting) {
        if (s->id[CA_RS_PRIMARY]) {
            ca_rs_soonest(&at, s->closing ? s->close_by
                               : !s->ready ? s->connect_by
                               : s->polls ? 0 : s->poll_next);
            for (i = 0; i < s->qlen; i++) {
                if (s->q[(s->qhead + i) % s->qcap].deadline) {
                    ca_rs_soonest(&at,
                                  s->q[(s->qhead + i) % s->qcap].deadline);
                    break;
                }
            }
        } else {
            ca_rs_soonest(&at, s->reconnect_at);
        }
        ca_rs_soonest(&at, s->s_by);
        ca_rs_soonest(&at, s->w_at_ms);
    }
    if ((long) (at ? at + 1 : 0) == s->armed) {
        return;
    }
    s->armed = at ? (long) (at + 1) : 0;
    a = ca_rs_push(s, CA_RS_TIMER);
    if (a) {
        a->a.ms = at == 0 ? -1 : at > now ? (long) (at - now) : 0;
    }
}
