/*
 * credit-consent key: the enterprise key registry in Redis (contract §5,
 * docs/keys.md).  Records are written here only, in the one format the
 * gateways read (lib/jws/keyreg.c); a JWK is validated by the JWKS loader's own
 * function before it is written.  Every change bumps
 * credit:keyreg:version, which the gateways poll.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"

static const char usage_key[] =
    "usage: credit-consent key add --jwk FILE [--not-before T]"
    " [--not-after T]\n"
    "       credit-consent key rotate --old KID --jwk FILE"
    " [--grace SECONDS]\n"
    "       credit-consent key revoke KID\n"
    "       credit-consent key list [--uscc USCC]\n"
    "       credit-consent key show KID\n"
    "         (each with the Redis options)\n"
    "\n"
    "add       registers a public JWK (credit-consent keygen's PREFIX.jwk),\n"
    "          checked exactly as the gateway checks a JWKS file; an\n"
    "          existing kid is refused.\n"
    "rotate    adds the new JWK (same enterprise) and ends the old kid's\n"
    "          validity after --grace seconds (default 3600).\n"
    "revoke    marks the kid revoked: every gateway refuses its tokens\n"
    "          (key_revoked) within a second, cached ones included.\n"
    "list      kid, state, enterprise and window of every key.\n"
    "show      one record, as JSON.\n"
    "T is Unix seconds or ISO 8601 (2026-11-30T23:59:59+08:00).\n"
    "\n"
    "Redis options:\n"
    TOOL_REDIS_HELP;

static int
redis_fail(redisContext *ctx, redisReply *reply)
{
    fprintf(stderr, "credit-consent: redis: %s\n",
            reply == NULL ? ctx->errstr
            : reply->type == REDIS_REPLY_ERROR ? reply->str
            : "unexpected reply");
    freeReplyObject(reply);
    return EXIT_USAGE;
}

/* Reads and validates a JWK file with the loader's rules. */
static json_t *
load_jwk(const char *file, ca_key *key)
{
    ca_error  err;
    json_t   *jwk = ca_json_load_file(file, &err);

    if (jwk == NULL || ca_key_from_jwk(jwk, file, "$", key, &err) != 0) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

static int
parse_time_opt(const char *name, const char *s, int64_t *out)
{
    char    err[400];
    int64_t ms;

    if (ca_time_parse(s, &ms, NULL, err, sizeof(err)) != 0 || ms < 0) {
        fprintf(stderr, "credit-consent: %s: %s\n", name, err);
        return -1;
    }
    *out = ms / 1000;
    return 0;
}

static int
bump_version(redisContext *ctx)
{
    redisReply *reply = redisCommand(ctx, "INCR %s", CA_KEYREG_VERSION_KEY);

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        return redis_fail(ctx, reply);
    }
    freeReplyObject(reply);
    return 0;
}

/* The record of m and jwk, read back as a gateway reads it: the tool never
 * writes one that gateways would refuse (a time past CA_KEYREG_TIME_MAX).
 * NULL after saying why. */
static char *
encode_checked(const ca_keyreg_meta *m, json_t *jwk)
{
    char          *rec = ca_keyreg_encode(m, jwk);
    ca_keyreg_meta back;
    ca_error       err;

    if (rec == NULL) {
        fprintf(stderr, "credit-consent: out of memory\n");
        return NULL;
    }
    if (ca_keyreg_parse(rec, strlen(rec), m->kid, &back, NULL, &err) != 0) {
        fprintf(stderr, "credit-consent: not written, gateways would refuse"
                " the record: %s\n", err.text);
        free(rec);
        return NULL;
    }
    return rec;
}

/* SET NX: a kid is registered once; its material never changes. */
static int
write_new(redisContext *ctx, const ca_keyreg_meta *m, json_t *jwk)
{
    char        name[CA_KEYREG_NAME_MAX];
    char       *rec = encode_checked(m, jwk);
    redisReply *reply;

    ca_keyreg_name(m->kid, strlen(m->kid), name);
    if (rec == NULL) {
        return EXIT_USAGE;
    }
    reply = redisCommand(ctx, "SET %s %s NX", name, rec);
    free(rec);
    if (reply != NULL && reply->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "credit-consent: kid %s is already registered"
                " (a kid is never reused: choose another)\n", m->kid);
        freeReplyObject(reply);
        return EXIT_USAGE;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_STATUS) {
        return redis_fail(ctx, reply);
    }
    freeReplyObject(reply);
    return 0;
}

