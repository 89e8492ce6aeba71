/*
 * Checkpoint v2 (docs/audit-format.md §3, §4): the signed message, the
 * `heads` value, the worked example of §5, and the breaks verify finds
 * from the heads a checkpoint lists: a whole chain deleted, a chain's end
 * cut with its last checkpoint, chain 0's end cut while lanes checkpoint
 * after it, a listed hash that is not the stream's.
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
#include "audit/audit_testing.h"
#include "audit/auditckpt.h"
#include "verify/auditverify.h"
#include "core/util.h"

#include "audit_stream.h"

#define MAX_ENTRIES 64
#define W           "gw-t/7/1700000000000"

typedef struct {
    sentry      e[MAX_ENTRIES];
    size_t      n;
    uint64_t    next_id;
} stream;

static EVP_PKEY *key;
static stream    S;

static sentry *
store(const ca_entry *ce)
{
    sentry *e;

    assert_true(S.n < MAX_ENTRIES);
    e = &S.e[S.n++];
    snprintf(e->id, sizeof(e->id), "1700000000000-%llu",
             (unsigned long long) S.next_id++);
    sentry_copy(e, ce);
    return e;
}

static void
drop(size_t i)
{
    sentry_clear(&S.e[i]);
    memmove(&S.e[i], &S.e[i + 1], (S.n - i - 1) * sizeof(sentry));
    S.n--;
}

static int
reset(void **state)
{
    while (S.n) {
        drop(S.n - 1);
    }
    S.next_id = 0;
    return 0;
}

/* Removes every entry of chain `lane` from seq `from` on. */
static void
cut(const char *lane, uint64_t from)
{
    char chain[64];

    snprintf(chain, sizeof(chain), W "/%s", lane);
    for (size_t i = S.n; i-- > 0;) {
        if (strcmp(sentry_get(&S.e[i], "chain"), chain) == 0
            && strtoull(sentry_get(&S.e[i], "seq"), NULL, 10) >= from)
        {
            drop(i);
        }
    }
}

static sentry *
decision(ca_chain *ch, int i)
{
    ca_entry e;

    ca_entry_init(&e, "decision", 1700000000000LL + i, "gw-t");
    ca_entry_addf(&e, "rid", "rid-%d", i);
    ca_entry_add(&e, "decision", "allow", 5);
    assert_int_equal(ca_chain_seal(ch, &e), 0);
    return store(&e);
}

/* A checkpoint of ch listing heads[0..n) (v2), or v1 when n < 0. */
static sentry *
checkpoint(ca_chain *ch, const ca_ckpt_head *heads, int n)
{
    ca_entry e;
    char     h[CA_CKPT_HEADS_MAX * CA_CKPT_HEAD_LINE + 1] = "";

    if (n > 0) {
        assert_int_not_equal(ca_ckpt_heads_format(heads, (size_t) n, h,
                                                  sizeof(h)), 0);
    }
    assert_int_equal(ca_checkpoint_build(ch, &e, 1700000009999LL, "gw-t",
                                         key, n < 0 ? NULL : h), 0);
    return store(&e);
}

static ca_ckpt_head
head_of(uint64_t lane, const ca_chain *ch)
{
    ca_ckpt_head h;

    h.lane = lane;
    h.seq = ch->seq;
    memcpy(h.hash, ch->head, 32);
    return h;
}

static ca_av *
verify_floor(const char *floor_chain, uint64_t floor_seq,
             const unsigned char *floor_hash)
{
    ca_av  *v = ca_av_new(key);

    assert_non_null(v);
    if (floor_chain != NULL) {
        assert_int_equal(ca_av_floor(v, floor_chain, floor_seq, floor_hash),
                         0);
    }
    for (size_t i = 0; i < S.n; i++) {
        assert_int_equal(sentry_feed(v, &S.e[i]), 0);
    }
    assert_int_equal(ca_av_finish(v), 0);
    return v;
}

static ca_av *
verify(void)
{
    return verify_floor(NULL, 0, NULL);
}

/* The single finding of the stream: on chain W/lane, of that kind, with
 * that seq and detail text in it. */
