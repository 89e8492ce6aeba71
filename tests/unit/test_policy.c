/* Policy loading, validation errors and route matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"
#include "core/uscc.h"

#define HEAD "\"version\":\"1\",\"purposes\":[\"loan\",\"audit\"]," \
             "\"token\":{\"algs\":[\"ES256\"],\"max_lifetime\":3600}"
#define ROUTE "\"routes\":[\"/e/{uscc}/tax\"],\"purposes\":[\"loan\"]"
#define CAT(body) "{" HEAD ",\"categories\":{\"tax\":{" body "}}}"
#define FIELDS(f) CAT(ROUTE ",\"fields\":{" f "}")
#define TOKEN(t) "{\"version\":\"1\",\"purposes\":[\"loan\"],\"token\":" t \
                 ",\"categories\":{\"tax\":{" ROUTE ",\"fields\":{}}}}"

static const char *
load_err(const char *json)
{
    static ca_error err;
    ca_policy      *p;

    memset(&err, 0, sizeof(err));
    p = ca_policy_parse(json, strlen(json), "p.json", &err);
    if (p != NULL) {
        ca_policy_free(p);
        return NULL;
    }
    return err.text;
}

static const struct {
    const char *json;
    const char *expect;     /* "jpath: reason" as it appears in the error */
} bad[] = {
    {"[]", "p.json: $: a policy is a JSON object"},
    {"{\"a\":1,\"a\":2}", "duplicate object key"},
    {"{", "invalid JSON at line"},
    {"{" HEAD ",\"categories\":{\"tax\":{" ROUTE ",\"fields\":{}}},\"x\":1}",
     "$.x: unknown member"},
    {"{\"purposes\":[\"loan\"],\"token\":{\"algs\":[\"ES256\"],"
     "\"max_lifetime\":1},\"categories\":{}}", "$.version: required"},
    {"{\"version\":\"\",\"purposes\":[\"loan\"]}", "$.version: required"},
    {"{\"version\":\"a\\u0001\",\"purposes\":[\"loan\"]}",
     "$.version: control characters"},
    {"{\"version\":\"1\",\"purposes\":[]}",
     "$.purposes: must be a non-empty array"},
    {"{\"version\":\"1\"}", "$.purposes: must be a non-empty array"},
    {"{\"version\":\"1\",\"purposes\":[\"loan\",\"loan\"]}",
     "$.purposes[1]: \"loan\" is listed twice"},
    {"{\"version\":\"1\",\"purposes\":[\"lo an\"]}",
     "$.purposes[0]: must be 1-64 characters"},
    {"{\"version\":\"1\",\"purposes\":[\"loan\"]}", "$.token: required"},
    {TOKEN("{\"algs\":[\"ES256\"],\"max_lifetime\":1,\"alg\":1}"),
     "$.token.alg: unknown member"},
    {TOKEN("{\"algs\":[\"HS256\"],\"max_lifetime\":1}"),
     "$.token.algs[0]: \"HS256\" is never allowed"},
    {TOKEN("{\"algs\":[\"ES256\",\"none\"],\"max_lifetime\":1}"),
     "$.token.algs[1]: \"none\" is never allowed"},
    {TOKEN("{\"algs\":[\"ES384\"],\"max_lifetime\":1}"),
     "$.token.algs[0]: unknown algorithm"},
    {TOKEN("{\"algs\":[\"es256\"],\"max_lifetime\":1}"),
     "$.token.algs[0]: unknown algorithm"},
    {TOKEN("{\"algs\":[],\"max_lifetime\":1}"),
     "$.token.algs: must be a non-empty array"},
    {TOKEN("{\"algs\":[\"SM2\",\"SM2\"],\"max_lifetime\":1}"),
     "$.token.algs[1]: \"SM2\" is listed twice"},
    {TOKEN("{\"algs\":[\"SM2\"],\"max_lifetime\":0}"),
     "$.token.max_lifetime: required positive integer"},
    {TOKEN("{\"algs\":[\"SM2\"],\"max_lifetime\":\"60\"}"),
     "$.token.max_lifetime: required positive integer"},
    {TOKEN("{\"algs\":[\"SM2\"]}"),
     "$.token.max_lifetime: required positive integer"},
    {TOKEN("{\"algs\":[\"SM2\"],\"max_lifetime\":9,\"leeway\":61}"),
     "$.token.leeway: must be an integer from 0 to 60"},
    {TOKEN("{\"algs\":[\"SM2\"],\"max_lifetime\":9,\"leeway\":-1}"),
     "$.token.leeway: must be an integer from 0 to 60"},
    {TOKEN("{\"algs\":[\"SM2\"],\"max_lifetime\":9,\"require_cnf\":1}"),
     "$.token.require_cnf: must be true or false"},
    {"{" HEAD ",\"categories\":{}}",
     "$.categories: must be a non-empty object"},
    {"{" HEAD "}", "$.categories: must be a non-empty object"},
    {"{" HEAD ",\"categories\":{\"t ax\":{}}}",
     "$.categories[\"t ax\"]: a category name is 1-64"},
    {"{" HEAD ",\"categories\":{\"tax\":[]}}",
     "$.categories.tax: a category must be an object"},
    {CAT(ROUTE ",\"fields\":{},\"raw_alowed\":true"),
     "$.categories.tax.raw_alowed: unknown member"},
    {CAT("\"purposes\":[\"loan\"],\"fields\":{}"),
     "$.categories.tax.routes: must be a non-empty array"},
    {CAT("\"routes\":[],\"purposes\":[\"loan\"],\"fields\":{}"),
     "$.categories.tax.routes: must be a non-empty array"},
    {CAT("\"routes\":[\"e/{uscc}\"],\"purposes\":[\"loan\"],\"fields\":{}"),
     "$.categories.tax.routes[0]: a route template starts with '/'"},
    {CAT("\"routes\":[\"/e/tax\"],\"purposes\":[\"loan\"],\"fields\":{}"),
     "$.categories.tax.routes[0]: a route template has exactly one {uscc}"},
    {CAT("\"routes\":[\"/{uscc}/{uscc}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: a route template has exactly one {uscc}"},
    {CAT("\"routes\":[\"/e/{uscc}/{id}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: the only placeholder"},
    {CAT("\"routes\":[\"/e/x{uscc}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: the only placeholder"},
    {CAT("\"routes\":[\"/e/{uscc}/tax?x=1\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: a route template has no query string"},
    {CAT("\"routes\":[\"/e/{uscc}/\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: empty path segment"},
    {CAT("\"routes\":[\"/e//{uscc}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: empty path segment"},
    {CAT("\"routes\":[\"/e/../{uscc}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: '.' and '..' segments"},
    {CAT("\"routes\":[\"/e/a%20b/{uscc}\"],\"purposes\":[\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.routes[0]: a route template is written decoded"},
    {CAT("\"routes\":[\"/e/{uscc}/tax\",\"/e/{uscc}/tax\"],"
         "\"purposes\":[\"loan\"],\"fields\":{}"),
     "$.categories.tax.routes[1]: route \"/e/{uscc}/tax\" is also listed in"
     " category \"tax\""},
    {"{" HEAD ",\"categories\":{\"tax\":{" ROUTE ",\"fields\":{}},"
     "\"env\":{" ROUTE ",\"fields\":{}}}}",
     "$.categories.env.routes[0]: route \"/e/{uscc}/tax\" is also listed in"
     " category \"tax\""},
    /* both templates match /91350100M000100Y43/91350100M000100Y43 */
    {"{" HEAD ",\"categories\":{\"tax\":{\"routes\":"
     "[\"/{uscc}/91350100M000100Y43\"],\"purposes\":[\"loan\"],"
     "\"fields\":{}},"
     "\"env\":{\"routes\":[\"/91350100M000100Y43/{uscc}\"],"
     "\"purposes\":[\"loan\"],\"fields\":{}}}}",
     "$.categories.env.routes[0]: route \"/91350100M000100Y43/{uscc}\""
     " overlaps \"/{uscc}/91350100M000100Y43\" of category \"tax\""},
    {CAT("\"routes\":[\"/e/{uscc}\"],\"purposes\":[\"other\"],"
         "\"fields\":{}"),
     "$.categories.tax.purposes[0]: \"other\" is not one of the policy's"},
    {CAT("\"routes\":[\"/e/{uscc}\"],\"purposes\":[],\"fields\":{}"),
     "$.categories.tax.purposes: must be a non-empty array"},
    {CAT("\"routes\":[\"/e/{uscc}\"],\"purposes\":[\"loan\",\"loan\"],"
         "\"fields\":{}"),
     "$.categories.tax.purposes[1]: \"loan\" is listed twice"},
    {CAT(ROUTE ",\"fields\":{},\"raw_allowed\":\"true\""),
     "$.categories.tax.raw_allowed: must be true or false"},
    {CAT(ROUTE ",\"fields\":{},\"verify_budget\":0"),
     "$.categories.tax.verify_budget: must be an integer from 1 to 1000"},
    {CAT(ROUTE ",\"fields\":{},\"verify_budget\":1001"),
     "$.categories.tax.verify_budget: must be an integer from 1 to 1000"},
    {CAT(ROUTE ",\"fields\":{},\"verify_budget\":\"3\""),
     "$.categories.tax.verify_budget: must be an integer from 1 to 1000"},
    {CAT(ROUTE), "$.categories.tax.fields: required"},
    {CAT(ROUTE ",\"fields\":[]"),
     "$.categories.tax.fields: must be an object"},
    {FIELDS("\"a..b\":\"keep\""),
     "$.categories.tax.fields[\"a..b\"]: every path segment needs a member"},
    {FIELDS("\".a\":\"keep\""),
     "$.categories.tax.fields[\".a\"]: every path segment needs a member"},
    {FIELDS("\"a.\":\"keep\""),
     "$.categories.tax.fields[\"a.\"]: every path segment needs a member"},
    {FIELDS("\"[]\":\"keep\""),
     "$.categories.tax.fields[\"[]\"]: every path segment needs a member"},
    {FIELDS("\"annual[year=2023].tax\":\"keep\""),
     "$.categories.tax.fields[\"annual[year=2023].tax\"]: selectors [k=v]"
     " belong in verification checks"},
    {FIELDS("\"a[\":\"keep\""),
     "$.categories.tax.fields[\"a[\"]: '[' must be followed by ']'"},
    {FIELDS("\"a b\":\"keep\""),
     "$.categories.tax.fields[\"a b\"]: unexpected character"},
    {FIELDS("\"\":\"keep\""),
     "$.categories.tax.fields[\"\"]: path must be 1-256 characters"},
    {FIELDS("\"a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a"
            ".a.a.a\":\"keep\""),
     "path is deeper than 32 components"},
    {FIELDS("\"a\":\"kep\""),
     "$.categories.tax.fields.a: unknown treatment \"kep\""},
    {FIELDS("\"a\":1"),
     "$.categories.tax.fields.a: must be a treatment string or an object"},
    {FIELDS("\"a\":{\"masked\":1}"),
     "$.categories.tax.fields.a.masked: treatment must be a string"},
    {FIELDS("\"a\":\"mask:1\""),
     "$.categories.tax.fields.a: \"mask:1\": mask needs two non-negative"},
    {FIELDS("\"a\":\"mask:-1,2\""),
     "$.categories.tax.fields.a: \"mask:-1,2\": mask needs two"},
    {FIELDS("\"a\":\"mask:1,2,3\""),
     "$.categories.tax.fields.a: \"mask:1,2,3\": mask needs two"},
    {FIELDS("\"a\":\"bucket:0\""),
     "$.categories.tax.fields.a: \"bucket:0\": bucket needs a positive"},
    {FIELDS("\"a\":\"bucket:-5\""),
     "$.categories.tax.fields.a: \"bucket:-5\": bucket needs a positive"},
    {FIELDS("\"a\":\"bucket:inf\""),
     "$.categories.tax.fields.a: \"bucket:inf\": bucket needs a positive"},
    {FIELDS("\"a\":\"bucket:\""),
     "$.categories.tax.fields.a: \"bucket:\": bucket needs a positive"},
    {FIELDS("\"a\":{\"raw\":\"keep\"}"),
     "$.categories.tax.fields.a.masked: required"},
    {FIELDS("\"a\":{\"masked\":\"drop\",\"rwa\":\"keep\"}"),
     "$.categories.tax.fields.a.rwa: unknown member"},
    {FIELDS("\"a\":{\"masked\":\"drop\",\"raw\":\"kep\"}"),
     "$.categories.tax.fields.a.raw: unknown treatment \"kep\""},
    {FIELDS("\"a\":{\"masked\":\"drop\",\"class\":\"secret\"}"),
     "$.categories.tax.fields.a.class: class must be public, personal or"},
    {FIELDS("\"a\":{\"masked\":\"keep\",\"class\":\"personal\"}"),
     "$.categories.tax.fields.a.masked: personal field kept raw at the"
     " masked level"},
    {FIELDS("\"x.y\":{\"masked\":\"keep\",\"raw\":\"drop\","
            "\"class\":\"trade_secret\"}"),
     "$.categories.tax.fields[\"x.y\"].masked: trade_secret field kept raw"
     " at the masked level"},
    {FIELDS("\"a\":\"keep\",\"a.b\":\"keep\""),
     "$.categories.tax.fields[\"a.b\"]: ambiguous: \"a\" already names"},
    {FIELDS("\"a.b\":\"keep\",\"a\":\"drop\""),
     "$.categories.tax.fields.a: ambiguous: \"a.b\" is inside this path"},
    {FIELDS("\"a[]\":\"keep\",\"a[].b\":\"keep\""),
     "$.categories.tax.fields[\"a[].b\"]: ambiguous: \"a[]\" already"},
    {FIELDS("\"a\":\"keep\",\"a[]\":\"keep\""),
     "$.categories.tax.fields[\"a[]\"]: ambiguous: \"a\" already"},
    {FIELDS("\"a[].b\":\"keep\",\"a[]\":\"keep\""),
     "$.categories.tax.fields[\"a[]\"]: ambiguous: \"a[].b\" is inside"},
    {CAT(ROUTE ",\"fields\":{},\"verify\":[]"),
     "$.categories.tax.verify: must be an object"},
    {CAT(ROUTE ",\"fields\":{},\"verify\":{\"a\":[]}"),
     "$.categories.tax.verify.a: must be a non-empty array of ops"},
    {CAT(ROUTE ",\"fields\":{},\"verify\":{\"a\":[\"gte\"]}"),
     "$.categories.tax.verify.a[0]: unknown op"},
    {CAT(ROUTE ",\"fields\":{},\"verify\":{\"a\":[\"eq\",\"eq\"]}"),
     "$.categories.tax.verify.a[1]: \"eq\" is listed twice"},
    {CAT(ROUTE ",\"fields\":{},\"verify\":{\"a[k=v].b\":[\"eq\"]}"),
     "$.categories.tax.verify[\"a[k=v].b\"]: selectors [k=v] belong"},
    /* a misspelt member names the one meant, among those of its place */
    {CAT(ROUTE ",\"fields\":{},\"purpose\":[\"loan\"]"),
     "$.categories.tax.purpose: unknown member (did you mean"
     " \"purposes\"?)"},
    {CAT(ROUTE ",\"fields\":{},\"raw_alowed\":true"),
     "$.categories.tax.raw_alowed: unknown member (did you mean"
     " \"raw_allowed\"?)"},
    {CAT(ROUTE ",\"fields\":{},\"verfiy\":{}"),
     "$.categories.tax.verfiy: unknown member (did you mean \"verify\"?)"},
    {TOKEN("{\"algs\":[\"ES256\"],\"max_lifetime\":1,\"leway\":1}"),
     "$.token.leway: unknown member (did you mean \"leeway\"?)"},
    {FIELDS("\"a\":{\"masked\":\"drop\",\"rwa\":\"keep\"}"),
     "$.categories.tax.fields.a.rwa: unknown member (did you mean"
     " \"raw\"?)"},
    {FIELDS("\"a\":{\"masked\":\"drop\",\"description\":\"x\"}"),
     "$.categories.tax.fields.a.description: unknown member"},
    {"{\"version\":\"1\",\"descripton\":\"x\"}",
     "$.descripton: unknown member (did you mean \"description\"?)"},
    /* "description": an optional string the tools print */
    {"{" HEAD ",\"description\":1,\"categories\":{}}",
     "$.description: must be a string of at most 4096 bytes"},
    {"{" HEAD ",\"description\":\"a\\u001b[2Jb\",\"categories\":{}}",
     "$.description: control characters other than newline and tab"},
    {CAT(ROUTE ",\"fields\":{},\"description\":[\"x\"]"),
     "$.categories.tax.description: must be a string of at most 4096"},
    {CAT(ROUTE ",\"fields\":{},\"description\":\"a\\u0007b\""),
     "$.categories.tax.description: control characters"},
};

static void
test_validation_errors(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *e = load_err(bad[i].json);
        if (e == NULL || strstr(e, bad[i].expect) == NULL) {
            print_error("case %zu: want \"%s\", got \"%s\"\n", i,
                        bad[i].expect, e ? e : "(loaded)");
            fail();
        }
        if (strncmp(e, "p.json: ", 8) != 0) {
            print_error("case %zu: no file name: %s\n", i, e);
            fail();
        }
    }
}

static void
test_defaults_and_minimal(void **state)
{
    const char *json = FIELDS("\"a\":\"drop\",\"b\":{\"masked\":\"hash\"}");
    ca_error    err;
    ca_policy  *p = ca_policy_parse(json, strlen(json), "m", &err);

    (void) state;
    assert_non_null(p);
    assert_int_equal(p->token.leeway, 0);
    assert_int_equal(p->token.require_cnf, 0);
    assert_int_equal(p->categories[0].raw_allowed, 0);
    assert_int_equal(p->categories[0].verify_budget, 3);
    assert_int_equal(p->categories[0].n_fields, 2);
    /* raw defaults to masked; class to public */
    assert_int_equal(p->categories[0].fields[1].raw.kind, CA_TREAT_HASH);
    assert_int_equal(p->categories[0].fields[1].cls, CA_CLASS_PUBLIC);
    assert_int_equal(p->categories[0].n_verify, 0);
    ca_policy_free(p);

    /* fields may be empty; personal with a masked treatment is fine */
    assert_null(load_err(FIELDS("")));
    assert_null(load_err(FIELDS("\"n\":{\"masked\":\"mask:1,0\","
                                "\"raw\":\"keep\",\"class\":\"personal\"}")));
    /* siblings and a[].b next to a[].c are not prefixes of each other */
    assert_null(load_err(FIELDS("\"a[].b\":\"keep\",\"a[].bc\":\"keep\","
                                "\"ab\":\"keep\",\"m[][]\":\"keep\"")));
}

static char *
slurp(const char *file, size_t *len)
{
    ca_error err;
    return ca_read_file(file, 1 << 20, len, &err);
}

static void
test_spec_example(void **state)
{
    const char    *file = "fixtures/policy/spec-example.json";
    ca_error       err = {{0}};
    ca_policy     *p = ca_policy_load(file, &err);
    unsigned char  md[32];
    char           hex[65], *text;
    size_t         len;
    const ca_category *c;

    (void) state;
    if (p == NULL) {
        print_error("%s\n", err.text);
    }
    assert_non_null(p);
    assert_string_equal(p->version, "2026-11-27.1");
    assert_int_equal(p->n_purposes, 3);
    assert_int_equal(p->token.algs, CA_ALG_ALL);
    assert_int_equal(p->token.max_lifetime, 7776000);
    assert_int_equal(p->token.leeway, 60);
    assert_int_equal(p->n_categories, 1);

    text = slurp(file, &len);
    assert_non_null(text);
    ca_sha256(text, len, md);
    ca_hex(md, 32, hex);
    assert_string_equal(p->sha256, hex);
    free(text);

    c = ca_policy_find_category(p, "tax");
    assert_non_null(c);
    assert_null(ca_policy_find_category(p, "rnd"));
    assert_true(c->raw_allowed);
    assert_int_equal(c->n_fields, 7);
    assert_string_equal(c->fields[5].path, "legal_representative.name");
    assert_int_equal(c->fields[5].cls, CA_CLASS_PERSONAL);
    assert_int_equal(c->fields[4].masked.kind, CA_TREAT_BUCKET);
    assert_true(c->fields[4].masked.width == 100000);
    assert_int_equal(c->fields[4].raw.kind, CA_TREAT_KEEP);
    assert_int_equal(c->fields[6].masked.kind, CA_TREAT_MASK);
    assert_int_equal(c->fields[6].masked.a, 6);
    assert_int_equal(c->fields[6].masked.b, 4);
    assert_int_equal(c->n_verify, 2);
    assert_int_equal(ca_category_verify_rule(c, "annual[].tax_paid")->ops,
                     CA_OP_GE | CA_OP_LE | CA_OP_EQ);
    assert_null(ca_category_verify_rule(c, "annual.tax_paid"));
    assert_true(ca_policy_knows_purpose(p, "credit_assessment"));
    assert_false(ca_policy_knows_purpose(p, "marketing"));
    assert_true(ca_category_allows_purpose(c, "loan_application"));
    assert_false(ca_category_allows_purpose(c, NULL));
    ca_policy_free(p);
}

static void
test_load_missing_file(void **state)
{
    ca_error err;
    (void) state;
    assert_null(ca_policy_load("fixtures/policy/nonexistent.json", &err));
    assert_non_null(strstr(err.text, "nonexistent.json"));
}

static void
test_names(void **state)
{
    char buf[64];
    ca_treatment t = {CA_TREAT_MASK, 6, 4, 0, NULL};

    (void) state;
    assert_int_equal(ca_op_from_name("ge"), CA_OP_GE);
    assert_int_equal(ca_op_from_name("gte"), 0);
    assert_string_equal(ca_op_name(CA_OP_NE), "ne");
    assert_string_equal(ca_class_name(CA_CLASS_TRADE_SECRET), "trade_secret");
    ca_ops_format(CA_OP_LE | CA_OP_EQ | CA_OP_GT, buf, sizeof(buf));
    assert_string_equal(buf, "eq gt le");
    ca_ops_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "");
    ca_treatment_format(&t, buf, sizeof(buf));
    assert_string_equal(buf, "mask:6,4");
    t.kind = CA_TREAT_BUCKET;
    t.width = 100000;
    ca_treatment_format(&t, buf, sizeof(buf));
    assert_string_equal(buf, "bucket:100000");
}

/* Descriptions are kept for the tools; the gateway reads nothing else from
 * them.  A treatment keeps the text it was written as. */
static void
test_description_and_written_treatments(void **state)
{
    const char *json =
        "{" HEAD ",\"description\":\"平台策略\\nline 2\\tend\","
        "\"categories\":{\"tax\":{" ROUTE ",\"description\":\"纳税\","
        "\"fields\":{\"r\":\"bucket:0.05\",\"e\":\"bucket:1e5\","
        "\"m\":{\"masked\":\"mask:1,0\",\"raw\":\"mask:2,0\"}}},"
        "\"env\":{\"routes\":[\"/e/{uscc}/env\"],\"purposes\":[\"loan\"],"
        "\"fields\":{}}}}";
    ca_error     err;
    ca_policy   *p = ca_policy_parse(json, strlen(json), "d", &err);
    char         buf[64];
    ca_treatment t = {CA_TREAT_BUCKET, 0, 0, 0.05, NULL};

    (void) state;
    if (p == NULL) {
        print_error("%s\n", err.text);
    }
    assert_non_null(p);
    assert_string_equal(p->description, "平台策略\nline 2\tend");
    assert_string_equal(p->categories[0].description, "纳税");
    assert_null(p->categories[1].description);
    ca_treatment_format(&p->categories[0].fields[0].masked, buf, sizeof(buf));
    assert_string_equal(buf, "bucket:0.05");
    ca_treatment_format(&p->categories[0].fields[1].raw, buf, sizeof(buf));
    assert_string_equal(buf, "bucket:1e5");
    assert_true(p->categories[0].fields[1].masked.width == 100000);
    ca_treatment_format(&p->categories[0].fields[2].raw, buf, sizeof(buf));
    assert_string_equal(buf, "mask:2,0");
    ca_policy_free(p);
    /* built in code: the shortest text that reads back */
    ca_treatment_format(&t, buf, sizeof(buf));
    assert_string_equal(buf, "bucket:0.05");
    t.width = 0.1 + 0.2;
    ca_treatment_format(&t, buf, sizeof(buf));
    assert_string_equal(buf, "bucket:0.30000000000000004");

    /* no guess when nothing is close */
    assert_string_equal(load_err(CAT(ROUTE ",\"fields\":{},\"colour\":1")),
                        "p.json: $.categories.tax.colour: unknown member");
}

/* ---- routes ----------------------------------------------------------- */

#define USCC "91350100M000100Y43"

static ca_route_result
match(const ca_policy *p, const char *path, const ca_category **c,
      char *uscc)
{
    return ca_policy_match_route(p, path, strlen(path), c, uscc);
}

static void
test_routes(void **state)
{
    ca_error   err;
    ca_policy *p = ca_policy_load("fixtures/policy/spec-example.json", &err);
    const ca_category *c = NULL;
    char       uscc[19];
    char       buf[128];

    (void) state;
    assert_non_null(p);
    assert_true(ca_uscc_valid(USCC, 18));

    assert_int_equal(match(p, "/api/v1/enterprises/" USCC "/tax", &c, uscc),
                     CA_ROUTE_MATCH);
    assert_string_equal(c->name, "tax");
    assert_string_equal(uscc, USCC);

    /* the length bounds the path: trailing bytes are not looked at */
    snprintf(buf, sizeof(buf), "/api/v1/enterprises/%s/tax?x=1", USCC);
    assert_int_equal(ca_policy_match_route(p, buf, strlen(buf) - 4, &c, uscc),
                     CA_ROUTE_MATCH);

    assert_int_equal(match(p, "/api/v1/enterprises/91350100M000100Y44/tax",
                           &c, uscc), CA_ROUTE_BAD_USCC);
    assert_int_equal(match(p, "/api/v1/enterprises/91350100m000100y43/tax",
                           &c, uscc), CA_ROUTE_BAD_USCC);
    assert_int_equal(match(p, "/api/v1/enterprises/123/tax", &c, uscc),
                     CA_ROUTE_BAD_USCC);

    static const char *const near[] = {
        "/api/v1/enterprises/" USCC "/tax/",
        "/api/v1/enterprises/" USCC "/tax/x",
        "/api/v1/enterprises/" USCC "/taxes",
        "/api/v1/enterprises/" USCC "/Tax",
        "/api/v1/enterprises/" USCC,
        "/api/v1/enterprises//tax",
        "/api/v1/enterprises/" USCC "//tax",
        "//api/v1/enterprises/" USCC "/tax",
        "api/v1/enterprises/" USCC "/tax",
        "/api/v2/enterprises/" USCC "/tax",
        "/api/v1/enterprise/" USCC "/tax",
        "/x/api/v1/enterprises/" USCC "/tax",
        "",
        "/",
    };
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        if (match(p, near[i], &c, uscc) != CA_ROUTE_NONE) {
            print_error("near miss matched: %s\n", near[i]);
            fail();
        }
    }
    ca_policy_free(p);
}

static void
test_route_literal_beats_bad_uscc(void **state)
{
    const char *json =
        "{" HEAD ",\"categories\":{"
        "\"b\":{\"routes\":[\"/{uscc}/" USCC "\"],\"purposes\":[\"loan\"],"
        "\"fields\":{}},"
        "\"a\":{\"routes\":[\"/a/{uscc}\",\"/a/{uscc}/more\"],"
        "\"purposes\":[\"loan\"],\"fields\":{}}}}";
    ca_error   err;
    ca_policy *p = ca_policy_parse(json, strlen(json), "r", &err);
    const ca_category *c = NULL;
    char       uscc[19];

    (void) state;
    if (p == NULL) {
        print_error("%s\n", err.text);
    }
    assert_non_null(p);
    assert_int_equal(match(p, "/a/" USCC, &c, uscc), CA_ROUTE_MATCH);
    assert_string_equal(c->name, "a");
    assert_int_equal(match(p, "/a/" USCC "/more", &c, uscc), CA_ROUTE_MATCH);
    assert_int_equal(match(p, "/b/" USCC, &c, uscc), CA_ROUTE_BAD_USCC);
    assert_string_equal(c->name, "b");
    ca_policy_free(p);
}

/*
 * --dump DIR writes every invalid policy above as DIR/bad-N.json with the
 * message it must produce in DIR/bad-N.expect (the part after "p.json: "),
 * so that the integration tests can check that nginx -t refuses each one
 * (tests/integration/test_policy_must_not_start.py).
 */
static int
dump_cases(const char *dir)
{
    char  path[4096];
    FILE *f;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *expect = bad[i].expect;

        if (strncmp(expect, "p.json: ", 8) == 0) {
            expect += 8;
        }
        snprintf(path, sizeof(path), "%s/bad-%03zu.json", dir, i);
        f = fopen(path, "w");
        if (f == NULL || fputs(bad[i].json, f) < 0 || fclose(f) != 0) {
            return 1;
        }
        snprintf(path, sizeof(path), "%s/bad-%03zu.expect", dir, i);
        f = fopen(path, "w");
        if (f == NULL || fputs(expect, f) < 0 || fclose(f) != 0) {
            return 1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0) {
        return dump_cases(argv[2]);
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_defaults_and_minimal),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_load_missing_file),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_description_and_written_treatments),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_route_literal_beats_bad_uscc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