/* GET and parse kid's record; *raw is the text (caller frees). */
static int
read_record(redisContext *ctx, const char *kid, ca_keyreg_meta *m,
            char **raw)
{
    char        name[CA_KEYREG_NAME_MAX];
    ca_error    err;
    redisReply *reply;
    int         rc = EXIT_USAGE;

    if (ca_keyreg_name(kid, strlen(kid), name) != 0) {
        fprintf(stderr, "credit-consent: bad kid %s (1..%d characters of"
                " [A-Za-z0-9._-])\n", kid, CA_KID_MAX);
        return EXIT_USAGE;
    }
    reply = redisCommand(ctx, "GET %s", name);
    if (reply == NULL || (reply->type != REDIS_REPLY_STRING
                          && reply->type != REDIS_REPLY_NIL))
    {
        return redis_fail(ctx, reply);
    }
    if (reply->type == REDIS_REPLY_NIL) {
        fprintf(stderr, "credit-consent: kid %s is not registered\n", kid);
        rc = EXIT_FINDING;
    } else if (ca_keyreg_parse(reply->str, reply->len, kid, m, NULL, &err)
               != 0)
    {
        fprintf(stderr, "credit-consent: malformed record: %s\n", err.text);
        rc = EXIT_FINDING;
    } else {
        if (raw != NULL) {
            *raw = strndup(reply->str, reply->len);
        }
        rc = 0;
    }
    freeReplyObject(reply);
    return rc;
}

/* Rewrites kid's record with fn applied, under WATCH: two operators never
 * lose each other's change. */
static int
update(redisContext *ctx, const char *kid,
       void (*fn)(ca_keyreg_meta *m, int64_t arg), int64_t arg)
{
    char           name[CA_KEYREG_NAME_MAX], *raw = NULL, *rec;
    ca_keyreg_meta m;
    json_t        *jwk;
    redisReply    *reply;
    int            rc;

    ca_keyreg_name(kid, strlen(kid), name);
    for (int attempt = 0; attempt < 5; attempt++) {
        freeReplyObject(redisCommand(ctx, "WATCH %s", name));
        if ((rc = read_record(ctx, kid, &m, &raw)) != 0) {
            freeReplyObject(redisCommand(ctx, "UNWATCH"));
            return rc;
        }
        jwk = raw ? ca_keyreg_jwk(raw, strlen(raw)) : NULL;
        free(raw);
        fn(&m, arg);
        m.version++;
        rec = encode_checked(&m, jwk);
        json_decref(jwk);
        if (rec == NULL) {
            freeReplyObject(redisCommand(ctx, "UNWATCH"));
            return EXIT_USAGE;
        }
        freeReplyObject(redisCommand(ctx, "MULTI"));
        freeReplyObject(redisCommand(ctx, "SET %s %s", name, rec));
        free(rec);
        reply = redisCommand(ctx, "EXEC");
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            return redis_fail(ctx, reply);
        }
        if (reply->type == REDIS_REPLY_ARRAY) {
            freeReplyObject(reply);
            return bump_version(ctx);
        }
        freeReplyObject(reply);     /* nil: changed meanwhile, again */
    }
    fprintf(stderr, "credit-consent: kid %s keeps changing; try again\n",
            kid);
    return EXIT_USAGE;
}

static void
set_revoked(ca_keyreg_meta *m, int64_t unused)
{
    m->state = CA_KEYREG_REVOKED;
}

static void
set_not_after(ca_keyreg_meta *m, int64_t t)
{
    if (m->not_after == 0 || t < m->not_after) {
        m->not_after = t > m->not_before ? t : m->not_before + 1;
    }
}

