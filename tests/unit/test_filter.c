/* The allowlist filter and the treatments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/filter.h"
#include "policy/policy_testing.h"

static const char policy_text[] =
    "{\"version\":\"t\",\"purposes\":[\"loan\"],"
    "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":60},"
    "\"categories\":{\"t\":{\"routes\":[\"/t/{uscc}\"],"
    "\"purposes\":[\"loan\"],\"raw_allowed\":true,\"fields\":{"
    "\"name\":{\"masked\":\"mask:1,0\",\"raw\":\"keep\","
    "\"class\":\"personal\"},"
    "\"id\":\"mask:6,4\","
    "\"amount\":\"bucket:100000\","
    "\"date\":\"year\","
    "\"pid\":\"hash\","
    "\"gone\":\"drop\","
    "\"obj\":\"keep\","
    "\"nested.inner.x\":\"keep\","
    "\"rows[].a\":\"keep\","
    "\"rows[].b.c\":{\"masked\":\"mask:0,1\",\"raw\":\"keep\"},"
    "\"grid[][]\":\"keep\""
    "}}}}";

static ca_policy         *policy;
static const ca_category *cat;

static int
setup(void **state)
{
    ca_error err;
    (void) state;
    policy = ca_policy_parse(policy_text, strlen(policy_text), "t", &err);
    if (policy == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return -1;
    }
    cat = &policy->categories[0];
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    ca_policy_free(policy);
    return 0;
}

/* Filters the JSON text in and returns the compact output (static). */
static const char *
run(const char *in, int raw, ca_filter_report *rep)
{
    static char     out[4096];
    static const unsigned char key[] = "k";
    ca_filter_opts  opts = {key, 1, raw, NULL, NULL};
    json_error_t    je;
    json_t         *doc = json_loads(in, JSON_DECODE_ANY, &je), *r;
    char           *s;

    assert_non_null(doc);
    r = ca_filter_apply(cat, doc, &opts, rep);
    json_decref(doc);
    if (r == NULL) {
        return NULL;
    }
    s = json_dumps(r, JSON_COMPACT);
    snprintf(out, sizeof(out), "%s", s);
    free(s);
    json_decref(r);
    return out;
}

static void
test_unlisted_withheld_at_every_depth(void **state)
{
    ca_filter_report rep;

    (void) state;
    assert_int_equal(ca_filter_report_init(&rep, cat), 0);
    assert_string_equal(
        run("{\"secret\":1,\"nested\":{\"inner\":{\"x\":1,\"y\":2},"
            "\"other\":3},\"rows\":[{\"a\":1,\"z\":9}],\"id2\":\"x\"}",
            0, &rep),
        "{\"nested\":{\"inner\":{\"x\":1}},\"rows\":[{\"a\":1}]}");
    /* secret, y, other, z, id2 */
    assert_int_equal(rep.withheld, 5);
    ca_filter_report_free(&rep);
}

static void
test_member_order_and_arrays(void **state)
{
    ca_filter_report rep;
    char            *paths;

    (void) state;
    assert_int_equal(ca_filter_report_init(&rep, cat), 0);
    assert_string_equal(
        run("{\"rows\":[{\"b\":{\"c\":\"xyz\",\"d\":1},\"a\":2},"
            "{\"a\":3},\"scalar\",{\"b\":5}],\"grid\":[[1,2],[3],4],"
            "\"id\":\"110101199003071234\"}", 0, &rep),
        "{\"rows\":[{\"b\":{\"c\":\"**z\"},\"a\":2},{\"a\":3},{}],"
        "\"grid\":[[1,2],[3]],\"id\":\"110101********1234\"}");
    /* d, "scalar", b:5 (not an object), 4 (not an array) */
    assert_int_equal(rep.withheld, 4);
    paths = ca_filter_report_paths(&rep, cat, 0);
    assert_string_equal(paths, "id,rows[].a,rows[].b.c,grid[][]");
    free(paths);
    paths = ca_filter_report_paths(&rep, cat, 1);
    assert_string_equal(paths, "id,rows[].b.c");
    free(paths);
    ca_filter_report_free(&rep);
}