static void
assert_finding(const ca_av *v, const char *lane, ca_av_kind kind,
               uint64_t seq, const char *text)
{
    char                chain[64];
    const ca_av_chain  *c, *found = NULL;

    snprintf(chain, sizeof(chain), W "/%s", lane);
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        c = ca_av_chain_at(v, i);
        for (size_t j = 0; j < c->nfindings; j++) {
            print_message("  %s: %s seq %llu: %s\n", c->chain,
                          ca_av_kind_name(c->findings[j].kind),
                          (unsigned long long) c->findings[j].seq,
                          c->findings[j].detail);
        }
        if (strcmp(c->chain, chain) == 0) {
            found = c;
        }
    }
    assert_int_equal(ca_av_breaks(v), 1);
    assert_non_null(found);
    assert_int_equal(found->nfindings, 1);
    assert_string_equal(ca_av_kind_name(found->findings[0].kind),
                        ca_av_kind_name(kind));
    assert_int_equal(found->findings[0].seq, seq);
    assert_non_null(strstr(found->findings[0].detail, text));
}

/*
 * What a writer with two lanes writes: chain 0 a refusal, lanes 1 and 2
 * decisions; chain 0's checkpoint lists both lanes; each lane then
 * checkpoints listing chain 0's checkpoint; chain 0 lists the lanes'
 * checkpoints; lane 1 goes on with two decisions and a checkpoint that
 * lists chain 0's second checkpoint.
 *   chain 0: 1 refusal, 2 cp [1@2 2@1], 3 cp [1@3 2@2]
 *   lane 1:  1 2 decisions, 3 cp [0@2], 4 5 decisions, 6 cp [0@3]
 *   lane 2:  1 decision, 2 cp [0@2]
 */
static void
writer(void)
{
    ca_chain      c0, l1, l2;
    ca_ckpt_head  h[2];

    ca_chain_init(&c0, W "/0");
    ca_chain_init(&l1, W "/1");
    ca_chain_init(&l2, W "/2");
    decision(&c0, 0);
    decision(&l1, 1);
    decision(&l2, 2);
    decision(&l1, 3);
    h[0] = head_of(1, &l1);
    h[1] = head_of(2, &l2);
    checkpoint(&c0, h, 2);
    h[0] = head_of(0, &c0);
    checkpoint(&l1, h, 1);
    checkpoint(&l2, h, 1);
    h[0] = head_of(1, &l1);
    h[1] = head_of(2, &l2);
    checkpoint(&c0, h, 2);
    decision(&l1, 4);
    decision(&l1, 5);
    h[0] = head_of(0, &c0);
    checkpoint(&l1, h, 1);
}

/* ---------------------------------------------------------------------- */

static void
test_message_bytes(void **state)
{
    char          out[512];
    ca_ckpt_head  h[2];
    const char   *head = "87832cb4ab297cf094342167f1f7b9900ae00054d8a140e6"
                         "649b3cb6edad4585";
    size_t        n;

    n = ca_checkpoint_message("gw-1/9/5/0", 12, head, NULL, 0, out,
                              sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "credit-auth checkpoint v1\ngw-1/9/5/0\n12\n"
                        "87832cb4ab297cf094342167f1f7b9900ae00054d8a140e6"
                        "649b3cb6edad4585\n");

    memset(h, 0, sizeof(h));
    h[0].lane = 3;
    h[0].seq = 40;
    h[0].hash[31] = 0xab;
    h[1].lane = 17;
    h[1].seq = 1;
    h[1].hash[0] = 0xff;
    n = ca_ckpt_heads_format(h, 2, out, sizeof(out));
    assert_int_equal(n, 2 * (5 + 64 + 1));
    assert_memory_equal(out, "3 40 000000", 11);
    assert_non_null(strstr(out, "00ab\n17 1 ff00"));

    n = ca_checkpoint_message("gw-1/9/5/0", 12, head, "3 40 x\n", 7, out,
                              sizeof(out));
    out[n] = '\0';
    assert_string_equal(out, "credit-auth checkpoint v2\ngw-1/9/5/0\n12\n"
                        "87832cb4ab297cf094342167f1f7b9900ae00054d8a140e6"
                        "649b3cb6edad4585\n3 40 x\n");
    /* an empty list is still v2 */
    n = ca_checkpoint_message("c", 1, head, "", 0, out, sizeof(out));
    assert_memory_equal(out, "credit-auth checkpoint v2\n", 26);
    /* too small */
    assert_int_equal(ca_checkpoint_message("c", 1, head, NULL, 0, out, 20),
                     0);
    (void) state;
}

