/*
 * The Redis session's outputs and the commands in flight on the primary
 * (see session.h): actions with their strings in one arena, the replies
 * expected in sending order (Redis answers in order), the callers'
 * commands with the WAIT pipelined behind each under replicas:N, and the
 * INFO memory poll.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_int.h"
#include "core/core.h"


/* --- actions ------------------------------------------------------------ */

/* Out of memory, an action is lost: the session then drops what it was
 * doing at the next event (ca_rs_end), fail closed. */
ca_rs_act *
ca_rs_push(ca_rs *s, int type)
{
    size_t      cap;
    ca_rs_act  *acts, *a;

    if (s->nacts == s->acts_cap) {
        cap = s->acts_cap ? s->acts_cap * 2 : 16;
        acts = realloc(s->acts, cap * sizeof(ca_rs_act));
        if (acts == NULL) {
            s->oom = 1;
            return NULL;
        }
        s->acts = acts;
        s->acts_cap = cap;
    }
    a = &s->acts[s->nacts++];
    memset(a, 0, sizeof(ca_rs_act));
    a->a.type = type;
    return a;
}


void
ca_rs_set(ca_rs *s, ca_rs_act *a, int field, const char *str, size_t len)
{
    size_t  cap;
    char   *arena;

    if (a == NULL || str == NULL) {
        return;
    }
    if (s->arena_len + len + 1 > s->arena_cap) {
        cap = s->arena_cap ? s->arena_cap : 1024;
        while (cap < s->arena_len + len + 1) {
            cap *= 2;
        }
        arena = realloc(s->arena, cap);
        if (arena == NULL) {
            s->oom = 1;
            return;
        }
        s->arena = arena;
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_len, str, len);
    s->arena[s->arena_len + len] = '\0';
    a->off[field] = s->arena_len + 1;
    s->arena_len += len + 1;
}


int
ca_rs_next(ca_rs *s, ca_rs_action *out)
{
    ca_rs_act   *a;
    const char  *f[CA_RS_FIELDS];
    int          i;

    if (s->acts_next == s->nacts) {
        return 0;
    }
    a = &s->acts[s->acts_next++];
    for (i = 0; i < CA_RS_FIELDS; i++) {
        f[i] = a->off[i] ? s->arena + a->off[i] - 1 : NULL;
    }
    *out = a->a;
    out->host = f[CA_RS_F_HOST];
    out->unix_path = f[CA_RS_F_UNIX];
    out->data = f[CA_RS_F_DATA];
    out->text = f[CA_RS_F_TEXT];
    out->missing = f[CA_RS_F_MISSING];
    out->expected = f[CA_RS_F_EXPECTED];
    out->found = f[CA_RS_F_FOUND];
    out->info = (const ca_redisinfo *) f[CA_RS_F_INFO];
    return 1;
}


void
ca_rs_log(ca_rs *s, int level, int note, int event, const char *fmt, ...)
{
    char        text[1024 * 3];
    va_list     ap;
    ca_rs_act  *a;
    int         n;

    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    a = ca_rs_push(s, CA_RS_LOG);
    if (a == NULL) {
        return;
    }
    a->a.level = level;
    a->a.note = note;
    a->a.event = event;
    ca_rs_set(s, a, CA_RS_F_TEXT, text,
              (size_t) n < sizeof(text) ? (size_t) n : sizeof(text) - 1);
    if (note == CA_RS_NOTE_TROUBLE) {
        s->troubled = 1;
    }
}


/* One command, formatted once (RESP), for the connection open now. */
void
ca_rs_send(ca_rs *s, int conn, int argc, const char **argv,
           const size_t *lens)
{
    char       *buf;
    size_t      len;
    ca_rs_act  *a;

    buf = malloc(ca_resp_size(argc, lens));
    a = buf ? ca_rs_push(s, CA_RS_SEND) : NULL;
    if (a == NULL) {
        s->oom = 1;
        free(buf);
        return;
    }
    len = ca_resp_format(buf, argc, argv, lens);
    a->a.conn = conn;
    a->a.id = s->id[conn];
    ca_rs_set(s, a, CA_RS_F_DATA, buf, len);
    a->a.len = len;
    free(buf);
}


/* Up to four words, NULL-ended. */
void
ca_rs_sendv(ca_rs *s, int conn, const char *a0, const char *a1,
            const char *a2, const char *a3)
{
    const char  *argv[4] = { a0, a1, a2, a3 };
    size_t       lens[4];
    int          argc;

    for (argc = 0; argc < 4 && argv[argc]; argc++) {
        lens[argc] = strlen(argv[argc]);
    }
    ca_rs_send(s, conn, argc, argv, lens);
}


/* --- replies expected on the primary ------------------------------------ */

int
ca_rs_expect(ca_rs *s, int kind, void *owner, uint64_t deadline)
{
    size_t          cap, i;
    ca_rs_pending  *q, *p;

    if (s->qlen == s->qcap) {
        cap = s->qcap ? s->qcap * 2 : 32;
        q = malloc(cap * sizeof(ca_rs_pending));
        if (q == NULL) {
            s->oom = 1;
            return -1;
        }
        for (i = 0; i < s->qlen; i++) {
            q[i] = s->q[(s->qhead + i) % s->qcap];
        }
        free(s->q);
        s->q = q;
        s->qcap = cap;
        s->qhead = 0;
    }
    p = &s->q[(s->qhead + s->qlen++) % s->qcap];
    memset(p, 0, sizeof(ca_rs_pending));
    p->kind = kind;
    p->owner = owner;
    p->deadline = deadline;
    return 0;
}