static void
test_object_path_keeps_subtree_and_drop(void **state)
{
    ca_filter_report rep;

    (void) state;
    assert_int_equal(ca_filter_report_init(&rep, cat), 0);
    assert_string_equal(
        run("{\"gone\":{\"x\":1},\"obj\":{\"deep\":{\"er\":[1,{\"y\":null}]}},"
            "\"name\":\"张三\"}", 0, &rep),
        "{\"obj\":{\"deep\":{\"er\":[1,{\"y\":null}]}},\"name\":\"张*\"}");
    assert_int_equal(rep.withheld, 1);
    assert_int_equal(rep.disclosed[5], 0);      /* gone */
    ca_filter_report_free(&rep);

    /* a listed object member that is not an object is withheld */
    assert_string_equal(run("{\"nested\":5}", 0, NULL), "{}");
    assert_string_equal(run("{\"nested\":{\"inner\":[1]}}", 0, NULL),
                        "{\"nested\":{}}");
}

static void
test_levels(void **state)
{
    (void) state;
    assert_string_equal(run("{\"name\":\"张三\"}", 1, NULL),
                        "{\"name\":\"张三\"}");
    assert_string_equal(run("{\"name\":\"张三\"}", 0, NULL),
                        "{\"name\":\"张*\"}");
    assert_string_equal(run("{\"amount\":350000}", 0, NULL),
                        "{\"amount\":\"300000-400000\"}");
    /* a treatment that cannot apply withholds (fail closed) */
    assert_string_equal(run("{\"amount\":\"a lot\",\"date\":20230101,"
                            "\"name\":{\"first\":\"三\"}}", 0, NULL), "{}");
}

static void
test_non_object_root(void **state)
{
    (void) state;
    assert_null(run("[{\"name\":\"x\"}]", 0, NULL));
    assert_null(run("\"x\"", 0, NULL));
    assert_null(run("null", 0, NULL));
    assert_string_equal(run("{}", 0, NULL), "{}");
}

static void
test_deep_nesting(void **state)
{
    char   in[1024] = "{\"obj\":", *p = in + strlen(in);
    int    depth = 70;

    (void) state;
    for (int i = 0; i < depth; i++) {
        *p++ = '[';
    }
    for (int i = 0; i < depth; i++) {
        *p++ = ']';
    }
    strcpy(p, "}");
    assert_null(run(in, 0, NULL));

    /* deep but unlisted data is withheld without being walked */
    memcpy(in, "{\"zzz\":", 7);
    assert_string_equal(run(in, 0, NULL), "{}");

    /* 60 levels below a kept object are fine */
    strcpy(in, "{\"obj\":");
    p = in + strlen(in);
    for (int i = 0; i < 60; i++) {
        *p++ = '[';
    }
    for (int i = 0; i < 60; i++) {
        *p++ = ']';
    }
    strcpy(p, "}");
    assert_non_null(run(in, 0, NULL));
}

static void
test_empty_allowlist(void **state)
{
    const char *text =
        "{\"version\":\"t\",\"purposes\":[\"loan\"],"
        "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":60},"
        "\"categories\":{\"t\":{\"routes\":[\"/t/{uscc}\"],"
        "\"purposes\":[\"loan\"],\"fields\":{}}}}";
    ca_error         err;
    ca_policy       *p = ca_policy_parse(text, strlen(text), "e", &err);
    ca_filter_report rep;
    json_t          *doc = json_pack("{s:i, s:s}", "a", 1, "b", "x"), *r;
    char            *paths;

    (void) state;
    assert_non_null(p);
    assert_int_equal(ca_filter_report_init(&rep, &p->categories[0]), 0);
    r = ca_filter_apply(&p->categories[0], doc, NULL, &rep);
    assert_non_null(r);
    assert_int_equal(json_object_size(r), 0);
    assert_int_equal(rep.withheld, 2);
    paths = ca_filter_report_paths(&rep, &p->categories[0], 0);
    assert_string_equal(paths, "");
    free(paths);
    ca_filter_report_free(&rep);
    json_decref(r);
    json_decref(doc);
    ca_policy_free(p);
}

/* ---- treatments ------------------------------------------------------- */

static void
expect_mask(const char *in, unsigned l, unsigned r, const char *want)
{
    char *m = ca_mask_utf8(in, strlen(in), l, r);
    assert_non_null(m);
    assert_string_equal(m, want);
    free(m);
}