static void
test_heads_parse(void **state)
{
#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
    static const char *const bad[] = {
        "1 01 " Z64 "\n",                   /* leading zero */
        "1 0 " Z64 "\n",                    /* seq 0 */
        "1 1 " "000000000000000000000000000000000000000000000000000000000"
        "000000A\n",                        /* upper case */
        "1 1 " Z64,                         /* no newline */
        "1  1 " Z64 "\n",                   /* two spaces */
        "2 1 " Z64 "\n" "2 1 " Z64 "\n",     /* lanes not ascending */
        "-1 1 " Z64 "\n",                   /* a sign */
        "1 1 " "00000000000000000000000000000000000000000000000000000000"
        "000000\n",                         /* 62 digits */
    };
    ca_ckpt_head  h[4];
    const char   *ok = "0 5 " "000000000000000000000000000000000000000000000"
                       "000000000000000000f\n"
                       "12 18446744073709551615 "
                       "ff000000000000000000000000000000000000000000000"
                       "00000000000000000\n";

    assert_int_equal(ca_ckpt_heads_parse(ok, strlen(ok), h, 4), 2);
    assert_int_equal(h[0].lane, 0);
    assert_int_equal(h[0].seq, 5);
    assert_int_equal(h[0].hash[31], 0x0f);
    assert_int_equal(h[1].lane, 12);
    assert_true(h[1].seq == UINT64_MAX);
    assert_int_equal(h[1].hash[0], 0xff);
    assert_int_equal(ca_ckpt_heads_parse(ok, strlen(ok), h, 1), -1);
    assert_int_equal(ca_ckpt_heads_parse("", 0, h, 4), 0);
    assert_int_equal(ca_ckpt_heads_parse("\n\n", 2, NULL, 0), -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ca_ckpt_heads_parse(bad[i], strlen(bad[i]), h, 4),
                         -1);
    }
    (void) state;
}

/* docs/audit-format.md §5, with RFC 8032's test key 1: the v1 checkpoint
 * of the example as printed, and the v2 one (entries of schema 2; the
 * same example in schema 1 is checked by test_auditschema.c). */
static void
test_worked_example(void **state)
{
    EVP_PKEY     *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
                                                   rfc8032_key1, 32);
    ca_chain      ch;
    ca_entry      e;
    ca_ckpt_head  lane;
    char          heads[CA_CKPT_HEAD_LINE + 1];
    const char   *sig, *hash;

    assert_non_null(k);
    ca_chain_init(&ch, "gw-1/4242/1795800000000/0");
    ch.seq = 1;
    assert_int_equal(ca_unhex("9e62c9d2f268741561b3b594e08b3d8c52d363d365f5"
                              "57c6a072802a522da57e", ch.head, 32), 0);
    assert_int_equal(ca_checkpoint_build(&ch, &e, 1795800001000LL, "gw-1", k,
                                         NULL), 0);
    sig = ca_entry_get(&e, "sig", NULL);
    hash = ca_entry_get(&e, "hash", NULL);
    assert_string_equal(sig, "4p5CIyLKRsSzAs0sk1UEjpyE0-3giSIFllsjL62XfJASj-"
                        "Cg5jUhnMZNNFd_Ip_9uLH8C5jI6t0vyAf82YtRBw");
    assert_string_equal(hash, "d04d1a50c5844a84304f33802f9608d3ff744672d4a12"
                        "21232ca511224d2fd79");

    /* v2: the same checkpoint listing lane 1 at seq 7 */
    ch.seq = 1;
    assert_int_equal(ca_unhex("9e62c9d2f268741561b3b594e08b3d8c52d363d365f5"
                              "57c6a072802a522da57e", ch.head, 32), 0);
    lane.lane = 1;
    lane.seq = 7;
    assert_int_equal(ca_unhex("49066a6284ed439b1bba58094e6c6b3e3cc91dc0c4b4"
                              "80e730dfb7c28d6c8d23", lane.hash, 32), 0);
    assert_int_equal(ca_ckpt_heads_format(&lane, 1, heads, sizeof(heads)),
                     69);
    assert_int_equal(ca_checkpoint_build(&ch, &e, 1795800001000LL, "gw-1", k,
                                         heads), 0);
    assert_string_equal(ca_entry_get(&e, "sig", NULL),
                        "bAbQJlMxK4ThJfdDlEWw7BW1dHC32O9NoKbDQ0c_iroZZj4vg"
                        "PlKikTrgjttJuHcJ4ZJ0lGbocxxaj2Wk43NBw");
    assert_string_equal(ca_entry_get(&e, "hash", NULL),
                        "7176cb5279779215f9f2c921a78c114304d89b3e1158ca46c5f"
                        "ad74e297de780");
    EVP_PKEY_free(k);
    (void) state;
}

