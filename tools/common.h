/*
 * What every command-line tool shares: the Redis connection (address,
 * ACL user, password never on the command line, database), the time zone,
 * --version.
 */
#ifndef CA_TOOLS_COMMON_H
#define CA_TOOLS_COMMON_H

#include <hiredis/hiredis.h>

#include "redis/redis.h"
#include "core/core.h"

#define EXIT_FINDING 1
#define EXIT_USAGE   2

/* getopt_long values, above any short option and any tool's own */
enum {
    TOOL_OPT_REDIS = 1000, TOOL_OPT_USER, TOOL_OPT_PASSWORD_FILE,
    TOOL_OPT_PASSWORD, TOOL_OPT_DB, TOOL_OPT_TZ, TOOL_OPT_SENTINEL,
    TOOL_OPT_MASTER
};

#define TOOL_REDIS_LONGOPTS \
    {"redis", required_argument, NULL, TOOL_OPT_REDIS}, \
    {"user", required_argument, NULL, TOOL_OPT_USER}, \
    {"password-file", required_argument, NULL, TOOL_OPT_PASSWORD_FILE}, \
    {"password", required_argument, NULL, TOOL_OPT_PASSWORD}, \
    {"db", required_argument, NULL, TOOL_OPT_DB}, \
    {"sentinel", required_argument, NULL, TOOL_OPT_SENTINEL}, \
    {"master", required_argument, NULL, TOOL_OPT_MASTER}

#define TOOL_REDIS_HELP \
    "  --redis HOST:PORT|unix:PATH   Redis (default 127.0.0.1:6379)\n" \
    "  --user NAME                   Redis ACL user (AUTH NAME PASSWORD)\n" \
    "  --password-file FILE          Redis password: the file's first line\n" \
    "                                (else $CREDIT_REDIS_PASSWORD; never\n" \
    "                                on the command line)\n" \
    "  --db N                        Redis database (SELECT N, default 0)\n" \
    "  --sentinel HOST:PORT[,...] --master NAME\n" \
    "                                ask these Sentinels for the primary\n" \
    "                                of NAME (instead of --redis); it must\n" \
    "                                say role master\n"

#define TOOL_TZ_HELP \
    "  --tz ZONE                     zone for times read and shown\n" \
    "                                (Asia/Shanghai, UTC, +08:00; default\n" \
    "                                the machine's: $TZ or /etc/localtime)\n"

typedef struct {
    const char *addr;
    const char *user;
    const char *password_file;
    long        db;
    const char *sentinel;           /* "HOST:PORT,..." or NULL */
    const char *master;
} tool_redis;

/* The tool's name for messages ("credit-audit"). */
extern const char *tool_name;

void tool_redis_init(tool_redis *r);

/* 1 if ch was one of TOOL_REDIS_LONGOPTS (stored), 0 if not, -1 after an
 * error message (a bad --db, a password on the command line). */
int tool_redis_opt(tool_redis *r, int ch, const char *arg);

/* Connects, authenticates and selects; NULL after an error message that
 * names what failed. */
redisContext *tool_redis_open(const tool_redis *r);

/*
 * --durability aof | replicas:N[,timeout=MS] | none (the gateway's words,
 * contract §7.1): 0, or -1 after an error message.
 */
typedef struct {
    int         mode;               /* CA_DURABLE_* */
    long        replicas;
    long        timeout_ms;
} tool_durability;

int tool_durability_parse(tool_durability *d, const char *word);

/* After a write on ctx: 0 when it is durable under d (WAIT on the same
 * connection, or a verified appendonly yes + appendfsync always primary),
 * else -1 with `why` saying what is missing. */
int tool_durable(redisContext *ctx, const tool_durability *d, char *why,
                 size_t whylen);

/* --tz: 0, or -1 after an error message naming valid zones. */
int tool_set_tz(const char *zone);

/* The zone times are shown in: --tz, $TZ, or /etc/localtime's name. */
const char *tool_tz_name(void);

/* If argv holds --version (before a "--"), prints "NAME VERSION" and
 * returns 1: every command of every tool answers it the same way. */
int tool_version(int argc, char **argv);

/* The first line of a secret's file (a password, a passphrase), without
 * its line end: 0, or -1 after a message naming the option and file. */
int tool_secret_file(const char *option, const char *file, char *out,
                     size_t outlen);

/* Reads the password of --password-file or $CREDIT_REDIS_PASSWORD;
 * exposed for the tests' sake of one code path. */
int tool_redis_password(const tool_redis *r, char *out, size_t outlen);

#endif
