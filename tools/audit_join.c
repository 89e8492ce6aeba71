/* Decisions joined with their outcomes: see audit_join.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_join.h"

static void *
must(void *p)
{
    if (p == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        exit(EXIT_USAGE);
    }
    return p;
}

entry *
entry_copy(const entry *e)
{
    size_t  bytes = sizeof(entry) + e->n * (2 * sizeof(char *)
                                            + 2 * sizeof(size_t))
                    + strlen(e->id) + 1;
    entry  *c;
    char   *p;

    for (size_t i = 0; i < e->n; i++) {
        bytes += e->nlen[i] + e->vlen[i] + 2;
    }
    c = must(malloc(bytes));
    c->n = e->n;
    c->name = (const char **) (c + 1);
    c->value = c->name + e->n;
    c->nlen = (size_t *) (c->value + e->n);
    c->vlen = c->nlen + e->n;
    p = (char *) (c->vlen + e->n);
    memcpy(p, e->id, strlen(e->id) + 1);
    c->id = p;
    p += strlen(e->id) + 1;
    for (size_t i = 0; i < e->n; i++) {
        memcpy(p, e->name[i], e->nlen[i]);
        p[e->nlen[i]] = '\0';
        c->name[i] = p;
        c->nlen[i] = e->nlen[i];
        p += e->nlen[i] + 1;
        memcpy(p, e->value[i], e->vlen[i]);
        p[e->vlen[i]] = '\0';
        c->value[i] = p;
        c->vlen[i] = e->vlen[i];
        p += e->vlen[i] + 1;
    }
    return c;
}

/* The stream id's milliseconds: stream time, increasing. */
static int64_t
stream_ms(const entry *e)
{
    return strtoll(e->id, NULL, 10);
}

void
join_init(request_join *j, join_emit emit, void *data)
{
    memset(j, 0, sizeof(*j));
    j->emit = emit;
    j->data = data;
}

static join_item *
item(request_join *j, size_t k)
{
    return &j->ring[(j->head + k) % j->cap];
}

/* The rid map only grows (strmap has no delete; a joined or released rid
 * is marked 0): rebuilt from the items still waiting once the marked
 * keys outnumber them, so it stays the size of the window. */
static void
rid_compact(request_join *j)
{
    size_t      len;
    const char *rid;

    if (j->rid.n <= 2 * j->n + 1024) {
        return;
    }
    map_free(&j->rid);
    for (size_t k = 0; k < j->n; k++) {
        join_item *it = item(j, k);

        if (it->waiting && (rid = get(it->e, CA_F_RID, &len)) != NULL) {
            map_find(&j->rid, rid, len, 1)->count = j->first + k + 1;
        }
    }
}

static void
release(request_join *j)
{
    join_item *it = item(j, 0);

    if (it->waiting) {
        size_t      len;
        const char *rid = get(it->e, CA_F_RID, &len);
        map_slot   *s = map_find(&j->rid, rid, len, 0);

        if (s != NULL && s->count == j->first + 1) {
            s->count = 0;
        }
        it->waiting = 0;
        j->unjoined++;
    }
    j->head = (j->head + 1) % j->cap;
    j->n--;
    j->first++;
    rid_compact(j);
    if (!it->tentative) {
        j->emit(it->e, it->out, j->data);
    }
    free(it->e);
    free(it->out);
}

/* Out with what no longer waits, or waited too long. */
static void
drain(request_join *j, int64_t now)
{
    while (j->n > 0) {
        join_item *it = item(j, 0);

        if (it->waiting && now - it->at <= JOIN_WINDOW_MS
            && j->n <= JOIN_MAX)
        {
            return;
        }
        release(j);
    }
}

void
join_add(request_join *j, const entry *e, int waiting, int tentative)
{
    size_t      len;
    const char *rid = get(e, CA_F_RID, &len);
    join_item  *it;

    if (rid == NULL || len == 0) {
        waiting = tentative = 0;        /* nothing to join by */
    }
    if (j->n == j->cap) {
        size_t     ncap = j->cap ? 2 * j->cap : 256;
        join_item *r = must(malloc(ncap * sizeof(*r)));

        for (size_t k = 0; k < j->n; k++) {
            r[k] = *item(j, k);
        }
        free(j->ring);
        j->ring = r;
        j->cap = ncap;
        j->head = 0;
    }
    it = item(j, j->n);
    it->e = entry_copy(e);
    it->out = NULL;
    it->waiting = waiting;
    it->tentative = tentative;
    it->at = stream_ms(e);
    if (waiting) {
        map_find(&j->rid, rid, len, 1)->count = j->first + j->n + 1;
    }
    j->n++;
    drain(j, it->at);
}

void
join_outcome(request_join *j, const entry *e, int confirm)
{
    size_t      len;
    const char *rid = get(e, CA_F_RID, &len);
    map_slot   *s = rid ? map_find(&j->rid, rid, len, 0) : NULL;

    if (s != NULL && s->count > j->first) {
        join_item *it = item(j, s->count - 1 - j->first);

        it->out = entry_copy(e);
        it->waiting = 0;
        it->tentative &= !confirm;
        s->count = 0;
        rid_compact(j);
    }
    drain(j, stream_ms(e));
}

void
join_finish(request_join *j)
{
    while (j->n > 0) {
        release(j);
    }
    free(j->ring);
    map_free(&j->rid);
    j->ring = NULL;
    j->cap = j->head = 0;
}
