/* Verification checks: parsing against verify rules, evaluation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/checks.h"

static const char policy_text[] =
    "{\"version\":\"t\",\"purposes\":[\"loan\"],"
    "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":60},"
    "\"categories\":{\"t\":{\"routes\":[\"/t/{uscc}\"],"
    "\"purposes\":[\"loan\"],\"fields\":{\"credit_rating\":\"keep\","
    "\"annual[].year\":\"keep\",\"people[].role\":\"keep\","
    "\"people[].id_number\":{\"masked\":\"mask:6,4\",\"raw\":\"keep\","
    "\"class\":\"personal\"},\"annual[].month\":\"year\","
    "\"deps\":\"keep\"},"
    "\"verify\":{\"n\":[\"eq\",\"ne\",\"gt\",\"ge\",\"lt\",\"le\"],"
    "\"s\":[\"eq\",\"ne\"],\"b\":[\"eq\"],"
    "\"annual[].tax_paid\":[\"ge\",\"le\",\"eq\"],"
    "\"people[].name\":[\"eq\"],\"deps[].share\":[\"ge\"],"
    "\"credit_rating\":[\"eq\"]}}}}";

static const char doc_text[] =
    "{\"n\":10,\"s\":\"A级\",\"b\":true,\"credit_rating\":\"AA\","
    "\"z\":null,"
    "\"annual\":[\"junk\",{\"year\":2022,\"tax_paid\":90000},"
    "{\"year\":2023,\"tax_paid\":350000.5},{\"year\":2023,\"tax_paid\":1},"
    "{\"year\":\"2024\",\"tax_paid\":5},{\"year\":2025.5,\"tax_paid\":7}],"
    "\"people\":[{\"role\":\"cfo\",\"name\":\"王五\"},"
    "{\"role\":\"ceo\",\"name\":{\"first\":\"x\"}}]}";

static ca_policy         *policy;
static const ca_category *cat;
static json_t            *doc;

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
    doc = json_loads(doc_text, 0, NULL);
    return doc ? 0 : -1;
}

static int
teardown(void **state)
{
    (void) state;
    json_decref(doc);
    ca_policy_free(policy);
    return 0;
}

static char detail[256];

static ca_reason
parse(const char *body, ca_checks *cs)
{
    detail[0] = '\0';
    return ca_checks_parse(body, strlen(body), cat, cs, detail,
                           sizeof(detail));
}

/* Parses and evaluates one check; returns "true", "false", "null" or
 * "invalid". */
static const char *
one(const char *field, const char *op, const char *value)
{
    static char body[512];
    ca_checks   cs;
    json_t     *res, *m;
    const char *out;
    ca_reason   rc;

    snprintf(body, sizeof(body),
             "{\"checks\":[{\"field\":\"%s\",\"op\":\"%s\",\"value\":%s}]}",
             field, op, value);
    if (parse(body, &cs) != CA_OK) {
        return "refused";
    }
    rc = ca_checks_eval(&cs, doc, &res, detail, sizeof(detail));
    ca_checks_free(&cs);
    if (rc != CA_OK) {
        assert_null(res);
        return "invalid";
    }
    m = json_object_get(json_array_get(json_object_get(res, "results"), 0),
                        "match");
    out = json_is_null(m) ? "null" : json_is_true(m) ? "true" : "false";
    json_decref(res);
    return out;
}

static void
test_ops(void **state)
{
    (void) state;
    assert_string_equal(one("n", "eq", "10"), "true");
    assert_string_equal(one("n", "eq", "10.0"), "true");
    assert_string_equal(one("n", "ne", "10"), "false");
    assert_string_equal(one("n", "gt", "9.5"), "true");
    assert_string_equal(one("n", "gt", "10"), "false");
    assert_string_equal(one("n", "ge", "10"), "true");
    assert_string_equal(one("n", "lt", "10"), "false");
    assert_string_equal(one("n", "lt", "11"), "true");
    assert_string_equal(one("n", "le", "10"), "true");
    assert_string_equal(one("n", "le", "-1"), "false");
    assert_string_equal(one("s", "eq", "\"A级\""), "true");
    assert_string_equal(one("s", "ne", "\"A\""), "true");
    assert_string_equal(one("b", "eq", "true"), "true");
    assert_string_equal(one("b", "eq", "false"), "false");
    assert_string_equal(one("credit_rating", "eq", "\"AA\""), "true");
}

