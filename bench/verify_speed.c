/*
 * Uncached consent-token verification rate per algorithm.
 *
 * For each of ES256, RS256 (2048), PS256 (2048), EdDSA and SM2: generate a
 * key, sign a realistic consent token with ca_token_sign(), write the
 * public key as a JWKS (ca_jwk_from_pkey) to a temporary file and load it
 * with ca_keyset_load() -- the registry path the gateway uses -- then call
 * ca_token_verify() in a loop for about --seconds (default 1) and print
 *
 *     <alg> <verifications/s> <iterations> <token bytes> <wall verifications/s>
 *
 * verifications/s is per second of user CPU time, as `openssl speed`
 * counts by default; the last column divides by wall-clock time.
 * Every call does the whole uncached work: base64url, both JSON parses,
 * the registry lookup, the signature and every claim rule.  bench/
 * verify_speed.py builds this, runs it and compares with `openssl speed`.
 *
 *   cc -O2 -Ilib bench/verify_speed.c build/libcreditauth.a \
 *      -ljwt -lhiredis -ljansson -lssl -lcrypto -o verify_speed
 *   ./verify_speed [--seconds S] [ALG...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "creditauth.h"
#include "user_time.h"

#define USCC "91350100M000100Y43"


static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}




static int
bench(ca_alg alg, double seconds)
{
    char            kid[64], header[256], claims[1024], detail[256];
    char            path[] = "/tmp/verify-speed-XXXXXX";
    char           *token, *jwks_text;
    long long       n, chunk;
    double          t0, t1, u0, u1;
    json_t         *jwk, *jwks;
    EVP_PKEY       *pkey;
    ca_error        err;
    ca_claims       c;
    ca_keyset      *ks;
    ca_reason       r;
    ca_token_rules  rules;
    time_t          now = time(NULL);
    int             fd;
    FILE           *f;

    pkey = ca_key_generate(alg);
    if (pkey == NULL) {
        fprintf(stderr, "verify_speed: cannot generate a %s key\n",
                ca_alg_name(alg));
        return -1;
    }

    snprintf(kid, sizeof(kid), "ent-%s-%s-2026", USCC, ca_alg_name(alg));
    snprintf(header, sizeof(header),
             "{\"alg\":\"%s\",\"typ\":\"consent+jwt\",\"kid\":\"%s\"}",
             ca_alg_name(alg), kid);
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":[\"BANK001\",\"BANK002\"],"
             "\"jti\":\"c-5f1c0b7e9a2d4e6f8a1b3c5d7e9f0a12\","
             "\"iat\":%lld,\"exp\":%lld,"
             "\"purposes\":[\"loan_application\",\"credit_assessment\"],"
             "\"categories\":[\"tax\",\"environment\",\"real_estate\"],"
             "\"modes\":[\"query\",\"verify\"],\"detail\":\"masked\","
             "\"max_uses\":100,"
             "\"cnf\":{\"x5t#S256\":"
             "\"Y4QSZZAcUNNF-Qk4W1Oq0VLi1G6wL7ByQMvooD2IEhs\"}}",
             USCC, USCC, (long long) now, (long long) now + 30 * 86400);

    token = ca_token_sign(alg, pkey, header, claims);
    if (token == NULL) {
        fprintf(stderr, "verify_speed: %s: ca_token_sign failed\n",
                ca_alg_name(alg));
        return -1;
    }

    jwk = ca_jwk_from_pkey(pkey, alg, kid, USCC);
    if (jwk == NULL) {
        fprintf(stderr, "verify_speed: %s: ca_jwk_from_pkey failed\n",
                ca_alg_name(alg));
        return -1;
    }
    jwks = json_pack("{s:[o]}", "keys", jwk);
    jwks_text = json_dumps(jwks, JSON_INDENT(1));
    json_decref(jwks);

    fd = mkstemp(path);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        perror("verify_speed: temporary JWKS");
        return -1;
    }
    fputs(jwks_text, f);
    fclose(f);
    free(jwks_text);

    ks = ca_keyset_load(path, &err);
    unlink(path);
    if (ks == NULL) {
        fprintf(stderr, "verify_speed: %s: %s\n", ca_alg_name(alg), err.text);
        return -1;
    }

    rules.algs = CA_ALG_ALL;
    rules.max_lifetime = 7776000;
    rules.leeway = 60;
    rules.require_cnf = 0;

    r = ca_token_verify(token, strlen(token), ks, &rules, &c, detail,
                        sizeof(detail));
    if (r != CA_OK) {
        fprintf(stderr, "verify_speed: %s: token refused: %s (%s)\n",
                ca_alg_name(alg), ca_reason_name(r), detail);
        return -1;
    }

    /* warm up, then time whole chunks until the budget is spent */
    for (n = 0; n < 20; n++) {
        (void) ca_token_verify(token, strlen(token), ks, &rules, &c, detail,
                               sizeof(detail));
    }

    n = 0;
    chunk = 16;
    t0 = now_s();
    u0 = user_s();
    do {
        for (long long i = 0; i < chunk; i++) {
            if (ca_token_verify(token, strlen(token), ks, &rules, &c, detail,
                                sizeof(detail)) != CA_OK)
            {
                fprintf(stderr, "verify_speed: %s: refused in the loop\n",
                        ca_alg_name(alg));
                return -1;
            }
        }
        n += chunk;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    u1 = user_s();
    if (u1 - u0 < 1e-3) {
        u1 = u0 + (t1 - t0);
    }

    printf("%s %.0f %lld %zu %.0f\n", ca_alg_name(alg),
           (double) n / (u1 - u0), n, strlen(token), (double) n / (t1 - t0));
    fflush(stdout);

    ca_keyset_free(ks);
    free(token);
    EVP_PKEY_free(pkey);
    return 0;
}


int
main(int argc, char **argv)
{
    static const ca_alg all[] = { CA_ALG_ES256, CA_ALG_RS256, CA_ALG_PS256,
                                  CA_ALG_EDDSA, CA_ALG_SM2 };
    double  seconds = 1.0;
    int     i, rc = 0, given = 0;
    ca_alg  alg;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: verify_speed [--seconds S] [ES256 RS256 PS256 "
                   "EdDSA SM2]\n"
                   "Prints: alg verifications/s (user CPU) iterations "
                   "token_bytes verifications/s (wall)\n");
            return 0;
        }
        alg = ca_alg_from_name(argv[i]);
        if (alg == CA_ALG_NONE) {
            fprintf(stderr, "verify_speed: unknown alg %s\n", argv[i]);
            return 2;
        }
        given = 1;
        if (bench(alg, seconds) != 0) {
            rc = 1;
        }
    }

    if (!given) {
        for (i = 0; i < (int) (sizeof(all) / sizeof(all[0])); i++) {
            if (bench(all[i], seconds) != 0) {
                rc = 1;
            }
        }
    }

    return rc;
}