static void
test_mask(void **state)
{
    (void) state;
    expect_mask("张三", 1, 0, "张*");
    expect_mask("欧阳娜娜", 1, 0, "欧***");
    expect_mask("110101199003071234", 6, 4, "110101********1234");
    expect_mask("13800135678", 3, 4, "138****5678");
    expect_mask("6222020200112233445", 6, 4, "622202*********3445");
    expect_mask("ＡＢ张三abc", 1, 2, "Ａ****bc");
    expect_mask("ＡＢ张三abc", 3, 0, "ＡＢ张****");
    expect_mask("😀x😀", 1, 1, "😀*😀");
    /* never the whole value: lead shrinks first, then trail */
    expect_mask("张", 1, 0, "*");
    expect_mask("abc", 6, 4, "*bc");
    expect_mask("abcd", 2, 2, "a*cd");
    expect_mask("abc", 0, 5, "*bc");
    expect_mask("", 1, 1, "");
    expect_mask("abc", 0, 0, "***");

    assert_null(ca_mask_utf8("\xff", 1, 0, 0));
    assert_null(ca_mask_utf8("\xc0\x80", 2, 0, 0));            /* overlong */
    assert_null(ca_mask_utf8("\xed\xa0\x80", 3, 0, 0));       /* surrogate */
    assert_null(ca_mask_utf8("\xe5\xbc", 2, 0, 0));           /* truncated */
    assert_null(ca_mask_utf8("\xf4\x90\x80\x80", 4, 0, 0)); /* > U+10FFFF */
}

static json_t *
treat(const char *spec, json_t *v, const ca_filter_opts *o)
{
    ca_treatment t = {0};
    json_t      *r;

    if (strncmp(spec, "mask:", 5) == 0) {
        t.kind = CA_TREAT_MASK;
        sscanf(spec + 5, "%u,%u", &t.a, &t.b);
    } else if (strncmp(spec, "bucket:", 7) == 0) {
        t.kind = CA_TREAT_BUCKET;
        t.width = strtod(spec + 7, NULL);
    } else if (strcmp(spec, "year") == 0) {
        t.kind = CA_TREAT_YEAR;
    } else if (strcmp(spec, "hash") == 0) {
        t.kind = CA_TREAT_HASH;
    } else if (strcmp(spec, "keep") == 0) {
        t.kind = CA_TREAT_KEEP;
    } else {
        t.kind = CA_TREAT_DROP;
    }
    r = ca_treat_apply(&t, v, o);
    json_decref(v);
    return r;
}

static void
expect_str(const char *spec, json_t *v, const char *want)
{
    json_t *r = treat(spec, v, NULL);
    if (want == NULL) {
        assert_null(r);
        return;
    }
    assert_non_null(r);
    assert_true(json_is_string(r));
    assert_string_equal(json_string_value(r), want);
    json_decref(r);
}

static void
test_mask_numbers_and_types(void **state)
{
    (void) state;
    expect_str("mask:3,4", json_integer(13800135678LL), "138****5678");
    expect_str("mask:1,1", json_integer(-42), "-*2");
    expect_str("mask:2,0", json_real(3.25), "3.**");
    expect_str("mask:1,0", json_true(), NULL);
    expect_str("mask:1,0", json_null(), NULL);
    expect_str("mask:1,0", json_object(), NULL);
    expect_str("drop", json_string("x"), NULL);
}

static void
test_bucket(void **state)
{
    (void) state;
    expect_str("bucket:100000", json_integer(350000), "300000-400000");
    expect_str("bucket:100000", json_integer(0), "0-100000");
    expect_str("bucket:100000", json_integer(99999), "0-100000");
    expect_str("bucket:100000", json_integer(100000), "100000-200000");
    expect_str("bucket:100000", json_integer(-1), "-100000-0");
    expect_str("bucket:100000", json_integer(-100000), "-100000-0");
    expect_str("bucket:100000", json_real(350000.5), "300000-400000");
    expect_str("bucket:100000", json_real(-0.0), "0-100000");
    expect_str("bucket:0.5", json_real(1.25), "1-1.5");
    expect_str("bucket:0.1", json_real(0.3), "0.2-0.30000000000000004");
    expect_str("bucket:10", json_integer(INT64_MAX - 10),
               "9223372036854775790-9223372036854775800");
    /* the upper bound would not fit in 64 bits */
    expect_str("bucket:10", json_integer(INT64_MAX - 5), NULL);
    expect_str("bucket:100000", json_integer(INT64_MIN), NULL);
    /* the width is lost in the precision of huge values: withheld */
    expect_str("bucket:100000", json_real(1e308), NULL);
    expect_str("bucket:100000", json_real(-1e308), NULL);
    expect_str("bucket:1e308", json_real(1.5e308), NULL);
    {
        json_t *r = treat("bucket:1e300", json_real(1e308), NULL);
        assert_non_null(r);
        assert_memory_equal(json_string_value(r), "1e+308-1.", 9);
        json_decref(r);
    }
    expect_str("bucket:5", json_string("12"), NULL);
    expect_str("bucket:5", json_true(), NULL);
}

