/*
 * lib/verify/auditstep: the shipper's verification one entry at a time.
 * Streams built with lib/audit exactly as the gateway builds them, then
 * tampered with as a stream can be, are fed through an in-memory
 * "archive" (the callbacks), in batches, with the verifier thrown away
 * and rebuilt from the archive between batches (a shipper restarting):
 * every break `credit-audit verify` finds is found, on the same entry,
 * whatever the batches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "audit/audit.h"
#include "audit/auditckpt.h"
#include "core/util.h"
#include "verify/auditstep.h"
#include "verify/auditverify.h"

#include "audit_stream.h"

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

/* ---------------------------------------------------------------------- */

static void
test_intact(void **state)
{
    stream  s;
    shipped r;

    build(&s);
    agree(&s, "");
    ship(&s, 5, 1, key, &r);
    assert_int_equal(r.copies, 0);
    stream_free(&s);
}

static void
test_modified_not_rehashed(void **state)
{
    stream s;

    build(&s);
    set_field(at(&s, "/0", "4"), "bank", "BANK666");
    agree(&s, "modified@4 ");
    stream_free(&s);
}

static void
test_modified_and_rehashed(void **state)
{
    stream s;

    build(&s);
    set_field(at(&s, "/0", "4"), "bank", "BANK666");
    rehash(at(&s, "/0", "4"));
    /* the batch verifier blames seq 4 (its hash is not seq 5's prev);
     * arriving in order, the break shows on seq 5 */
    ship_all_ways(&s, "modified@5 ");
    stream_free(&s);
}

static void
test_deleted(void **state)
{
    stream s;

    build(&s);
    remove_at(&s, index_of(&s, at(&s, "/0", "6")));
    agree(&s, "deleted@7 ");
    stream_free(&s);
}

static void
test_chain_start_missing(void **state)
{
    stream s;

    build(&s);
    remove_at(&s, index_of(&s, at(&s, "/0", "1")));
    remove_at(&s, index_of(&s, at(&s, "/0", "2")));
    agree(&s, "deleted@3 ");
    stream_free(&s);
}

static void
test_forged_second_entry(void **state)
{
    stream  s;
    sentry *e;
    shipped r;

    build(&s);
    e = at(&s, "/0", "3");
    insert_copy(&s, index_of(&s, at(&s, "/0", "9")), e);
    e = &s.e[index_of(&s, at(&s, "/0", "9")) - 1];
    set_field(e, "bank", "BANK666");
    rehash(e);
    agree(&s, "inserted@3 ");
    ship(&s, 4, 1, key, &r);
    assert_int_equal(r.copies, 1);
    assert_int_equal(r.duplicates, 0);
    stream_free(&s);
}

static void
test_identical_copy_is_no_break(void **state)
{
    stream  s;
    shipped r;

    build(&s);
    insert_copy(&s, s.n, at(&s, "/0", "5"));
    insert_copy(&s, index_of(&s, at(&s, "/1", "2")), at(&s, "/0", "2"));
    agree(&s, "");
    for (size_t b = 1; b <= 8; b++) {
        ship(&s, b, b % 2, key, &r);
        assert_int_equal(r.copies, 2);
        assert_int_equal(r.duplicates, 2);
    }
    stream_free(&s);
}

static void
test_copy_with_changed_fields(void **state)
{
    stream  s;
    sentry *e;

    build(&s);
    insert_copy(&s, s.n, at(&s, "/0", "5"));
    e = &s.e[s.n - 1];
    set_field(e, "bank", "BANK666");        /* hash left as it was */
    agree(&s, "modified@5 ");
    stream_free(&s);
}

static void
test_bad_signature(void **state)
{
    stream   s;
    ca_chain c;
    shipped  r;

    memset(&s, 0, sizeof(s));
    ca_chain_init(&c, "gw-test/200/1700000000000/0");
    decision(&s, &c, 1);
    checkpoint(&s, &c, other_key, NULL);
    agree(&s, "bad_signature@2 ");
    /* with the other key given too, it verifies */
    ship(&s, 1, 1, other_key, &r);
    assert_string_equal(r.kinds, "");
    stream_free(&s);
}

/* A chain's checkpoints verified by one key: a later one signed by
 * another key of the ring is not the chain's. */
static void
test_key_stays_the_chains(void **state)
{
    stream   s;
    ca_chain c;
    shipped  r;
    archive  a;

    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    ca_chain_init(&c, "gw-test/300/1700000000000/0");
    decision(&s, &c, 1);
    checkpoint(&s, &c, key, NULL);
    decision(&s, &c, 2);
    checkpoint(&s, &c, other_key, NULL);
    /* ring {key, other_key}: the first checkpoint names the chain's key */
    {
        ca_as_io    io = {cb_load, cb_lookup, &a};
        EVP_PKEY   *ring[2] = {key, other_key};
        ca_as      *v = ca_as_new(ring, 2, &io);
        int         bad = 0;

        for (size_t i = 0; i < s.n; i++) {
            ca_as_verdict vd;

            feed(v, &s.e[i], i, &vd);
            for (size_t f = 0; f < vd.nfindings; f++) {
                bad += vd.findings[f].kind == CA_AV_BAD_SIGNATURE
                       && vd.findings[f].seq == 4;
            }
        }
        assert_int_equal(bad, 1);
        ca_as_free(v);
    }
    (void) r;
    stream_free(&s);
}

