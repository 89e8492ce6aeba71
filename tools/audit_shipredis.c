/*
 * credit-audit ship, the Redis side (docs/archive.md): the consumer group,
 * taking over what a stopped shipper had read, acknowledging after the
 * archive's commit, trimming, and the lag published for the gateway's
 * status page.
 *
 * Trimming.  Entries of every chain interleave in the stream, so one
 * number decides: XTRIM MINID below the smallest of
 *   - the id after the last one archived (everything up to it is: the
 *     active shipper archives in stream order),
 *   - now minus --keep (Redis's clock: the ids are its),
 *   - the first entry of any chain an unacknowledged finding holds.
 * Past a held chain's break, the other chains' entries are still
 * removed, one by one (XDEL), up to the first two bounds: one broken
 * chain must not make Redis fill up (contract §7.2: a full Redis refuses
 * every bank).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_ship.h"

/* ---- batches ----------------------------------------------------------------- */

void
batch_free(ship_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((void *) b->items[i].e.name);
    }
    shiparena_free(b->arena);
    free(b->items);
    memset(b, 0, sizeof(*b));
}

/* [id, [name, value, ...]] (or [id, nil]: gone from the stream) */
static int
take_entry(ship_batch *b, redisReply *it)
{
    redisReply *f;
    ship_entry *x;
    size_t      nf;
    char       *mem;

    if (it->type != REDIS_REPLY_ARRAY || it->elements != 2
        || it->element[0]->type != REDIS_REPLY_STRING)
    {
        return -1;
    }
    if (b->n == b->cap) {
        size_t      ncap = b->cap ? b->cap * 2 : 256;
        ship_entry *ni = realloc(b->items, ncap * sizeof(*ni));

        if (ni == NULL) {
            return -1;
        }
        b->items = ni;
        b->cap = ncap;
    }
    x = &b->items[b->n];
    memset(x, 0, sizeof(*x));
    x->e.id = it->element[0]->str;
    f = it->element[1];
    nf = f->type == REDIS_REPLY_ARRAY ? f->elements / 2 : 0;
    x->gone = f->type != REDIS_REPLY_ARRAY;
    /* one block: names, values, their lengths (every field: verbatim) */
    mem = malloc((nf ? nf : 1) * (2 * sizeof(char *) + 2 * sizeof(size_t)));
    if (mem == NULL) {
        return -1;
    }
    x->e.name = (const char **) (void *) mem;
    x->e.value = x->e.name + (nf ? nf : 1);
    x->e.nlen = (size_t *) (void *) (x->e.value + (nf ? nf : 1));
    x->e.vlen = x->e.nlen + (nf ? nf : 1);
    for (size_t j = 0; j < nf; j++) {
        redisReply *k = f->element[2 * j], *v = f->element[2 * j + 1];

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            free(mem);
            return -1;
        }
        x->e.name[j] = k->str;
        x->e.nlen[j] = k->len;
        x->e.value[j] = v->str;
        x->e.vlen[j] = v->len;
    }
    x->e.n = nf;
    b->n++;
    return 0;
}

static int
take_entries(ship_batch *b, redisReply *arr)
{
    for (size_t i = 0; i < arr->elements; i++) {
        if (take_entry(b, arr->element[i]) != 0) {
            ship_log("redis: malformed entry in a reply");
            return -1;
        }
    }
    return 0;
}

