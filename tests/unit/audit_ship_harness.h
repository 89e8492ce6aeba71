/*
 * The harness of tests/unit/test_auditstep.c: gateway-like streams built
 * with lib/audit (a writer's chain 0 and a lane, v1 and v2 checkpoints),
 * the ways to tamper with them, an in-memory "archive" for the step
 * verifier's callbacks, and shipping a stream through it in batches, with
 * restarts, against the batch verifier.
 */
#ifndef TEST_AUDIT_SHIP_HARNESS_H
#define TEST_AUDIT_SHIP_HARNESS_H

#include "audit_stream.h"
#include "verify/auditstep.h"

#define MAX_ENTRIES 96
#define MAX_MARKS   256

typedef struct {
    sentry      e[MAX_ENTRIES];
    size_t      n;
} stream;

static EVP_PKEY *key, *other_key;

/* ---- the archive the callbacks read ------------------------------------ */

typedef struct {
    char        chain[128];
    ca_as_state st;
} arch_chain;

typedef struct {
    char        chain[128];
    ca_as_mark  m;
} arch_mark;

typedef struct {
    arch_chain  chains[16];
    size_t      nchains;
    arch_mark   marks[MAX_MARKS];
    size_t      nmarks;
    size_t      loads, lookups;
} archive;

static int
cb_load(void *data, const char *chain, size_t len, ca_as_state *st)
{
    archive *a = data;

    a->loads++;
    for (size_t i = 0; i < a->nchains; i++) {
        if (strlen(a->chains[i].chain) == len
            && memcmp(a->chains[i].chain, chain, len) == 0)
        {
            *st = a->chains[i].st;
            return 0;
        }
    }
    return 1;
}

static int
cb_lookup(void *data, const char *chain, size_t len, uint64_t seq,
          ca_as_mark *m)
{
    archive *a = data;

    a->lookups++;
    for (size_t i = 0; i < a->nmarks; i++) {
        if (a->marks[i].m.seq == seq && strlen(a->marks[i].chain) == len
            && memcmp(a->marks[i].chain, chain, len) == 0)
        {
            *m = a->marks[i].m;
            return 0;
        }
    }
    return 1;
}

/* ---- building streams --------------------------------------------------- */

static void
store(stream *s, const ca_entry *ce)
{
    sentry *e;

    assert_true(s->n < MAX_ENTRIES);
    e = &s->e[s->n];
    snprintf(e->id, sizeof(e->id), "1700000000000-%zu", s->n);
    s->n++;
    sentry_copy(e, ce);
}

static void
decision(stream *s, ca_chain *ch, int i)
{
    ca_entry e;
    char     rid[32];

    snprintf(rid, sizeof(rid), "rid-%d", i);
    ca_entry_init(&e, "decision", 1700000000000LL + i, "gw-test");
    ca_entry_add(&e, "rid", rid, strlen(rid));
    ca_entry_add(&e, "bank", "BANK001", 7);
    ca_entry_add(&e, "decision", "allow", 5);
    assert_int_equal(ca_chain_seal(ch, &e), 0);
    store(s, &e);
}

/* v1 when heads is NULL */
static void
checkpoint(stream *s, ca_chain *ch, EVP_PKEY *k, const char *heads)
{
    ca_entry e;

    assert_int_equal(ca_checkpoint_build(ch, &e, 1700000009999LL, "gw-test",
                                         k, heads), 0);
    store(s, &e);
}

/* "<lane> <seq> <hash>\n" of ch's head */
static void
heads_of(const ca_chain *ch, uint64_t lane, char *out, size_t len)
{
    ca_ckpt_head h;

    h.lane = lane;
    h.seq = ch->seq;
    memcpy(h.hash, ch->head, 32);
    assert_int_not_equal(ca_ckpt_heads_format(&h, 1, out, len), 0);
}

/* Writer gw-test/100/1700000000000: chain 0 with 10 decisions and a v1
 * checkpoint, then a lane chain (1) interleaved with it, and chain 0's v2
 * checkpoint listing the lane's head. */
static void
build(stream *s)
{
    ca_chain c0, c1;
    char     heads[CA_CKPT_HEAD_LINE + 1];

    memset(s, 0, sizeof(*s));
    ca_chain_init(&c0, "gw-test/100/1700000000000/0");
    ca_chain_init(&c1, "gw-test/100/1700000000000/1");
    for (int i = 1; i <= 10; i++) {
        decision(s, &c0, i);
    }
    checkpoint(s, &c0, key, NULL);
    for (int i = 11; i <= 14; i++) {
        decision(s, &c1, i);
        decision(s, &c0, 100 + i);
    }
    heads_of(&c1, 1, heads, sizeof(heads));
    checkpoint(s, &c0, key, heads);
    checkpoint(s, &c1, key, "");
}

static void
stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++) {
        sentry_clear(&s->e[i]);
    }
    s->n = 0;
}

static sentry *
at(stream *s, const char *chain_tail, const char *seq)
{
    for (size_t i = 0; i < s->n; i++) {
        const char *c = sentry_get(&s->e[i], "chain");
        const char *q = sentry_get(&s->e[i], "seq");

        if (c && q && strcmp(q, seq) == 0
            && strcmp(c + strlen(c) - strlen(chain_tail), chain_tail) == 0)
        {
            return &s->e[i];
        }
    }
    fail_msg("no entry %s#%s", chain_tail, seq);
    return NULL;
}

static void
remove_at(stream *s, size_t i)
{
    sentry_clear(&s->e[i]);
    memmove(&s->e[i], &s->e[i + 1], (s->n - i - 1) * sizeof(sentry));
    s->n--;
}