static void
test_discontinuity(void **state)
{
    stream   s;
    ca_chain c;
    ca_entry e;

    memset(&s, 0, sizeof(s));
    ca_chain_init(&c, "gw-test/400/1700000000000/0");
    decision(&s, &c, 1);
    ca_entry_init(&e, "discontinuity", 1700000010000LL, "gw-test");
    ca_entry_add(&e, "missing", "epoch", 5);
    assert_int_equal(ca_chain_seal(&c, &e), 0);
    store(&s, &e);
    checkpoint(&s, &c, key, NULL);
    agree(&s, "discontinuity@2 ");
    stream_free(&s);
}

/* The lane chain cut below what chain 0's checkpoint listed. */
static void
test_listed_head_missing(void **state)
{
    stream s;

    build(&s);
    remove_at(&s, index_of(&s, at(&s, "/1", "4")));
    /* the lane's own checkpoint (seq 5) now follows a gap too; the batch
     * verifier reports the listing on the lane chain, the step verifier
     * on the checkpoint that lists it */
    ship_all_ways(&s, "deleted@16 deleted@5 ");
    stream_free(&s);
}

static void
test_listed_head_other_hash(void **state)
{
    stream  s;
    sentry *e;

    build(&s);
    e = at(&s, "/1", "4");
    set_field(e, "bank", "BANK666");
    rehash(e);
    ship_all_ways(&s, "modified@16 modified@5 ");
    stream_free(&s);
}

/* A forger re-hashes seq 10 and the checkpoint after it (links hold):
 * only the signature shows it, on the checkpoint that signed seq 10;
 * the next entry's prev then names the checkpoint's old hash. */
static void
test_signed_head_differs(void **state)
{
    stream  s;
    sentry *e, *cp;

    build(&s);
    e = at(&s, "/0", "10");
    set_field(e, "bank", "BANK666");
    rehash(e);
    cp = at(&s, "/0", "11");
    set_field(cp, "prev", sentry_get(e, "hash"));
    rehash(cp);
    ship_all_ways(&s, "modified@11 modified@12 ");
    stream_free(&s);
}

/* seq n stored before n - 1: a gap, then the late one. */
static void
test_reordered(void **state)
{
    stream s;
    size_t i;
    sentry t;

    build(&s);
    i = index_of(&s, at(&s, "/0", "3"));
    t = s.e[i];
    s.e[i] = s.e[i + 1];
    s.e[i + 1] = t;
    ship_all_ways(&s, "deleted@4 reordered@3 ");
    stream_free(&s);
}

static void
test_not_a_chain_entry(void **state)
{
    stream  s;
    sentry *e;

    build(&s);
    e = at(&s, "/0", "2");
    set_field(e, "seq", "02");
    /* no entry holds seq 2 now: the next one follows a gap */
    ship_all_ways(&s, "inserted@0 deleted@3 ");
    stream_free(&s);
}

/* What a copy of an entry shipped long before costs: one lookup. */
static void
test_lookups_only_when_needed(void **state)
{
    stream  s;
    archive a;
    ca_as_io io = {cb_load, cb_lookup, &a};
    ca_as   *v;

    build(&s);
    memset(&a, 0, sizeof(a));
    v = ca_as_new(&key, 1, &io);
    for (size_t i = 0; i < s.n; i++) {
        ca_as_verdict vd;

        feed(v, &s.e[i], i, &vd);
    }
    assert_int_equal(a.loads, 2);       /* each chain once */
    assert_int_equal(a.lookups, 0);     /* the listing answered in memory */
    ca_as_free(v);
    stream_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact),
        cmocka_unit_test(test_modified_not_rehashed),
        cmocka_unit_test(test_modified_and_rehashed),
        cmocka_unit_test(test_deleted),
        cmocka_unit_test(test_chain_start_missing),
        cmocka_unit_test(test_forged_second_entry),
        cmocka_unit_test(test_identical_copy_is_no_break),
        cmocka_unit_test(test_copy_with_changed_fields),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_key_stays_the_chains),
        cmocka_unit_test(test_discontinuity),
        cmocka_unit_test(test_listed_head_missing),
        cmocka_unit_test(test_listed_head_other_hash),
        cmocka_unit_test(test_signed_head_differs),
        cmocka_unit_test(test_reordered),
        cmocka_unit_test(test_not_a_chain_entry),
        cmocka_unit_test(test_lookups_only_when_needed),
    };
    int rc;

    key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    other_key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (key == NULL || other_key == NULL) {
        fprintf(stderr, "cannot generate Ed25519 keys\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
    return rc;
}
