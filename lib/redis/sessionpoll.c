/*
 * What the session reads of Redis every second on a ready connection
 * (see session.h), one round of it in flight at most, pipelined:
 *
 *  - INFO memory: the status page's memory, and a maxmemory-policy set to
 *    evict while connected (returned to session.c, which drops the
 *    connection);
 *  - TIME and HMGET <stream>:shipper lag_ms updated_ms archived_id: what
 *    the archive's shipper last said of itself, judged against Redis's
 *    own clock (the one updated_ms was written with), for the status
 *    page.  One small hash read per second per worker: each worker keeps
 *    the status fresh while it is connected, at no cost worth a choice.
 */
#include <stdio.h>
#include <string.h>

#include "session_int.h"


/* Due (session.c's timer): one round out, its replies expected in order. */
void
ca_rs_poll(ca_rs *s, uint64_t now)
{
    uint64_t  by = now + s->conf.command_timeout;

    s->poll_next = now + CA_RS_MEM_POLL;
    s->polls = 1;
    ca_rs_expect(s, CA_RS_K_MEM, NULL, by);
    ca_rs_sendv(s, CA_RS_PRIMARY, "INFO", "memory", NULL, NULL);
    if (s->conf.shipper_key == NULL) {
        return;
    }
    s->polls += 2;
    s->redis_ms = -1;
    ca_rs_expect(s, CA_RS_K_TIME, NULL, by);
    ca_rs_sendv(s, CA_RS_PRIMARY, "TIME", NULL, NULL, NULL);
    ca_rs_expect(s, CA_RS_K_SHIP, NULL, by);
    ca_rs_send(s, CA_RS_PRIMARY, 5,
               (const char *[]) { "HMGET", s->conf.shipper_key, "lag_ms",
                                  "updated_ms", "archived_id" },
               (const size_t[]) { 5, strlen(s->conf.shipper_key), 6, 10,
                                  11 });
}


/* A policy set to evict while connected (CONFIG SET) is found within a
 * second: 1 with why, and not one more write on this connection. */
int
ca_rs_mem_reply(ca_rs *s, const ca_rs_reply *r, char *why, size_t len)
{
    ca_redisinfo  ri;
    ca_rs_act    *a;

    s->polls--;
    if (r->type != CA_RS_STRING) {
        return 0;
    }
    memset(&ri, 0, sizeof(ri));
    ca_redisinfo_parse(&ri, r->str, r->len);
    a = ca_rs_push(s, CA_RS_MEMORY);
    ca_rs_set(s, a, CA_RS_F_INFO, (const char *) &ri, sizeof(ri));
    if (!ca_redisinfo_evicts(ri.policy)) {
        return 0;
    }
    snprintf(why, len, "maxmemory-policy %s can evict", ri.policy);
    return 1;
}


/* --- the shipper -------------------------------------------------------- */

/* A decimal of 1 to 18 digits (no sign: neither field is ever negative),
 * as a string or an integer reply. */
static int
ca_rs_decimal(const ca_rs_reply *r, long long *v)
{
    size_t  i;

    if (r->type == CA_RS_INTEGER && r->integer >= 0) {
        *v = r->integer;
        return 1;
    }
    if (r->type != CA_RS_STRING || r->len == 0 || r->len > 18) {
        return 0;
    }
    *v = 0;
    for (i = 0; i < r->len; i++) {
        if (r->str[i] < '0' || r->str[i] > '9') {
            return 0;
        }
        *v = *v * 10 + (r->str[i] - '0');
    }
    return 1;
}


static void
ca_rs_ship_unknown(ca_rs_shipper *sh, const char *why, const char *str,
                   size_t len)
{
    sh->state = CA_RS_SHIP_UNKNOWN;
    sh->lag_ms = -1;
    sh->age_ms = -1;
    snprintf(sh->why, sizeof(sh->why), "%s%.*s", why,
             (int) (len < 200 ? len : 200), str ? str : "");
}


void
ca_rs_shipper_read(ca_rs_shipper *sh, long long now_ms,
                   const ca_rs_reply *r)
{
    const ca_rs_reply  *e = r->element;
    long long           lag, updated;

    memset(sh, 0, sizeof(ca_rs_shipper));
    sh->lag_ms = -1;
    sh->age_ms = -1;
    if (r->type == CA_RS_ERROR) {
        ca_rs_ship_unknown(sh, "", r->str, r->len);
        return;
    }
    if (r->type != CA_RS_ARRAY || r->elements != 3 || e == NULL) {
        ca_rs_ship_unknown(sh, "not an answer to HMGET", NULL, 0);
        return;
    }
    if (e[0].type == CA_RS_NIL && e[1].type == CA_RS_NIL
        && e[2].type == CA_RS_NIL)
    {
        sh->state = CA_RS_SHIP_ABSENT;
        return;
    }
    if (!ca_rs_decimal(&e[0], &lag)) {
        ca_rs_ship_unknown(sh, "lag_ms is not a number: ", e[0].str,
                           e[0].len);
        return;
    }
    if (!ca_rs_decimal(&e[1], &updated) || updated == 0) {
        ca_rs_ship_unknown(sh, "updated_ms is not a time: ", e[1].str,
                           e[1].len);
        return;
    }
    if (e[2].type == CA_RS_STRING && e[2].len < sizeof(sh->archived_id)) {
        memcpy(sh->archived_id, e[2].str, e[2].len);
    }
    sh->lag_ms = lag;
    if (now_ms < 0) {
        sh->state = CA_RS_SHIP_UNKNOWN;
        snprintf(sh->why, sizeof(sh->why), "Redis's TIME not read");
        return;
    }
    /* written by this Redis's clock: behind it only if the clock moved */
    sh->age_ms = now_ms > updated ? now_ms - updated : 0;
    sh->state = sh->age_ms > CA_RS_SHIP_STALE_MS ? CA_RS_SHIP_STALE
                : lag > CA_RS_SHIP_LAG_MS ? CA_RS_SHIP_LAGGING
                : CA_RS_SHIP_OK;
}


/* TIME's reply is kept for the hash's, right behind it. */
void
ca_rs_ship_reply(ca_rs *s, int kind, const ca_rs_reply *r)
{
    ca_rs_shipper  sh;
    ca_rs_act     *a;
    long long      sec, usec;

    s->polls--;
    if (kind == CA_RS_K_TIME) {
        s->redis_ms = r->type == CA_RS_ARRAY && r->elements == 2
                      && ca_rs_decimal(&r->element[0], &sec)
                      && ca_rs_decimal(&r->element[1], &usec)
                      ? sec * 1000 + usec / 1000 : -1;
        return;
    }
    ca_rs_shipper_read(&sh, s->redis_ms, r);
    a = ca_rs_push(s, CA_RS_SHIPPER);
    ca_rs_set(s, a, CA_RS_F_SHIPPER, (const char *) &sh, sizeof(sh));
}
