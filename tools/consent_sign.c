/* credit-consent sign: a consent token, and with --policy what a gateway
 * running that policy would refuse. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"
#include "policy/policy.h"

static const char usage_sign[] =
    "usage: credit-consent sign --key FILE (--jwk FILE | --alg ALG --kid KID\n"
    "         --iss USCC) [--passphrase-file FILE] [--sub USCC]\n"
    "         --aud CODE[,CODE...] [--jti ID]\n"
    "         --purposes P[,P...] --categories C[,C...]\n"
    "         [--modes query,verify] [--detail masked|raw] [--max-uses N]\n"
    "         [--ttl DURATION | --iat T --exp T] [--nbf T]"
    " [--cnf-cert PEMFILE]\n"
    "         [--policy FILE] [--banks FILE]\n"
    "\n"
    "Prints a compact consent token.  --jwk FILE (the PREFIX.jwk keygen\n"
    "wrote beside --key) gives alg, kid and iss; --passphrase-file opens\n"
    "an encrypted key.  --sub defaults to --iss, --jti to a random id,\n"
    "--ttl to 1h.  DURATION is seconds, or a number with s, m, h or d\n"
    "(30d).  T is Unix seconds or ISO 8601 (2026-11-01T00:00:00+08:00).\n"
    "--cnf-cert binds the token to a bank's certificate (cnf x5t#S256 of\n"
    "its DER).  --policy FILE: a purpose or category the policy does not\n"
    "know is an error (exit 2, the known ones listed), and what a gateway\n"
    "with that policy would refuse is warned about on stderr (the\n"
    "gateway's own claim checks, raw detail, alg, cnf).  --banks FILE: a\n"
    "bank code of --aud that the banks registry lacks is an error.\n"
    "credit-consent codes lists the codes with their names.\n";


/* ---- sign ------------------------------------------------------------ */

/* "a,b,c" -> ["a","b","c"]; NULL if any item is not a code. */
static json_t *
code_array(const char *list)
{
    json_t *arr = json_array();
    char   *copy = strdup(list), *save = NULL, *item;

    for (item = strtok_r(copy, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save))
    {
        if (!ca_is_token_chars(item, CA_CODE_MAX)) {
            json_decref(arr);
            arr = NULL;
            break;
        }
        json_array_append_new(arr, json_string(item));
    }
    free(copy);
    if (arr != NULL && json_array_size(arr) == 0) {
        json_decref(arr);
        arr = NULL;
    }
    return arr;
}

/* cnf x5t#S256 (RFC 8705 §3.1) of the certificate in a PEM file. */
static int
cert_thumbprint(const char *path, char out[44])
{
    FILE          *f = fopen(path, "r");
    X509          *x;
    unsigned char *der = NULL, h[32];
    int            n;

    if (f == NULL) {
        fprintf(stderr, "credit-consent: %s: %s\n", path, strerror(errno));
        return -1;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL || (n = i2d_X509(x, &der)) <= 0) {
        fprintf(stderr, "credit-consent: %s: not a PEM certificate\n", path);
        X509_free(x);
        return -1;
    }
    ca_sha256(der, (size_t) n, h);
    ca_b64url_encode(h, 32, out);
    OPENSSL_free(der);
    X509_free(x);
    return 0;
}

/* Unix seconds or ISO 8601. */
static int
time_opt(const char *s, long long *out)
{
    int64_t ms;
    char    err[300];

    if (ca_time_parse(s, &ms, NULL, err, sizeof(err)) != 0) {
        return -1;
    }
    *out = (long long) (ms / 1000);
    return 0;
}

/* What the gateway under this policy would refuse, said before the token
 * reaches a bank: the claim checks are the gateway's own (claims.c), the
 * rest is the policy's purposes, categories and raw detail. */
