/*
 * Sentinel, for the Redis session (see session.h): which server is the
 * primary, and the word that it moved.
 *
 * The lookup: SENTINEL get-master-addr-by-name asked of the Sentinels in
 * turn, one at a time; one that does not answer within connect_timeout,
 * refuses, or does not know the master is left for the next; when none
 * knows, the session backs off.  The next lookup starts where this one
 * stopped, so that a Sentinel that named a primary refused by the check
 * is not the only one asked again.
 *
 * The watch: a connection of its own to one Sentinel, subscribed to
 * +switch-master and +promoted-slave, so that a failover is followed
 * when Sentinel makes it, not when the old primary first refuses a write
 * (an idle worker would not learn of it at all).  Lost, or not subscribed
 * within connect_timeout, it is tried again on the next Sentinel a second
 * later.  It only speeds things up: the old primary's refusals lead to
 * the new one without it.
 *
 * What either learns is returned (a primary's address, or that nobody
 * knows it): session.c acts on it.
 */
#include <stdio.h>
#include <string.h>

#include "session_int.h"


/* A dotted IPv4 literal, as connected to without resolving. */
static int
ca_rs_ipv4(const char *p, size_t len)
{
    size_t    i, parts = 0, digits = 0;
    unsigned  v = 0;

    if (len == 0 || len >= CA_RS_HOST_LEN) {
        return 0;
    }
    for (i = 0; i <= len; i++) {
        if (i == len || p[i] == '.') {
            if (digits == 0 || v > 255) {
                return 0;
            }
            parts++;
            digits = 0;
            v = 0;
        } else if (p[i] >= '0' && p[i] <= '9' && digits < 3) {
            v = v * 10 + (unsigned) (p[i] - '0');
            digits++;
        } else {
            return 0;
        }
    }
    return parts == 4;
}


/* A port of 1 to 65535, in decimal; 0 otherwise. */
static int
ca_rs_port(const char *p, size_t len)
{
    size_t  i;
    long    v = 0;

    if (len == 0 || len > 5) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= 65535 ? (int) v : 0;
}


/* --- the lookup ---------------------------------------------------------- */

static void
ca_rs_sentinel_try(ca_rs *s, uint64_t now)
{
    const ca_rs_addr  *sa;

    s->s_at = s->s_next;
    s->s_next = (s->s_next + 1) % s->conf.nsentinels;
    s->s_tried++;
    sa = &s->conf.sentinels[s->s_at];
    ca_rs_open(s, CA_RS_SENTINEL, sa->host, sa->port, NULL);
    s->s_by = now + s->conf.connect_timeout;
}


void
ca_rs_sentinel_ask(ca_rs *s, uint64_t now)
{
    s->s_tried = 0;
    ca_rs_sentinel_try(s, now);
}


void
ca_rs_sentinel_connected(ca_rs *s)
{
    ca_rs_sendv(s, CA_RS_SENTINEL, "SENTINEL", "get-master-addr-by-name",
                s->conf.master, NULL);
}


/* This Sentinel gave no answer (its connection is closed): the next one
 * is asked (CA_RS_ASKING), or nobody knows (CA_RS_NOBODY). */
int
ca_rs_sentinel_lost(ca_rs *s, const char *why, uint64_t now)
{
    const ca_rs_addr  *sa = &s->conf.sentinels[s->s_at];

    s->s_by = 0;
    if (!s->asking) {
        return CA_RS_ASKING;
    }
    ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
              "redis: Sentinel %s:%d: %s", sa->host, sa->port, why);
    if (s->s_tried >= s->conf.nsentinels) {
        return CA_RS_NOBODY;
    }
    ca_rs_sentinel_try(s, now);
    return CA_RS_ASKING;
}


/* CA_RS_FOUND with the primary in *at, or as ca_rs_sentinel_lost(). */
int
ca_rs_sentinel_reply(ca_rs *s, const ca_rs_reply *r, ca_rs_where *at,
                     uint64_t now)
{
    char                why[128];
    const ca_rs_reply  *e = r->element;
    int                 port = 0;

    ca_rs_shut(s, CA_RS_SENTINEL, 0);
    s->s_by = 0;

    if (r->type != CA_RS_ARRAY || r->elements != 2
        || e[0].type != CA_RS_STRING || e[1].type != CA_RS_STRING)
    {
        if (r->type == CA_RS_ERROR) {
            snprintf(why, sizeof(why), "%.*s", (int) r->len, r->str);
        }
        return ca_rs_sentinel_lost(s, r->type == CA_RS_ERROR ? why
                                      : r->type == CA_RS_NIL
                                        ? "master unknown" : "no answer",
                                   now);
    }
    /* an address, never a name: it is connected to without resolving */
    port = ca_rs_port(e[1].str, e[1].len);
    if (!ca_rs_ipv4(e[0].str, e[0].len) || port == 0) {
        return ca_rs_sentinel_lost(s, "answered no IPv4 address", now);
    }
    memcpy(at->host, e[0].str, e[0].len);
    at->host[e[0].len] = '\0';
    at->port = port;
    return CA_RS_FOUND;
}


/* --- the watch ------------------------------------------------------------ */

