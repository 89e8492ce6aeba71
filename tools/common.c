/* Shared by the command-line tools (see common.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"
#include "core/core.h"

void
tool_redis_init(tool_redis *r)
{
    r->addr = "127.0.0.1:6379";
    r->user = NULL;
    r->password_file = NULL;
    r->db = 0;
    r->sentinel = NULL;
    r->master = NULL;
}

int
tool_redis_opt(tool_redis *r, int ch, const char *arg)
{
    char *end;

    switch (ch) {
    case TOOL_OPT_REDIS:
        r->addr = arg;
        return 1;
    case TOOL_OPT_USER:
        r->user = arg;
        return 1;
    case TOOL_OPT_SENTINEL:
        r->sentinel = arg;
        return 1;
    case TOOL_OPT_MASTER:
        r->master = arg;
        return 1;
    case TOOL_OPT_PASSWORD_FILE:
        r->password_file = arg;
        return 1;
    case TOOL_OPT_PASSWORD:
        /* argv is readable by every user of the machine (ps, /proc) */
        fprintf(stderr, "%s: no --password on the command line: use "
                "--password-file FILE or the environment variable "
                "CREDIT_REDIS_PASSWORD\n", tool_name);
        return -1;
    case TOOL_OPT_DB:
        errno = 0;
        r->db = strtol(arg, &end, 10);
        if (errno || *end != '\0' || end == arg || r->db < 0
            || r->db > 100000)
        {
            fprintf(stderr, "%s: bad --db %s (a database number, 0 to the "
                    "server's `databases` - 1)\n", tool_name, arg);
            return -1;
        }
        return 1;
    }
    return 0;
}

int
tool_secret_file(const char *option, const char *file, char *out,
                 size_t outlen)
{
    FILE    *f;
    size_t   n;

    out[0] = '\0';
    f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: %s %s: %s\n", tool_name, option, file,
                strerror(errno));
        return -1;
    }
    if (fgets(out, (int) outlen, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "%s: %s %s: the first line is empty (the file "
                "holds the secret on its first line)\n", tool_name, option,
                file);
        return -1;
    }
    return 0;
}

int
tool_redis_password(const tool_redis *r, char *out, size_t outlen)
{
    const char *env;

    out[0] = '\0';
    if (r->password_file != NULL) {
        return tool_secret_file("--password-file", r->password_file, out,
                                outlen);
    }
    env = getenv("CREDIT_REDIS_PASSWORD");
    if (env != NULL && env[0] != '\0') {
        if (strlen(env) >= outlen) {
            fprintf(stderr, "%s: CREDIT_REDIS_PASSWORD is too long\n",
                    tool_name);
            return -1;
        }
        snprintf(out, outlen, "%s", env);
    }
    return 0;
}

