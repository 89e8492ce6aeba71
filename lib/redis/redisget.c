/* GET, bounded in Redis (see redisget.h). */
#include "redisget.h"
#include "core/util.h"

static const char  ca_redis_get_lua[] =
    "local n = redis.call('STRLEN', KEYS[1])\n"
    "if n > tonumber(ARGV[1]) then return n end\n"
    "return redis.call('GET', KEYS[1])\n";

static char  ca_redis_get_sha[41];


const char *
ca_redis_get_script(void)
{
    return ca_redis_get_lua;
}


const char *
ca_redis_get_script_sha(void)
{
    return ca_script_sha(ca_redis_get_lua, sizeof(ca_redis_get_lua) - 1,
                         ca_redis_get_sha);
}
