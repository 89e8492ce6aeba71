/*
 * lib/auditverify: chains built with lib/audit/audit.c exactly as the gateway
 * builds them, then tampered with the way a stream can be (XADD into a
 * copy), and the verifier's classification of each tampering.
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
#include "verify/auditverify.h"
#include "core/util.h"

#include "audit_stream.h"

#define MAX_ENTRIES 64

typedef struct {
    sentry      e[MAX_ENTRIES];
    size_t      n;
    uint64_t    next_id;
} stream;

static EVP_PKEY *key, *other_key;

static void
store(stream *s, const ca_entry *ce)
{
    sentry *e;

    assert_true(s->n < MAX_ENTRIES);
    e = &s->e[s->n++];
    snprintf(e->id, sizeof(e->id), "1700000000000-%llu",
             (unsigned long long) s->next_id++);
    sentry_copy(e, ce);
}

static void
stream_free(stream *s)
{
    for (size_t i = 0; i < s->n; i++) {
        sentry_clear(&s->e[i]);
    }
    s->n = 0;
}

/* A decision entry as the gateway writes it (no personal data). */
static void
decision(stream *s, ca_chain *ch, int i)
{
    ca_entry e;
    char     rid[32];

    snprintf(rid, sizeof(rid), "rid-%d", i);
    ca_entry_init(&e, "decision", 1700000000000LL + i, "gw-test");
    ca_entry_add(&e, "rid", rid, strlen(rid));
    ca_entry_add(&e, "bank", "BANK001", 7);
    ca_entry_add(&e, "enterprise", "91350100M000100Y43", 18);
    ca_entry_add(&e, "decision", "allow", 5);
    ca_entry_add(&e, "reason", "ok", 2);
    assert_int_equal(ca_chain_seal(ch, &e), 0);
    store(s, &e);
}

static void
checkpoint(stream *s, ca_chain *ch, EVP_PKEY *k)
{
    ca_entry e;

    assert_int_equal(ca_checkpoint_build(ch, &e, 1700000009999LL,
                                         "gw-test", k, NULL), 0);
    store(s, &e);
}

/* seq 1..10 decisions, checkpoint (seq 11, covers 10), then `tail` more
 * unsigned decisions. */
static void
build(stream *s, ca_chain *ch, int tail)
{
    memset(s, 0, sizeof(*s));
    ca_chain_init(ch, "gw-test/100/1700000000000");
    for (int i = 1; i <= 10; i++) {
        decision(s, ch, i);
    }
    checkpoint(s, ch, key);
    for (int i = 0; i < tail; i++) {
        decision(s, ch, 100 + i);
    }
}

static sentry *
by_seq(stream *s, const char *seq)
{
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->e[i].n; j++) {
            if (strcmp(s->e[i].name[j], "seq") == 0
                && strcmp(s->e[i].value[j], seq) == 0)
            {
                return &s->e[i];
            }
        }
    }
    fail_msg("no entry with seq %s", seq);
    return NULL;
}

static size_t
index_of(stream *s, sentry *e)
{
    return (size_t) (e - s->e);
}

static void
remove_at(stream *s, size_t i)
{
    sentry_clear(&s->e[i]);
    memmove(&s->e[i], &s->e[i + 1], (s->n - i - 1) * sizeof(sentry));
    s->n--;
}

static void
insert_copy_at(stream *s, size_t i, const sentry *src, const char *id)
{
    sentry c = *src;

    assert_true(s->n < MAX_ENTRIES);
    for (size_t j = 0; j < c.n; j++) {
        c.name[j] = strdup(src->name[j]);
        c.value[j] = malloc(src->len[j] + 1);
        memcpy(c.value[j], src->value[j], src->len[j] + 1);
    }
    snprintf(c.id, sizeof(c.id), "%s", id);
    memmove(&s->e[i + 1], &s->e[i], (s->n - i) * sizeof(sentry));
    s->e[i] = c;
    s->n++;
}

