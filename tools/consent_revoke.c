/* credit-consent revoke: mark a consent revoked in Redis. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "audit/audit.h"
#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"

static const char usage_revoke[] =
    "usage: credit-consent revoke (--jti ID --iss USCC | --token FILE|-)\n"
    "         [--until T | --ttl DURATION] [--durability D] [Redis options]\n"
    "       credit-consent revoke (--jti ID --iss USCC | --token FILE|-)\n"
    "         --endpoint URL --key FILE [--jwk FILE] [--passphrase-file FILE]\n"
    "         [--cacert FILE] [--timeout SECONDS] [--json]\n"
    "\n"
    "With --endpoint, the platform revokes through a gateway's withdrawal\n"
    "endpoint (credit_auth_revocation_endpoint platform_keys=FILE), signed\n"
    "with the platform's own key (--key, and its JWK: --jwk, by default\n"
    "the one beside PREFIX.key.pem): the gateway writes the revocation on\n"
    "its durability terms and audits it (a revocation entry, by\n"
    "platform).  Exit status 0 revoked, 1 refused, 2 usage or connection\n"
    "error.  Without --endpoint the revocation is written to Redis\n"
    "directly, and is not audited: this tool has no chain and no audit\n"
    "key to write an entry with.\n"
    "\n"
    "Sets credit:revoked:<iss>:<jti> in Redis, expiring at --until or\n"
    "after --ttl when given.  A consent is its issuing enterprise's: only\n"
    "the consent of --iss (the enterprise's USCC) with that jti is revoked,\n"
    "never another enterprise's that chose the same jti.  --token reads\n"
    "the token (a file holding it, or - for standard input) and takes its\n"
    "iss and jti, and, unless --until or --ttl is given, its exp as\n"
    "--until: the revocation lasts exactly as long as the token could be\n"
    "used.  The\n"
    "token's signature is not checked: revoking needs the Redis password,\n"
    "not the token.  T is Unix seconds or ISO 8601\n"
    "(2026-11-30T23:59:59+08:00).\n"
    "\n"
    "The revocation counts only once Redis keeps it (contract 7.1), as for the\n"
    "gateway's decisions: --durability aof (default: the primary runs\n"
    "appendonly yes + appendfsync always), replicas:N[,timeout=MS] (WAIT N\n"
    "on the same connection), or none.  Otherwise it is written but the\n"
    "exit status is 1, with what is missing.\n"
    "\n"
    "Redis options:\n"
    TOOL_REDIS_HELP;

/* The platform's revocation, signed with its key and audited by the
 * gateway that takes it (contract §7 `by` platform). */
static int
revoke_at_endpoint(const char *url, const char *key, const char *jwk,
                   const char *pass, const char *cacert,
                   const char *s_timeout, int as_json, const char *iss,
                   const char *jti)
{
    char       beside[4096];
    long long  timeout = 30;
    int        rc;
    signer     sg;

    if (url == NULL || key == NULL) {
        return usage_error(usage_revoke, "%s", "revoke: --endpoint and --key"
                           " go together (the platform's key signs)");
    }
    if (s_timeout && (parse_duration(s_timeout, &timeout) != 0
                      || timeout > 600))
    {
        return usage_error(usage_revoke, "bad --timeout %s (1..600 "
                           "seconds)", s_timeout);
    }
    if (jwk == NULL && (jwk = jwk_beside(key, beside, sizeof(beside)))
                       == NULL)
    {
        return usage_error(usage_revoke, "%s", "revoke --endpoint: give the "
                           "platform key's JWK (--jwk FILE)");
    }
    rc = signer_load(&sg, key, pass, jwk, NULL, NULL, NULL, 1, usage_revoke);
    if (rc != 0) {
        return rc;
    }
    rc = send_withdrawal(&sg, iss, jti, url, cacert, (long) timeout,
                         as_json);
    signer_free(&sg);
    return rc;
}

