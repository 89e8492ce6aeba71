/*
 * The Redis session's primitives, which every part of it uses (see
 * session.h): the session made and freed, actions with their strings in
 * one arena, the connections
 * opened and closed, commands formatted and the replies expected on the
 * primary in sending order (Redis answers in order), the jitter.  The
 * parts (sentinel.c, sessioncheck.c, sessioncmd.c, sessionpoll.c) and
 * session.c above them call down to here; nothing here calls up.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session_int.h"
#include "core/core.h"


/* --- the session's memory ---------------------------------------------- */

static char *
ca_rs_keep(char **p, const char *str)
{
    char  *d;

    if (str == NULL) {
        return NULL;
    }
    d = *p;
    strcpy(d, str);
    *p += strlen(str) + 1;
    return d;
}


ca_rs *
ca_rs_new(const ca_rs_conf *conf)
{
    ca_rs        *s;
    char         *p;
    const char   *str[7];
    size_t        i, len;

    s = calloc(1, sizeof(ca_rs));
    if (s == NULL || conf->reply == NULL) {
        free(s);
        return NULL;
    }
    s->conf = *conf;
    /* the strings are the session's: the caller's may not live on */
    str[0] = conf->host;
    str[1] = conf->unix_path;
    str[2] = conf->master ? conf->master : "";
    str[3] = conf->password;
    str[4] = conf->stream ? conf->stream : "";
    str[5] = conf->heads_key ? conf->heads_key : "credit:chains:";
    str[6] = conf->shipper_key;
    len = 1;
    for (i = 0; i < 7; i++) {
        len += str[i] ? strlen(str[i]) + 1 : 0;
    }
    s->strings = malloc(len);
    if (s->strings == NULL) {
        free(s);
        return NULL;
    }
    p = s->strings;
    s->conf.host = ca_rs_keep(&p, str[0]);
    s->conf.unix_path = ca_rs_keep(&p, str[1]);
    s->conf.master = ca_rs_keep(&p, str[2]);
    s->conf.password = ca_rs_keep(&p, str[3]);
    s->conf.stream = ca_rs_keep(&p, str[4]);
    s->conf.heads_key = ca_rs_keep(&p, str[5]);
    s->conf.shipper_key = ca_rs_keep(&p, str[6]);
    s->conf.epoch = NULL;
    if (conf->epoch && strlen(conf->epoch) < CA_RS_EPOCH_LEN) {
        strcpy(s->epoch, conf->epoch);
        strcpy(s->saved, conf->epoch);
    }
    if (s->conf.max_inflight == 0) {
        s->conf.max_inflight = 1;
    }
    if (s->conf.nsentinels == 0) {
        s->conf.sentinels = NULL;
    }
    s->rng = conf->seed ? conf->seed : 0x9E3779B97F4A7C15ULL;
    return s;
}


void
ca_rs_free(ca_rs *s)
{
    size_t  i;

    if (s == NULL) {
        return;
    }
    for (i = 0; i < s->qlen; i++) {
        free((char *) s->q[(s->qhead + i) % s->qcap].reply.str);
    }
    free(s->q);
    free(s->acts);
    free(s->arena);
    free(s->strings);
    free(s);
}


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
    /* aligned: INFO's and the shipper's structs are read in place */
    s->arena_len = (s->arena_len + 7) & ~(size_t) 7;
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
    out->shipper = (const ca_rs_shipper *) f[CA_RS_F_SHIPPER];
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



/* --- connections --------------------------------------------------------- */


uint64_t
ca_rs_open(ca_rs *s, int conn, const char *host, int port,
           const char *unix_path)
{
    ca_rs_act  *a;

    s->id[conn] = ++s->last_id;
    s->up[conn] = 0;
    a = ca_rs_push(s, CA_RS_CONNECT);
    if (a) {
        a->a.conn = conn;
        a->a.id = s->id[conn];
        a->a.port = port;
        ca_rs_set(s, a, CA_RS_F_HOST, host, host ? strlen(host) : 0);
        ca_rs_set(s, a, CA_RS_F_UNIX, unix_path,
                  unix_path ? strlen(unix_path) : 0);
    }
    return s->id[conn];
}


/* graceful: the replies on the wire still come (ca_rs_closed() then). */
void
ca_rs_shut(ca_rs *s, int conn, int graceful)
{
    ca_rs_act  *a;

    a = ca_rs_push(s, CA_RS_CLOSE);
    if (a) {
        a->a.conn = conn;
        a->a.id = s->id[conn];
        a->a.graceful = graceful;
    }
    if (!graceful) {
        s->id[conn] = 0;
        s->up[conn] = 0;
    }
}



/* --- commands and the replies expected on the primary -------------------- */


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


/* Actions all taken: their strings may go. */
void
ca_rs_begin(ca_rs *s)
{
    if (s->acts_next == s->nacts) {
        s->nacts = s->acts_next = s->arena_len = 0;
    }
}