static void
insert_copy(stream *s, size_t i, const sentry *src)
{
    sentry c = *src;

    assert_true(s->n < MAX_ENTRIES);
    for (size_t j = 0; j < c.n; j++) {
        c.name[j] = strdup(src->name[j]);
        c.value[j] = malloc(src->len[j] + 1);
        memcpy(c.value[j], src->value[j], src->len[j] + 1);
    }
    memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof(sentry));
    s->e[i] = c;
    s->n++;
}

static size_t
index_of(stream *s, const sentry *e)
{
    return (size_t) (e - s->e);
}

/* ---- shipping ------------------------------------------------------------ */

static void
feed(ca_as *v, const sentry *e, uint64_t ord, ca_as_verdict *vd)
{
    size_t nl[CA_ENTRY_FIELDS];

    for (size_t f = 0; f < e->n; f++) {
        nl[f] = strlen(e->name[f]);
    }
    assert_int_equal(ca_as_add(v, e->id, ord, e->n,
                               (const char *const *) e->name, nl,
                               (const char *const *) e->value, e->len, vd),
                     0);
}

typedef struct {
    char        kinds[512];     /* "kind@seq " per finding, in order */
    size_t      copies, duplicates, findings;
} shipped;

/* Every entry through the step verifier, `batch` at a time; the verifier
 * rebuilt from the archive after each batch when `restart`. */
static void
ship(stream *s, size_t batch, int restart, EVP_PKEY *k, shipped *out)
{
    archive        a;
    ca_as_io       io = {cb_load, cb_lookup, &a};
    ca_as         *v = NULL;
    EVP_PKEY      *keys[2] = {k, other_key};

    memset(&a, 0, sizeof(a));
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < s->n; i += batch) {
        struct { char chain[128]; ca_as_mark m; } acc[MAX_ENTRIES];
        size_t n = 0, cur = 0, len;
        const char *name;
        const ca_as_state *st;

        if (v == NULL) {
            v = ca_as_new(keys, 1, &io);
            assert_non_null(v);
        }
        for (size_t j = i; j < i + batch && j < s->n; j++) {
            sentry       *e = &s->e[j];
            ca_as_verdict r;
            const char   *chain = sentry_get(e, "chain");

            feed(v, e, j, &r);
            out->copies += r.copy;
            out->duplicates += r.duplicate;
            for (size_t f = 0; f < r.nfindings; f++) {
                char one[48];

                snprintf(one, sizeof(one), "%s@%llu ",
                         ca_av_kind_name(r.findings[f].kind),
                         (unsigned long long) r.findings[f].seq);
                strcat(out->kinds, one);
                out->findings++;
            }
            if (!r.copy && chain != NULL && sentry_get(e, "seq") != NULL) {
                /* what the shipper archives as holding its seq */
                snprintf(acc[n].chain, sizeof(acc[n].chain), "%s", chain);
                acc[n].m.seq = strtoull(sentry_get(e, "seq"), NULL, 10);
                acc[n].m.ord = j;
                ca_unhex(sentry_get(e, "hash"), acc[n].m.hash, 32);
                n++;
            }
        }
        /* the commit: states and entries into the archive */
        while (ca_as_touched(v, &cur, &name, &len, &st)) {
            size_t c;

            for (c = 0; c < a.nchains; c++) {
                if (strlen(a.chains[c].chain) == len
                    && memcmp(a.chains[c].chain, name, len) == 0)
                {
                    break;
                }
            }
            if (c == a.nchains) {
                assert_true(a.nchains < 16);
                snprintf(a.chains[a.nchains++].chain, 128, "%.*s", (int) len,
                         name);
            }
            a.chains[c].st = *st;
        }
        for (size_t j = 0; j < n; j++) {
            assert_true(a.nmarks < MAX_MARKS);
            memcpy(a.marks[a.nmarks].chain, acc[j].chain, 128);
            a.marks[a.nmarks++].m = acc[j].m;
        }
        ca_as_commit(v);
        if (restart) {
            ca_as_free(v);
            v = NULL;
        }
    }
    ca_as_free(v);
}

/* The same findings whatever the batches and restarts. */
static void
ship_all_ways(stream *s, const char *want)
{
    static const size_t sizes[] = {1, 2, 3, 7, 1000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int restart = 0; restart < 2; restart++) {
            shipped r;

            ship(s, sizes[i], restart, key, &r);
            if (strcmp(r.kinds, want) != 0) {
                fail_msg("batch %zu restart %d: \"%s\", expected \"%s\"",
                         sizes[i], restart, r.kinds, want);
            }
        }
    }
}

/* What the batch verifier says of the same stream, "kind@seq " per
 * finding (chains in order of appearance). */
static void
batch_kinds(stream *s, char *out, size_t len)
{
    ca_av *v = ca_av_new(key);

    out[0] = '\0';
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(sentry_feed(v, &s->e[i]), 0);
    }
    assert_int_equal(ca_av_finish(v), 0);
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        for (size_t j = 0; j < c->nfindings; j++) {
            char one[48];

            snprintf(one, sizeof(one), "%s@%llu ",
                     ca_av_kind_name(c->findings[j].kind),
                     (unsigned long long) c->findings[j].seq);
            strncat(out, one, len - strlen(out) - 1);
        }
    }
    ca_av_free(v);
}

/* Both verifiers agree, and say `want`. */
static void
agree(stream *s, const char *want)
{
    char b[512];

    batch_kinds(s, b, sizeof(b));
    assert_string_equal(b, want);
    ship_all_ways(s, want);
}

#endif
