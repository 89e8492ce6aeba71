/*
 * lib/audit/auditschema: the one table of audit fields.  Its rows are
 * consistent, docs/audit-format.md documents exactly them, entries built
 * from it hold each event's fields in the documented order with the
 * documented values, the archive's column list comes from it, and entries
 * of schema v1 (as gateways wrote them before) verify beside v2 ones.
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
#include "audit/auditschema.h"
#include "core/util.h"
#include "verify/auditverify.h"

#include "audit_stream.h"

#define DOC "../../docs/audit-format.md"

/* ---- the table ---------------------------------------------------------- */

static void
test_table_is_consistent(void **state)
{
    for (int i = 0; i < CA_F_COUNT; i++) {
        const ca_audit_field *f = &ca_audit_schema[i];

        assert_non_null(f->name);
        assert_true(f->events != 0 && (f->events & ~CA_EV_EVERY) == 0);
        assert_true((f->sometimes & ~f->events) == 0);
        assert_int_equal(f->hashed, strcmp(f->name, "hash") != 0);
        assert_true(strcmp(f->sql, "text") == 0
                    || strcmp(f->sql, "smallint") == 0
                    || strcmp(f->sql, "integer") == 0
                    || strcmp(f->sql, "bigint") == 0);
        /* numbers in number columns, everything else in text */
        assert_int_equal(strcmp(f->sql, "text") != 0,
                         f->type == CA_AT_INT || f->type == CA_AT_MS);
        assert_int_equal(ca_audit_field_find(f->name, strlen(f->name)), i);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(f->name, ca_audit_schema[j].name);
            assert_string_not_equal(f->column, ca_audit_schema[j].column);
        }
    }
    assert_int_equal(ca_audit_field_find("nope", 4), -1);
    assert_string_equal(CA_AUDIT_NAME(UPSTREAM_MS), "upstream_ms");
    assert_int_equal(ca_audit_event_find("revocation", 10),
                     CA_EV_REVOCATION);
    assert_int_equal(ca_audit_event_find("decisio", 7), 0);
    assert_string_equal(ca_audit_event_name(CA_EV_OUTCOME), "outcome");
    assert_null(ca_audit_event_name(CA_EV_OUTCOME | CA_EV_DECISION));
    (void) state;
}

/* ---- docs/audit-format.md against the table ----------------------------- */