static int
simple_command(redisContext *rc, const char *addr, const char *what,
               int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);
    int         ok = r != NULL && r->type == REDIS_REPLY_STATUS;

    if (!ok) {
        fprintf(stderr, "%s: redis %s: %s: %s\n", tool_name, addr, what,
                r == NULL ? rc->errstr
                : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/*
 * The primary of opt->master, asked of each Sentinel in turn (SENTINEL
 * get-master-addr-by-name): "IP:PORT" into out, or -1 after a message.
 */
static int
sentinel_primary(const tool_redis *opt, char *out, size_t outlen)
{
    struct timeval  tv = {2, 0};
    char            list[1024], *save = NULL, *s, *colon;
    redisContext   *rc;
    redisReply     *r;

    if (opt->master == NULL || strlen(opt->sentinel) >= sizeof(list)) {
        fprintf(stderr, "%s: --sentinel needs --master NAME\n", tool_name);
        return -1;
    }
    snprintf(list, sizeof(list), "%s", opt->sentinel);
    for (s = strtok_r(list, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            fprintf(stderr, "%s: bad --sentinel %s (HOST:PORT)\n",
                    tool_name, s);
            return -1;
        }
        *colon = '\0';
        rc = redisConnectWithTimeout(s, atoi(colon + 1), tv);
        r = rc && !rc->err ? redisCommand(rc, "SENTINEL "
                                          "get-master-addr-by-name %s",
                                          opt->master)
                           : NULL;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
            && r->element[0]->type == REDIS_REPLY_STRING
            && r->element[1]->type == REDIS_REPLY_STRING)
        {
            snprintf(out, outlen, "%s:%s", r->element[0]->str,
                     r->element[1]->str);
            freeReplyObject(r);
            redisFree(rc);
            return 0;
        }
        fprintf(stderr, "%s: sentinel %s:%s: %s\n", tool_name, s, colon + 1,
                rc == NULL || rc->err ? (rc ? rc->errstr : "out of memory")
                : r == NULL ? rc->errstr
                : r->type == REDIS_REPLY_ERROR ? r->str : "master unknown");
        freeReplyObject(r);
        redisFree(rc);
    }
    fprintf(stderr, "%s: no Sentinel knows the primary of %s\n", tool_name,
            opt->master);
    return -1;
}


/* Behind Sentinel, a server that is not (or no longer) the primary is
 * never used: ROLE must say master. */
static int
check_role(redisContext *rc, const char *addr)
{
    redisReply *r = redisCommand(rc, "ROLE");
    int         ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0
                     && r->element[0]->type == REDIS_REPLY_STRING
                     && strcmp(r->element[0]->str, "master") == 0;

    if (!ok) {
        fprintf(stderr, "%s: redis %s: not a primary (ROLE)\n", tool_name,
                addr);
    }
    freeReplyObject(r);
    return ok ? 0 : -1;
}


redisContext *
tool_redis_open(const tool_redis *opt)
{
    struct timeval tv = {10, 0};
    redisContext  *rc;
    char           host[256], pw[1024], db[24];
    const char    *addr = opt->addr, *colon, *argv[3];
    char          *end, found[300];
    long           port;

    if (opt->sentinel != NULL) {
        if (sentinel_primary(opt, found, sizeof(found)) != 0) {
            return NULL;
        }
        addr = found;
    }

    if (tool_redis_password(opt, pw, sizeof(pw)) != 0) {
        return NULL;
    }
    if (opt->user != NULL && pw[0] == '\0') {
        fprintf(stderr, "%s: --user %s needs a password: --password-file "
                "FILE or CREDIT_REDIS_PASSWORD\n", tool_name, opt->user);
        return NULL;
    }
    if (strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon == addr
            || (size_t) (colon - addr) >= sizeof(host))
        {
            goto bad;
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end != '\0' || end == colon + 1 || port < 1
            || port > 65535)
        {
            goto bad;
        }
        memcpy(host, addr, (size_t) (colon - addr));
        host[colon - addr] = '\0';
        /* [::1]:6379 */
        if (host[0] == '[' && host[colon - addr - 1] == ']') {
            memmove(host, host + 1, (size_t) (colon - addr) - 2);
            host[colon - addr - 2] = '\0';
        }
        rc = redisConnectWithTimeout(host, (int) port, tv);
    }
    if (rc == NULL || rc->err) {
        fprintf(stderr, "%s: redis %s: %s\n", tool_name, addr,
                rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    if (pw[0] != '\0') {
        int n = 0;

        argv[n++] = "AUTH";
        if (opt->user != NULL) {
            argv[n++] = opt->user;
        }
        argv[n++] = pw;
        if (simple_command(rc, addr, "AUTH", n, argv) != 0) {
            explicit_bzero(pw, sizeof(pw));
            redisFree(rc);
            return NULL;
        }
        explicit_bzero(pw, sizeof(pw));
    }
    if (opt->db != 0) {
        snprintf(db, sizeof(db), "%ld", opt->db);
        argv[0] = "SELECT";
        argv[1] = db;
        if (simple_command(rc, addr, "SELECT", 2, argv) != 0) {
            redisFree(rc);
            return NULL;
        }
    }
    if (opt->sentinel != NULL && check_role(rc, addr) != 0) {
        redisFree(rc);
        return NULL;
    }
    return rc;

bad:
    fprintf(stderr, "%s: bad --redis %s (HOST:PORT, [IPv6]:PORT or "
            "unix:PATH)\n", tool_name, addr);
    return NULL;
}

static const char *tz_given;

int
tool_set_tz(const char *zone)
{
    char err[256];

    if (ca_time_set_zone(zone, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", tool_name, err);
        return -1;
    }
    tz_given = zone;
    return 0;
}

int
tool_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", tool_name, CA_VERSION);
            return 1;
        }
    }
    return 0;
}