static void
test_selection(void **state)
{
    (void) state;
    /* first element whose year is the number 2023 */
    assert_string_equal(one("annual[year=2023].tax_paid", "ge", "100000"),
                        "true");
    assert_string_equal(one("annual[year=2022].tax_paid", "ge", "100000"),
                        "false");
    assert_string_equal(one("annual[year=2022].tax_paid", "eq", "90000"),
                        "true");
    /* a string member selects by its text */
    assert_string_equal(one("annual[year=2024].tax_paid", "eq", "5"),
                        "true");
    /* a real selects by numeric value */
    assert_string_equal(one("annual[year=2025.50].tax_paid", "eq", "7"),
                        "true");
    assert_string_equal(one("annual[year=02023].tax_paid", "eq", "1"),
                        "null");
    assert_string_equal(one("people[role=cfo].name", "eq", "\"王五\""),
                        "true");
}

static void
test_absent_is_null(void **state)
{
    (void) state;
    assert_string_equal(one("annual[year=1999].tax_paid", "ge", "1"),
                        "null");
    assert_string_equal(one("annual[month=9].tax_paid", "ge", "1"),
                        "refused");      /* month is not disclosed as is */
    assert_string_equal(one("people[role=cto].name", "eq", "\"x\""), "null");
    /* the document lacks the member, or it is JSON null */
    {
        json_t *saved = doc;
        doc = json_loads("{\"n\":null,\"annual\":{}}", 0, NULL);
        assert_string_equal(one("n", "eq", "1"), "null");
        assert_string_equal(one("s", "eq", "\"x\""), "null");
        assert_string_equal(one("annual[year=1].tax_paid", "eq", "1"),
                            "null");
        json_decref(doc);
        doc = saved;
    }
}

static void
test_type_mismatch(void **state)
{
    (void) state;
    assert_string_equal(one("n", "eq", "\"10\""), "invalid");
    assert_non_null(strstr(detail, "\"n\""));
    assert_string_equal(one("s", "eq", "1"), "invalid");
    assert_null(strstr(detail, "A级"));          /* never the value */
    assert_string_equal(one("b", "eq", "1"), "invalid");
    assert_string_equal(one("people[role=ceo].name", "eq", "\"x\""),
                        "invalid");
}

/*
 * A selector probes the member it names on every element: only members the
 * category discloses unmasked may select (contract §2.1), or a bank could
 * confirm a guessed ID number of a withheld or masked member.
 */
static void
test_selectors_only_on_disclosed_members(void **state)
{
    (void) state;
    assert_string_equal(one("people[id_number=11010519491231002X].name",
                            "eq", "\"x\""), "refused");
    assert_non_null(strstr(detail, "selector member \"id_number\" is not"
                                   " disclosed unmasked"));
    assert_null(strstr(detail, "11010519491231002X"));
    /* withheld altogether */
    assert_string_equal(one("people[secret=1].name", "eq", "\"x\""),
                        "refused");
    assert_non_null(strstr(detail, "\"secret\""));
    /* a treated (year) member */
    assert_string_equal(one("annual[month=2023].tax_paid", "ge", "1"),
                        "refused");
    /* disclosed as is: selects */
    assert_string_equal(one("people[role=cfo].name", "eq", "\"王五\""),
                        "true");
    /* inside an object the category keeps whole */
    assert_string_equal(one("deps[k=v].share", "ge", "1"), "null");
}

