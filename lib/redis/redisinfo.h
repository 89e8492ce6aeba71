/*
 * What a Redis server says of itself (INFO, CONFIG GET appendfsync), and
 * whether what it acknowledges is durable enough for the gateway (contract
 * §7.1), and kept (§7.2: a maxmemory-policy that can evict deletes
 * revocations, use counters and the audit stream without a word):
 * checked on every connect, before the connection counts as ready.
 */
#include <stdint.h>
#ifndef CA_REDISINFO_H
#define CA_REDISINFO_H

#include <stddef.h>

/* credit_auth_redis durability=... */
#define CA_DURABLE_AOF       0      /* appendonly yes + appendfsync always */
#define CA_DURABLE_REPLICAS  1      /* WAIT numreplicas after every batch */
#define CA_DURABLE_NONE      2      /* explicitly not durable */

typedef struct {
    int         seen;               /* an INFO reply was parsed */
    int         master;             /* role:master */
    int         loading;            /* loading:1 */
    int         aof_enabled;        /* aof_enabled:1 */
    int         cluster;            /* cluster_enabled:1 */
    long        replicas;           /* connected_slaves */
    char        appendfsync[16];    /* "" when CONFIG GET was refused */
    uint64_t    used_memory;        /* bytes */
    uint64_t    maxmemory;          /* bytes, 0: no limit */
    char        policy[32];         /* maxmemory_policy, "" if not said */
} ca_redisinfo;

/* Reads the fields above from an INFO reply (any sections, CRLF or LF). */
void ca_redisinfo_parse(ca_redisinfo *ri, const char *text, size_t len);

/*
 * 0: the server may take the gateway's writes under `mode`; -1: it may
 * not, `why` says so; -2: it never will as configured (a cluster node),
 * which the caller reports louder.  `replicas`: the N of replicas:N.
 */
int ca_redisinfo_check(const ca_redisinfo *ri, int mode, long replicas,
                       char *why, size_t whylen);

/* "aof", "replicas", "none" */
const char *ca_durability_name(int mode);

/* Whether a maxmemory-policy may delete keys: any but "noeviction" (an
 * unknown or empty one included: not assumed safe). */
int ca_redisinfo_evicts(const char *policy);

/* used_memory as a percentage of maxmemory (0 when there is none). */
unsigned ca_redisinfo_percent(const ca_redisinfo *ri);

#endif
