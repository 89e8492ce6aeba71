/*
 * What the session reads of Redis every second on a ready connection
 * (see session.h), one round of it in flight at most: INFO memory (the
 * status page's memory, and a maxmemory-policy set to evict while
 * connected, which is returned to session.c to drop the connection).
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