static int
key_list(redisContext *ctx, const char *uscc)
{
    char            cursor[32] = "0", iso1[48], iso2[48];
    redisReply     *reply, *keys;
    ca_keyreg_meta  m;

    do {
        reply = redisCommand(ctx, "SCAN %s MATCH %s{* COUNT 1000", cursor,
                             CA_KEYREG_PREFIX);
        if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
            || reply->elements != 2)
        {
            return redis_fail(ctx, reply);
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        keys = reply->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const char *name = keys->element[i]->str;
            size_t      n = strlen(name), p = sizeof(CA_KEYREG_PREFIX);
            char        kid[CA_KID_MAX + 1];

            if (n <= p || n - p > CA_KID_MAX) {
                continue;
            }
            snprintf(kid, sizeof(kid), "%.*s", (int) (n - p - 1), name + p);
            if (read_record(ctx, kid, &m, NULL) != 0) {
                continue;
            }
            if (uscc != NULL && strcmp(uscc, m.uscc) != 0) {
                continue;
            }
            snprintf(iso1, sizeof(iso1), "-");
            snprintf(iso2, sizeof(iso2), "-");
            if (m.not_before) {
                ca_time_format(m.not_before * 1000, iso1, sizeof(iso1));
            }
            if (m.not_after) {
                ca_time_format(m.not_after * 1000, iso2, sizeof(iso2));
            }
            printf("%s\t%s\t%s\t%s\t%s\tv%lld\n", kid,
                   m.state == CA_KEYREG_REVOKED ? "revoked" : "active",
                   m.uscc, iso1, iso2, (long long) m.version);
        }
        freeReplyObject(reply);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

int
cmd_key(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_REDIS_LONGOPTS,
        {"jwk", required_argument, NULL, 'j'},
        {"old", required_argument, NULL, 'o'},
        {"grace", required_argument, NULL, 'g'},
        {"not-before", required_argument, NULL, 'b'},
        {"not-after", required_argument, NULL, 'a'},
        {"uscc", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char    *sub, *file = NULL, *old = NULL, *uscc = NULL, *kid = NULL;
    long long      grace = 3600;
    int64_t        nbf = 0, naf = 0;
    ca_key         key;
    ca_keyreg_meta m;
    json_t        *jwk;
    tool_redis     ro;
    redisContext  *ctx;
    char          *raw;
    int            c, rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_key, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    sub = argv[1];
    argc--;
    argv++;
    tool_redis_init(&ro);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (tool_redis_opt(&ro, c, optarg)) {
        case 1:
            continue;
        case -1:
            return EXIT_USAGE;
        }
        switch (c) {
        case 'j': file = optarg; break;
        case 'o': old = optarg; break;
        case 'u': uscc = optarg; break;
        case 'g':
            if (parse_i64(optarg, 0, &grace) != 0
                || grace > CA_KEYREG_TIME_MAX)
            {
                return usage_error(usage_key, "bad --grace %s (seconds)",
                                   optarg);
            }
            break;
        case 'b':
            if (parse_time_opt("--not-before", optarg, &nbf) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'a':
            if (parse_time_opt("--not-after", optarg, &naf) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(usage_key, stdout); return 0;
        default: return usage_option(usage_key, argv);
        }
    }
    if (strcmp(sub, "revoke") == 0 || strcmp(sub, "show") == 0) {
        if (optind + 1 != argc) {
            return usage_error(usage_key, "key %s: give one KID", sub);
        }
        kid = argv[optind];
    } else if (optind != argc) {
        return usage_error(usage_key, "key: unexpected argument %s",
                           argv[optind]);
    }

    memset(&m, 0, sizeof(m));
    jwk = NULL;
    if (strcmp(sub, "add") == 0 || strcmp(sub, "rotate") == 0) {
        if (file == NULL || (strcmp(sub, "rotate") == 0 && old == NULL)) {
            return usage_error(usage_key, "key %s: missing --jwk or --old",
                               sub);
        }
        if (naf != 0 && naf <= nbf) {
            return usage_error(usage_key, "%s", "--not-after must be after"
                               " --not-before");
        }
        if ((jwk = load_jwk(file, &key)) == NULL) {
            return EXIT_USAGE;
        }
        snprintf(m.kid, sizeof(m.kid), "%s", key.kid);
        snprintf(m.uscc, sizeof(m.uscc), "%s", key.uscc);
        ca_key_clear(&key);
        m.not_before = nbf;
        m.not_after = naf;
        m.version = 1;
    } else if (strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0
               && strcmp(sub, "show") != 0)
    {
        return usage_error(usage_key, "unknown key command %s", sub);
    }

    if ((ctx = tool_redis_open(&ro)) == NULL) {
        json_decref(jwk);
        return EXIT_USAGE;
    }

    if (strcmp(sub, "add") == 0) {
        rc = write_new(ctx, &m, jwk);
        if (rc == 0 && (rc = bump_version(ctx)) == 0) {
            printf("added %s (enterprise %s)\n", m.kid, m.uscc);
        }

    } else if (strcmp(sub, "rotate") == 0) {
        ca_keyreg_meta o;

        rc = read_record(ctx, old, &o, NULL);
        if (rc == 0 && strcmp(o.uscc, m.uscc) != 0) {
            fprintf(stderr, "credit-consent: %s belongs to %s, the new key"
                    " to %s: a rotation stays within one enterprise\n",
                    old, o.uscc, m.uscc);
            rc = EXIT_USAGE;
        }
        if (rc == 0) {
            rc = write_new(ctx, &m, jwk);
        }
        if (rc == 0) {
            rc = update(ctx, old, set_not_after,
                        (int64_t) time(NULL) + grace);
        }
        if (rc == 0) {
            printf("rotated %s -> %s (old key ends in %llds)\n", old, m.kid,
                   grace);
        }

    } else if (strcmp(sub, "revoke") == 0) {
        rc = update(ctx, kid, set_revoked, 0);
        if (rc == 0) {
            printf("revoked %s\n", kid);
        }

    } else if (strcmp(sub, "show") == 0) {
        raw = NULL;
        rc = read_record(ctx, kid, &m, &raw);
        if (rc == 0) {
            json_t *rec = json_loads(raw, 0, NULL);
            char   *s = json_dumps(rec, JSON_INDENT(2) | JSON_SORT_KEYS);

            puts(s ? s : raw);
            free(s);
            json_decref(rec);
        }
        free(raw);

    } else {
        rc = key_list(ctx, uscc);
    }

    json_decref(jwk);
    redisFree(ctx);
    return rc;
}
