/* credit-audit: options, reading the stream, entries, periods, a map. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_tool.h"

/* ---- options common to every command --------------------------------- */

static int
common_opt(common_opts *co, int ch)
{
    int rc = tool_redis_opt(&co->redis, ch, optarg);

    if (rc != 0) {
        return rc;
    }
    switch (ch) {
    case OPT_STREAM:
        co->stream = optarg;
        return 1;
    case OPT_PUBKEY:
        if (co->npubkeys == sizeof(co->pubkey) / sizeof(co->pubkey[0])) {
            fprintf(stderr, "credit-audit: too many --pubkey (at most %zu; "
                    "use --keyring FILE)\n",
                    sizeof(co->pubkey) / sizeof(co->pubkey[0]));
            return -1;
        }
        co->pubkey[co->npubkeys++] = optarg;
        return 1;
    case OPT_KEYRING:
        co->keyring = optarg;
        return 1;
    case TOOL_OPT_TZ:
        return tool_set_tz(optarg) == 0 ? 1 : -1;
    case OPT_JSON:
        co->json = 1;
        return 1;
    }
    return 0;
}

int
next_opt(common_opts *co, int argc, char **argv, const char *shortopts,
         const struct option *opts)
{
    int ch;

    while ((ch = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        switch (common_opt(co, ch)) {
        case 1:
            continue;
        case -1:
            return 0;
        }
        return ch;
    }
    return -1;
}

int
args_done(const char *usage, int argc, char **argv, period *p)
{
    if (optind != argc) {
        return usage_error(usage, "unexpected argument %s", argv[optind]);
    }
    return p != NULL && period_resolve(p) != 0 ? EXIT_USAGE : 0;
}

void
common_init(common_opts *co)
{
    memset(co, 0, sizeof(*co));
    tool_redis_init(&co->redis);
    co->stream = "credit:audit";
}

int
usage_error(const char *usage, const char *fmt, const char *arg)
{
    if (fmt != NULL) {
        fputs("credit-audit: ", stderr);
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fputs(usage, stderr);
    return EXIT_USAGE;
}


/* Walks an array of [id, [name, value, ...]]; -1 on a malformed reply,
 * else the callback's first non-zero result or 0. */
int
walk_entries(redisReply *arr, int reverse, entry_cb cb, void *data)
{
    const char *names[2 * CA_ENTRY_FIELDS + 16];
    const char *values[2 * CA_ENTRY_FIELDS + 16];
    size_t      nlen[2 * CA_ENTRY_FIELDS + 16];
    size_t      vlen[2 * CA_ENTRY_FIELDS + 16];
    entry       e;
    int         rc;

    for (size_t k = 0; k < arr->elements; k++) {
        size_t      i = reverse ? arr->elements - 1 - k : k;
        redisReply *it = arr->element[i], *f;

        if (it->type != REDIS_REPLY_ARRAY || it->elements != 2
            || it->element[0]->type != REDIS_REPLY_STRING)
        {
            return -1;
        }
        f = it->element[1];
        e.id = it->element[0]->str;
        e.n = 0;
        if (f->type == REDIS_REPLY_ARRAY) {
            /* an entry wider than any the gateway writes is still shown
             * (its first fields) and still verified as not intact */
            for (size_t j = 0; j + 1 < f->elements
                 && e.n < sizeof(names) / sizeof(names[0]); j += 2)
            {
                if (f->element[j]->type != REDIS_REPLY_STRING
                    || f->element[j + 1]->type != REDIS_REPLY_STRING)
                {
                    return -1;
                }
                names[e.n] = f->element[j]->str;
                nlen[e.n] = f->element[j]->len;
                values[e.n] = f->element[j + 1]->str;
                vlen[e.n] = f->element[j + 1]->len;
                e.n++;
            }
        }
        e.name = names;
        e.nlen = nlen;
        e.value = values;
        e.vlen = vlen;
        rc = cb(&e, data);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
reply_error(redisContext *rc, redisReply *r, const char *what)
{
    if (r == NULL) {
        fprintf(stderr, "credit-audit: redis: %s: %s\n", what, rc->errstr);
    } else if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "credit-audit: redis: %s: %s\n", what, r->str);
    } else {
        fprintf(stderr, "credit-audit: redis: %s: unexpected reply\n", what);
    }
    freeReplyObject(r);
    return EXIT_USAGE;
}

/* A misspelt --stream must not read as an empty, "intact" trail. */
int
stream_exists(redisContext *rc, const char *stream)
{
    redisReply *r = redisCommand(rc, "EXISTS %s", stream);

    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return reply_error(rc, r, "EXISTS");
    }
    if (r->integer == 0) {
        fprintf(stderr, "credit-audit: stream %s does not exist\n", stream);
        freeReplyObject(r);
        return EXIT_USAGE;
    }
    freeReplyObject(r);
    return 0;
}

int
scan_stream_from(redisContext *rc, const char *stream, const char *from,
                 entry_cb cb, void *data, size_t *count)
{
    char        start[64];
    redisReply *r;
    int         rv;

    *count = 0;
    snprintf(start, sizeof(start), "%s", from);
    for (;;) {
        r = redisCommand(rc, "XRANGE %s %s + COUNT %d", stream, start, PAGE);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            return reply_error(rc, r, "XRANGE");
        }
        if (r->elements == 0) {
            freeReplyObject(r);
            return *count == 0 ? stream_exists(rc, stream) : 0;
        }
        rv = walk_entries(r, 0, cb, data);
        if (rv != 0) {
            freeReplyObject(r);
            if (rv < 0) {
                fprintf(stderr, "credit-audit: redis: malformed XRANGE "
                        "reply\n");
                return EXIT_USAGE;
            }
            return rv;
        }
        *count += r->elements;
        /* the next page starts after the last id (exclusive range,
         * Redis 6.2+): ids are unique, so nothing is read twice */
        snprintf(start, sizeof(start), "(%s",
                 r->element[r->elements - 1]->element[0]->str);
        if (r->elements < PAGE) {
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
    }
}

int
scan_stream(redisContext *rc, const char *stream, entry_cb cb, void *data,
            size_t *count)
{
    return scan_stream_from(rc, stream, "-", cb, data, count);
}

/* ---- entry helpers --------------------------------------------------- */

int
field_eq(const char *s, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* First value of a field, or NULL. */
const char *
get(const entry *e, ca_audit_fid id, size_t *len)
{
    const char *name = ca_audit_schema[id].name;

    for (size_t i = 0; i < e->n; i++) {
        if (field_eq(e->name[i], e->nlen[i], name)) {
            *len = e->vlen[i];
            return e->value[i];
        }
    }
    *len = 0;
    return NULL;
}

int
has_value(const entry *e, ca_audit_fid id, const char *want)
{
    size_t      len;
    const char *v = get(e, id, &len);

    return v != NULL && field_eq(v, len, want);
}

int
is_event(const entry *e, unsigned event)
{
    return has_value(e, CA_F_EVENT, ca_audit_event_name(event));
}

/* The entry's ts in ms; -1 when absent or not a number. */
int64_t
entry_ts(const entry *e)
{
    size_t      len;
    const char *v = get(e, CA_F_TS, &len);
    int64_t     n = 0;

    if (v == NULL || len == 0 || len > 18) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

int
in_period(const period *p, const entry *e)
{
    int64_t ts;

    if (!p->set) {
        return 1;
    }
    ts = entry_ts(e);
    return ts >= 0 && ts >= p->since && ts < p->until;
}

void
period_opt(period *p, int ch, const char *arg)
{
    p->arg[ch == OPT_SINCE ? 0 : ch == OPT_UNTIL ? 1 : 2] = arg;
}

int
period_resolve(period *p)
{
    static const char *const opt[] = {"since", "until", "month"};
    int64_t                  ms[3];
    ca_time_unit             unit[3];
    char                     err[400];

    for (int i = 0; i < 3; i++) {
        if (p->arg[i] == NULL) {
            continue;
        }
        if (ca_time_parse(p->arg[i], &ms[i], &unit[i], err, sizeof(err))
            != 0)
        {
            fprintf(stderr, "credit-audit: --%s: %s\n", opt[i], err);
            return -1;
        }
    }
    if (p->arg[2] != NULL) {
        if (unit[2] != CA_TIME_MONTH) {
            fprintf(stderr, "credit-audit: bad --month %s (give YYYY-MM, "
                    "e.g. 2026-11; the month is cut in --tz)\n", p->arg[2]);
            return -1;
        }
        if (p->arg[0] != NULL || p->arg[1] != NULL) {
            fprintf(stderr, "credit-audit: --month or --since/--until, not "
                    "both\n");
            return -1;
        }
    }
    p->set = p->arg[0] || p->arg[1] || p->arg[2];
    p->since = p->arg[0] ? ms[0] : p->arg[2] ? ms[2] : INT64_MIN;
    p->until = p->arg[1] ? ms[1]
               : p->arg[2] ? ca_time_next(ms[2], unit[2]) : INT64_MAX;
    return 0;
}

/* ---- a small string map (rids, counts, distinct values) --------------- */

static uint64_t
hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }
    return h;
}

map_slot *
map_find(strmap *m, const char *k, size_t len, int create)
{
    size_t j;

    if (create && (m->n + 1) * 2 > m->cap) {
        size_t    ncap = m->cap ? m->cap * 2 : 64;
        map_slot *ns = calloc(ncap, sizeof(*ns));

        if (ns == NULL) {
            fputs("credit-audit: out of memory\n", stderr);
            exit(EXIT_USAGE);
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slot[i].key != NULL) {
                j = hash_bytes(m->slot[i].key, m->slot[i].len) & (ncap - 1);
                while (ns[j].key != NULL) {
                    j = (j + 1) & (ncap - 1);
                }
                ns[j] = m->slot[i];
            }
        }
        free(m->slot);
        m->slot = ns;
        m->cap = ncap;
    }
    if (m->cap == 0) {
        return NULL;
    }
    j = hash_bytes(k, len) & (m->cap - 1);
    while (m->slot[j].key != NULL) {
        if (m->slot[j].len == len && memcmp(m->slot[j].key, k, len) == 0) {
            return &m->slot[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (!create) {
        return NULL;
    }
    m->slot[j].key = malloc(len + 1);
    if (m->slot[j].key == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        exit(EXIT_USAGE);
    }
    memcpy(m->slot[j].key, k, len);
    m->slot[j].key[len] = '\0';
    m->slot[j].len = len;
    m->slot[j].count = 0;
    m->n++;
    return &m->slot[j];
}

void
map_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slot[i].key);
    }
    free(m->slot);
    m->slot = NULL;
    m->cap = m->n = 0;
}


static int
name_cmp(const void *a, const void *b)
{
    const map_slot *x = *(const map_slot *const *) a;
    const map_slot *y = *(const map_slot *const *) b;
    size_t          n = x->len < y->len ? x->len : y->len;
    int             c = memcmp(x->key, y->key, n);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int
slot_cmp(const void *a, const void *b)
{
    const map_slot *x = *(const map_slot *const *) a;
    const map_slot *y = *(const map_slot *const *) b;

    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return name_cmp(a, b);
}

static map_slot **
slots(const strmap *m, int (*cmp)(const void *, const void *))
{
    map_slot **s = malloc((m->n ? m->n : 1) * sizeof(*s));
    size_t     k = 0;

    if (s == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        exit(EXIT_USAGE);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slot[i].key != NULL) {
            s[k++] = &m->slot[i];
        }
    }
    qsort(s, k, sizeof(*s), cmp);
    return s;
}

map_slot **
sorted_slots(const strmap *m)
{
    return slots(m, slot_cmp);
}

map_slot **
named_slots(const strmap *m)
{
    return slots(m, name_cmp);
}