static void
test_intact_writer(void **state)
{
    ca_av             *v;
    const ca_av_chain *c;

    writer();
    v = verify();
    assert_int_equal(ca_av_breaks(v), 0);
    assert_int_equal(ca_av_nchains(v), 3);
    /* 2 + 2 by chain 0, 1 + 1 by lane 1, 1 by lane 2 */
    assert_int_equal(ca_av_heads_checked(v), 7);
    assert_int_equal(ca_av_heads_missing(v), 0);
    for (size_t i = 0; i < 3; i++) {
        c = ca_av_chain_at(v, i);
        assert_int_equal(c->unsigned_tail, 0);
        assert_int_equal(c->checkpoints, c->checkpoints_verified);
    }
    ca_av_free(v);
    (void) state;
}

/* A whole lane chain XDEL'ed: what is left verifies on its own, but
 * chain 0's checkpoints listed it. */
static void
test_whole_chain_deleted(void **state)
{
    ca_av *v;

    writer();
    cut("2", 1);
    v = verify();
    assert_finding(v, "2", CA_AV_DELETED, 2, "the stream holds none");
    assert_non_null(strstr(ca_av_chain_at(v, 2)->findings[0].detail,
                           "checkpoint " W "/0#3 lists chain " W "/2"));
    assert_int_equal(ca_av_heads_missing(v), 2);
    ca_av_free(v);
    (void) state;
}

/* Lane 1 cut from seq 3 on, its last checkpoint (6) included: chain 0's
 * second checkpoint listed seq 3. */
static void
test_lane_tail_cut(void **state)
{
    ca_av *v;

    writer();
    cut("1", 3);
    v = verify();
    assert_finding(v, "1", CA_AV_DELETED, 3, "the stream ends it at 2");
    ca_av_free(v);
    (void) state;
}

/* Chain 0's end cut with its last checkpoint (seq 3): lane 1 checkpointed
 * after it and listed it. */
static void
test_chain0_tail_cut(void **state)
{
    ca_av *v;

    writer();
    cut("0", 3);
    v = verify();
    assert_finding(v, "0", CA_AV_DELETED, 3, "the stream ends it at 2");
    assert_non_null(strstr(ca_av_chain_at(v, 0)->findings[0].detail,
                           "checkpoint " W "/1#6 lists"));
    ca_av_free(v);
    (void) state;
}

/* A listed head whose hash is not the stream's (a signed listing that
 * disagrees: the entry was replaced). */
static void
test_listed_hash_differs(void **state)
{
    ca_chain      c0, l1;
    ca_ckpt_head  h;
    ca_av        *v;

    ca_chain_init(&c0, W "/0");
    ca_chain_init(&l1, W "/1");
    decision(&l1, 1);
    decision(&l1, 2);
    checkpoint(&l1, NULL, 0);
    h = head_of(1, &l1);
    h.hash[0] ^= 1;
    decision(&c0, 3);
    checkpoint(&c0, &h, 1);
    v = verify();
    assert_finding(v, "1", CA_AV_MODIFIED, 3, "with another hash");
    ca_av_free(v);
    (void) state;
}

/* --resume: a listed head at or below a chain's anchor was verified
 * before; at the anchor, its hash must be the anchor's. */
static void
test_floor(void **state)
{
    ca_chain      c0, l1;
    ca_ckpt_head  h[1];
    unsigned char at[32];
    ca_av        *v;

    ca_chain_init(&c0, W "/0");
    ca_chain_init(&l1, W "/1");
    decision(&l1, 1);
    decision(&l1, 2);
    h[0] = head_of(1, &l1);
    checkpoint(&l1, NULL, 0);       /* l1 seq 3 */
    memcpy(at, l1.head, 32);
    decision(&c0, 3);
    checkpoint(&c0, h, 1);
    cut("1", 1);                    /* not read: before its anchor */
    v = verify_floor(W "/1", 3, at);
    assert_int_equal(ca_av_breaks(v), 0);
    assert_int_equal(ca_av_heads_checked(v), 1);
    ca_av_free(v);
    v = verify_floor(W "/1", 2, at);    /* the anchor seq, another hash */
    assert_finding(v, "1", CA_AV_MODIFIED, 2, "with another hash");
    ca_av_free(v);
    v = verify_floor(W "/1", 1, at);    /* below what was listed */
    assert_finding(v, "1", CA_AV_DELETED, 2, "holds none");
    ca_av_free(v);
    (void) state;
}

