/* Redis INFO read for role and durability (lib/redis/redisinfo.c, SPEC §7.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redis/redisinfo.h"

static const char primary_aof[] =
    "# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0"
    "\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
    "\r\n# Cluster\r\ncluster_enabled:0\r\n";

static int
check(const char *info, const char *fsync, int mode, long n, char *why)
{
    ca_redisinfo  ri;

    memset(&ri, 0, sizeof(ri));
    if (info) {
        ca_redisinfo_parse(&ri, info, strlen(info));
    }
    strcpy(ri.appendfsync, fsync);
    return ca_redisinfo_check(&ri, mode, n, why, 256);
}

static void
test_parse(void **state)
{
    ca_redisinfo  ri;

    memset(&ri, 0, sizeof(ri));
    ca_redisinfo_parse(&ri, primary_aof, strlen(primary_aof));
    assert_true(ri.seen);
    assert_true(ri.master);
    assert_true(ri.aof_enabled);
    assert_false(ri.cluster);
    assert_false(ri.loading);
    assert_int_equal(ri.replicas, 2);
    /* LF only, and a field name that is only a prefix of another */
    memset(&ri, 0, sizeof(ri));
    ca_redisinfo_parse(&ri, "role:slave\naof_enabled_x:1\nloading:1", 36);
    assert_false(ri.master);
    assert_false(ri.aof_enabled);
    assert_true(ri.loading);
    (void) state;
}

static void
test_aof(void **state)
{
    char  why[256];

    assert_int_equal(check(primary_aof, "always", CA_DURABLE_AOF, 0, why), 0);
    assert_int_equal(check(primary_aof, "everysec", CA_DURABLE_AOF, 0, why),
                     -1);
    assert_non_null(strstr(why, "appendfsync is everysec"));
    assert_int_equal(check(primary_aof, "", CA_DURABLE_AOF, 0, why), -1);
    assert_non_null(strstr(why, "CONFIG GET refused"));
    assert_int_equal(check("role:master\naof_enabled:0\n", "always",
                           CA_DURABLE_AOF, 0, why), -1);
    assert_non_null(strstr(why, "appendonly is off"));
    (void) state;
}

static void
test_role_cluster_loading(void **state)
{
    char  why[256];

    assert_int_equal(check("role:slave\naof_enabled:1\n", "always",
                           CA_DURABLE_NONE, 0, why), -1);
    assert_non_null(strstr(why, "not a primary"));
    assert_int_equal(check("role:master\ncluster_enabled:1\n", "always",
                           CA_DURABLE_NONE, 0, why), -2);
    assert_non_null(strstr(why, "Cluster"));
    assert_int_equal(check("role:master\nloading:1\n", "always",
                           CA_DURABLE_NONE, 0, why), -1);
    assert_int_equal(check(NULL, "always", CA_DURABLE_NONE, 0, why), -1);
    (void) state;
}

static void
test_replicas_none(void **state)
{
    char  why[256];

    /* WAIT decides per batch: fewer replicas connected only says so */
    assert_int_equal(check("role:master\nconnected_slaves:0\n", "",
                           CA_DURABLE_REPLICAS, 1, why), 0);
    assert_non_null(strstr(why, "0 of 1 replicas"));
    assert_int_equal(check(primary_aof, "", CA_DURABLE_REPLICAS, 2, why), 0);
    assert_string_equal(why, "");
    assert_int_equal(check("role:master\naof_enabled:0\n", "no",
                           CA_DURABLE_NONE, 0, why), 0);
    assert_string_equal(ca_durability_name(CA_DURABLE_NONE), "none");
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_aof),
        cmocka_unit_test(test_role_cluster_loading),
        cmocka_unit_test(test_replicas_none),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