/* -1 after saying why (r, if any, is a batch's: batch_free frees it) */
static int
failed_in_batch(ship *s, const redisReply *r, const char *what)
{
    ship_log("redis: %s: %s", what,
             r == NULL ? (s->rc->errstr[0] ? s->rc->errstr
                                            : "connection lost")
             : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    s->st.redis_errors++;
    return -1;
}

static int
failed(ship *s, redisReply *r, const char *what)
{
    failed_in_batch(s, r, what);
    freeReplyObject(r);
    return -1;
}

int
shipredis_group(ship *s)
{
    redisReply *r = redisCommand(s->rc, "XGROUP CREATE %s %s 0",
                                 s->co.stream, s->group);

    if (r != NULL && r->type == REDIS_REPLY_ERROR
        && strncmp(r->str, "BUSYGROUP", 9) == 0)
    {
        freeReplyObject(r);
        return 0;
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR
        && strstr(r->str, "key to exist") != NULL)
    {
        freeReplyObject(r);
        return 1;
    }
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        return failed(s, r, "XGROUP CREATE");
    }
    ship_log("consumer group %s created on %s", s->group, s->co.stream);
    freeReplyObject(r);
    return 0;
}

/* Once everything pending is this shipper's: the group's other
 * consumers (shippers gone, each restart a new name) are forgotten, so
 * that the group does not grow with every restart. */
static int
forget_consumers(ship *s)
{
    redisReply *r = redisCommand(s->rc, "XINFO CONSUMERS %s %s",
                                 s->co.stream, s->group);

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return failed(s, r, "XINFO CONSUMERS");
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *c = r->element[i], *x;
        const char *name = NULL;
        long long   pending = -1;

        for (size_t j = 0; c->type == REDIS_REPLY_ARRAY && j + 1 < c->elements;
             j += 2)
        {
            if (c->element[j]->type != REDIS_REPLY_STRING) {
                continue;
            }
            if (strcmp(c->element[j]->str, "name") == 0
                && c->element[j + 1]->type == REDIS_REPLY_STRING)
            {
                name = c->element[j + 1]->str;
            } else if (strcmp(c->element[j]->str, "pending") == 0
                       && c->element[j + 1]->type == REDIS_REPLY_INTEGER)
            {
                pending = c->element[j + 1]->integer;
            }
        }
        if (name == NULL || pending != 0 || strcmp(name, s->consumer) == 0) {
            continue;
        }
        x = redisCommand(s->rc, "XGROUP DELCONSUMER %s %s %s", s->co.stream,
                         s->group, name);
        if (x == NULL || x->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(r);
            return failed(s, x, "XGROUP DELCONSUMER");
        }
        freeReplyObject(x);
    }
    freeReplyObject(r);
    return 0;
}

int
shipredis_next(ship *s, ship_batch *b, char *claiming, size_t len,
               int block)
{
    redisReply *r;
    int         rc;

    if (claiming[0] != '\0') {
        /* whatever any consumer read and did not acknowledge: this
         * shipper holds the stream's lock, so its reader is gone (or is
         * this very process, before a failure); in id order, before
         * anything new */
        r = shiparena_command(s, b, "XAUTOCLAIM %s %s %s 0 %s COUNT %ld",
                          s->co.stream, s->group, s->consumer, claiming,
                          s->batch);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2
            || r->element[0]->type != REDIS_REPLY_STRING
            || r->element[1]->type != REDIS_REPLY_ARRAY)
        {
            return failed_in_batch(s, r, "XAUTOCLAIM");
        }
        snprintf(claiming, len, "%s", strcmp(r->element[0]->str, "0-0")
                                      ? r->element[0]->str : "");
        if (claiming[0] == '\0' && forget_consumers(s) != 0) {
            return -1;
        }
        ship_clock(s, SP_READ);
        rc = take_entries(b, r->element[1]);
        ship_clock(s, SP_PARSE);
        return rc;
    }
    if (block) {
        r = shiparena_command(s, b, "XREADGROUP GROUP %s %s COUNT %ld BLOCK %ld "
                          "STREAMS %s >", s->group, s->consumer, s->batch,
                          s->block_ms, s->co.stream);
    } else {
        r = shiparena_command(s, b, "XREADGROUP GROUP %s %s COUNT %ld STREAMS "
                          "%s >", s->group, s->consumer, s->batch,
                          s->co.stream);
    }
    if (r == NULL || (r->type != REDIS_REPLY_ARRAY
                      && r->type != REDIS_REPLY_NIL))
    {
        return failed_in_batch(s, r, "XREADGROUP");
    }
    if (r->type == REDIS_REPLY_NIL || r->elements == 0) {
        return 0;
    }
    if (r->element[0]->type != REDIS_REPLY_ARRAY
        || r->element[0]->elements != 2
        || r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
    {
        return failed_in_batch(s, NULL, "XREADGROUP: malformed reply");
    }
    ship_clock(s, SP_READ);
    rc = take_entries(b, r->element[0]->element[1]);
    ship_clock(s, SP_PARSE);
    return rc;
}

