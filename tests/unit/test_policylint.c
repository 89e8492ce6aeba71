/* The policy guide's rules on a loadable policy (check --strict). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"
#include "policy/policylint.h"

#define HEAD(v) "{\"version\":\"" v "\",\"purposes\":[\"loan\"]," \
                "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":3600},"

/* Every rule once, and lookalikes that must stay quiet. */
static const char policy[] =
    HEAD("1") "\"categories\":{"
    "\"t\":{\"routes\":[\"/t/{uscc}\"],\"purposes\":[\"loan\"],"
    "\"raw_allowed\":true,\"fields\":{"
    "\"p.name\":{\"masked\":\"mask:1,0\",\"raw\":\"keep\","
    "\"class\":\"personal\"},"
    "\"p.id\":{\"masked\":\"mask:6,4\",\"class\":\"personal\"},"
    "\"amount\":{\"masked\":\"bucket:100\",\"raw\":\"keep\","
    "\"class\":\"trade_secret\"},"
    "\"secret\":{\"masked\":\"bucket:100\",\"class\":\"trade_secret\"},"
    "\"code\":{\"masked\":\"mask:2,2\",\"class\":\"trade_secret\"},"
    "\"rows[].k\":\"hash\",\"rows[].v\":\"bucket:10\","
    "\"list[].year\":\"keep\",\"list[].x\":\"bucket:5\"},"
    "\"verify\":{\"p.id\":[\"eq\"],\"unlisted\":[\"eq\"],"
    "\"amount\":[\"ge\",\"le\"],\"secret\":[\"ge\",\"le\"],"
    "\"code\":[\"eq\"],\"rows[].v\":[\"ge\"],\"list[].x\":[\"ge\"]}},"
    "\"n\":{\"routes\":[\"/n/{uscc}\"],\"purposes\":[\"loan\"],"
    "\"fields\":{"
    "\"q.name\":{\"masked\":\"mask:1,0\",\"raw\":\"keep\","
    "\"class\":\"personal\"},"
    "\"whole\":\"keep\"},"
    "\"verify\":{\"whole.inner[].a\":[\"eq\",\"ge\"]}}}}";

typedef struct {
    char   seen[16][1024];
    size_t n;
} seen_t;

static void
collect(void *ctx, const ca_lint *w)
{
    seen_t *s = ctx;

    assert_true(s->n < 16);
    assert_true(w->jpath[0] == '$' && w->text[0] != '\0');
    snprintf(s->seen[s->n++], sizeof(s->seen[0]), "%s %s %s %s", w->rule,
             w->category ? w->category : "-", w->path ? w->path : "-",
             w->jpath);
}

static ca_policy *
parse(const char *json, const char *name)
{
    ca_error   err;
    ca_policy *p = ca_policy_parse(json, strlen(json), name, &err);

    if (p == NULL) {
        print_error("%s\n", err.text);
    }
    assert_non_null(p);
    return p;
}

static void
test_every_rule(void **state)
{
    static const char *const want[] = {
        "personal-raw-keep t p.name $.categories.t.fields[\"p.name\"].raw",
        "personal-verify t p.id $.categories.t.verify[\"p.id\"]",
        "verify-unclassified t unlisted $.categories.t.verify.unlisted",
        "verify-bisect t secret $.categories.t.verify.secret",
        "masked-eq t code $.categories.t.verify.code",
        "verify-no-selector t rows[].v $.categories.t.verify[\"rows[].v\"]",
    };
    ca_policy *p = parse(policy, "p.json");
    seen_t     s = {.n = 0};
    size_t     n;

    (void) state;
    n = ca_policy_lint(p, NULL, collect, &s);
    for (size_t i = 0; n != sizeof(want) / sizeof(want[0]) && i < s.n; i++) {
        print_error("%s\n", s.seen[i]);
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s.seen[i], want[i]);
    }
    ca_policy_free(p);
}

static void
test_version_against_previous(void **state)
{
    const char *base = HEAD("7") "\"categories\":{\"t\":{\"routes\":"
                       "[\"/t/{uscc}\"],\"purposes\":[\"loan\"],"
                       "\"fields\":{}}}}";
    const char *same_version = HEAD("7") "\"categories\":{\"t\":{"
                               "\"routes\":[\"/t/{uscc}\"],\"purposes\":"
                               "[\"loan\"],\"fields\":{\"a\":\"keep\"}}}}";
    const char *bumped = HEAD("8") "\"categories\":{\"t\":{\"routes\":"
                         "[\"/t/{uscc}\"],\"purposes\":[\"loan\"],"
                         "\"fields\":{\"a\":\"keep\"}}}}";
    ca_policy  *old = parse(base, "old.json");
    ca_policy  *p;
    seen_t      s = {.n = 0};

    (void) state;
    p = parse(same_version, "new.json");
    assert_int_equal(ca_policy_lint(p, old, collect, &s), 1);
    assert_string_equal(s.seen[0], "version-unchanged - - $.version");
    assert_int_equal(ca_policy_lint(p, NULL, collect, &s), 0);
    ca_policy_free(p);

    /* the very same file is not a replacement; a new version is fine */
    p = parse(base, "again.json");
    assert_int_equal(ca_policy_lint(p, old, collect, &s), 0);
    ca_policy_free(p);
    p = parse(bumped, "new.json");
    assert_int_equal(ca_policy_lint(p, old, collect, &s), 0);
    ca_policy_free(p);
    ca_policy_free(old);
}

static void
test_rule_names(void **state)
{
    size_t n = 0;

    (void) state;
    for (const char *const *r = ca_lint_rules; *r; r++) {
        assert_null(strchr(*r, ':'));
        n++;
    }
    assert_int_equal(n, 7);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_rule),
        cmocka_unit_test(test_version_against_previous),
        cmocka_unit_test(test_rule_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
