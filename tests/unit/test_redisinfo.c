/* Redis INFO read for role, durability and memory (lib/redis/redisinfo.c,
 * contract §7.1, §7.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "redis/redisinfo.h"

static const char primary_aof[] =
    "# Persistence\r\nloading:0\r\naof_enabled:1\r\naof_rewrite_in_progress:0"
    "\r\n\r\n# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
    "\r\n# Cluster\r\ncluster_enabled:0\r\n"
    "\r\n# Memory\r\nused_memory:8388608\r\nused_memory_human:8.00M\r\n"
    "maxmemory:10485760\r\nmaxmemory_human:10.00M\r\n"
    "maxmemory_policy:noeviction\r\n";

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
    assert_int_equal(check("role:master\naof_enabled:0\n"
                           "maxmemory_policy:noeviction\n", "always",
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
    assert_int_equal(check("role:master\nconnected_slaves:0\n"
                           "maxmemory_policy:noeviction\n", "",
                           CA_DURABLE_REPLICAS, 1, why), 0);
    assert_non_null(strstr(why, "0 of 1 replicas"));
    assert_int_equal(check(primary_aof, "", CA_DURABLE_REPLICAS, 2, why), 0);
    assert_string_equal(why, "");
    assert_int_equal(check("role:master\naof_enabled:0\n"
                           "maxmemory_policy:noeviction\n", "no",
                           CA_DURABLE_NONE, 0, why), 0);
    assert_string_equal(ca_durability_name(CA_DURABLE_NONE), "none");
    (void) state;
}

/* contract §7.2: a policy that can evict is refused in every durability mode,
 * and so is one INFO does not state. */
static void
test_memory_policy(void **state)
{
    char          why[256];
    ca_redisinfo  ri;
    static const char *evicting[] = {
        "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
        "volatile-lfu", "volatile-random", "volatile-ttl", "noevictionx",
    };
    static const int  modes[] = {
        CA_DURABLE_AOF, CA_DURABLE_REPLICAS, CA_DURABLE_NONE
    };
    char          info[256];

    for (size_t i = 0; i < sizeof(evicting) / sizeof(evicting[0]); i++) {
        for (size_t m = 0; m < 3; m++) {
            snprintf(info, sizeof(info), "role:master\naof_enabled:1\n"
                     "maxmemory_policy:%s\n", evicting[i]);
            assert_int_equal(check(info, "always", modes[m], 0, why), -1);
            assert_non_null(strstr(why, evicting[i]));
            assert_non_null(strstr(why, "needs noeviction"));
        }
    }
    assert_int_equal(check("role:master\naof_enabled:1\n", "always",
                           CA_DURABLE_AOF, 0, why), -1);
    assert_non_null(strstr(why, "maxmemory-policy is not said"));

    memset(&ri, 0, sizeof(ri));
    ca_redisinfo_parse(&ri, primary_aof, strlen(primary_aof));
    assert_string_equal(ri.policy, "noeviction");
    assert_true(ri.used_memory == 8388608);
    assert_true(ri.maxmemory == 10485760);
    assert_int_equal(ca_redisinfo_percent(&ri), 80);
    ri.maxmemory = 0;
    assert_int_equal(ca_redisinfo_percent(&ri), 0);
    ri.maxmemory = 1;
    ri.used_memory = UINT64_MAX;
    assert_int_equal(ca_redisinfo_percent(&ri), 10000);
    assert_false(ca_redisinfo_evicts("noeviction"));
    assert_true(ca_redisinfo_evicts(""));
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
        cmocka_unit_test(test_memory_policy),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