static char *
read_doc(void)
{
    FILE   *f = fopen(DOC, "r");
    char   *buf;
    long    n;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t) n + 1);
    assert_int_equal(fread(buf, 1, (size_t) n, f), (size_t) n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The lines of the doc's section that starts with heading h, up to the
 * next heading of any level. */
static char *
section(const char *doc, const char *h)
{
    const char *a = strstr(doc, h), *b;

    if (a == NULL) {
        fail_msg("docs/audit-format.md has no \"%s\"", h);
    }
    a += strlen(h);
    b = strstr(a, "\n#");
    return strndup(a, b ? (size_t) (b - a) : strlen(a));
}

/* The cells of a table row "| a | b |", trimmed, backticks removed. */
static size_t
cells(char *line, char **out, size_t max)
{
    size_t  n = 0;
    char   *p = line, *q;

    if (*p != '|') {
        return 0;
    }
    p++;
    while (n < max && (q = strchr(p, '|')) != NULL) {
        char *a = p, *b = q;

        while (a < b && (*a == ' ' || *a == '`')) {
            a++;
        }
        while (b > a && (b[-1] == ' ' || b[-1] == '`')) {
            b--;
        }
        *b = '\0';
        out[n++] = a;
        p = q + 1;
    }
    return n;
}

/* "every", or the events joined by ", ", those some lack marked "?". */
static void
events_cell(const ca_audit_field *f, char *out, size_t len)
{
    static const unsigned bits[] = {
        CA_EV_DECISION, CA_EV_OUTCOME, CA_EV_CHECKPOINT, CA_EV_DISCONTINUITY,
        CA_EV_REVOCATION
    };

    out[0] = '\0';
    if (f->events == CA_EV_EVERY && f->sometimes == 0) {
        snprintf(out, len, "every");
        return;
    }
    for (size_t i = 0; i < 5; i++) {
        if (f->events & bits[i]) {
            snprintf(out + strlen(out), len - strlen(out), "%s%s%s",
                     out[0] ? ", " : "", ca_audit_event_name(bits[i]),
                     (f->sometimes & bits[i]) ? "?" : "");
        }
    }
}

/* §1's field table: a row per field of the table, in its order, with its
 * events, type, hashing, column and SQL type; no row for anything else. */
static void
test_doc_documents_every_field(void **state)
{
    char   *doc = read_doc();
    char   *sec = section(doc, "### Every field");
    char   *line, *save = NULL, *c[8], want[128];
    int     row = 0;

    for (line = strtok_r(sec, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
    {
        const ca_audit_field *f;

        if (cells(line, c, 8) != 6 || strcmp(c[0], "field") == 0
            || strncmp(c[0], "---", 3) == 0)
        {
            continue;
        }
        if (row >= CA_F_COUNT) {
            fail_msg("docs/audit-format.md documents a field that is not "
                     "in the schema: %s", c[0]);
        }
        f = &ca_audit_schema[row];
        if (strcmp(c[0], f->name) != 0) {
            fail_msg("docs/audit-format.md: row %d is `%s`, the schema's "
                     "field there is `%s`", row + 1, c[0], f->name);
        }
        events_cell(f, want, sizeof(want));
        assert_string_equal(c[1], want);
        assert_string_equal(c[2], ca_audit_type_name(f->type));
        assert_string_equal(c[3], f->hashed ? "yes" : "no");
        assert_string_equal(c[4], f->column);
        assert_string_equal(c[5], f->sql);
        row++;
    }
    if (row != CA_F_COUNT) {
        fail_msg("docs/audit-format.md documents %d fields; the schema has "
                 "%d (first missing: %s)", row, CA_F_COUNT,
                 ca_audit_schema[row].name);
    }
    free(sec);
    free(doc);
    (void) state;
}

/* The per-event stored order the doc gives is the table's order. */
static void
test_doc_stored_order_per_event(void **state)
{
    char       *doc = read_doc();
    char       *sec = section(doc, "### Stored order");
    char       *line, *save = NULL, *c[4], want[1024];
    unsigned    seen = 0, ev;

    for (line = strtok_r(sec, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
    {
        if (cells(line, c, 4) != 2
            || (ev = ca_audit_event_find(c[0], strlen(c[0]))) == 0)
        {
            continue;
        }
        want[0] = '\0';
        for (int i = 0; i < CA_F_COUNT; i++) {
            if (ca_audit_schema[i].events & ev) {
                snprintf(want + strlen(want), sizeof(want) - strlen(want),
                         "%s%s", want[0] ? "` `" : "",
                         ca_audit_schema[i].name);
            }
        }
        assert_string_equal(c[1], want);
        seen |= ev;
    }
    assert_int_equal(seen, CA_EV_EVERY);
    free(sec);
    free(doc);
    (void) state;
}

/* ---- entries built from the table ---------------------------------------- */

static const char *
names_of(const ca_entry *e)
{
    static char  buf[1024];

    buf[0] = '\0';
    for (size_t i = 0; i < e->n; i++) {
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
                 i ? " " : "", e->name[i]);
    }
    return buf;
}

static const char *
value(const ca_entry *e, const char *name)
{
    const char *v = ca_entry_get(e, name, NULL);

    assert_non_null(v);
    return v;
}

static ca_verify_rule  rules[] = {
    { "annual[].tax_paid", CA_OP_GE | CA_OP_LE },
    { "credit_rating", CA_OP_EQ },
};

static ca_checks       three;

static void
request_facts(ca_audit_facts *f)
{
    static const unsigned char cert[32] = { 0xab, 0x01 };

    memset(f, 0, sizeof(*f));
    f->ts = 1795800000123;
    f->gw = "gw-1";
    f->rid = (ca_audit_str) { "5f1c2a", 6 };
    f->bank = "BANK001";
    f->cert_sha256 = cert;
    f->ip = (ca_audit_str) { "10.0.0.7", 8 };
    f->method = (ca_audit_str) { "POST", 4 };
    f->path = (ca_audit_str) { "/api/v1/enterprises/91350100M000100Y43/tax",
                               42 };
    f->category = "tax";
    f->enterprise = "91350100M000100Y43";
    f->purpose = (ca_audit_str) { "loan_application", 16 };
    f->purpose_code = "loan_application";
    f->jti = (ca_audit_str) { "c-1", 3 };
    f->policy = (ca_audit_str) { "p 1 abc", 7 };
}

static void
test_decision_entry(void **state)
{
    ca_entry        e;
    ca_audit_facts  f;

    request_facts(&f);
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw rid bank cert ip "
                        "method path category enterprise purpose consent "
                        "mode detail decision reason policy");
    assert_string_equal(value(&e, "v"), "2");
    assert_string_equal(value(&e, "event"), "decision");
    assert_string_equal(value(&e, "ts"), "1795800000123");
    assert_string_equal(value(&e, "cert"), "ab01000000000000000000000000000"
                        "000000000000000000000000000000000");
    assert_string_equal(value(&e, "decision"), "allow");
    assert_string_equal(value(&e, "reason"), "");
    assert_string_equal(value(&e, "mode"), "query");
    assert_string_equal(value(&e, "detail"), "masked");
    assert_string_equal(value(&e, "policy"), "p 1 abc");

    /* a verification lists its checks: path and op, never the operand */
    three.items[0] = (ca_check) { "annual[year=2023].tax_paid", &rules[0],
                                  CA_OP_GE, NULL };
    three.items[1] = (ca_check) { "annual[year=2023].tax_paid", &rules[0],
                                  CA_OP_LE, NULL };
    three.items[2] = (ca_check) { "credit_rating", &rules[1], CA_OP_EQ,
                                  NULL };
    three.n = 3;
    f.verify = 1;
    f.checks = &three;
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw rid bank cert ip "
                        "method path category enterprise purpose consent "
                        "mode detail decision reason policy checks");
    assert_string_equal(value(&e, "checks"), "annual[].tax_paid ge,"
                        "annual[].tax_paid le,credit_rating eq");
    assert_int_equal(ca_audit_list_count(value(&e, "checks"),
                                         strlen(value(&e, "checks"))), 3);
    assert_string_equal(value(&e, "mode"), "verify");
    /* refused before its checks were read: an empty list */
    f.checks = NULL;
    f.reason = CA_TOKEN_MISSING;
    f.report = 0;
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_string_equal(value(&e, "checks"), "");
    assert_string_equal(value(&e, "decision"), "deny");
    assert_string_equal(value(&e, "reason"), "token_missing");
    f.report = 1;
    f.raw = 1;
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_string_equal(value(&e, "decision"), "report");
    assert_string_equal(value(&e, "detail"), "raw");
    (void) state;
}

/* Never a personal identifier (contract §7): no path without a route, no
 * purpose the policy does not know, a personal-looking jti as its digest;
 * what is not known is empty, not absent. */
static void
test_decision_keeps_personal_data_out(void **state)
{
    ca_entry        e;
    ca_audit_facts  f;

    memset(&f, 0, sizeof(f));
    f.gw = "gw-1";
    f.path = (ca_audit_str) { "/api/v1/enterprises/110101199003071234/tax",
                              42 };
    f.purpose = (ca_audit_str) { "13912345678", 11 };
    f.jti = (ca_audit_str) { "110101199003071234", 18 };
    f.reason = CA_ROUTE_NOT_IN_POLICY;
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_string_equal(value(&e, "path"), "");
    assert_string_equal(value(&e, "purpose"), "(unknown)");
    assert_memory_equal(value(&e, "consent"), "sha256:", 7);
    assert_int_equal(strlen(value(&e, "consent")), 7 + 64);
    assert_string_equal(value(&e, "bank"), "");
    assert_string_equal(value(&e, "cert"), "");
    assert_string_equal(value(&e, "rid"), "");
    for (size_t i = 0; i < e.n; i++) {
        assert_null(strstr(e.value[i], "110101199003071234"));
        assert_null(strstr(e.value[i], "13912345678"));
    }
    (void) state;
}

static void
test_outcome_entry(void **state)
{
    ca_entry        e;
    ca_audit_facts  f;

    request_facts(&f);
    f.status = 200;
    f.bytes = 512;
    f.disclosed = "name,credit_rating";
    f.masked = "annual[].tax_paid";
    f.withheld = 3;
    f.upstream_ms = 12;
    assert_int_equal(ca_audit_build(&e, CA_EV_OUTCOME, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw rid status bytes "
                        "disclosed masked withheld upstream_ms");

    /* a verification counts its answers; a refusal says why */
    f.verify = 1;
    f.tally = (ca_checks_tally) { 1, 1, 1 };
    f.disclosed = f.masked = NULL;
    f.withheld = 0;
    f.refused = CA_UPSTREAM_INVALID;
    f.cause = "status";
    assert_int_equal(ca_audit_build(&e, CA_EV_OUTCOME, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw rid status bytes "
                        "disclosed masked withheld upstream_ms matched "
                        "unmatched absent reason cause");
    assert_string_equal(value(&e, "matched"), "1");
    assert_string_equal(value(&e, "unmatched"), "1");
    assert_string_equal(value(&e, "absent"), "1");
    assert_string_equal(value(&e, "disclosed"), "");
    assert_string_equal(value(&e, "reason"), "upstream_invalid");
    (void) state;
}

static void
test_other_events(void **state)
{
    ca_entry        e;
    ca_audit_facts  f;

    memset(&f, 0, sizeof(f));
    f.gw = "gw-1";
    f.missing = "epoch";
    f.expected = "epoch=1";
    f.found = "epoch=2";
    assert_int_equal(ca_audit_build(&e, CA_EV_DISCONTINUITY, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw missing expected found");
    f.enterprise = "91350100M000100Y43";
    f.jti = (ca_audit_str) { "c-9", 3 };
    f.by = "platform";
    assert_int_equal(ca_audit_build(&e, CA_EV_REVOCATION, &f), 0);
    assert_string_equal(names_of(&e), "v event ts gw enterprise consent by");
    assert_string_equal(value(&e, "consent"), "c-9");
    /* not one event */
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION | CA_EV_OUTCOME, &f),
                     -1);
    assert_int_equal(ca_audit_build(&e, 0, &f), -1);
    (void) state;
}

/* The largest verification (32 checks of 256-byte paths) is written;
 * nothing larger is cut short: it is refused whole. */
static void
test_largest_verification_fits(void **state)
{
    static char     path[CA_PATH_MAX + 1];
    ca_verify_rule  r = { path, CA_OP_EQ };
    ca_checks       cs;
    ca_entry        e;
    ca_chain        ch;
    ca_audit_facts  f;

    memset(path, 'a', CA_PATH_MAX);
    memset(&cs, 0, sizeof(cs));
    for (cs.n = 0; cs.n < CA_CHECKS_MAX; cs.n++) {
        cs.items[cs.n] = (ca_check) { path, &r, CA_OP_EQ, NULL };
    }
    request_facts(&f);
    f.verify = 1;
    f.checks = &cs;
    ca_chain_init(&ch, "gw-1/1/1/0");
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_int_equal(strlen(value(&e, "checks")),
                     CA_CHECKS_MAX * (CA_PATH_MAX + 3) + CA_CHECKS_MAX - 1);
    assert_int_equal(ca_chain_seal(&ch, &e), 0);
    (void) state;
}

/* ---- the archive's columns ------------------------------------------------- */

static void
test_sql_columns(void **state)
{
    char    buf[4096], small[16];
    size_t  n = ca_audit_sql_columns(buf, sizeof(buf)), lines = 1;

    assert_true(n > 0 && n < sizeof(buf));
    assert_int_equal(strlen(buf), n);
    assert_memory_equal(buf, "    v smallint,\n    event text,\n    ts bigint,",
                        45);
    assert_non_null(strstr(buf, ",\n    revoked_by text,\n"));
    assert_non_null(strstr(buf, ",\n    checks text,\n"));
    assert_non_null(strstr(buf, ",\n    matched integer,\n"));
    assert_string_equal(buf + n - 15, ",\n    hash text");
    for (size_t i = 0; i < n; i++) {
        lines += buf[i] == '\n';
    }
    assert_int_equal(lines, CA_F_COUNT);
    /* too small: the length needed, nothing half written */
    assert_int_equal(ca_audit_sql_columns(small, sizeof(small)), n);
    assert_string_equal(small, "");
    (void) state;
}

static void
test_column_fits(void **state)
{
    assert_true(ca_audit_column_fits(CA_F_SEQ, "9223372036854775807", 19));
    assert_false(ca_audit_column_fits(CA_F_SEQ, "9223372036854775808", 19));
    assert_false(ca_audit_column_fits(CA_F_SEQ, "007", 3));
    assert_false(ca_audit_column_fits(CA_F_SEQ, "-1", 2));
    assert_false(ca_audit_column_fits(CA_F_SEQ, "", 0));
    assert_true(ca_audit_column_fits(CA_F_V, "32767", 5));
    assert_false(ca_audit_column_fits(CA_F_V, "32768", 5));
    assert_true(ca_audit_column_fits(CA_F_STATUS, "2147483647", 10));
    assert_false(ca_audit_column_fits(CA_F_STATUS, "2147483648", 10));
    assert_true(ca_audit_column_fits(CA_F_RID, "", 0));
    assert_true(ca_audit_column_fits(CA_F_PURPOSE, "贷款", 6));
    assert_false(ca_audit_column_fits(CA_F_RID, "a\0b", 3));
    assert_false(ca_audit_column_fits(CA_F_RID, "\xff", 1));
    assert_false(ca_audit_column_fits(CA_F_COUNT, "1", 1));
    (void) state;
}

/* ---- versions side by side --------------------------------------------- */

static void
add(ca_entry *e, const char *name, const char *v)
{
    assert_int_equal(ca_entry_add(e, name, v, strlen(v)), 0);
}

static void
feed(ca_av *v, const ca_entry *ce, int i)
{
    sentry  s;

    sentry_copy(&s, ce);
    snprintf(s.id, sizeof(s.id), "1795800000000-%d", i);
    assert_int_equal(sentry_feed(v, &s), 0);
    sentry_clear(&s);
}

/*
 * docs/audit-format.md §5's example as a v1 gateway wrote it (schema 1,
 * RFC 8032 test key 1): its hash and its checkpoint's are the same bytes
 * as before, and it verifies in one stream beside a v2 chain of a
 * verification (decision with checks, outcome with counts), a revocation
 * and their checkpoint.
 */
static void
test_v1_and_v2_entries_verify_together(void **state)
{
    EVP_PKEY       *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
                                                     rfc8032_key1, 32);
    ca_chain        c1, c2;
    ca_entry        e;
    ca_audit_facts  f;
    ca_av          *v = ca_av_new(k);
    int             i = 0;

    ca_chain_init(&c1, "gw-1/4242/1795800000000/0");
    e.n = 0;
    e.used = 0;
    add(&e, "v", "1");
    add(&e, "event", "decision");
    add(&e, "ts", "1795800000123");
    add(&e, "gw", "gw-1");
    add(&e, "rid", "5f1c2a");
    add(&e, "bank", "BANK001");
    add(&e, "cert", "");
    add(&e, "ip", "10.0.0.7");
    add(&e, "method", "GET");
    add(&e, "path", "/api/v1/enterprises/91350100M000100Y43/tax");
    add(&e, "category", "tax");
    add(&e, "enterprise", "91350100M000100Y43");
    add(&e, "purpose", "loan_application");
    add(&e, "consent", "");
    add(&e, "mode", "query");
    add(&e, "detail", "masked");
    add(&e, "decision", "deny");
    add(&e, "reason", "token_missing");
    add(&e, "policy", "2026-11-27.1 ba4459ca47bff03dc292cf6b637c9674578f89b0"
        "a627a4c6b270db18516afa82");
    assert_int_equal(ca_chain_seal(&c1, &e), 0);
    assert_string_equal(value(&e, "hash"), "87832cb4ab297cf094342167f1f7b99"
                        "00ae00054d8a140e6649b3cb6edad4585");
    feed(v, &e, i++);
    e.n = 0;
    e.used = 0;
    add(&e, "v", "1");
    add(&e, "event", "checkpoint");
    add(&e, "ts", "1795800001000");
    add(&e, "gw", "gw-1");
    add(&e, "covers", "1");
    add(&e, "head", "87832cb4ab297cf094342167f1f7b9900ae00054d8a140e6649b3c"
        "b6edad4585");
    add(&e, "sig", "KZiCrYxGTvghf6rVch6SpdLaqwMoNxc7z3sFLvMnyrjDlkh9xuOD1Xe"
        "eTSt1HyxTK42XfetR3ltbEyIkAK8vAQ");
    assert_int_equal(ca_chain_seal(&c1, &e), 0);
    assert_string_equal(value(&e, "hash"), "70a7d7a85660024937111036cbc4a15"
                        "17aad9cb09e040a90579c692ae7e2b483");
    feed(v, &e, i++);

    /* the same writer's next incarnation, schema 2 */
    ca_chain_init(&c2, "gw-1/4243/1795800002000/0");
    request_facts(&f);
    f.verify = 1;
    f.checks = &three;
    f.reason = CA_TOKEN_EXPIRED;
    assert_int_equal(ca_audit_build(&e, CA_EV_DECISION, &f), 0);
    assert_int_equal(ca_chain_seal(&c2, &e), 0);
    feed(v, &e, i++);
    f.reason = CA_OK;
    f.tally = (ca_checks_tally) { 2, 0, 1 };
    f.status = 200;
    assert_int_equal(ca_audit_build(&e, CA_EV_OUTCOME, &f), 0);
    assert_int_equal(ca_chain_seal(&c2, &e), 0);
    feed(v, &e, i++);
    f.by = "enterprise";
    assert_int_equal(ca_audit_build(&e, CA_EV_REVOCATION, &f), 0);
    assert_int_equal(ca_chain_seal(&c2, &e), 0);
    feed(v, &e, i++);
    assert_int_equal(ca_checkpoint_build(&c2, &e, 1795800003000, "gw-1", k,
                                         ""), 0);
    assert_string_equal(value(&e, "v"), "2");
    feed(v, &e, i++);

    assert_int_equal(ca_av_finish(v), 0);
    assert_int_equal(ca_av_nchains(v), 2);
    assert_int_equal(ca_av_breaks(v), 0);
    for (size_t j = 0; j < 2; j++) {
        const ca_av_chain *c = ca_av_chain_at(v, j);

        assert_int_equal(c->checkpoints_verified, 1);
        assert_int_equal(c->unsigned_tail, 0);
    }
    ca_av_free(v);
    EVP_PKEY_free(k);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_doc_documents_every_field),
        cmocka_unit_test(test_doc_stored_order_per_event),
        cmocka_unit_test(test_decision_entry),
        cmocka_unit_test(test_decision_keeps_personal_data_out),
        cmocka_unit_test(test_outcome_entry),
        cmocka_unit_test(test_other_events),
        cmocka_unit_test(test_largest_verification_fits),
        cmocka_unit_test(test_sql_columns),
        cmocka_unit_test(test_column_fits),
        cmocka_unit_test(test_v1_and_v2_entries_verify_together),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