static ca_av *
verify_with(stream *s, EVP_PKEY *k)
{
    ca_av  *v = ca_av_new(k);

    assert_non_null(v);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(sentry_feed(v, &s->e[i]), 0);
    }
    assert_int_equal(ca_av_finish(v), 0);
    return v;
}

static ca_av *
verify(stream *s)
{
    return verify_with(s, key);
}

static void
dump(const ca_av *v)
{
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        for (size_t j = 0; j < c->nfindings; j++) {
            print_message("  %s %s seq %llu: %s\n",
                          ca_av_kind_name(c->findings[j].kind),
                          c->findings[j].id,
                          (unsigned long long) c->findings[j].seq,
                          c->findings[j].detail);
        }
    }
}

/* Exactly one finding, of this kind, on the entry with this seq. */
static void
assert_one(const ca_av *v, ca_av_kind kind, uint64_t seq)
{
    const ca_av_chain *c;

    if (ca_av_breaks(v) != 1) {
        dump(v);
    }
    assert_int_equal(ca_av_nchains(v), 1);
    c = ca_av_chain_at(v, 0);
    assert_int_equal(c->nfindings, 1);
    assert_string_equal(ca_av_kind_name(c->findings[0].kind),
                        ca_av_kind_name(kind));
    assert_int_equal(c->findings[0].seq, seq);
}

