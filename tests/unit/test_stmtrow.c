/* An access statement's rows and signed summary (lib/merkle/stmtrow.h):
 * fields read from an entry's canonical bytes, nothing from a malformed
 * one; a decision pairs only with its own outcome; the summary text is
 * exact and changes with any entry, its order, or the period. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "merkle/stmtrow.h"

static size_t
put(unsigned char *b, size_t at, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);

    b[at] = 0; b[at + 1] = 0; b[at + 2] = (unsigned char) (kl >> 8);
    b[at + 3] = (unsigned char) kl;
    memcpy(b + at + 4, k, kl);
    at += 4 + kl;
    b[at] = 0; b[at + 1] = 0; b[at + 2] = (unsigned char) (vl >> 8);
    b[at + 3] = (unsigned char) vl;
    memcpy(b + at + 4, v, vl);
    return at + 4 + vl;
}

static size_t
entry(unsigned char *b, const char *const *kv)
{
    size_t n = 0;

    for (size_t i = 0; kv[i] != NULL; i += 2) {
        n = put(b, n, kv[i], kv[i + 1]);
    }
    return n;
}

static const char *const decision[] = {
    "v", "3", "event", "decision", "ts", "1796083200000", "gw", "gw-1",
    "rid", "r1", "bank", "BANK001", "purpose", "loan_application",
    "category", "tax", "mode", "query", "detail", "masked", "decision",
    "allow", "reason", "", "rid", "second", NULL
};
static const char *const outcome[] = {
    "v", "3", "event", "outcome", "ts", "1796083200100", "gw", "gw-1",
    "rid", "r1", "status", "200", "disclosed", "uscc,name", "masked",
    "name", NULL
};

static void
test_fields(void **state)
{
    unsigned char b[1024];
    size_t        n = entry(b, decision);
    ca_span       s;

    assert_int_equal(ca_raw_count(b, n), 13);
    assert_int_equal(ca_raw_field(b, n, "rid", &s), 0);
    assert_int_equal(s.len, 2);
    assert_memory_equal(s.p, "r1", 2);         /* the first value */
    assert_int_equal(ca_raw_field(b, n, "status", &s), 1);
    assert_null(s.p);
    assert_int_equal(ca_sr_ts(b, n), 1796083200000LL);
    assert_true(ca_sr_is_event(b, n, "decision"));
    /* a field before a malformed tail is not read */
    b[n] = 0; b[n + 1] = 0; b[n + 2] = 1; b[n + 3] = 0;
    assert_int_equal(ca_raw_field(b, n + 4, "rid", &s), -1);
    assert_null(s.p);
    assert_int_equal(ca_raw_count(b, n + 4), -1);
    assert_int_equal(ca_raw_count(b, n - 1), -1);
    (void) state;
}

static void
test_rows(void **state)
{
    unsigned char d[1024], o[1024], x[1024];
    size_t        dn = entry(d, decision), on = entry(o, outcome);
    ca_span       row[CA_SR_COUNT];
    const char   *other[sizeof(outcome) / sizeof(outcome[0])];

    assert_int_equal(ca_sr_row(d, dn, o, on, row), 0);
    assert_memory_equal(row[CA_SR_BANK].p, "BANK001", 7);
    assert_memory_equal(row[CA_SR_STATUS].p, "200", 3);
    assert_memory_equal(row[CA_SR_DISCLOSED].p, "uscc,name", 9);
    assert_int_equal(row[CA_SR_REASON].len, 0);
    assert_non_null(row[CA_SR_REASON].p);      /* present, empty */
    assert_int_equal(ca_sr_row(d, dn, NULL, 0, row), 0);
    assert_null(row[CA_SR_STATUS].p);
    /* another gateway's outcome with the same rid does not pair */
    memcpy(other, outcome, sizeof(other));
    other[7] = "gw-2";
    assert_int_equal(ca_sr_row(d, dn, x, entry(x, other), row), -1);
    /* nor does a decision in the outcome's place */
    assert_int_equal(ca_sr_row(o, on, d, dn, row), -1);
    assert_int_equal(ca_sr_row(d, dn, d, dn, row), -1);
    (void) state;
}

/* A withdrawal's row: its own columns; a decision or a malformed entry is
 * not one. */
static void
test_revocation(void **state)
{
    static const char *const rv[] = {
        "v", "3", "event", "revocation", "ts", "1796083200200", "gw",
        "gw-2", "enterprise", "91350100M000100Y43", "consent", "jti-7",
        "by", "enterprise", "chain", "gw-2/1/0", NULL
    };
    unsigned char b[1024], d[1024];
    size_t        n = entry(b, rv), dn = entry(d, decision);
    ca_span       row[CA_SRV_COUNT];

    (void) state;
    assert_int_equal(ca_sr_revocation(b, n, row), 0);
    assert_int_equal(row[CA_SRV_TS].len, 13);
    assert_memory_equal(row[CA_SRV_GW].p, "gw-2", 4);
    assert_memory_equal(row[CA_SRV_CONSENT].p, "jti-7", 5);
    assert_int_equal(row[CA_SRV_BY].len, 10);
    assert_string_equal(ca_srv_names[CA_SRV_BY], "by");
    assert_int_equal(ca_sr_revocation(d, dn, row), -1);
    assert_int_equal(ca_sr_revocation(b, n - 1, row), -1);
}

static void
test_summary(void **state)
{
    ca_stmt_head  h;
    uint64_t      ords[2] = {3, 9}, swapped[2] = {9, 3};
    unsigned char leaves[64], d2[32];
    char          t[1024], t2[1024];

    memset(&h, 0, sizeof(h));
    memset(leaves, 7, sizeof(leaves));
    leaves[40] = 1;
    h.origin = "audit.example.cn/log";
    h.enterprise = "91350100M000100Y43";
    h.month = "2026-11";
    h.tz = "Asia/Shanghai";
    h.since_ms = 1793462400000LL;
    h.until_ms = 1796054400000LL;
    h.size = 18;
    h.count = 2;
    ca_stmt_digest(ords, leaves, 2, h.digest);
    assert_true(ca_stmt_text(&h, t, sizeof(t)) > 0);
    assert_memory_equal(t, CA_STMT_TITLE "\naudit.example.cn/log\n"
                        "91350100M000100Y43\n2026-11 Asia/Shanghai\n"
                        "1793462400000 1796054400000\n18\n"
                        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n2\n",
                        strlen(CA_STMT_TITLE) + 123);
    /* the entries in another order, one entry less: another digest */
    ca_stmt_digest(swapped, leaves, 2, d2);
    assert_memory_not_equal(d2, h.digest, 32);
    ca_stmt_digest(ords, leaves, 1, d2);
    assert_memory_not_equal(d2, h.digest, 32);
    /* another period: another text */
    h.month = "2026-12";
    assert_true(ca_stmt_text(&h, t2, sizeof(t2)) > 0);
    assert_string_not_equal(t, t2);
    /* a value with a newline would forge a line: refused */
    h.tz = "UTC\n99";
    assert_int_equal(ca_stmt_text(&h, t2, sizeof(t2)), 0);
    assert_int_equal(ca_stmt_text(&h, t2, 10), 0);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_revocation),
        cmocka_unit_test(test_summary),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
