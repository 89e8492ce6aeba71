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

#include "audit_ship_harness.h"

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