static void
policy_warnings(const ca_policy *p, ca_alg alg, json_t *claims)
{
    ca_claims          c;
    char               detail[256];
    ca_reason          r;
    const ca_category *cat;

    if (!(p->token.algs & alg)) {
        fprintf(stderr, "credit-consent: warning: the policy does not allow "
                "alg %s: the gateway would refuse the token "
                "(alg_not_allowed)\n", ca_alg_name(alg));
    }
    r = ca_claims_parse(claims, NULL, &p->token, &c, detail, sizeof(detail));
    if (r != CA_OK) {
        fprintf(stderr, "credit-consent: warning: the gateway would refuse "
                "the token: %s (%s)\n", ca_reason_name(r), detail);
        return;
    }
    if (p->token.require_cnf && c.cnf_x5t[0] == '\0') {
        fprintf(stderr, "credit-consent: warning: the policy requires a "
                "certificate-bound token: give --cnf-cert (else "
                "cnf_mismatch)\n");
    }
    for (int i = 0; i < c.n_categories; i++) {
        int any = 0;

        /* every category is the policy's (codes_check) */
        cat = ca_policy_find_category(p, c.categories[i]);
        if (cat == NULL) {
            continue;
        }
        for (int j = 0; j < c.n_purposes; j++) {
            any |= ca_category_allows_purpose(cat, c.purposes[j]);
        }
        if (!any) {
            fprintf(stderr, "credit-consent: warning: category %s allows "
                    "none of the token's purposes: its requests are refused "
                    "(purpose_not_allowed)\n", c.categories[i]);
        }
        if (c.detail_raw && !cat->raw_allowed) {
            fprintf(stderr, "credit-consent: warning: detail raw: category "
                    "%s does not allow raw detail (raw_not_allowed); the "
                    "masked level is still served\n", c.categories[i]);
        }
    }
}