static void
test_budget_groups_by_verify_field(void **state)
{
    ca_checks    cs;
    ca_check_use uses[CA_CHECKS_MAX];
    size_t       n;
    const char  *body =
        "{\"checks\":[{\"field\":\"annual[year=2023].tax_paid\","
        "\"op\":\"ge\",\"value\":1},{\"field\":\"n\",\"op\":\"eq\","
        "\"value\":1},{\"field\":\"annual[year=2022].tax_paid\","
        "\"op\":\"le\",\"value\":9},{\"field\":\"annual[year=2023]."
        "tax_paid\",\"op\":\"le\",\"value\":2}]}";

    (void) state;
    assert_int_equal(cat->verify_budget, CA_VERIFY_BUDGET_DEFAULT);
    assert_int_equal(parse(body, &cs), CA_OK);
    n = ca_checks_budget(&cs, uses);
    assert_int_equal(n, 2);
    /* whatever the selector: one budget per verify field */
    assert_string_equal(uses[0].field, "annual[].tax_paid");
    assert_int_equal(uses[0].count, 3);
    assert_string_equal(uses[1].field, "n");
    assert_int_equal(uses[1].count, 1);
    ca_checks_free(&cs);
}

static void
expect_refused(const char *body, const char *in_detail)
{
    ca_checks cs;

    if (parse(body, &cs) != CA_REQUEST_INVALID
        || strstr(detail, in_detail) == NULL) {
        print_error("body %s: detail \"%s\", want \"%s\"\n", body, detail,
                    in_detail);
        fail();
    }
    assert_int_equal(cs.n, 0);
}

static void
test_refusals(void **state)
{
    (void) state;
    assert_string_equal(one("x", "eq", "1"), "refused");
    assert_non_null(strstr(detail, "\"x\" is not verifiable"));
    assert_string_equal(one("s", "gt", "1"), "refused");
    assert_non_null(strstr(detail, "op \"gt\" is not allowed on field"
                                   " \"s\""));
    assert_string_equal(one("n", "gt", "\"1\""), "refused");
    assert_non_null(strstr(detail, "needs a number"));
    assert_string_equal(one("annual[].tax_paid", "ge", "1"), "refused");
    assert_non_null(strstr(detail, "bare []"));
    assert_string_equal(one("annual.tax_paid", "ge", "1"), "refused");
    assert_string_equal(one("annual[year=2023]", "eq", "1"), "refused");
    assert_string_equal(one("n", "gte", "1"), "refused");
    assert_string_equal(one("n", "eq", "null"), "refused");
    assert_string_equal(one("n", "eq", "[1]"), "refused");

    expect_refused("", "not valid JSON");
    expect_refused("[]", "body must be");
    expect_refused("{\"checks\":[]}", "1 to 32");
    expect_refused("{\"checks\":{}}", "body must be");
    expect_refused("{\"checks\":[{\"field\":\"n\",\"op\":\"eq\","
                   "\"value\":1}],\"x\":1}", "body must be");
    expect_refused("{\"checks\":[{\"field\":\"n\",\"op\":\"eq\"}]}",
                   "exactly field, op and value");
    expect_refused("{\"checks\":[{\"field\":\"n\",\"op\":\"eq\","
                   "\"value\":1,\"extra\":2}]}", "exactly field");
    expect_refused("{\"checks\":[{\"field\":\"n\",\"op\":\"eq\","
                   "\"value\":1,\"value\":2}]}", "not valid JSON");
    expect_refused("{\"checks\":[{\"field\":\"n\",\"op\":\"eq\","
                   "\"value\":1},{\"field\":1,\"op\":\"eq\",\"value\":1}]}",
                   "checks[1].field must be a string");
    expect_refused("{\"checks\":[{\"field\":\"annual[year=].tax_paid\","
                   "\"op\":\"eq\",\"value\":1}]}", "selector value");
    expect_refused("{\"checks\":[{\"field\":\"annual[=1].tax_paid\","
                   "\"op\":\"eq\",\"value\":1}]}", "selector is [k=v]");
    expect_refused("{\"checks\":[{\"field\":\"annual[year=2023.tax_paid\","
                   "\"op\":\"eq\",\"value\":1}]}", "selector value");
    expect_refused("{\"checks\":[{\"field\":\"a..b\",\"op\":\"eq\","
                   "\"value\":1}]}", "member name");
}

