/* Redis's INFO, read for durability, role and memory (see redisinfo.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redisinfo.h"


static int
ca_redisinfo_field(const char *line, size_t len, const char *name,
                   const char **value, size_t *vlen)
{
    size_t  n = strlen(name);

    if (len <= n || memcmp(line, name, n) != 0 || line[n] != ':') {
        return 0;
    }
    *value = line + n + 1;
    *vlen = len - n - 1;
    return 1;
}


/* A decimal field: 0 when it is not one (longer than any integer). */
static uint64_t
ca_redisinfo_num(const char *v, size_t vlen)
{
    char  num[24];

    if (vlen >= sizeof(num)) {
        return 0;
    }
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    return strtoull(num, NULL, 10);
}


static int
ca_redisinfo_is(const char *v, size_t vlen, const char *word)
{
    return vlen == strlen(word) && memcmp(v, word, vlen) == 0;
}


void
ca_redisinfo_parse(ca_redisinfo *ri, const char *text, size_t len)
{
    size_t      n, vlen;
    const char *p, *end, *eol, *v;

    ri->seen = 1;
    p = text;
    end = text + len;
    while (p < end) {
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }
        n = (size_t) (eol - p);
        if (n && p[n - 1] == '\r') {
            n--;
        }
        if (ca_redisinfo_field(p, n, "role", &v, &vlen)) {
            ri->master = ca_redisinfo_is(v, vlen, "master");
        } else if (ca_redisinfo_field(p, n, "loading", &v, &vlen)) {
            ri->loading = !ca_redisinfo_is(v, vlen, "0");
        } else if (ca_redisinfo_field(p, n, "aof_enabled", &v, &vlen)) {
            ri->aof_enabled = ca_redisinfo_is(v, vlen, "1");
        } else if (ca_redisinfo_field(p, n, "cluster_enabled", &v, &vlen)) {
            ri->cluster = ca_redisinfo_is(v, vlen, "1");
        } else if (ca_redisinfo_field(p, n, "connected_slaves", &v, &vlen)) {
            ri->replicas = (long) ca_redisinfo_num(v, vlen);
        } else if (ca_redisinfo_field(p, n, "used_memory", &v, &vlen)) {
            ri->used_memory = ca_redisinfo_num(v, vlen);
        } else if (ca_redisinfo_field(p, n, "maxmemory", &v, &vlen)) {
            ri->maxmemory = ca_redisinfo_num(v, vlen);
        } else if (ca_redisinfo_field(p, n, "maxmemory_policy", &v, &vlen)
                   && vlen < sizeof(ri->policy))
        {
            memcpy(ri->policy, v, vlen);
            ri->policy[vlen] = '\0';
        }
        p = eol + 1;
    }
}


int
ca_redisinfo_check(const ca_redisinfo *ri, int mode, long replicas,
                   char *why, size_t whylen)
{
    if (!ri->seen) {
        snprintf(why, whylen, "no INFO reply");
        return -1;
    }
    if (ri->cluster) {
        snprintf(why, whylen, "a Redis Cluster node (cluster_enabled:1): "
                 "Redis Cluster is not supported");
        return -2;
    }
    if (ri->loading) {
        snprintf(why, whylen, "still loading its data");
        return -1;
    }
    if (!ri->master) {
        snprintf(why, whylen, "not a primary (role is not master)");
        return -1;
    }
    /* whatever the durability: eviction deletes what was acknowledged
     * without a crash, revocations first (they have a TTL) */
    if (ca_redisinfo_evicts(ri->policy)) {
        snprintf(why, whylen, "maxmemory-policy is %s: Redis may evict "
                 "revocations, use counters and the audit stream (needs "
                 "noeviction)", ri->policy[0] ? ri->policy : "not said");
        return -1;
    }

    switch (mode) {

    case CA_DURABLE_AOF:
        if (!ri->aof_enabled) {
            snprintf(why, whylen, "not durable: appendonly is off "
                     "(durability=aof needs appendonly yes and "
                     "appendfsync always)");
            return -1;
        }
        if (ri->appendfsync[0] == '\0') {
            snprintf(why, whylen, "not durable: appendfsync cannot be read "
                     "(CONFIG GET refused; allow it, or use "
                     "durability=replicas:N)");
            return -1;
        }
        if (strcmp(ri->appendfsync, "always") != 0) {
            snprintf(why, whylen, "not durable: appendfsync is %s "
                     "(durability=aof needs appendfsync always)",
                     ri->appendfsync);
            return -1;
        }
        break;

    case CA_DURABLE_REPLICAS:
        /* WAIT decides batch by batch; fewer replicas now only warns */
        if (ri->replicas < replicas) {
            snprintf(why, whylen, "%ld of %ld replicas connected: decisions "
                     "fail until WAIT reaches %ld", ri->replicas, replicas,
                     replicas);
            return 0;
        }
        break;

    default:
        break;
    }

    why[0] = '\0';
    return 0;
}


int
ca_redisinfo_evicts(const char *policy)
{
    return strcmp(policy, "noeviction") != 0;
}


unsigned
ca_redisinfo_percent(const ca_redisinfo *ri)
{
    if (ri->maxmemory == 0) {
        return 0;
    }
    if (ri->used_memory / 100 >= ri->maxmemory) {
        return 10000;
    }
    return (unsigned) (ri->used_memory * 100 / ri->maxmemory);
}


const char *
ca_durability_name(int mode)
{
    return mode == CA_DURABLE_AOF ? "aof"
           : mode == CA_DURABLE_REPLICAS ? "replicas" : "none";
}