int
shipredis_ack(ship *s, const ship_batch *b)
{
    const char **argv;
    redisReply  *r;

    if (b->n == 0) {
        return 0;
    }
    if ((argv = malloc((b->n + 3) * sizeof(*argv))) == NULL) {
        return -1;
    }
    argv[0] = "XACK";
    argv[1] = s->co.stream;
    argv[2] = s->group;
    for (size_t i = 0; i < b->n; i++) {
        argv[i + 3] = b->items[i].e.id;
    }
    r = redisCommandArgv(s->rc, (int) b->n + 3, argv, NULL);
    free(argv);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return failed(s, r, "XACK");
    }
    freeReplyObject(r);
    return 0;
}

/* ---- trimming and the lag ----------------------------------------------------- */

static int
redis_now_ms(ship *s, int64_t *ms)
{
    redisReply *r = redisCommand(s->rc, "TIME");

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return failed(s, r, "TIME");
    }
    *ms = strtoll(r->element[0]->str, NULL, 10) * 1000
          + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    return 0;
}

static int
held(const ship *s, const entry *e)
{
    size_t      len = 0;
    const char *c = get(e, CA_F_CHAIN, &len);

    if (c == NULL || !ca_audit_column_fits(CA_F_CHAIN, c, len)) {
        c = "";
        len = 0;
    }
    for (size_t i = 0; i < s->nholds; i++) {
        if (strlen(s->holds[i].chain) == len
            && memcmp(s->holds[i].chain, c, len) == 0
            && sid_cmp(e->id, s->holds[i].from) >= 0)
        {
            return 1;
        }
    }
    return 0;
}

typedef struct {
    ship        *s;
    const char  *limit;
    const char **del;
    size_t       ndel;
    char         last[48];
    int          past;
} xdel_ctx;

static int
cb_xdel(const entry *e, void *data)
{
    xdel_ctx *x = data;

    if (sid_cmp(e->id, x->limit) >= 0) {
        x->past = 1;
        return 1;
    }
    snprintf(x->last, sizeof(x->last), "%s", e->id);
    if (!held(x->s, e) && (x->del[x->ndel] = strdup(e->id)) != NULL) {
        x->ndel++;
    }
    return x->ndel == PAGE ? 1 : 0;
}

/* XDEL, between the first hold and limit, what no hold covers: a page
 * per call of trim. */
static int
xdel_beyond_holds(ship *s, const char *first_hold, const char *limit)
{
    xdel_ctx    x;
    char        from[56];
    size_t      count;
    int         rv = 0;
    redisReply *r;

    memset(&x, 0, sizeof(x));
    x.s = s;
    x.limit = limit;
    if ((x.del = calloc(PAGE + 2, sizeof(*x.del))) == NULL) {
        return -1;
    }
    snprintf(from, sizeof(from), "%s",
             sid_cmp(s->xdel_from, first_hold) > 0 ? s->xdel_from
                                                    : first_hold);
    if (scan_stream_from(s->rc, s->co.stream, from, cb_xdel, &x, &count)
        == EXIT_USAGE)
    {
        rv = -1;
    }
    if (x.ndel > 0) {
        x.del[x.ndel + 1] = NULL;
        memmove(x.del + 2, x.del, x.ndel * sizeof(*x.del));
        x.del[0] = "XDEL";
        x.del[1] = s->co.stream;
        r = redisCommandArgv(s->rc, (int) x.ndel + 2, x.del, NULL);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            rv = failed(s, r, "XDEL");
        } else {
            s->st.trimmed += (uint64_t) r->integer;
            freeReplyObject(r);
        }
        for (size_t i = 0; i < x.ndel; i++) {
            free((void *) x.del[i + 2]);
        }
    }
    if (rv == 0 && x.last[0] != '\0') {
        sid_next(x.last, s->xdel_from, sizeof(s->xdel_from));
    }
    free(x.del);
    return rv;
}