static void
test_year(void **state)
{
    (void) state;
    expect_str("year", json_string("2023-05-01"), "2023");
    expect_str("year", json_string("2023"), "2023");
    expect_str("year", json_string("2023/05/01"), "2023");
    expect_str("year", json_string("2023.05.01"), "2023");
    expect_str("year", json_string("2023-05-01T10:00:00Z"), "2023");
    expect_str("year", json_string("2023 May"), "2023");
    expect_str("year", json_string("2023T"), "2023");
    expect_str("year", json_string("20230501"), NULL);
    expect_str("year", json_string("203"), NULL);
    expect_str("year", json_string("May 2023"), NULL);
    expect_str("year", json_string("２０２３-01-01"), NULL);
    expect_str("year", json_integer(2023), NULL);
}

static void
test_hash(void **state)
{
    static const unsigned char key[] = "key", key2[] = "kez";
    ca_filter_opts o = {key, 3, 0, NULL, NULL};
    ca_filter_opts o2 = {key2, 3, 0, NULL, NULL};
    ca_filter_opts nokey = {NULL, 0, 0, NULL, NULL};
    json_t *a, *b, *c;

    (void) state;
    a = treat("hash", json_string("The quick brown fox jumps over the lazy"
                                  " dog"), &o);
    assert_non_null(a);
    /* RFC 4231-style known answer for HMAC-SHA-256 */
    assert_string_equal(json_string_value(a), "f7bc83f430538424b13298e6aa6f"
                        "b143ef4d59a14946175997479dbc2d1a3cd8");
    json_decref(a);

    a = treat("hash", json_string("110101199003071234"), &o);
    b = treat("hash", json_string("110101199003071234"), &o);
    c = treat("hash", json_string("110101199003071234"), &o2);
    assert_string_equal(json_string_value(a), json_string_value(b));
    assert_string_not_equal(json_string_value(a), json_string_value(c));
    assert_int_equal(strlen(json_string_value(a)), 64);
    json_decref(a);
    json_decref(b);
    json_decref(c);

    /* a number hashes as its text */
    a = treat("hash", json_integer(12345), &o);
    b = treat("hash", json_string("12345"), &o);
    assert_string_equal(json_string_value(a), json_string_value(b));
    json_decref(a);
    json_decref(b);

    assert_null(treat("hash", json_string("x"), &nokey));
    assert_null(treat("hash", json_string("x"), NULL));
    assert_null(treat("hash", json_true(), &o));
    assert_null(treat("hash", json_array(), &o));
}

static void
test_filter_hash_without_key(void **state)
{
    ca_filter_opts opts = {NULL, 0, 0, NULL, NULL};
    json_t        *doc = json_pack("{s:s, s:s}", "pid", "x", "date",
                                   "1999-01-02"), *r;
    ca_filter_report rep;

    (void) state;
    assert_int_equal(ca_filter_report_init(&rep, cat), 0);
    r = ca_filter_apply(cat, doc, &opts, &rep);
    assert_non_null(r);
    assert_null(json_object_get(r, "pid"));
    assert_string_equal(json_string_value(json_object_get(r, "date")),
                        "1999");
    assert_int_equal(rep.withheld, 1);
    json_decref(r);
    json_decref(doc);
    ca_filter_report_free(&rep);
}

/* ---- trace ------------------------------------------------------------ */

static char trace_log[1024];

static void
collect(void *ctx, const char *path, const ca_field *f,
        const ca_treatment *t, ca_trace_what what)
{
    size_t n = strlen(trace_log);
    (void) ctx;
    (void) t;
    snprintf(trace_log + n, sizeof(trace_log) - n, "%s=%d%s;", path,
             (int) what, f ? "f" : "");
}

static void
test_trace(void **state)
{
    ca_filter_opts opts = {NULL, 0, 0, collect, NULL};
    json_t        *doc, *r;

    (void) state;
    trace_log[0] = '\0';
    doc = json_loads("{\"x\":1,\"rows\":[{\"a\":1,\"q\":2}],\"gone\":1,"
                     "\"pid\":\"p\"}", 0, NULL);
    r = ca_filter_apply(cat, doc, &opts, NULL);
    assert_non_null(r);
    assert_string_equal(trace_log, "x=3;rows[0].a=0f;rows[0].q=3;gone=1f;"
                        "pid=2f;");
    json_decref(r);
    json_decref(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unlisted_withheld_at_every_depth),
        cmocka_unit_test(test_member_order_and_arrays),
        cmocka_unit_test(test_object_path_keeps_subtree_and_drop),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_non_object_root),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_empty_allowlist),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_mask_numbers_and_types),
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_year),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_filter_hash_without_key),
        cmocka_unit_test(test_trace),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