static void
test_too_many_and_body_cap(void **state)
{
    char      body[CA_CHECKS_BODY_MAX + 64], *p = body;
    ca_checks cs;

    (void) state;
    p += sprintf(p, "{\"checks\":[");
    for (int i = 0; i < CA_CHECKS_MAX + 1; i++) {
        p += sprintf(p, "%s{\"field\":\"n\",\"op\":\"eq\",\"value\":1}",
                     i ? "," : "");
    }
    strcpy(p, "]}");
    expect_refused(body, "1 to 32");

    memset(body, ' ', sizeof(body));
    body[sizeof(body) - 1] = '\0';
    assert_int_equal(ca_checks_parse(body, CA_CHECKS_BODY_MAX + 1, cat, &cs,
                                     detail, sizeof(detail)),
                     CA_REQUEST_INVALID);
}

static void
test_results_in_order_without_values(void **state)
{
    const char *body =
        "{\"checks\":[{\"field\":\"annual[year=2023].tax_paid\",\"op\":\"le\","
        "\"value\":100},{\"field\":\"credit_rating\",\"op\":\"eq\","
        "\"value\":\"AA\"},{\"field\":\"annual[year=1].tax_paid\","
        "\"op\":\"eq\",\"value\":1}]}";
    ca_checks cs;
    json_t   *res;
    char     *s;

    (void) state;
    assert_int_equal(parse(body, &cs), CA_OK);
    assert_int_equal(cs.n, 3);
    assert_int_equal(ca_checks_eval(&cs, doc, &res, detail, sizeof(detail)),
                     CA_OK);
    s = json_dumps(res, JSON_COMPACT);
    assert_string_equal(s, "{\"results\":["
        "{\"field\":\"annual[year=2023].tax_paid\",\"op\":\"le\","
        "\"match\":false},"
        "{\"field\":\"credit_rating\",\"op\":\"eq\",\"match\":true},"
        "{\"field\":\"annual[year=1].tax_paid\",\"op\":\"eq\","
        "\"match\":null}]}");
    free(s);
    json_decref(res);
    ca_checks_free(&cs);
}

/* What the audit outcome counts (contract §7): the answers, true, false and
 * null, of one verification. */
static void
test_count_answers(void **state)
{
    const char *body =
        "{\"checks\":[{\"field\":\"n\",\"op\":\"gt\",\"value\":1},"
        "{\"field\":\"n\",\"op\":\"lt\",\"value\":1},"
        "{\"field\":\"s\",\"op\":\"eq\",\"value\":\"A级\"},"
        "{\"field\":\"annual[year=1].tax_paid\",\"op\":\"eq\","
        "\"value\":1}]}";
    ca_checks       cs;
    json_t         *res;
    ca_checks_tally t = { 9, 9, 9 };

    (void) state;
    assert_int_equal(parse(body, &cs), CA_OK);
    assert_int_equal(ca_checks_eval(&cs, doc, &res, detail, sizeof(detail)),
                     CA_OK);
    ca_checks_count(res, &t);
    assert_int_equal(t.matched, 2);
    assert_int_equal(t.unmatched, 1);
    assert_int_equal(t.absent, 1);
    json_decref(res);
    ca_checks_free(&cs);
    ca_checks_count(NULL, &t);
    assert_int_equal(t.matched + t.unmatched + t.absent, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_absent_is_null),
        cmocka_unit_test(test_type_mismatch),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_selectors_only_on_disclosed_members),
        cmocka_unit_test(test_budget_groups_by_verify_field),
        cmocka_unit_test(test_too_many_and_body_cap),
        cmocka_unit_test(test_results_in_order_without_values),
        cmocka_unit_test(test_count_answers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