const char *
tool_tz_name(void)
{
    static char name[256];
    const char *tz = getenv("TZ");
    ssize_t     n;

    if (tz_given != NULL) {
        return tz_given;
    }
    if (tz != NULL && tz[0] != '\0') {
        return tz[0] == ':' ? tz + 1 : tz;
    }
    n = readlink("/etc/localtime", name, sizeof(name) - 1);
    if (n > 0) {
        const char *p;

        name[n] = '\0';
        p = strstr(name, "zoneinfo/");
        return p ? p + 9 : name;
    }
    return "UTC";
}


int
tool_durability_parse(tool_durability *d, const char *word)
{
    char  *end;

    d->replicas = 0;
    d->timeout_ms = 500;
    if (strcmp(word, "aof") == 0) {
        d->mode = CA_DURABLE_AOF;
        return 0;
    }
    if (strcmp(word, "none") == 0) {
        d->mode = CA_DURABLE_NONE;
        return 0;
    }
    if (strncmp(word, "replicas:", 9) == 0) {
        d->mode = CA_DURABLE_REPLICAS;
        d->replicas = strtol(word + 9, &end, 10);
        if (end != word + 9 && d->replicas > 0) {
            if (*end == '\0') {
                return 0;
            }
            if (strncmp(end, ",timeout=", 9) == 0) {
                d->timeout_ms = strtol(end + 9, &end, 10);
                if (*end == '\0' && d->timeout_ms > 0) {
                    return 0;
                }
            }
        }
    }
    fprintf(stderr, "%s: bad --durability %s (aof, replicas:N[,timeout=MS] "
            "or none)\n", tool_name, word);
    return -1;
}


int
tool_durable(redisContext *ctx, const tool_durability *d, char *why,
             size_t whylen)
{
    int            rc;
    redisReply    *r;
    ca_redisinfo   ri;

    if (d->mode == CA_DURABLE_REPLICAS) {
        r = redisCommand(ctx, "WAIT %ld %ld", d->replicas, d->timeout_ms);
        rc = r && r->type == REDIS_REPLY_INTEGER && r->integer >= d->replicas
             ? 0 : -1;
        if (rc != 0) {
            snprintf(why, whylen, "WAIT %ld: %lld replicas acknowledged "
                     "within %ld ms", d->replicas,
                     r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0LL,
                     d->timeout_ms);
        }
        freeReplyObject(r);
        return rc;
    }

    memset(&ri, 0, sizeof(ri));
    r = redisCommand(ctx, "INFO");
    if (r && r->type == REDIS_REPLY_STRING) {
        ca_redisinfo_parse(&ri, r->str, r->len);
    }
    freeReplyObject(r);
    r = redisCommand(ctx, "CONFIG GET appendfsync");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[1]->type == REDIS_REPLY_STRING
        && r->element[1]->len < sizeof(ri.appendfsync))
    {
        memcpy(ri.appendfsync, r->element[1]->str, r->element[1]->len);
    }
    freeReplyObject(r);
    return ca_redisinfo_check(&ri, d->mode, d->replicas, why, whylen) == 0
           ? 0 : -1;
}