ca_rs_pending *
ca_rs_head(ca_rs *s)
{
    return s->qlen ? &s->q[s->qhead] : NULL;
}


void
ca_rs_pop(ca_rs *s)
{
    s->qhead = (s->qhead + 1) % s->qcap;
    s->qlen--;
}


/* The command's owner hears its fate, then the connection's owner learns
 * whether it still writes to a primary. */
static void
ca_rs_deliver(ca_rs *s, void *owner, const ca_rs_reply *r, uint64_t now)
{
    int  c;

    s->inflight--;
    c = ca_rs_classify(r);
    s->conf.reply(s->conf.ctx, owner, r);
    if (r != NULL) {
        ca_rs_answered(s, c == CA_RS_READONLY ? "READONLY"
                          : c == CA_RS_NOREPLICAS ? "NOREPLICAS" : NULL,
                       now);
    }
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
            ca_rs_deliver(s, p.owner, NULL, 0);
        }
    }
    s->mem_asked = 0;
}


/*
 * A caller's command answered (p already popped).  Under replicas:N its
 * reply is held by the WAIT behind it (now the head): a copy of what a
 * caller reads of it, type, string, integer.
 */
void
ca_rs_reply_cmd(ca_rs *s, ca_rs_pending *p, const ca_rs_reply *r,
                uint64_t now)
{
    ca_rs_pending  *w;
    char           *str;
    void           *owner = p->owner;

    if (p->kind == CA_RS_K_USER) {
        w = ca_rs_head(s);
        if (s->conf.durability != CA_DURABLE_REPLICAS || w == NULL
            || w->kind != CA_RS_K_WAIT)
        {
            ca_rs_deliver(s, owner, r, now);
            return;
        }
        str = malloc(r->len + 1);
        if (str == NULL) {
            w->held = 2;        /* then as if never answered */
            return;
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
        return;
    }

    /* WAIT: a refusal wrote nothing, it goes through as it is */
    str = (char *) p->reply.str;
    if (p->held == 2) {
        ca_rs_deliver(s, owner, NULL, now);
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
        ca_rs_deliver(s, owner, &p->reply, now);
    } else {
        s->wait_short = 1;
        ca_rs_log(s, CA_RS_ERR, CA_RS_NOTE_WAIT, CA_RS_EV_WAIT_SHORT,
                  "redis: WAIT %ld: fewer replicas acknowledged: not "
                  "durable, refused", s->conf.wait_replicas);
        ca_rs_deliver(s, owner, NULL, now);
    }
    free(str);
}


int
ca_rs_command(ca_rs *s, int argc, const char **argv, const size_t *lens,
              void *owner, uint64_t now)
{
    char      n[24], t[24];
    uint64_t  deadline;

    ca_rs_begin(s);
    if (!ca_rs_ready(s) || s->inflight >= s->conf.max_inflight) {
        return -1;
    }
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
    ca_rs_end(s, now);
    return 0;
}


size_t
ca_rs_inflight(const ca_rs *s)
{
    return s->inflight;
}


/* --- memory -------------------------------------------------------------- */

/* A policy set to evict while connected (CONFIG SET) is found within a
 * second: not one more write on this connection. */
void
ca_rs_mem_reply(ca_rs *s, const ca_rs_reply *r, uint64_t now)
{
    ca_redisinfo  ri;
    ca_rs_act    *a;
    char          why[64];

    s->mem_asked = 0;
    if (r->type != CA_RS_STRING) {
        return;
    }
    memset(&ri, 0, sizeof(ri));
    ca_redisinfo_parse(&ri, r->str, r->len);
    a = ca_rs_push(s, CA_RS_MEMORY);
    ca_rs_set(s, a, CA_RS_F_INFO, (const char *) &ri, sizeof(ri));
    if (ca_redisinfo_evicts(ri.policy)) {
        snprintf(why, sizeof(why), "maxmemory-policy %s can evict",
                 ri.policy);
        ca_rs_answered(s, why, now);
    }
}


/* --- what an error means -------------------------------------------------- */

static int
ca_rs_is(const ca_rs_reply *r, const char *word)
{
    size_t  n = strlen(word);

    return r->len >= n && memcmp(r->str, word, n) == 0
           && (r->len == n || r->str[n] == ' ');
}


int
ca_rs_classify(const ca_rs_reply *r)
{
    if (r == NULL || r->type != CA_RS_ERROR || r->str == NULL) {
        return CA_RS_OK;
    }
    return ca_rs_is(r, "READONLY") ? CA_RS_READONLY
           : ca_rs_is(r, "NOREPLICAS") ? CA_RS_NOREPLICAS
           : ca_rs_is(r, "OOM") ? CA_RS_OOM
           : ca_rs_is(r, "LOADING") ? CA_RS_LOADING
           : CA_RS_REFUSED;
}


/* xorshift64*: jitter and fresh epochs, not secrets. */
uint64_t
ca_rs_rand(ca_rs *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}