static int
publish(ship *s, int64_t now)
{
    char        lag[24], upd[24], n[24], open[24];
    redisReply *r;
    char        key[512];

    snprintf(key, sizeof(key), "%s:shipper", s->co.stream);
    snprintf(lag, sizeof(lag), "%lld", (long long) s->st.lag_ms);
    snprintf(upd, sizeof(upd), "%lld", (long long) now);
    snprintf(n, sizeof(n), "%llu", (unsigned long long) s->stream_entries);
    snprintf(open, sizeof(open), "%lld", s->st.open_findings);
    r = redisCommand(s->rc, "HSET %s lag_ms %s updated_ms %s archived_id %s "
                     "archived %s findings_open %s shipper %s", key, lag, upd,
                     s->last_id, n, open, s->consumer);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return failed(s, r, "HSET");
    }
    freeReplyObject(r);
    return 0;
}

int
shipredis_trim(ship *s)
{
    int64_t     now;
    char        limit[48], keep[48], minid[48];
    const char *first_hold = NULL;
    redisReply *r;

    if (redis_now_ms(s, &now) != 0) {
        return -1;
    }
    sid_next(s->last_id, limit, sizeof(limit));
    snprintf(keep, sizeof(keep), "%lld-0",
             (long long) (now > s->keep_ms ? now - s->keep_ms : 0));
    if (sid_cmp(keep, limit) < 0) {
        snprintf(limit, sizeof(limit), "%s", keep);
    }
    for (size_t i = 0; i < s->nholds; i++) {
        if (first_hold == NULL || sid_cmp(s->holds[i].from, first_hold) < 0) {
            first_hold = s->holds[i].from;
        }
    }
    snprintf(minid, sizeof(minid), "%s",
             first_hold && sid_cmp(first_hold, limit) < 0 ? first_hold
                                                          : limit);
    r = redisCommand(s->rc, "XTRIM %s MINID %s", s->co.stream, minid);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return failed(s, r, "XTRIM");
    }
    s->st.trimmed += (uint64_t) r->integer;
    freeReplyObject(r);
    if (first_hold != NULL && sid_cmp(first_hold, limit) < 0
        && xdel_beyond_holds(s, first_hold, limit) != 0)
    {
        return -1;
    }

    return shipredis_lag(s);
}

int
shipredis_lag(ship *s)
{
    int64_t     now;
    redisReply *r;

    if (redis_now_ms(s, &now) != 0) {
        return -1;
    }
    /* the lag: the oldest entry not yet archived */
    r = redisCommand(s->rc, "XRANGE %s (%s + COUNT 1", s->co.stream,
                     s->last_id);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return failed(s, r, "XRANGE");
    }
    s->st.lag_ms = 0;
    if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY
        && r->element[0]->elements == 2)
    {
        uint64_t ms = 0, seq;

        sid_parse(r->element[0]->element[0]->str, &ms, &seq);
        s->st.lag_ms = now > (int64_t) ms ? now - (int64_t) ms : 0;
    }
    freeReplyObject(r);
    r = redisCommand(s->rc, "XLEN %s", s->co.stream);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return failed(s, r, "XLEN");
    }
    s->st.stream_len = r->integer;
    freeReplyObject(r);
    return publish(s, now);
}