int
cmd_sign(int argc, char **argv)
{
    enum { O_KEY = 1, O_ALG, O_KID, O_ISS, O_SUB, O_AUD, O_JTI, O_PURPOSES,
           O_CATEGORIES, O_MODES, O_DETAIL, O_MAX_USES, O_TTL, O_IAT, O_EXP,
           O_NBF, O_CNF, O_POLICY, O_HELP, O_JWK, O_PASS, O_BANKS };
    static const struct option opts[] = {
        {"key", required_argument, NULL, O_KEY},
        {"alg", required_argument, NULL, O_ALG},
        {"kid", required_argument, NULL, O_KID},
        {"iss", required_argument, NULL, O_ISS},
        {"sub", required_argument, NULL, O_SUB},
        {"aud", required_argument, NULL, O_AUD},
        {"jti", required_argument, NULL, O_JTI},
        {"purposes", required_argument, NULL, O_PURPOSES},
        {"categories", required_argument, NULL, O_CATEGORIES},
        {"modes", required_argument, NULL, O_MODES},
        {"detail", required_argument, NULL, O_DETAIL},
        {"max-uses", required_argument, NULL, O_MAX_USES},
        {"ttl", required_argument, NULL, O_TTL},
        {"iat", required_argument, NULL, O_IAT},
        {"exp", required_argument, NULL, O_EXP},
        {"nbf", required_argument, NULL, O_NBF},
        {"cnf-cert", required_argument, NULL, O_CNF},
        {"policy", required_argument, NULL, O_POLICY},
        {"jwk", required_argument, NULL, O_JWK},
        {"passphrase-file", required_argument, NULL, O_PASS},
        {"banks", required_argument, NULL, O_BANKS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL, *alg_name = NULL, *kid = NULL, *iss = NULL;
    const char *sub = NULL, *aud = NULL, *jti = NULL, *purposes = NULL;
    const char *categories = NULL, *modes = NULL, *detail = NULL;
    const char *cnf = NULL, *s_uses = NULL, *s_ttl = NULL, *s_iat = NULL;
    const char *s_exp = NULL, *s_nbf = NULL, *policy = NULL;
    const char *jwk = NULL, *passfile = NULL, *banks = NULL;
    long long   uses = 0, ttl = 3600, iat, exp, nbf = 0;
    char        jti_buf[32], x5t[44], *hdr_text, *claims_text, *token;
    char        missing[128], why[256];
    ca_policy  *pol = NULL;
    ca_banks   *reg = NULL;
    ca_error    perr;
    unsigned char rnd[16];
    ca_alg      alg;
    signer      sg;
    json_t     *hdr, *claims, *v;
    int         c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_KEY: key = optarg; break;
        case O_ALG: alg_name = optarg; break;
        case O_KID: kid = optarg; break;
        case O_ISS: iss = optarg; break;
        case O_SUB: sub = optarg; break;
        case O_AUD: aud = optarg; break;
        case O_JTI: jti = optarg; break;
        case O_PURPOSES: purposes = optarg; break;
        case O_CATEGORIES: categories = optarg; break;
        case O_MODES: modes = optarg; break;
        case O_DETAIL: detail = optarg; break;
        case O_MAX_USES: s_uses = optarg; break;
        case O_TTL: s_ttl = optarg; break;
        case O_IAT: s_iat = optarg; break;
        case O_EXP: s_exp = optarg; break;
        case O_NBF: s_nbf = optarg; break;
        case O_CNF: cnf = optarg; break;
        case O_POLICY: policy = optarg; break;
        case O_JWK: jwk = optarg; break;
        case O_PASS: passfile = optarg; break;
        case O_BANKS: banks = optarg; break;
        case O_HELP: fputs(usage_sign, stdout); return 0;
        default: return usage_option(usage_sign, argv);
        }
    }
    if (optind != argc) {
        return usage_error(usage_sign, "sign: unexpected argument %s",
                           argv[optind]);
    }
    missing[0] = '\0';
    need(missing, sizeof(missing), key, "--key");
    if (jwk == NULL) {
        need(missing, sizeof(missing), alg_name, "--alg");
        need(missing, sizeof(missing), kid, "--kid");
        need(missing, sizeof(missing), iss, "--iss");
    }
    need(missing, sizeof(missing), aud, "--aud");
    need(missing, sizeof(missing), purposes, "--purposes");
    need(missing, sizeof(missing), categories, "--categories");
    if (missing[0] != '\0') {
        return usage_error(usage_sign, "sign: missing %s", missing);
    }
    if (jti != NULL && !ca_is_token_chars(jti, CA_JTI_MAX)) {
        return usage_error(usage_sign, "bad jti %s "
                           "(1..64 characters of [A-Za-z0-9._-])", jti);
    }
    if (jti == NULL) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            return usage_error(usage_sign, "%s", "no randomness");
        }
        ca_b64url_encode(rnd, sizeof(rnd), jti_buf);
        jti = jti_buf;
    }
    if (s_uses && parse_i64(s_uses, 1, &uses) != 0) {
        return usage_error(usage_sign, "bad --max-uses %s "
                           "(a whole number, at least 1)", s_uses);
    }
    if (s_nbf && time_opt(s_nbf, &nbf) != 0) {
        return usage_error(usage_sign, "bad --nbf %s (Unix seconds or ISO "
                           "8601, e.g. 2026-11-01T00:00:00+08:00)", s_nbf);
    }
    if ((s_iat != NULL) != (s_exp != NULL) || (s_iat && s_ttl)) {
        return usage_error(usage_sign, "%s",
                           "give --ttl, or both --iat and --exp");
    }
    if (s_iat) {
        if (time_opt(s_iat, &iat) != 0 || time_opt(s_exp, &exp) != 0) {
            return usage_error(usage_sign, "%s", "bad --iat or --exp "
                               "(Unix seconds or ISO 8601, e.g. "
                               "2026-11-01T00:00:00+08:00)");
        }
    } else {
        if (s_ttl && parse_duration(s_ttl, &ttl) != 0) {
            return usage_error(usage_sign, "bad --ttl %s (seconds, or a "
                               "number with s, m, h or d: 3600, 90m, 30d)",
                               s_ttl);
        }
        iat = (long long) time(NULL);
        exp = iat + ttl;
    }
    if (detail && strcmp(detail, "masked") && strcmp(detail, "raw")) {
        return usage_error(usage_sign, "bad --detail %s "
                           "(masked or raw)", detail);
    }
    if (cnf && cert_thumbprint(cnf, x5t) != 0) {
        return EXIT_USAGE;
    }
    rc = signer_load(&sg, key, passfile, jwk, alg_name, kid, iss, 1,
                     usage_sign);
    if (rc != 0) {
        return rc;
    }
    alg = sg.alg;
    kid = sg.kid;
    iss = sg.uscc;
    /* a token whose iss is no USCC is refused by every gateway */
    if (uscc_why(iss, why, sizeof(why)) != NULL) {
        signer_free(&sg);
        return usage_error(usage_sign, "--iss: %s", why);
    }
    /* The tool signs what it is told, even a sub that differs from iss:
     * tests need such tokens, and the gateway refuses them. */
    if (sub == NULL) {
        sub = iss;
    }

    claims = json_object();
    json_object_set_new(claims, "iss", json_string(iss));
    json_object_set_new(claims, "sub", json_string(sub));
    v = code_array(aud);
    if (v == NULL) {
        json_decref(claims);
        signer_free(&sg);
        return usage_error(usage_sign, "bad --aud %s "
                           "(bank codes, comma-separated)", aud);
    }
    json_object_set_new(claims, "aud", json_array_size(v) == 1
                        ? json_incref(json_array_get(v, 0)) : json_incref(v));
    json_decref(v);
    json_object_set_new(claims, "jti", json_string(jti));
    json_object_set_new(claims, "iat", json_integer(iat));
    json_object_set_new(claims, "exp", json_integer(exp));
    if (s_nbf) {
        json_object_set_new(claims, "nbf", json_integer(nbf));
    }
    if ((v = code_array(purposes)) == NULL) {
        json_decref(claims);
        signer_free(&sg);
        return usage_error(usage_sign, "bad --purposes %s "
                           "(purpose codes, comma-separated)", purposes);
    }
    json_object_set_new(claims, "purposes", v);
    if ((v = code_array(categories)) == NULL) {
        json_decref(claims);
        signer_free(&sg);
        return usage_error(usage_sign, "bad --categories %s "
                           "(category names, comma-separated)", categories);
    }
    json_object_set_new(claims, "categories", v);
    if (modes) {
        size_t  i;
        json_t *m;
        if ((v = code_array(modes)) == NULL) {
            json_decref(claims);
            signer_free(&sg);
            return usage_error(usage_sign, "bad --modes %s "
                               "(query, verify or query,verify)", modes);
        }
        json_array_foreach(v, i, m) {
            if (strcmp(json_string_value(m), "query")
                && strcmp(json_string_value(m), "verify"))
            {
                json_decref(v);
                json_decref(claims);
                signer_free(&sg);
                return usage_error(usage_sign, "bad --modes %s "
                                   "(query, verify or query,verify)", modes);
            }
        }
        json_object_set_new(claims, "modes", v);
    }
    if (detail) {
        json_object_set_new(claims, "detail", json_string(detail));
    }
    if (s_uses) {
        json_object_set_new(claims, "max_uses", json_integer(uses));
    }
    if (cnf) {
        json_object_set_new(claims, "cnf", json_pack("{s:s}", "x5t#S256",
                                                     x5t));
    }
    hdr = json_pack("{s:s,s:s,s:s}", "alg", ca_alg_name(alg),
                    "typ", "consent+jwt", "kid", kid);
    rc = 0;
    if (policy != NULL && (pol = ca_policy_load(policy, &perr)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", perr.text);
        rc = EXIT_USAGE;
    }
    if (banks != NULL && (reg = ca_banks_load(banks, &perr)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", perr.text);
        rc = EXIT_USAGE;
    }
    /* a code the files do not know is a mistake, not a warning */
    if (rc == 0 && pol != NULL
        && (codes_check(pol, NULL, 'p', policy,
                        json_object_get(claims, "purposes")) != 0
            || codes_check(pol, NULL, 'c', policy,
                           json_object_get(claims, "categories")) != 0))
    {
        rc = EXIT_USAGE;
    }
    if (rc == 0 && reg != NULL) {
        v = json_object_get(claims, "aud");
        v = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
        rc = codes_check(NULL, reg, 'b', banks, v) != 0 ? EXIT_USAGE : 0;
        json_decref(v);
    }
    if (rc == 0 && pol != NULL) {
        policy_warnings(pol, alg, claims);
    }
    ca_policy_free(pol);
    ca_banks_free(reg);
    if (rc != 0) {
        json_decref(hdr);
        json_decref(claims);
        signer_free(&sg);
        return rc;
    }

    hdr_text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    claims_text = json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER);
    token = ca_token_sign(alg, sg.pkey, hdr_text, claims_text);
    free(hdr_text);
    free(claims_text);
    json_decref(hdr);
    json_decref(claims);
    signer_free(&sg);
    if (token == NULL) {
        fprintf(stderr, "credit-consent: the key in %s cannot sign %s\n",
                key, ca_alg_name(alg));
        return EXIT_USAGE;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}

