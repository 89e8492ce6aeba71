/* The Merkle tree log (lib/merkle/merkle.h) against RFC 6962/9162's
 * published vectors (the eight leaves of certificate-transparency's
 * merkle_tree_test, their roots, inclusion and consistency proofs), then
 * every proof of every tree up to 70 leaves, verified, and refused once
 * any part of it is changed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "merkle/merkle.h"

#define MAXN 70

/* every complete subtree, as the archive stores them */
typedef struct {
    ca_mk_hash  node[8][MAXN];
    int         have[8][MAXN];
    int         reads;
} store;

static int
emit(void *ctx, unsigned level, uint64_t index, const unsigned char h[32])
{
    store *s = ctx;

    assert_true(level < 8 && index < MAXN);
    assert_false(s->have[level][index]);      /* each written once */
    memcpy(s->node[level][index], h, 32);
    s->have[level][index] = 1;
    return 0;
}

static int
get(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    store *s = ctx;

    s->reads++;
    if (level >= 8 || index >= MAXN || !s->have[level][index]) {
        return -1;
    }
    memcpy(out, s->node[level][index], 32);
    return 0;
}

static const unsigned char *leaves[8];
static const size_t leaf_len[8] = {0, 1, 1, 2, 2, 4, 8, 16};

static void
hx(const char *hex, unsigned char out[32])
{
    assert_int_equal(ca_unhex(hex, out, 32), 0);
}

/* a store of the CT leaves, then as many more as asked */
static store *
build(size_t n, ca_mk_frontier *f)
{
    store *s = calloc(1, sizeof(*s));

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; i++) {
        unsigned char l[32], extra[8];

        if (i < 8) {
            ca_mk_leaf(leaves[i], leaf_len[i], l);
        } else {
            memcpy(extra, &i, sizeof(extra));
            ca_mk_leaf(extra, sizeof(extra), l);
        }
        assert_int_equal(ca_mk_append(f, l, emit, s), 0);
    }
    return s;
}

static const char *roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void
test_rfc6962_roots(void **state)
{
    for (size_t n = 0; n <= 8; n++) {
        ca_mk_frontier f, g;
        store         *s = build(n, &f);
        unsigned char  want[32], got[32];

        hx(roots[n], want);
        ca_mk_frontier_root(&f, got);
        assert_memory_equal(got, want, 32);
        assert_int_equal(ca_mk_root(n, get, s, got), 0);
        assert_memory_equal(got, want, 32);
        /* the frontier comes back from the stored nodes alone */
        assert_int_equal(ca_mk_frontier_load(&g, n, get, s), 0);
        ca_mk_frontier_root(&g, got);
        assert_memory_equal(got, want, 32);
        free(s);
    }
    (void) state;
}

typedef struct {
    uint64_t    a, n;
    size_t      np;
    const char *h[3];
} vector;

