/* credit-consent inspect: a consent token shown, and with --jwks verified
 * as the gateway verifies it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"
#include "policy/policy.h"

/* inspect verifies with generous rules: it answers "is this token sound",
 * not "would this particular policy take it". */
#define INSPECT_MAX_LIFETIME (10LL * 365 * 24 * 3600)
#define INSPECT_LEEWAY       60

static const char usage_inspect[] =
    "usage: credit-consent inspect [TOKEN|-] [--jwks FILE] [--banks FILE]\n"
    "         [--json] [--tz ZONE]\n"
    "\n"
    "Prints the token's header and claims (TOKEN or '-' or nothing: read\n"
    "standard input), and iat, nbf and exp in ISO 8601 in --tz (default\n"
    "the machine's zone; JSON: `times`).  --banks FILE (the banks\n"
    "registry) names each bank of aud.  With --jwks FILE (a JWKS, or the\n"
    "single JWK keygen wrote), verifies the signature and every claim\n"
    "(all algorithms, lifetime up to 10 years, leeway 60 s) and prints\n"
    "valid, or invalid with the reason code; exit status 1 when invalid.\n"
    "It does not check revocation, use counts or the key registry's\n"
    "state: only a gateway, with Redis, knows whether a valid token is\n"
    "still in force.\n";

static const char not_checked[] =
    "not checked: revocation, use counts, the key's state in the registry "
    "(a gateway checks them)";

/* --jwks: a JWKS file, or one JWK (keygen's PREFIX.jwk) held in *one. */
static const ca_keyset *
load_keys(const char *file, ca_keyset **owned, ca_keyset *one, ca_key *key)
{
    ca_error  err;
    json_t   *doc = ca_json_load_file(file, &err);

    if (doc != NULL && json_object_get(doc, "keys") == NULL
        && json_object_get(doc, "kty") != NULL)
    {
        if (ca_key_from_jwk(doc, file, "$", key, &err) != 0) {
            fprintf(stderr, "credit-consent: %s\n", err.text);
            json_decref(doc);
            return NULL;
        }
        json_decref(doc);
        one->keys = key;
        one->n = 1;
        return one;
    }
    json_decref(doc);
    if ((*owned = ca_keyset_load(file, &err)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
    }
    return *owned;
}

/* {code: name} of aud's banks; "" for a code the registry lacks. */
static json_t *
aud_banks(const ca_banks *banks, json_t *claims)
{
    json_t     *out = json_object(), *aud = json_object_get(claims, "aud");
    json_t     *one = json_is_string(aud) ? json_pack("[O]", aud) : NULL;
    size_t      i, k;
    json_t     *v;

    json_array_foreach(one ? one : aud, i, v) {
        const char *code = json_string_value(v), *name = "";

        for (k = 0; code != NULL && k < banks->n; k++) {
            if (strcmp(banks->banks[k].code, code) == 0) {
                name = banks->banks[k].name;
            }
        }
        if (code != NULL) {
            json_object_set_new(out, code, json_string(name));
        }
    }
    json_decref(one);
    return out;
}

/* iat, nbf and exp in ISO 8601 (--tz, default the machine's zone). */
static json_t *
claim_times(json_t *claims)
{
    static const char *const names[] = {"iat", "nbf", "exp"};
    json_t                  *o = json_object();
    char                     iso[48];

    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(claims, names[i]);

        if (json_is_integer(v) && json_integer_value(v) >= 0
            && json_integer_value(v) < 253402300800LL)
        {
            ca_time_format((int64_t) json_integer_value(v) * 1000, iso,
                           sizeof(iso));
            json_object_set_new(o, names[i], json_string(iso));
        }
    }
    return o;
}