static int
has_kind(const ca_av *v, ca_av_kind kind)
{
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        for (size_t j = 0; j < c->nfindings; j++) {
            if (c->findings[j].kind == kind) {
                return 1;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */

/* A chain whose every link holds, and whose writer says that Redis came
 * back without what it had acknowledged: a break, never intact. */
static void
test_discontinuity_is_a_break(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_entry  e;
    ca_av    *v;

    build(&s, &ch, 0);
    ca_entry_init(&e, "discontinuity", 1700000010000LL, "gw-test");
    ca_entry_add(&e, "missing", "epoch", 5);
    assert_int_equal(ca_chain_seal(&ch, &e), 0);
    store(&s, &e);
    checkpoint(&s, &ch, key);
    v = verify(&s);
    assert_one(v, CA_AV_DISCONTINUITY, 12);
    assert_string_equal(ca_av_kind_name(CA_AV_DISCONTINUITY),
                        "discontinuity");
    ca_av_free(v);
    stream_free(&s);
    (void) state;
}


static void
test_intact(void **state)
{
    stream              s;
    ca_chain            ch;
    ca_av              *v;
    const ca_av_chain  *c;

    build(&s, &ch, 0);
    v = verify(&s);
    assert_int_equal(ca_av_breaks(v), 0);
    assert_int_equal(ca_av_nchains(v), 1);
    c = ca_av_chain_at(v, 0);
    assert_string_equal(c->chain, "gw-test/100/1700000000000");
    assert_int_equal(c->entries, 11);
    assert_int_equal(c->checkpoints, 1);
    assert_int_equal(c->checkpoints_verified, 1);
    assert_true(c->has_signed);
    assert_int_equal(c->last_signed_seq, 10);
    assert_int_equal(c->unsigned_tail, 0);
    assert_int_equal(c->duplicates, 0);
    assert_int_equal(c->first_seq, 1);
    assert_int_equal(c->last_seq, 11);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_unsigned_tail_is_a_warning(void **state)
{
    stream              s;
    ca_chain            ch;
    ca_av              *v;
    const ca_av_chain  *c;

    build(&s, &ch, 3);
    v = verify(&s);
    assert_int_equal(ca_av_breaks(v), 0);
    c = ca_av_chain_at(v, 0);
    assert_int_equal(c->entries, 14);
    assert_int_equal(c->last_signed_seq, 10);
    assert_int_equal(c->unsigned_tail, 3);
    ca_av_free(v);
    stream_free(&s);

    /* a chain that never reached a checkpoint: all of it unsigned */
    memset(&s, 0, sizeof(s));
    ca_chain_init(&ch, "gw-test/101/1");
    for (int i = 1; i <= 4; i++) {
        decision(&s, &ch, i);
    }
    v = verify(&s);
    assert_int_equal(ca_av_breaks(v), 0);
    c = ca_av_chain_at(v, 0);
    assert_false(c->has_signed);
    assert_int_equal(c->unsigned_tail, 4);
    assert_int_equal(c->checkpoints, 0);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_two_chains_interleaved(void **state)
{
    stream    s;
    ca_chain  a, b;
    ca_av    *v;

    memset(&s, 0, sizeof(s));
    ca_chain_init(&a, "gw-a/1/1");
    ca_chain_init(&b, "gw-b/2/2");
    for (int i = 1; i <= 6; i++) {
        decision(&s, &a, i);
        decision(&s, &b, i);
        if (i == 3) {
            checkpoint(&s, &b, key);
        }
    }
    checkpoint(&s, &a, key);
    v = verify(&s);
    assert_int_equal(ca_av_breaks(v), 0);
    assert_int_equal(ca_av_nchains(v), 2);
    assert_int_equal(ca_av_chain_at(v, 0)->unsigned_tail, 0);
    assert_int_equal(ca_av_chain_at(v, 1)->last_signed_seq, 3);
    assert_int_equal(ca_av_chain_at(v, 1)->unsigned_tail, 3);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_field_modified(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;

    build(&s, &ch, 2);
    set_field(by_seq(&s, "5"), "bank", "BANK002");
    v = verify(&s);
    assert_one(v, CA_AV_MODIFIED, 5);
    ca_av_free(v);
    stream_free(&s);

    /* in the unsigned tail too: the entry's own hash covers it */
    build(&s, &ch, 2);
    set_field(by_seq(&s, "13"), "decision", "deny");
    v = verify(&s);
    assert_one(v, CA_AV_MODIFIED, 13);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_modified_and_rehashed(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;

    /* re-hashed, not propagated: the next entry's prev disagrees */
    build(&s, &ch, 0);
    set_field(by_seq(&s, "5"), "decision", "deny");
    rehash(by_seq(&s, "5"));
    v = verify(&s);
    assert_one(v, CA_AV_MODIFIED, 5);
    ca_av_free(v);
    stream_free(&s);

    /* re-hashed and every later prev/hash redone: only the signature
     * still knows; the break is found at the signed seq */
    build(&s, &ch, 0);
    set_field(by_seq(&s, "5"), "decision", "deny");
    rehash(by_seq(&s, "5"));
    for (int i = 6; i <= 11; i++) {
        char seq[16], pseq[16];

        snprintf(seq, sizeof(seq), "%d", i);
        snprintf(pseq, sizeof(pseq), "%d", i - 1);
        set_field(by_seq(&s, seq), "prev",
                  sentry_get(by_seq(&s, pseq), "hash"));
        rehash(by_seq(&s, seq));
    }
    v = verify(&s);
    assert_true(has_kind(v, CA_AV_MODIFIED));
    assert_int_equal(ca_av_chain_at(v, 0)->findings[0].seq, 10);
    assert_non_null(strstr(ca_av_chain_at(v, 0)->findings[0].detail,
                           "signed"));
    ca_av_free(v);
    stream_free(&s);
}

static void
test_entry_deleted(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;

    build(&s, &ch, 2);
    remove_at(&s, index_of(&s, by_seq(&s, "5")));
    v = verify(&s);
    assert_one(v, CA_AV_DELETED, 6);
    assert_non_null(strstr(ca_av_chain_at(v, 0)->findings[0].detail,
                           "seq 5 missing"));
    ca_av_free(v);
    stream_free(&s);

    /* the chain's first entry */
    build(&s, &ch, 0);
    remove_at(&s, 0);
    v = verify(&s);
    assert_one(v, CA_AV_DELETED, 2);
    ca_av_free(v);
    stream_free(&s);

    /* in the unsigned tail: the gap shows */
    build(&s, &ch, 3);
    remove_at(&s, index_of(&s, by_seq(&s, "13")));
    v = verify(&s);
    assert_one(v, CA_AV_DELETED, 14);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_entry_inserted(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;
    sentry   *forged;
    size_t    at;

    /* A forged decision placed after seq 5, claiming seq 6 and linking to
     * seq 5, with its own hash recomputed: the real seq 6 is the one seq 7
     * links to. */
    build(&s, &ch, 0);
    at = index_of(&s, by_seq(&s, "6"));
    insert_copy_at(&s, at, by_seq(&s, "6"), "1700000000000-55");
    forged = &s.e[at];
    set_field(forged, "rid", "forged");
    set_field(forged, "bank", "BANK666");
    rehash(forged);
    v = verify(&s);
    assert_one(v, CA_AV_INSERTED, 6);
    assert_string_equal(ca_av_chain_at(v, 0)->findings[0].id,
                        "1700000000000-55");
    ca_av_free(v);
    stream_free(&s);

    /* The same forgery, with everything after it renumbered and re-hashed
     * (checkpoint included): the signed checkpoint no longer fits. */
    build(&s, &ch, 0);
    at = index_of(&s, by_seq(&s, "6"));
    insert_copy_at(&s, at, by_seq(&s, "6"), "1700000000000-55");
    set_field(&s.e[at], "rid", "forged");
    for (size_t i = at; i < s.n; i++) {
        char seq[24];

        snprintf(seq, sizeof(seq), "%zu", i + 1);
        set_field(&s.e[i], "seq", seq);
        set_field(&s.e[i], "prev", sentry_get(&s.e[i - 1], "hash"));
        rehash(&s.e[i]);
    }
    v = verify(&s);
    assert_true(has_kind(v, CA_AV_INSERTED));
    assert_false(has_kind(v, CA_AV_BAD_SIGNATURE));
    ca_av_free(v);
    stream_free(&s);

    /* something that is not a chain entry at all */
    build(&s, &ch, 0);
    {
        ca_entry e;

        ca_entry_init(&e, "decision", 1, "gw-test");
        ca_entry_add(&e, "bank", "BANK001", 7);
        store(&s, &e);
    }
    v = verify(&s);
    assert_true(has_kind(v, CA_AV_INSERTED));
    assert_int_equal(ca_av_breaks(v), 1);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_two_entries_swapped(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;
    sentry    tmp;
    size_t    a, b;

    build(&s, &ch, 0);
    a = index_of(&s, by_seq(&s, "4"));
    b = index_of(&s, by_seq(&s, "5"));
    tmp = s.e[a];
    s.e[a] = s.e[b];
    s.e[b] = tmp;
    /* stream ids stay increasing, as XADD into a copy makes them */
    snprintf(s.e[a].id, sizeof(s.e[a].id), "1700000000000-%zu", a);
    snprintf(s.e[b].id, sizeof(s.e[b].id), "1700000000000-%zu", b);
    v = verify(&s);
    assert_one(v, CA_AV_REORDERED, 5);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_truncated(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;

    /* checkpoint covers seq 10, only seq 1..8 remain before it */
    build(&s, &ch, 0);
    remove_at(&s, index_of(&s, by_seq(&s, "10")));
    remove_at(&s, index_of(&s, by_seq(&s, "9")));
    v = verify(&s);
    assert_one(v, CA_AV_TRUNCATED, 11);
    assert_non_null(strstr(ca_av_chain_at(v, 0)->findings[0].detail,
                           "covers seq 10"));
    assert_int_equal(ca_av_chain_at(v, 0)->last_signed_seq, 10);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_bad_signature(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;
    char      sig[128];
    sentry   *cp;

    /* verified with a key that is not the gateway's */
    build(&s, &ch, 0);
    v = verify_with(&s, other_key);
    assert_one(v, CA_AV_BAD_SIGNATURE, 11);
    assert_int_equal(ca_av_chain_at(v, 0)->checkpoints_verified, 0);
    assert_false(ca_av_chain_at(v, 0)->has_signed);
    ca_av_free(v);
    stream_free(&s);

    /* signed by another key */
    memset(&s, 0, sizeof(s));
    ca_chain_init(&ch, "gw-test/100/1700000000000");
    for (int i = 1; i <= 3; i++) {
        decision(&s, &ch, i);
    }
    checkpoint(&s, &ch, other_key);
    v = verify(&s);
    assert_one(v, CA_AV_BAD_SIGNATURE, 4);
    ca_av_free(v);
    stream_free(&s);

    /* one signature byte flipped and the entry re-hashed */
    build(&s, &ch, 0);
    cp = by_seq(&s, "11");
    snprintf(sig, sizeof(sig), "%s", sentry_get(cp, "sig"));
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    set_field(cp, "sig", sig);
    rehash(cp);
    v = verify(&s);
    assert_one(v, CA_AV_BAD_SIGNATURE, 11);
    ca_av_free(v);
    stream_free(&s);

    /* covers changed: the signature no longer matches */
    build(&s, &ch, 0);
    cp = by_seq(&s, "11");
    set_field(cp, "covers", "9");
    rehash(cp);
    v = verify(&s);
    assert_true(has_kind(v, CA_AV_BAD_SIGNATURE));
    ca_av_free(v);
    stream_free(&s);

    /* no key at all: a checkpoint proves nothing */
    build(&s, &ch, 0);
    v = verify_with(&s, NULL);
    assert_one(v, CA_AV_BAD_SIGNATURE, 11);
    ca_av_free(v);
    stream_free(&s);
}

static void
test_duplicate_delivery(void **state)
{
    stream              s;
    ca_chain            ch;
    ca_av              *v;
    const ca_av_chain  *c;
    size_t              at;

    /* written twice after a reconnect: same chain, seq and hash */
    build(&s, &ch, 2);
    at = index_of(&s, by_seq(&s, "5"));
    insert_copy_at(&s, at + 1, &s.e[at], "1700000000000-77");
    at = index_of(&s, by_seq(&s, "12"));
    insert_copy_at(&s, at + 1, &s.e[at], "1700000000000-78");
    v = verify(&s);
    if (ca_av_breaks(v) != 0) {
        dump(v);
    }
    assert_int_equal(ca_av_breaks(v), 0);
    c = ca_av_chain_at(v, 0);
    assert_int_equal(c->duplicates, 2);
    assert_int_equal(c->entries, 13);
    assert_int_equal(c->unsigned_tail, 2);
    ca_av_free(v);
    stream_free(&s);

    /* a second copy with a changed field is not a duplicate */
    build(&s, &ch, 0);
    at = index_of(&s, by_seq(&s, "5"));
    insert_copy_at(&s, at + 1, &s.e[at], "1700000000000-77");
    set_field(&s.e[at + 1], "bank", "BANK002");
    v = verify(&s);
    assert_one(v, CA_AV_MODIFIED, 5);
    assert_string_equal(ca_av_chain_at(v, 0)->findings[0].id,
                        "1700000000000-77");
    ca_av_free(v);
    stream_free(&s);
}

static void
test_hash_field_rules(void **state)
{
    stream    s;
    ca_chain  ch;
    ca_av    *v;
    sentry   *e;

    /* upper-case hex is not what the gateway wrote */
    build(&s, &ch, 0);
    e = by_seq(&s, "3");
    {
        char h[65];

        snprintf(h, sizeof(h), "%s", sentry_get(e, "hash"));
        for (char *p = h; *p; p++) {
            if (*p >= 'a' && *p <= 'f') {
                *p = (char) (*p - 'a' + 'A');
            }
        }
        set_field(e, "hash", h);
    }
    v = verify(&s);
    assert_int_not_equal(ca_av_breaks(v), 0);
    ca_av_free(v);
    stream_free(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intact),
        cmocka_unit_test(test_discontinuity_is_a_break),
        cmocka_unit_test(test_unsigned_tail_is_a_warning),
        cmocka_unit_test(test_two_chains_interleaved),
        cmocka_unit_test(test_field_modified),
        cmocka_unit_test(test_modified_and_rehashed),
        cmocka_unit_test(test_entry_deleted),
        cmocka_unit_test(test_entry_inserted),
        cmocka_unit_test(test_two_entries_swapped),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_duplicate_delivery),
        cmocka_unit_test(test_hash_field_rules),
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