static const vector inclusion[] = {
    {0, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5, 8, 3, {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {6, 8, 3, {"46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
               "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {0, 1, 0, {NULL}},
};

static const vector consistency[] = {
    {1, 8, 3, {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
               "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8, 3, {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
               "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
               "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5, 2, {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
               "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {1, 1, 0, {NULL}},
};

static void
test_rfc6962_proofs(void **state)
{
    ca_mk_frontier f;
    store         *s = build(8, &f);
    ca_mk_hash     p[CA_MK_CONSIST_MAX], want;
    unsigned char  leaf[32], r1[32], r2[32];

    for (size_t i = 0; i < sizeof(inclusion) / sizeof(inclusion[0]); i++) {
        const vector *v = &inclusion[i];

        assert_int_equal(ca_mk_inclusion(v->a, v->n, get, s, p),
                         (int) v->np);
        for (size_t j = 0; j < v->np; j++) {
            hx(v->h[j], want);
            assert_memory_equal(p[j], want, 32);
        }
        ca_mk_leaf(leaves[v->a], leaf_len[v->a], leaf);
        hx(roots[v->n], r1);
        assert_int_equal(ca_mk_verify_inclusion(leaf, v->a, v->n, p, v->np,
                                                r1), 0);
    }
    for (size_t i = 0; i < sizeof(consistency) / sizeof(consistency[0]);
         i++) {
        const vector *v = &consistency[i];

        assert_int_equal(ca_mk_consistency(v->a, v->n, get, s, p),
                         (int) v->np);
        for (size_t j = 0; j < v->np; j++) {
            hx(v->h[j], want);
            assert_memory_equal(p[j], want, 32);
        }
        hx(roots[v->a], r1);
        hx(roots[v->n], r2);
        assert_int_equal(ca_mk_verify_consistency(v->a, v->n, r1, r2, p,
                                                  v->np), 0);
    }
    free(s);
    (void) state;
}

/* Every proof of every tree up to MAXN leaves holds, reads O(log n)
 * nodes, and fails once anything in it changes. */
static void
test_every_proof(void **state)
{
    ca_mk_frontier f;
    store         *s = build(MAXN, &f);
    ca_mk_hash     p[CA_MK_CONSIST_MAX];
    unsigned char  rt[MAXN + 1][32], leaf[32];

    for (size_t n = 0; n <= MAXN; n++) {
        assert_int_equal(ca_mk_root(n, get, s, rt[n]), 0);
    }
    for (uint64_t n = 1; n <= MAXN; n++) {
        for (uint64_t m = 0; m < n; m++) {
            int np;

            assert_int_equal(get(s, 0, m, leaf), 0);
            s->reads = 0;
            np = ca_mk_inclusion(m, n, get, s, p);
            assert_true(np >= 0 && s->reads <= 2 * 7 + 1);
            assert_int_equal(ca_mk_verify_inclusion(leaf, m, n, p,
                                                    (size_t) np, rt[n]), 0);
            /* another index, a changed hash, a short or long path:
             * refused (the size is the signed checkpoint's to bind: a
             * path can fit trees of several sizes) */
            if (n > 1) {
                assert_int_not_equal(ca_mk_verify_inclusion(
                    leaf, (m + 1) % n, n, p, (size_t) np, rt[n]), 0);
            }
            for (int j = 0; j < np; j++) {
                p[j][j % 32] ^= 1;
                assert_int_not_equal(ca_mk_verify_inclusion(
                    leaf, m, n, p, (size_t) np, rt[n]), 0);
                p[j][j % 32] ^= 1;
            }
            if (np > 0) {
                assert_int_not_equal(ca_mk_verify_inclusion(
                    leaf, m, n, p, (size_t) np - 1, rt[n]), 0);
            }
            assert_int_not_equal(ca_mk_verify_inclusion(
                leaf, m, n, p, (size_t) np + 1, rt[n]), 0);
            assert_int_equal(ca_mk_inclusion(n, n, get, s, p), -1);
        }
        for (uint64_t m = 1; m <= n; m++) {
            int np;

            s->reads = 0;
            np = ca_mk_consistency(m, n, get, s, p);
            assert_true(np >= 0 && s->reads <= 4 * 7 + 2);
            assert_int_equal(ca_mk_verify_consistency(m, n, rt[m], rt[n], p,
                                                      (size_t) np), 0);
            /* a fork: the same size, another root */
            assert_int_not_equal(ca_mk_verify_consistency(
                m, n, rt[m], rt[n - 1], p, (size_t) np), 0);
            for (int j = 0; j < np; j++) {
                p[j][0] ^= 0x80;
                assert_int_not_equal(ca_mk_verify_consistency(
                    m, n, rt[m], rt[n], p, (size_t) np), 0);
                p[j][0] ^= 0x80;
            }
            if (m > 1) {
                assert_int_not_equal(ca_mk_verify_consistency(
                    m - 1, n, rt[m - 1], rt[n], p, (size_t) np), 0);
            }
        }
    }
    free(s);
    (void) state;
}

/* A stored node that cannot be read makes the proof fail, never a
 * proof made of garbage. */
static int
get_none(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    (void) ctx; (void) level; (void) index; (void) out;
    return -1;
}

static void
test_read_failure(void **state)
{
    ca_mk_hash     p[CA_MK_CONSIST_MAX];
    unsigned char  r[32];
    ca_mk_frontier f;

    assert_int_equal(ca_mk_inclusion(3, 8, get_none, NULL, p), -1);
    assert_int_equal(ca_mk_consistency(3, 8, get_none, NULL, p), -1);
    assert_int_equal(ca_mk_root(5, get_none, NULL, r), -1);
    assert_int_equal(ca_mk_frontier_load(&f, 5, get_none, NULL), -1);
    assert_int_equal(ca_mk_consistency(0, 8, get_none, NULL, p), -1);
    assert_int_equal(ca_mk_consistency(9, 8, get_none, NULL, p), -1);
    (void) state;
}

int
main(void)
{
    static const unsigned char l1[] = {0x00}, l2[] = {0x10},
        l3[] = {0x20, 0x21}, l4[] = {0x30, 0x31},
        l5[] = {0x40, 0x41, 0x42, 0x43},
        l6[] = {0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
        l7[] = {0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
                0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6962_roots),
        cmocka_unit_test(test_rfc6962_proofs),
        cmocka_unit_test(test_every_proof),
        cmocka_unit_test(test_read_failure),
    };

    leaves[0] = (const unsigned char *) "";
    leaves[1] = l1; leaves[2] = l2; leaves[3] = l3; leaves[4] = l4;
    leaves[5] = l5; leaves[6] = l6; leaves[7] = l7;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