/* The list is signed: edited (and re-hashed), or taken away to pass the
 * checkpoint off as v1, the signature no longer verifies; a list the
 * gateway would not write (lanes out of order) is malformed. */
static void
test_heads_are_signed(void **state)
{
    ca_chain       c0, l1;
    ca_ckpt_head   h[2];
    sentry        *cp;
    ca_av         *v;
    unsigned char  d[32];
    char           hex[65], edited[256];

    for (int t = 0; t < 3; t++) {
        reset(NULL);
        ca_chain_init(&c0, W "/0");
        ca_chain_init(&l1, W "/1");
        decision(&l1, 1);
        h[0] = head_of(1, &l1);
        h[1] = head_of(2, &l1);
        decision(&c0, 2);
        cp = checkpoint(&c0, h, t == 2 ? 2 : 1);
        if (t == 0) {
            snprintf(edited, sizeof(edited), "%s", sentry_get(cp, "heads"));
            edited[2] = '9';            /* "1 1 …" -> "1 9 …" */
            for (size_t j = 0; j < cp->n; j++) {
                if (strcmp(cp->name[j], "heads") == 0) {
                    free(cp->value[j]);
                    cp->value[j] = strdup(edited);
                }
            }
        } else if (t == 1) {
            for (size_t j = 0; j < cp->n; j++) {
                if (strcmp(cp->name[j], "heads") == 0) {
                    free(cp->name[j]);
                    free(cp->value[j]);
                    memmove(&cp->name[j], &cp->name[j + 1],
                            (cp->n - j - 1) * sizeof(char *));
                    memmove(&cp->value[j], &cp->value[j + 1],
                            (cp->n - j - 1) * sizeof(char *));
                    memmove(&cp->len[j], &cp->len[j + 1],
                            (cp->n - j - 1) * sizeof(size_t));
                    cp->n--;
                    break;
                }
            }
        } else {
            /* lane 1 twice: a second line that is not a later lane */
            h[1].lane = 1;
            reset(NULL);
            ca_chain_init(&c0, W "/0");
            decision(&c0, 2);
            cp = checkpoint(&c0, h, 1);
            snprintf(edited, sizeof(edited), "%s%s", sentry_get(cp, "heads"),
                     sentry_get(cp, "heads"));
            for (size_t j = 0; j < cp->n; j++) {
                if (strcmp(cp->name[j], "heads") == 0) {
                    free(cp->value[j]);
                    cp->value[j] = strdup(edited);
                }
            }
        }
        for (size_t j = 0; j < cp->n; j++) {
            cp->len[j] = strlen(cp->value[j]);
        }
        ca_entry_digest((const char *const *) cp->name,
                        (const char *const *) cp->value, cp->len, cp->n, d);
        ca_hex(d, 32, hex);
        free(cp->value[cp->n - 1]);
        cp->value[cp->n - 1] = strdup(hex);
        v = verify();
        assert_int_equal(ca_av_heads_checked(v), 0);
        assert_finding(v, "0", CA_AV_BAD_SIGNATURE, 2,
                       t == 2 ? "malformed" : "does not verify");
        ca_av_free(v);
    }
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message_bytes),
        cmocka_unit_test(test_heads_parse),
        cmocka_unit_test(test_worked_example),
        cmocka_unit_test_setup(test_intact_writer, reset),
        cmocka_unit_test_setup(test_whole_chain_deleted, reset),
        cmocka_unit_test_setup(test_lane_tail_cut, reset),
        cmocka_unit_test_setup(test_chain0_tail_cut, reset),
        cmocka_unit_test_setup(test_listed_hash_differs, reset),
        cmocka_unit_test_setup(test_floor, reset),
        cmocka_unit_test_setup(test_heads_are_signed, reset),
    };
    int rc;

    key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (key == NULL) {
        fprintf(stderr, "cannot generate an Ed25519 key\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, reset);
    EVP_PKEY_free(key);
    return rc;
}
