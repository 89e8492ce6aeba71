/*
 * The callers' commands in flight on the primary (see session.h): each
 * with its deadline, the WAIT pipelined behind each under replicas:N
 * (whose count decides whether the caller sees the reply at all), and
 * every command without its reply told so when the connection goes.
 * What a reply means for the connection (READONLY, NOREPLICAS) is
 * returned to session.c, which acts on it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_int.h"


/* The command's owner hears its fate; what the reply says of the
 * connection is returned (CA_RS_HEARD_*, session.c acts on it). */
static int
ca_rs_deliver(ca_rs *s, void *owner, const ca_rs_reply *r)
{
    int  c;

    s->inflight--;
    c = ca_rs_classify(r);
    s->conf.reply(s->conf.ctx, owner, r);
    return r == NULL ? CA_RS_HEARD_NOTHING
           : c == CA_RS_READONLY ? CA_RS_HEARD_READONLY
           : c == CA_RS_NOREPLICAS ? CA_RS_HEARD_NOREPLICAS
           : CA_RS_HEARD_ANSWER;
}


/* Nothing more comes on the connection: every command without its reply
 * gets NULL, in order.  An owner may send again from its callback: the
 * connection is already gone then, and it is declined. */
void
ca_rs_fail_pending(ca_rs *s)
{
    ca_rs_pending  p;

    while (s->qlen) {
        p = s->q[s->qhead];
        ca_rs_pop(s);
        if (p.kind == CA_RS_K_USER
            || (p.kind == CA_RS_K_WAIT && p.held))
        {
            free((char *) p.reply.str);
            (void) ca_rs_deliver(s, p.owner, NULL);
        }
    }
    s->polls = 0;
}


/*
 * A caller's command answered (p already popped).  Under replicas:N its
 * reply is held by the WAIT behind it (now the head): a copy of what a
 * caller reads of it, type, string, integer.  Returns what the caller
 * was told (CA_RS_HEARD_*).
 */
int
ca_rs_reply_cmd(ca_rs *s, ca_rs_pending *p, const ca_rs_reply *r)
{
    int             heard;
    ca_rs_pending  *w;
    char           *str;
    void           *owner = p->owner;

    if (p->kind == CA_RS_K_USER) {
        w = ca_rs_head(s);
        if (s->conf.durability != CA_DURABLE_REPLICAS || w == NULL
            || w->kind != CA_RS_K_WAIT)
        {
            return ca_rs_deliver(s, owner, r);
        }
        str = malloc(r->len + 1);
        if (str == NULL) {
            w->held = 2;        /* then as if never answered */
            return CA_RS_HEARD_NOTHING;
        }
        if (r->str) {
            memcpy(str, r->str, r->len);
        }
        str[r->len] = '\0';
        w->held = 1;
        w->reply.type = r->type;
        w->reply.integer = r->integer;
        w->reply.str = str;
        w->reply.len = r->len;
        return CA_RS_HEARD_NOTHING;
    }

    /* WAIT: a refusal wrote nothing, it goes through as it is */
    str = (char *) p->reply.str;
    if (p->held == 2) {
        heard = ca_rs_deliver(s, owner, NULL);
    } else if (p->reply.type == CA_RS_ERROR
        || (r->type == CA_RS_INTEGER
            && r->integer >= s->conf.wait_replicas))
    {
        if (p->reply.type != CA_RS_ERROR && s->wait_short) {
            s->wait_short = 0;
            ca_rs_log(s, CA_RS_NOTICE, CA_RS_NOTE_WAIT, CA_RS_EV_NONE,
                      "redis: WAIT counts the replicas");
            s->acts[s->nacts - 1].a.over = 1;
        }
        heard = ca_rs_deliver(s, owner, &p->reply);
    } else {
        s->wait_short = 1;
        ca_rs_log(s, CA_RS_ERR, CA_RS_NOTE_WAIT, CA_RS_EV_WAIT_SHORT,
                  "redis: WAIT %ld: fewer replicas acknowledged: not "
                  "durable, refused", s->conf.wait_replicas);
        heard = ca_rs_deliver(s, owner, NULL);
    }
    free(str);
    return heard;
}


/* A caller's command out on the primary (ready, room checked): 0, or -1
 * when it could not be queued. */
int
ca_rs_command_send(ca_rs *s, int argc, const char **argv,
                   const size_t *lens, void *owner, uint64_t now)
{
    char      n[24], t[24];
    uint64_t  deadline;

    deadline = now + s->conf.command_timeout;
    if (s->conf.durability == CA_DURABLE_REPLICAS) {
        deadline += s->conf.wait_timeout;
    }
    if (ca_rs_expect(s, CA_RS_K_USER, owner, deadline) != 0) {
        return -1;
    }
    ca_rs_send(s, CA_RS_PRIMARY, argc, argv, lens);
    s->inflight++;
    /* pipelined behind it: one more reply, not one more round trip */
    if (s->conf.durability == CA_DURABLE_REPLICAS
        && ca_rs_expect(s, CA_RS_K_WAIT, owner, deadline) == 0)
    {
        snprintf(n, sizeof(n), "%ld", s->conf.wait_replicas);
        snprintf(t, sizeof(t), "%llu",
                 (unsigned long long) s->conf.wait_timeout);
        ca_rs_sendv(s, CA_RS_PRIMARY, "WAIT", n, t, NULL);
    }
    return 0;
}
