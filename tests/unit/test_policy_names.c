/* Names for people in a policy (docs/policy.md, "Names"): a purpose written
 * as an object, a category's name and name_zh; checked, stored, and
 * without effect on what the gateway does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

#define TOKEN "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":3600}"
#define POLICY(purposes, cat) \
    "{\"version\":\"1\",\"purposes\":[" purposes "]," TOKEN \
    ",\"categories\":{\"tax\":{\"routes\":[\"/e/{uscc}/tax\"]," \
    "\"purposes\":[\"loan\"],\"fields\":{\"a\":\"keep\"}" cat "}}}"

static ca_policy *
parse(const char *json, ca_error *err)
{
    memset(err, 0, sizeof(*err));
    return ca_policy_parse(json, strlen(json), "p.json", err);
}

static void
test_named_purposes_and_categories(void **state)
{
    const char *json = POLICY(
        "{\"code\":\"loan\",\"name\":\"Loan application\","
        "\"name_zh\":\"贷款申请\"},\"audit\","
        "{\"code\":\"watch\",\"name_zh\":\"贷后管理\"}",
        ",\"name\":\"Tax\",\"name_zh\":\"纳税信息\"");
    ca_error    err;
    ca_policy  *p = parse(json, &err);

    (void) state;
    if (p == NULL) {
        fail_msg("%s", err.text);
    }
    assert_int_equal(p->n_purposes, 3);
    assert_string_equal(p->purposes[0], "loan");
    assert_string_equal(p->purposes[1], "audit");
    assert_string_equal(p->purposes[2], "watch");
    assert_true(ca_policy_knows_purpose(p, "watch"));
    assert_string_equal(ca_policy_purpose_name(p, "loan", 1), "贷款申请");
    assert_string_equal(ca_policy_purpose_name(p, "loan", 0),
                        "Loan application");
    assert_null(ca_policy_purpose_name(p, "audit", 1));
    assert_null(ca_policy_purpose_name(p, "watch", 0));
    assert_string_equal(ca_policy_purpose_name(p, "watch", 1), "贷后管理");
    assert_null(ca_policy_purpose_name(p, "marketing", 1));
    assert_string_equal(ca_policy_category_name(p, "tax", 1), "纳税信息");
    assert_string_equal(ca_policy_category_name(p, "tax", 0), "Tax");
    assert_null(ca_policy_category_name(p, "env", 1));
    assert_null(ca_policy_category_name(NULL, "tax", 1));
    ca_policy_free(p);

    /* without names: the old form, nothing named */
    p = parse(POLICY("\"loan\"", ""), &err);
    assert_non_null(p);
    assert_null(ca_policy_purpose_name(p, "loan", 1));
    assert_null(ca_policy_category_name(p, "tax", 1));
    ca_policy_free(p);
}

static const struct {
    const char *json;
    const char *expect;
} bad[] = {
    {POLICY("{\"name\":\"x\"}", ""), "$.purposes[0].code: required"},
    {POLICY("{\"code\":5}", ""), "$.purposes[0].code: must be 1-64"},
    {POLICY("{\"code\":\"lo an\"}", ""),
     "$.purposes[0]: must be 1-64 characters"},
    {POLICY("\"loan\",{\"code\":\"loan\"}", ""),
     "$.purposes[1]: \"loan\" is listed twice"},
    {POLICY("{\"code\":\"loan\",\"title\":\"x\"}", ""),
     "$.purposes[0].title: unknown member"},
    {POLICY("{\"code\":\"loan\",\"name_zh\":\"\"}", ""),
     "$.purposes[0].name_zh: must be a non-empty string"},
    {POLICY("{\"code\":\"loan\",\"name\":7}", ""),
     "$.purposes[0].name: must be a non-empty string"},
    {POLICY("{\"code\":\"loan\",\"name\":\"a\\nb\"}", ""),
     "$.purposes[0].name: control characters"},
    {POLICY("\"loan\"", ",\"name_zh\":\"纳税\\u001b[2J\""),
     "$.categories.tax.name_zh: control characters"},
    {POLICY("\"loan\"", ",\"name\":[\"Tax\"]"),
     "$.categories.tax.name: must be a non-empty string"},
};

static void
test_bad_names(void **state)
{
    char     longname[400], json[1024];
    ca_error err;

    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ca_policy *p = parse(bad[i].json, &err);

        if (p != NULL || strstr(err.text, bad[i].expect) == NULL) {
            fail_msg("case %zu: want \"%s\", got \"%s\"", i, bad[i].expect,
                     p ? "(loaded)" : err.text);
        }
    }
    /* at most 256 bytes */
    memset(longname, 'x', 257);
    longname[257] = '\0';
    snprintf(json, sizeof(json), POLICY("\"loan\"", ",\"name\":\"%s\""),
             longname);
    assert_null(parse(json, &err));
    assert_non_null(strstr(err.text, "at most 256 bytes"));
    longname[256] = '\0';
    snprintf(json, sizeof(json), POLICY("\"loan\"", ",\"name\":\"%s\""),
             longname);
    ca_policy_free(parse(json, &err));
    assert_string_equal(err.text, "");
}

/* The shipped policy names every purpose and category, in Chinese too. */
static void
test_shipped_policy_is_named(void **state)
{
    ca_error   err = {{0}};
    ca_policy *p = ca_policy_load("../../policies/platform-policy.json", &err);

    (void) state;
    if (p == NULL) {
        fail_msg("%s", err.text);
    }
    for (size_t i = 0; i < p->n_purposes; i++) {
        assert_non_null(ca_policy_purpose_name(p, p->purposes[i], 1));
        assert_non_null(ca_policy_purpose_name(p, p->purposes[i], 0));
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        assert_non_null(p->categories[i].label_zh);
        assert_non_null(p->categories[i].label);
    }
    ca_policy_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_named_purposes_and_categories),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_shipped_policy_is_named),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
