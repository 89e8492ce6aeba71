/* Banks registry: loading, lookup by certificate, purpose narrowing, and
 * an error naming the JSON path for each rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/banks.h"

#define FP_A "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a" \
             "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
#define FP_B "0123456789ABCDEF0123456789ABCDEF" \
             "0123456789ABCDEF0123456789ABCDEF"
#define FP_B_COLONS "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:" \
                    "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef"
#define FP_C "c0ffeec0ffeec0ffeec0ffeec0ffeec0" \
             "ffeec0ffeec0ffeec0ffeec0ffeec0ff"

static char     file[] = "/tmp/test_banks_XXXXXX";
static ca_error err;

static int
setup(void **state)
{
    int fd = mkstemp(file);

    (void) state;
    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    unlink(file);
    return 0;
}

static ca_banks *
load(const char *text)
{
    FILE *f = fopen(file, "w");

    fputs(text, f);
    fclose(f);
    memset(&err, 0, sizeof(err));
    return ca_banks_load(file, &err);
}

static void
expect_error(const char *text, const char *path, const char *reason)
{
    ca_banks *b = load(text);

    assert_null(b);
    if (strstr(err.text, file) == NULL || strstr(err.text, path) == NULL
        || strstr(err.text, reason) == NULL)
    {
        fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", err.text, path,
                 reason);
    }
}

static const char good[] =
    "{\"banks\":["
    "{\"code\":\"bankA\",\"name\":\"Bank A\",\"cert_sha256\":[\"" FP_A "\"],"
    " \"status\":\"active\"},"
    "{\"code\":\"bankB\",\"name\":\"\\u94f6\\u884c B\","
    " \"cert_sha256\":[\"" FP_B_COLONS "\",\"" FP_C "\"],"
    " \"status\":\"suspended\",\"purposes\":[\"loan_application\"]}"
    "]}";

static void
test_load_and_find(void **state)
{
    ca_banks      *b = load(good);
    unsigned char  fp[32];
    const ca_bank *bank;

    if (b == NULL) {
        fail_msg("%s", err.text);
    }
    assert_int_equal(b->n, 2);

    memset(fp, 0x5a, 32);
    bank = ca_banks_find_cert(b, fp);
    assert_non_null(bank);
    assert_string_equal(bank->code, "bankA");
    assert_string_equal(bank->name, "Bank A");
    assert_false(bank->suspended);
    assert_null(bank->purposes);
    assert_true(ca_bank_allows_purpose(bank, "anything"));

    /* Upper case hex and the colon form are the same fingerprint. */
    assert_int_equal(ca_unhex(FP_B, fp, 32), 0);
    bank = ca_banks_find_cert(b, fp);
    assert_non_null(bank);
    assert_string_equal(bank->code, "bankB");
    assert_true(bank->suspended);
    assert_int_equal(bank->n_certs, 2);
    assert_true(ca_bank_allows_purpose(bank, "loan_application"));
    assert_false(ca_bank_allows_purpose(bank, "credit_assessment"));
    assert_int_equal(ca_unhex(FP_C, fp, 32), 0);
    assert_ptr_equal(ca_banks_find_cert(b, fp), bank);

    memset(fp, 0x11, 32);
    assert_null(ca_banks_find_cert(b, fp));
    assert_null(ca_banks_find_cert(b, NULL));
    ca_banks_free(b);
    (void) state;
}

static void
test_empty_registry_and_narrowing(void **state)
{
    ca_banks *b = load("{\"banks\":[]}");

    assert_non_null(b);
    assert_int_equal(b->n, 0);
    ca_banks_free(b);

    /* An empty purposes list narrows to nothing. */
    b = load("{\"banks\":[{\"code\":\"a\",\"name\":\"A\",\"cert_sha256\":"
             "[\"" FP_A "\"],\"status\":\"active\",\"purposes\":[]}]}");
    assert_non_null(b);
    assert_false(ca_bank_allows_purpose(&b->banks[0], "loan_application"));
    ca_banks_free(b);
    (void) state;
}

#define BANK(members) "{\"banks\":[{\"code\":\"a\",\"name\":\"A\"," \
    "\"cert_sha256\":[\"" FP_A "\"],\"status\":\"active\"}," members "]}"

static void
test_errors_code(void **state)
{
    expect_error(BANK("{\"code\":\"a\",\"name\":\"A2\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\"}"),
                 "$.banks[1].code", "duplicate code");
    expect_error(BANK("{\"code\":\"a b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\"}"),
                 "$.banks[1].code", "[A-Za-z0-9._-]");
    expect_error(BANK("{\"name\":\"B\",\"cert_sha256\":[\"" FP_B "\"],"
                      "\"status\":\"active\"}"),
                 "$.banks[1].code", "missing");
    expect_error(BANK("{\"code\":\"b\",\"cert_sha256\":[\"" FP_B "\"],"
                      "\"status\":\"active\"}"),
                 "$.banks[1].name", "missing");
    expect_error(BANK("{\"code\":\"b\",\"name\":7,\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\"}"),
                 "$.banks[1].name", "string");
    (void) state;
}

static void
test_errors_certs(void **state)
{
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_A "\"],\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256[0]", "already belongs to"
                 " $.banks[0]");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[],"
                      "\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256", "non-empty");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\","
                      "\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256", "missing");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":"
                      "[\"abcd\"],\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256[0]", "64 hex");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\",\"zz" FP_C "\"],\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256[1]", "64 hex");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\",\"" FP_B_COLONS "\"],\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256[1]", "twice");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":"
                      "[\"01-23" FP_B_COLONS "\"],\"status\":\"active\"}"),
                 "$.banks[1].cert_sha256[0]", "64 hex");
    (void) state;
}

static void
test_errors_status_purposes_members(void **state)
{
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"]}"),
                 "$.banks[1].status", "missing");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"Active\"}"),
                 "$.banks[1].status", "\"active\" or \"suspended\"");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\",\"purposes\":\"x\"}"),
                 "$.banks[1].purposes", "array");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\",\"purposes\":[1]}"),
                 "$.banks[1].purposes[0]", "[A-Za-z0-9._-]");
    expect_error(BANK("{\"code\":\"b\",\"name\":\"B\",\"cert_sha256\":[\""
                      FP_B "\"],\"status\":\"active\",\"statu\":\"x\"}"),
                 "$.banks[1]", "unknown member \"statu\"");
    (void) state;
}

static void
test_errors_file(void **state)
{
    expect_error("[]", "$", "object");
    expect_error("{\"banks\":{}}", "$.banks", "array");
    expect_error("{\"bank\":[]}", "$", "\"banks\"");
    expect_error("{\"banks\":[],\"extra\":1}", "$", "\"banks\"");
    expect_error("{\"banks\":[7]}", "$.banks[0]", "object");
    assert_null(load("{\"banks\":[],\"banks\":[]}"));
    assert_non_null(strstr(err.text, file));
    assert_null(load("{\"banks\":["));
    assert_non_null(strstr(err.text, "invalid JSON"));
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_find),
        cmocka_unit_test(test_empty_registry_and_narrowing),
        cmocka_unit_test(test_errors_code),
        cmocka_unit_test(test_errors_certs),
        cmocka_unit_test(test_errors_status_purposes_members),
        cmocka_unit_test(test_errors_file),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
