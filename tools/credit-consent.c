/*
 * credit-consent: the enterprise's side of a consent (SPEC §9).
 *
 *   keygen   a signing key pair: private PEM and the public JWK to register
 *   sign     a consent token (consent_sign.c)
 *   inspect  decode a token; with --jwks, verify it as the gateway would
 *   revoke   mark a consent revoked in Redis (consent_revoke.c)
 *   key      the enterprise key registry in Redis (consent_key.c)
 *
 * Exit status: 0 success, 1 a finding (inspect: invalid), 2 usage or
 * connection error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/pem.h>

#include "consent.h"
#include "core/isotime.h"
#include "jws/keys.h"
#include "jws/token.h"
#include "core/uscc.h"


/* inspect verifies with generous rules: it answers "is this token sound",
 * not "would this particular policy take it". */
#define INSPECT_MAX_LIFETIME (10LL * 365 * 24 * 3600)
#define INSPECT_LEEWAY       60

static const char usage_main[] =
    "usage: credit-consent COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  keygen   create a signing key and its public JWK\n"
    "  sign     sign a consent token\n"
    "  inspect  show a token; with --jwks, verify it\n"
    "  revoke   revoke a consent in Redis (--jti, or --token FILE)\n"
    "  key      the enterprise key registry in Redis: add, rotate,"
    " revoke,\n"
    "           list, show\n"
    "\n"
    "credit-consent COMMAND --help shows a command's options;\n"
    "credit-consent --version its version.\n";

static const char usage_keygen[] =
    "usage: credit-consent keygen --alg ALG --kid KID --uscc USCC"
    " --out PREFIX\n"
    "         [--force]\n"
    "\n"
    "Writes PREFIX.key.pem (private key, mode 0600) and PREFIX.jwk (public\n"
    "JWK with kid, alg, use and uscc, for the platform's key registry) and\n"
    "prints the JWK.  An existing PREFIX.key.pem or PREFIX.jwk is not\n"
    "overwritten (tokens signed with that key would stop verifying) unless\n"
    "--force is given.  ALG: ES256 RS256 PS256 EdDSA SM2"
    " (RSA keys: 2048 bits).\n";

static const char usage_inspect[] =
    "usage: credit-consent inspect [TOKEN|-] [--jwks FILE] [--json]"
    " [--tz ZONE]\n"
    "\n"
    "Prints the token's header and claims (TOKEN or '-' or nothing: read\n"
    "standard input), and iat, nbf and exp in ISO 8601 in --tz (default\n"
    "the machine's zone; JSON: `times`).  With --jwks, verifies the\n"
    "signature and every claim (all algorithms, lifetime up to 10 years,\n"
    "leeway 60 s) and prints valid, or invalid with the reason code; exit\n"
    "status 1 when invalid.\n";