static void
ca_rs_watch_connect(ca_rs *s, uint64_t now)
{
    const ca_rs_addr  *sa;

    s->w_at = s->w_next;
    s->w_next = (s->w_next + 1) % s->conf.nsentinels;
    s->w_subscribed = 0;
    sa = &s->conf.sentinels[s->w_at];
    ca_rs_open(s, CA_RS_WATCH, sa->host, sa->port, NULL);
    /* not subscribed by then: the next Sentinel */
    s->w_at_ms = now + s->conf.connect_timeout;
}


void
ca_rs_watch_start(ca_rs *s, uint64_t now)
{
    /* the workers of a gateway spread over the set */
    s->w_next = s->conf.watch_first % s->conf.nsentinels;
    ca_rs_watch_connect(s, now);
}


void
ca_rs_watch_connected(ca_rs *s)
{
    ca_rs_sendv(s, CA_RS_WATCH, "SUBSCRIBE", "+switch-master",
                "+promoted-slave", NULL);
}


/* The watch's connection is closed: again a second later. */
void
ca_rs_watch_lost(ca_rs *s, const char *why, uint64_t now)
{
    const ca_rs_addr  *sa = &s->conf.sentinels[s->w_at];

    /* a watch that stood and fell is worth a warning, retries are not */
    ca_rs_log(s, s->w_subscribed ? CA_RS_WARN : CA_RS_INFO, CA_RS_NOTE_NONE,
              CA_RS_EV_NONE, "redis: +switch-master watch on Sentinel "
              "%s:%d: %s", sa->host, sa->port, why);
    s->w_subscribed = 0;
    s->w_at_ms = s->exiting ? 0 : now + CA_RS_WATCH_RETRY;
}


void
ca_rs_watch_timer(ca_rs *s, uint64_t now)
{
    s->w_at_ms = 0;
    if (s->id[CA_RS_WATCH]) {
        ca_rs_shut(s, CA_RS_WATCH, 0);
        ca_rs_watch_lost(s, "timed out", now);
        return;
    }
    ca_rs_watch_connect(s, now);
}


/*
 * +switch-master: "<master> <old ip> <old port> <new ip> <new port>", from
 * any Sentinel once it knows; +promoted-slave: "slave <name> <ip> <port> @
 * <master> <ip> <port>", from the leader of the failover as soon as the
 * replica is a primary, before it has moved the other replicas (its own
 * +switch-master comes a second or more later).  Only our master's.
 */
static int
ca_rs_watch_switch(ca_rs *s, int promoted, const char *msg, size_t len,
                   ca_rs_where *at)
{
    const char  *p = msg, *last = msg + len, *tok[8];
    size_t       tlen[8], n, want, m, a;
    int          port;

    for (n = 0; n < 8 && p < last; n++) {
        tok[n] = p;
        while (p < last && *p != ' ') {
            p++;
        }
        tlen[n] = (size_t) (p - tok[n]);
        while (p < last && *p == ' ') {
            p++;
        }
    }
    want = promoted ? 8 : 5;
    m = promoted ? 5 : 0;           /* the master's name */
    a = promoted ? 2 : 3;           /* the new primary's address */
    if (n != want || p != last || tlen[m] != strlen(s->conf.master)
        || memcmp(tok[m], s->conf.master, tlen[m]) != 0
        || (promoted && (tlen[0] != 5 || memcmp(tok[0], "slave", 5) != 0)))
    {
        return 0;               /* another master's, or not understood */
    }
    port = ca_rs_port(tok[a + 1], tlen[a + 1]);
    if (port == 0 || !ca_rs_ipv4(tok[a], tlen[a])) {
        ca_rs_log(s, CA_RS_WARN, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
                  "redis: Sentinel names no IPv4 address: %.*s",
                  (int) (len < 200 ? len : 200), msg);
        return 0;
    }
    memcpy(at->host, tok[a], tlen[a]);
    at->host[tlen[a]] = '\0';
    at->port = port;
    ca_rs_log(s, CA_RS_NOTICE, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
              "redis: %s: the primary of \"%s\" is now %s:%d",
              promoted ? "+promoted-slave" : "+switch-master",
              s->conf.master, at->host, port);
    return 1;
}


static int
ca_rs_word(const ca_rs_reply *r, const char *word)
{
    return r->type == CA_RS_STRING && r->len == strlen(word)
           && memcmp(r->str, word, r->len) == 0;
}


/* The SUBSCRIBE's confirmations, and every message: 1 when Sentinel has
 * just made *at the primary. */
int
ca_rs_watch_reply(ca_rs *s, const ca_rs_reply *r, ca_rs_where *at)
{
    const ca_rs_reply  *e = r->element;
    const ca_rs_addr   *sa;

    if (r->type != CA_RS_ARRAY || r->elements != 3) {
        return 0;
    }
    if (ca_rs_word(&e[0], "subscribe") && !s->w_subscribed
        && e[2].type == CA_RS_INTEGER && e[2].integer == 2)
    {
        s->w_subscribed = 1;
        s->w_at_ms = 0;
        sa = &s->conf.sentinels[s->w_at];
        ca_rs_log(s, CA_RS_INFO, CA_RS_NOTE_NONE, CA_RS_EV_NONE,
                  "redis: watching +switch-master on Sentinel %s:%d",
                  sa->host, sa->port);
        return 0;
    }
    if (ca_rs_word(&e[0], "message") && e[1].type == CA_RS_STRING
        && e[2].type == CA_RS_STRING)
    {
        return ca_rs_watch_switch(s, ca_rs_word(&e[1], "+promoted-slave"),
                                  e[2].str, e[2].len, at);
    }
    return 0;
}