static void
print_text(json_t *hdr, json_t *claims, json_t *banks)
{
    const char *k;
    json_t     *v, *t;

    if (hdr != NULL) {
        printf("header: ");
        json_dumpf(hdr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    }
    if (claims == NULL) {
        return;
    }
    printf("claims: ");
    json_dumpf(claims, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    t = claim_times(claims);
    json_object_foreach(t, k, v) {
        printf("%s: %s\n", k, json_string_value(v));
    }
    json_decref(t);
    json_object_foreach(banks, k, v) {
        printf("bank %s: %s\n", k, json_string_length(v)
               ? json_string_value(v) : "(not in the banks registry)");
    }
}

int
cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"jwks", required_argument, NULL, 'j'},
        {"banks", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'J'},
        {"tz", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char      *jwks = NULL, *banks_file = NULL;
    int              as_json = 0, c, rc;
    char            *token, *d1, *d2, detail[256] = "";
    json_t          *hdr = NULL, *claims = NULL, *banks = NULL, *out;
    ca_key           key;
    ca_keyset       *owned = NULL, one;
    const ca_keyset *ks = NULL;
    ca_banks        *reg = NULL;
    ca_error         err;
    ca_claims        cl;
    ca_reason        r = CA_OK;
    ca_token_rules   rules = {CA_ALG_ALL, INSPECT_MAX_LIFETIME,
                              INSPECT_LEEWAY, 0};

    memset(&key, 0, sizeof(key));
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jwks = optarg; break;
        case 'b': banks_file = optarg; break;
        case 'J': as_json = 1; break;
        case 'z':
            if (tool_set_tz(optarg) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(usage_inspect, stdout); return 0;
        default: return usage_option(usage_inspect, argv);
        }
    }
    if (argc - optind > 1) {
        return usage_error(usage_inspect, "%s", "inspect: one token only");
    }
    if (jwks && (ks = load_keys(jwks, &owned, &one, &key)) == NULL) {
        return EXIT_USAGE;
    }
    if (banks_file && (reg = ca_banks_load(banks_file, &err)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
        ca_keyset_free(owned);
        ca_key_clear(&key);
        return EXIT_USAGE;
    }
    token = read_token(optind < argc ? argv[optind] : NULL);
    if (token == NULL) {
        ca_keyset_free(owned);
        ca_key_clear(&key);
        ca_banks_free(reg);
        return EXIT_USAGE;
    }

    d1 = strchr(token, '.');
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d1 && d2) {
        hdr = decode_part(token, (size_t) (d1 - token));
        claims = decode_part(d1 + 1, (size_t) (d2 - d1 - 1));
    }
    if (ks != NULL) {
        r = ca_token_verify(token, strlen(token), ks, &rules, &cl, detail,
                            sizeof(detail));
        if (r == CA_OK) {
            r = ca_claims_check_time(&cl, (int64_t) time(NULL),
                                     INSPECT_LEEWAY, detail,
                                     sizeof(detail));
        }
    } else if (hdr == NULL || claims == NULL) {
        r = CA_TOKEN_MALFORMED;
        snprintf(detail, sizeof(detail), "cannot decode header and claims");
    }
    if (reg != NULL && claims != NULL) {
        banks = aud_banks(reg, claims);
    }

    if (as_json) {
        out = json_pack("{s:O?,s:O?}", "header", hdr, "claims", claims);
        if (claims != NULL) {
            json_object_set_new(out, "times", claim_times(claims));
        }
        if (banks != NULL) {
            json_object_set(out, "banks", banks);
        }
        if (ks != NULL || r != CA_OK) {
            json_object_set_new(out, "valid", json_boolean(r == CA_OK));
            json_object_set_new(out, "not_checked", json_pack(
                "[s,s,s]", "revocation", "use counts", "key registry state"));
        }
        if (r != CA_OK) {
            json_object_set_new(out, "reason",
                                json_string(ca_reason_name(r)));
            json_object_set_new(out, "detail", json_string(detail));
        }
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
        json_decref(out);
    } else {
        print_text(hdr, claims, banks);
        if (r != CA_OK) {
            printf("invalid: %s (%s)\n", ca_reason_name(r), detail);
        } else if (ks != NULL) {
            printf("valid (signature and claims)\n%s\n", not_checked);
        }
    }
    rc = r == CA_OK ? 0 : EXIT_FINDING;
    json_decref(hdr);
    json_decref(claims);
    json_decref(banks);
    ca_keyset_free(owned);
    ca_key_clear(&key);
    ca_banks_free(reg);
    free(token);
    return rc;
}