int
usage_error(const char *usage, const char *fmt, const char *arg)
{
    fprintf(stderr, "credit-consent: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    return EXIT_USAGE;
}

int
parse_i64(const char *s, long long min, long long *out)
{
    char     *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min) {
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- keygen ---------------------------------------------------------- */

void
need(char *list, size_t len, const char *value, const char *name)
{
    size_t n = strlen(list);

    if (value == NULL) {
        snprintf(list + n, len - n, "%s%s", n ? ", " : "", name);
    }
}


static int
write_private(const char *path, EVP_PKEY *pkey, int force)
{
    int   fd;
    FILE *f;
    int   ok;

    /* The private key is created unreadable to others from the start;
     * O_EXCL: an existing key is never lost to a repeated command. */
    fd = open(path, O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL), 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "credit-consent: %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    ok = PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) == 1;
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "credit-consent: %s: cannot write key\n", path);
        return -1;
    }
    return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'k'},
        {"uscc", required_argument, NULL, 'u'},
        {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *alg_name = NULL, *kid = NULL, *uscc = NULL, *out = NULL;
    char        path[4096], missing[128];
    int         force = 0;
    ca_alg      alg;
    EVP_PKEY   *pkey;
    json_t     *jwk;
    char       *text;
    int         c, rc = EXIT_USAGE;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': alg_name = optarg; break;
        case 'k': kid = optarg; break;
        case 'u': uscc = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = 1; break;
        case 'h': fputs(usage_keygen, stdout); return 0;
        default: fputs(usage_keygen, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        return usage_error(usage_keygen, "keygen: unexpected argument %s",
                           argv[optind]);
    }
    missing[0] = '\0';
    need(missing, sizeof(missing), alg_name, "--alg");
    need(missing, sizeof(missing), kid, "--kid");
    need(missing, sizeof(missing), uscc, "--uscc");
    need(missing, sizeof(missing), out, "--out");
    if (missing[0] != '\0') {
        return usage_error(usage_keygen, "keygen: missing %s", missing);
    }
    if (!force) {
        const char *ext[] = {".key.pem", ".jwk"};

        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof(path), "%s%s", out, ext[i]);
            if (access(path, F_OK) == 0) {
                fprintf(stderr, "credit-consent: %s exists: not overwritten "
                        "(tokens signed with its key would stop verifying); "
                        "choose another --out, or --force\n", path);
                return EXIT_USAGE;
            }
        }
    }
    if ((alg = ca_alg_from_name(alg_name)) == CA_ALG_NONE) {
        return usage_error(usage_keygen, "unknown alg %s "
                           "(ES256, RS256, PS256, EdDSA or SM2)", alg_name);
    }
    if (!ca_is_token_chars(kid, CA_KID_MAX)) {
        return usage_error(usage_keygen, "bad kid %s "
                           "(1..64 characters of [A-Za-z0-9._-])", kid);
    }
    if (!ca_uscc_valid(uscc, strlen(uscc))) {
        return usage_error(usage_keygen, "not a valid USCC: %s "
                           "(18 characters, GB 32100 check character)", uscc);
    }

    pkey = ca_key_generate(alg);
    jwk = pkey ? ca_jwk_from_pkey(pkey, alg, kid, uscc) : NULL;
    if (jwk == NULL) {
        fprintf(stderr, "credit-consent: cannot generate a %s key\n",
                alg_name);
        EVP_PKEY_free(pkey);
        return EXIT_USAGE;
    }
    text = json_dumps(jwk, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    snprintf(path, sizeof(path), "%s.key.pem", out);
    if (write_private(path, pkey, force) == 0) {
        snprintf(path, sizeof(path), "%s.jwk", out);
        if (json_dump_file(jwk, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
            != 0)
        {
            fprintf(stderr, "credit-consent: %s: cannot write\n", path);
        } else {
            printf("%s\n", text);
            rc = 0;
        }
    }
    free(text);
    json_decref(jwk);
    EVP_PKEY_free(pkey);
    return rc;
}

/* ---- inspect --------------------------------------------------------- */

json_t *
decode_part(const char *s, size_t len)
{
    unsigned char *buf = malloc(3 * len / 4 + 3);
    json_t        *v = NULL;
    long           n;

    if (buf != NULL && (n = ca_b64url_decode(s, len, buf)) > 0) {
        v = json_loadb((char *) buf, (size_t) n, JSON_REJECT_DUPLICATES,
                       NULL);
    }
    free(buf);
    return v;
}

char *
read_token(const char *arg)
{
    char   *buf;
    size_t  n = 0, cap = CA_TOKEN_MAX * 2 + 2;

    if (arg != NULL && strcmp(arg, "-") != 0) {
        buf = strdup(arg);
    } else {
        buf = malloc(cap);
        if (buf != NULL) {
            n = fread(buf, 1, cap - 1, stdin);
            buf[n] = '\0';
        }
    }
    if (buf != NULL) {
        /* Tolerate the whitespace a shell pipe or a Bearer header adds. */
        char *p = buf;
        if (strncmp(p, "Bearer ", 7) == 0) {
            p += 7;
        }
        p += strspn(p, " \t\r\n");
        n = strcspn(p, " \t\r\n");
        memmove(buf, p, n);
        buf[n] = '\0';
    }
    return buf;
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
print_times(json_t *claims)
{
    json_t     *t = claim_times(claims);
    const char *k;
    json_t     *v;

    json_object_foreach(t, k, v) {
        printf("%s: %s\n", k, json_string_value(v));
    }
    json_decref(t);
}

static int
cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"jwks", required_argument, NULL, 'j'},
        {"json", no_argument, NULL, 'J'},
        {"tz", required_argument, NULL, 'z'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char    *jwks = NULL;
    int            as_json = 0, c, rc;
    char          *token, *d1, *d2, detail[256] = "";
    json_t        *hdr = NULL, *claims = NULL, *out;
    ca_keyset     *ks = NULL;
    ca_error       err;
    ca_claims      cl;
    ca_reason      r = CA_OK;
    ca_token_rules rules = {CA_ALG_ALL, INSPECT_MAX_LIFETIME,
                            INSPECT_LEEWAY, 0};

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'j': jwks = optarg; break;
        case 'J': as_json = 1; break;
        case 'z':
            if (tool_set_tz(optarg) != 0) {
                return EXIT_USAGE;
            }
            break;
        case 'h': fputs(usage_inspect, stdout); return 0;
        default: fputs(usage_inspect, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind > 1) {
        return usage_error(usage_inspect, "%s", "inspect: one token only");
    }
    if (jwks && (ks = ca_keyset_load(jwks, &err)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
        return EXIT_USAGE;
    }
    token = read_token(optind < argc ? argv[optind] : NULL);
    if (token == NULL) {
        ca_keyset_free(ks);
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

    if (as_json) {
        out = json_pack("{s:O?,s:O?}", "header", hdr, "claims", claims);
        if (claims != NULL) {
            json_object_set_new(out, "times", claim_times(claims));
        }
        if (ks != NULL || r != CA_OK) {
            json_object_set_new(out, "valid", json_boolean(r == CA_OK));
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
        if (hdr != NULL) {
            printf("header: ");
            json_dumpf(hdr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            putchar('\n');
        }
        if (claims != NULL) {
            printf("claims: ");
            json_dumpf(claims, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            putchar('\n');
            print_times(claims);
        }
        if (r != CA_OK) {
            printf("invalid: %s (%s)\n", ca_reason_name(r), detail);
        } else if (ks != NULL) {
            printf("valid\n");
        }
    }
    rc = r == CA_OK ? 0 : EXIT_FINDING;
    json_decref(hdr);
    json_decref(claims);
    ca_keyset_free(ks);
    free(token);
    return rc;
}

const char *tool_name = "credit-consent";

int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (tool_version(argc, argv)) {
        return 0;
    }
    if (cmd == NULL) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0)
    {
        fputs(usage_main, stdout);
        return 0;
    }
    /* Each command parses its own options from its own argv. */
    argc--;
    argv++;
    if (strcmp(cmd, "keygen") == 0) {
        return cmd_keygen(argc, argv);
    }
    if (strcmp(cmd, "sign") == 0) {
        return cmd_sign(argc, argv);
    }
    if (strcmp(cmd, "inspect") == 0) {
        return cmd_inspect(argc, argv);
    }
    if (strcmp(cmd, "revoke") == 0) {
        return cmd_revoke(argc, argv);
    }
    if (strcmp(cmd, "key") == 0) {
        return cmd_key(argc, argv);
    }
    fprintf(stderr, "credit-consent: unknown command %s\n%s", cmd,
            usage_main);
    return EXIT_USAGE;
}
