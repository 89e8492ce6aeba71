/*
 * lib/auditverify against a stream flooded with entries that all claim the
 * same seq (fuzz finding 4).  Anyone who can XADD to the stream can compute
 * the unkeyed hash of an entry that claims seq 1; duplicate detection used
 * to compare every pair of a seq group (49 s for 80 000 entries), so a
 * writer could stall the regulator's check.
 *
 * The bound is on CPU time, not wall-clock, and generous (a few hundred
 * milliseconds are expected; the pairwise version needs tens of seconds).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "audit/audit.h"
#include "verify/auditverify.h"

#define CHAIN   "gw-test/100/1700000000000"
#define CPU_MAX 8.0     /* seconds for the whole verification */

/* Seals one decision entry as the n-th of ch and feeds it to v. */
static void
add_entry(ca_av *v, ca_chain *ch, unsigned long n, unsigned long *id)
{
    ca_entry e;
    char     rid[32], sid[48];
    size_t   nl[CA_ENTRY_FIELDS];

    snprintf(rid, sizeof(rid), "rid-%lu", n);
    ca_entry_init(&e, "decision", 1700000000000LL, "gw-test");
    ca_entry_add(&e, "rid", rid, strlen(rid));
    ca_entry_add(&e, "decision", "allow", 5);
    assert_int_equal(ca_chain_seal(ch, &e), 0);
    for (size_t i = 0; i < e.n; i++) {
        nl[i] = strlen(e.name[i]);
    }
    snprintf(sid, sizeof(sid), "1700000000000-%lu", (*id)++);
    assert_int_equal(ca_av_add(v, sid, e.n, e.name, nl, e.value, e.len), 0);
}

static size_t
count(const ca_av_chain *c, ca_av_kind kind)
{
    size_t n = 0;

    for (size_t i = 0; i < c->nfindings; i++) {
        n += c->findings[i].kind == kind;
    }
    return n;
}

/*
 * distinct entries claiming seq 1, each delivered `copies` times, then
 * `seconds` entries claiming seq 2, the last one chained to the last seq 1.
 */
static void
flood(unsigned long distinct, unsigned long copies, unsigned long seconds)
{
    ca_av             *v = ca_av_new(NULL);
    ca_chain           ch, keep;
    const ca_av_chain *c;
    unsigned long      id = 0;
    clock_t            t0 = clock();
    double             cpu;

    assert_non_null(v);
    for (unsigned long n = 0; n < distinct; n++) {
        for (unsigned long k = 0; k < copies; k++) {
            ca_chain_init(&ch, CHAIN);
            add_entry(v, &ch, n, &id);
        }
    }
    keep = ch;                  /* after the last seq 1 */
    for (unsigned long n = 0; n < seconds; n++) {
        ch = keep;
        add_entry(v, &ch, distinct + n, &id);
    }
    assert_int_equal(ca_av_finish(v), 0);
    cpu = (double) (clock() - t0) / CLOCKS_PER_SEC;
    print_message("%lu x %lu at seq 1, %lu at seq 2: %.2f s CPU\n",
                  distinct, copies, seconds, cpu);

    assert_int_equal(ca_av_nchains(v), 1);
    c = ca_av_chain_at(v, 0);
    assert_int_equal(c->duplicates, distinct * (copies - 1));
    assert_int_equal(c->entries, distinct + seconds);
    /* one entry holds each seq; every other one is an insertion */
    assert_int_equal(count(c, CA_AV_INSERTED),
                     distinct - 1 + (seconds ? seconds - 1 : 0));
    assert_int_equal(c->last_seq, seconds ? 2 : 1);
    if (cpu > CPU_MAX) {
        fail_msg("%.1f s of CPU: quadratic in the size of a seq group?",
                 cpu);
    }
    ca_av_free(v);
}

static void
test_80k_claim_seq_1(void **state)
{
    flood(80000, 1, 0);
    (void) state;
}

static void
test_40k_copies_of_20k_entries(void **state)
{
    flood(20000, 2, 0);
    (void) state;
}

/* The scoring of a group looks for its hash among the next group's prevs:
 * that too was pairwise (group size x next group size). */
static void
test_two_flooded_groups(void **state)
{
    flood(40000, 1, 40000);
    (void) state;
}

/* The entry the next seq links to is kept, wherever it is stored. */
static void
test_linked_entry_is_kept(void **state)
{
    ca_av             *v = ca_av_new(NULL);
    ca_chain           ch, linked;
    const ca_av_chain *c;
    unsigned long      id = 0;

    assert_non_null(v);
    for (unsigned long n = 0; n < 1000; n++) {
        ca_chain_init(&ch, CHAIN);
        add_entry(v, &ch, n, &id);
        if (n == 617) {
            linked = ch;
        }
    }
    add_entry(v, &linked, 5000, &id);
    assert_int_equal(ca_av_finish(v), 0);
    c = ca_av_chain_at(v, 0);
    assert_int_equal(count(c, CA_AV_INSERTED), 999);
    for (size_t i = 0; i < c->nfindings; i++) {
        if (c->findings[i].kind == CA_AV_INSERTED) {
            assert_null(strstr(c->findings[i].id, "-617"));
            assert_non_null(strstr(c->findings[i].detail,
                                   "(kept 1700000000000-617)"));
        }
    }
    ca_av_free(v);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_80k_claim_seq_1),
        cmocka_unit_test(test_40k_copies_of_20k_entries),
        cmocka_unit_test(test_two_flooded_groups),
        cmocka_unit_test(test_linked_entry_is_kept),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