int
cmd_revoke(int argc, char **argv)
{
    static const struct option opts[] = {
        TOOL_REDIS_LONGOPTS,
        {"jti", required_argument, NULL, 'j'},
        {"iss", required_argument, NULL, 'i'},
        {"token", required_argument, NULL, 'T'},
        {"until", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 't'},
        {"durability", required_argument, NULL, 'D'},
        {"endpoint", required_argument, NULL, 'e'},
        {"key", required_argument, NULL, 'k'},
        {"jwk", required_argument, NULL, 'w'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"cacert", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'O'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char   *jti = NULL, *s_until = NULL, *s_ttl = NULL, *token = NULL;
    const char   *iss = NULL, *url = NULL, *key_file = NULL, *jwk = NULL;
    const char   *pass = NULL, *cacert = NULL, *s_timeout = NULL;
    int           as_json = 0;
    long long     until = 0, ttl = 0;
    char          key[CA_CONSENT_KEY_MAX], num[32], tjti[CA_JTI_MAX + 1];
    char          tiss[CA_USCC_LEN + 1], err[400];
    const char   *args[5];
    size_t        nargs = 3;
    tool_redis    ro;
    tool_durability  dur;
    redisContext *ctx;
    redisReply   *reply;
    int           c, rc = EXIT_USAGE;

    tool_redis_init(&ro);
    (void) tool_durability_parse(&dur, "aof");
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (tool_redis_opt(&ro, c, optarg)) {
        case 1:
            continue;
        case -1:
            return EXIT_USAGE;
        }
        switch (c) {
        case 'j': jti = optarg; break;
        case 'i': iss = optarg; break;
        case 'T': token = optarg; break;
        case 'u': s_until = optarg; break;
        case 't': s_ttl = optarg; break;
        case 'D':
            if (tool_durability_parse(&dur, optarg) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'e': url = optarg; break;
        case 'k': key_file = optarg; break;
        case 'w': jwk = optarg; break;
        case 'p': pass = optarg; break;
        case 'c': cacert = optarg; break;
        case 'O': s_timeout = optarg; break;
        case 'J': as_json = 1; break;
        case 'h': fputs(usage_revoke, stdout); return 0;
        default: return usage_option(usage_revoke, argv);
        }
    }
    if (optind != argc) {
        return usage_error(usage_revoke, "revoke: unexpected argument %s",
                           argv[optind]);
    }
    if ((jti == NULL) == (token == NULL)) {
        return usage_error(usage_revoke, "%s", "revoke: give --jti ID or "
                           "--token FILE (one of them)");
    }
    if (s_until && s_ttl) {
        return usage_error(usage_revoke, "%s", "--until or --ttl, not both");
    }
    if (jti != NULL && !ca_is_token_chars(jti, CA_JTI_MAX)) {
        return usage_error(usage_revoke, "bad jti %s (1..64 characters of "
                           "[A-Za-z0-9._-])", jti);
    }
    if (jti != NULL && iss == NULL) {
        return usage_error(usage_revoke, "%s", "revoke: --jti needs --iss "
                           "USCC, the enterprise that issued the consent "
                           "(two enterprises may choose the same jti)");
    }
    if (token != NULL && iss != NULL) {
        return usage_error(usage_revoke, "%s", "revoke: --token gives the "
                           "issuer; --iss goes with --jti");
    }
    if (iss != NULL && uscc_why(iss, err, sizeof(err)) != NULL) {
        return usage_error(usage_revoke, "--iss: %s", err);
    }
    if (s_until) {
        int64_t ms;

        if (ca_time_parse(s_until, &ms, NULL, err, sizeof(err)) != 0) {
            return usage_error(usage_revoke, "--until: %s", err);
        }
        until = (long long) (ms / 1000);
    }
    if (s_ttl && parse_duration(s_ttl, &ttl) != 0) {
        return usage_error(usage_revoke, "bad --ttl %s (seconds, or a number"
                           " with s, m, h or d: 3600, 90m, 30d)", s_ttl);
    }
    if (token != NULL) {
        long long  exp;

        if (token_ids(token, tiss, tjti, sizeof(tjti), &exp) != 0) {
            return EXIT_USAGE;
        }
        /* an explicit --until or --ttl wins over the token's exp */
        if (s_until == NULL && s_ttl == NULL) {
            s_until = "exp";
            until = exp;
        }
        jti = tjti;
        iss = tiss;
    }

    if (url != NULL || key_file != NULL) {
        if (s_until != NULL || s_ttl != NULL) {
            return usage_error(usage_revoke, "%s", "revoke --endpoint: the "
                               "gateway sets the expiry (no --until, --ttl)");
        }
        return revoke_at_endpoint(url, key_file, jwk, pass, cacert,
                                  s_timeout, as_json, iss, jti);
    }

    (void) ca_consent_key(key, sizeof(key), "revoked", iss, jti);
    args[0] = "SET";
    args[1] = key;
    args[2] = "1";
    if (s_until || s_ttl) {
        args[3] = s_until ? "EXAT" : "EX";
        snprintf(num, sizeof(num), "%lld", s_until ? until : ttl);
        args[4] = num;
        nargs = 5;
    }
    if ((ctx = tool_redis_open(&ro)) == NULL) {
        return EXIT_USAGE;
    }
    reply = redisCommandArgv(ctx, (int) nargs, args, NULL);
    if (reply == NULL) {
        fprintf(stderr, "credit-consent: redis: %s\n", ctx->errstr);
    } else if (reply->type == REDIS_REPLY_STATUS
               && strcmp(reply->str, "OK") == 0)
    {
        printf("revoked %s of %s", jti, iss);
        if (s_until) {
            char iso[48];

            ca_time_format((int64_t) until * 1000, iso, sizeof(iso));
            printf(" until %s", iso);
        }
        putchar('\n');
        rc = 0;
        if (tool_durable(ctx, &dur, err, sizeof(err)) != 0) {
            fprintf(stderr, "credit-consent: %s of %s is revoked in Redis "
                    "but NOT acknowledged as durable (%s --durability): %s; "
                    "a crash or failover may lose it\n", jti, iss,
                    ca_durability_name(dur.mode), err);
            rc = EXIT_FINDING;
        }
    } else {
        fprintf(stderr, "credit-consent: redis: %s\n",
                reply->type == REDIS_REPLY_ERROR ? reply->str
                                                 : "unexpected reply");
    }
    freeReplyObject(reply);
    redisFree(ctx);
    return rc;
}
