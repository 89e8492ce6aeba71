/*
 * credit-audit ship: a batch's Redis reply built in one arena.
 *
 * hiredis makes two allocations per field name and value of a reply, and
 * frees them one by one: with 5,000 entries of ~25 fields a batch, malloc,
 * free and malloc_consolidate were a quarter of the shipper's CPU
 * (docs/archive.md, "Measured").  The XREADGROUP/XAUTOCLAIM reply is
 * built instead in large blocks, through hiredis's reply-object
 * functions switched in for that one command, and freed with the batch
 * (its entries point into it until then).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "audit_ship.h"

struct ship_arena {
    ship_arena *next;
    size_t      used, cap;
    char        data[];
};

#define ARENA_BLOCK (4u << 20)

static void *
arena_alloc(ship_arena **a, size_t n)
{
    void *p;

    n = (n + 15) & ~(size_t) 15;
    if (*a == NULL || (*a)->cap - (*a)->used < n) {
        size_t      cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        ship_arena *b = malloc(sizeof(*b) + cap);

        if (b == NULL) {
            return NULL;
        }
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    p = (*a)->data + (*a)->used;
    (*a)->used += n;
    return p;
}

void
shiparena_free(ship_arena *a)
{
    while (a != NULL) {
        ship_arena *next = a->next;

        free(a);
        a = next;
    }
}

static redisReply *
arena_reply(const redisReadTask *t, int type)
{
    redisReply *r = arena_alloc(t->privdata, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (t->parent != NULL) {
        redisReply *p = t->parent->obj;

        p->element[t->idx] = r;
    }
    return r;
}

static void *
arena_string(const redisReadTask *t, char *str, size_t len)
{
    redisReply *r = arena_reply(t, t->type);
    char       *p = r ? arena_alloc(t->privdata, len + 1) : NULL;

    if (p == NULL) {
        return NULL;
    }
    memcpy(p, str, len);
    p[len] = '\0';
    r->str = p;
    r->len = len;
    return r;
}

static void *
arena_array(const redisReadTask *t, int n)
{
    redisReply *r = arena_reply(t, REDIS_REPLY_ARRAY);

    if (r != NULL && n > 0) {
        r->element = arena_alloc(t->privdata, (size_t) n * sizeof(*r->element));
        if (r->element == NULL) {
            return NULL;
        }
        memset(r->element, 0, (size_t) n * sizeof(*r->element));
        r->elements = (size_t) n;
    }
    return r;
}

static void *
arena_integer(const redisReadTask *t, long long v)
{
    redisReply *r = arena_reply(t, REDIS_REPLY_INTEGER);

    if (r != NULL) {
        r->integer = v;
    }
    return r;
}

static void *
arena_nil(const redisReadTask *t)
{
    return arena_reply(t, REDIS_REPLY_NIL);
}

static void
arena_object_free(void *o)
{
    (void) o;                   /* freed with the batch */
}

static redisReplyObjectFunctions arena_fns = {
    arena_string, arena_array, arena_integer, arena_nil, arena_object_free
};

redisReply *
shiparena_command(ship *s, ship_batch *b, const char *fmt, ...)
{
    redisReader               *rd = s->rc->reader;
    redisReplyObjectFunctions *fn = rd->fn;
    void                      *pd = rd->privdata;
    redisReply                *r;
    va_list                    ap;

    rd->fn = &arena_fns;
    rd->privdata = &b->arena;
    va_start(ap, fmt);
    r = redisvCommand(s->rc, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        /* a reply cut short is in the arena: not for hiredis to free */
        rd->reply = NULL;
    }
    rd->fn = fn;
    rd->privdata = pd;
    return r;
}
