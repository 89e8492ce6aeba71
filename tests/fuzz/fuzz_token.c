/*
 * Consent tokens (lib/jws/token.c, claims.c, signature.c).  Input: a mode
 * byte, a rules byte, then
 *   mode 0: a compact JWS as a bank would send it;
 *   mode 1, 2: claims JSON, signed here with the harness's Ed25519 or
 *              P-256 key, so that the claims parser is reached;
 *   mode 3: header JSON, a newline, claims JSON, signed with Ed25519.
 * The rules byte varies the policy's rules and the request's facts.  A
 * token that verifies has claims that keep the rules (exp after iat,
 * lifetime within max_lifetime, issuer a valid USCC, kid of the key); the
 * time and request checks then run on them.
 */
#include "fuzz.h"

#include <time.h>

#include "jws/keys.h"
#include "jws/token.h"
#include "core/uscc.h"

#define USCC "91350100M000100Y43"

static ca_keyset *ks;
static EVP_PKEY  *ed, *es;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    json_t   *set;
    char     *text;
    ca_error  err;

    ed = ca_key_generate(CA_ALG_EDDSA);
    es = ca_key_generate(CA_ALG_ES256);
    if (ed == NULL || es == NULL) {
        abort();
    }
    set = json_pack("{s:[o,o]}", "keys",
                    ca_jwk_from_pkey(ed, CA_ALG_EDDSA, "fuzz-eddsa", USCC),
                    ca_jwk_from_pkey(es, CA_ALG_ES256, "fuzz-es256", USCC));
    text = json_dumps(set, 0);
    ks = ca_keyset_load(fuzz_file(text, strlen(text)), &err);
    if (ks == NULL) {
        fprintf(stderr, "fuzz_token: %s\n", err.text);
        abort();
    }
    free(text);
    json_decref(set);
    return 0;
}

static char *
sign(int mode, const char *in)
{
    char        hdr[128], *nl, *copy, *tok;
    ca_alg      alg = mode == 2 ? CA_ALG_ES256 : CA_ALG_EDDSA;
    EVP_PKEY   *key = mode == 2 ? es : ed;

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"consent+jwt\","
             "\"kid\":\"fuzz-%s\"}", ca_alg_name(alg),
             mode == 2 ? "es256" : "eddsa");
    if (mode != 3) {
        return ca_token_sign(alg, key, hdr, in);
    }
    copy = strdup(in);
    if (copy == NULL) {
        abort();
    }
    nl = strchr(copy, '\n');
    if (nl == NULL) {
        free(copy);
        return NULL;
    }
    *nl = '\0';
    tok = ca_token_sign(alg, key, copy, nl + 1);
    free(copy);
    return tok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char cert[32] = {1};
    ca_token_rules   rules;
    ca_claims        c;
    ca_request_facts f;
    ca_reason        r;
    char             detail[256], *in, *tok;
    int              mode;
    int64_t          now = (int64_t) time(NULL);

    if (size < 2) {
        return 0;
    }
    mode = data[0] & 3;
    rules.algs = data[1] & 2 ? CA_ALG_EDDSA : CA_ALG_ALL;
    rules.max_lifetime = 7776000;
    rules.leeway = (data[1] >> 2) & 63;
    rules.leeway = rules.leeway > 60 ? 60 : rules.leeway;
    rules.require_cnf = data[1] & 1;

    in = fuzz_strdup(data + 2, size - 2);
    tok = mode == 0 ? in : sign(mode, in);
    if (tok == NULL) {
        free(in);
        return 0;
    }
    memset(&c, 0x5a, sizeof(c));
    r = ca_token_verify(tok, strlen(tok), ks, &rules, &c, detail,
                        sizeof(detail));
    if (r == CA_OK) {
        FUZZ_CHECK(c.exp > c.iat && c.exp - c.iat <= rules.max_lifetime,
                   "iat %lld exp %lld", (long long) c.iat,
                   (long long) c.exp);
        FUZZ_CHECK(ca_uscc_valid(c.iss, strlen(c.iss)), "iss %s", c.iss);
        FUZZ_CHECK(ca_keyset_find(ks, c.kid, strlen(c.kid)) != NULL,
                   "kid %s", c.kid);
        FUZZ_CHECK((rules.algs & c.alg) != 0, "alg not allowed");
        (void) ca_claims_check_time(&c, now, rules.leeway, detail,
                                    sizeof(detail));
        if (c.iat < INT64_MAX / 2) {
            (void) ca_claims_check_time(&c, c.iat, rules.leeway, detail,
                                        sizeof(detail));
        }
        memset(&f, 0, sizeof(f));
        f.bank_code = c.n_aud > 0 ? c.aud[0] : "BANK001";
        f.path_uscc = c.sub;
        f.purpose = c.n_purposes > 0 ? c.purposes[0] : "loan_application";
        f.category = c.n_categories > 0 ? c.categories[0] : "tax";
        f.mode = data[1] & 0x80 ? CA_MODE_VERIFY : CA_MODE_QUERY;
        f.want_raw = (data[1] >> 6) & 1;
        f.raw_allowed = 1;
        f.require_cnf = rules.require_cnf;
        f.cert_sha256 = data[0] & 4 ? NULL : cert;
        (void) ca_claims_check_request(&c, &f, detail, sizeof(detail));
    }
    /* the same bytes as a withdrawal (typ revocation+jwt, mode 3) */
    memset(&c, 0x5a, sizeof(c));
    r = ca_withdrawal_verify(tok, strlen(tok), ks, &rules, &c, detail,
                             sizeof(detail));
    if (r == CA_OK) {
        FUZZ_CHECK(ca_uscc_valid(c.iss, strlen(c.iss)), "iss %s", c.iss);
        FUZZ_CHECK(strcmp(c.iss, ca_keyset_find(ks, c.kid,
                                                strlen(c.kid))->uscc) == 0,
                   "iss %s is not the key's", c.iss);
        FUZZ_CHECK(ca_is_token_chars(c.jti, CA_JTI_MAX), "jti");
        (void) ca_withdrawal_check_time(&c, now, rules.leeway, detail,
                                        sizeof(detail));
    }
    if (tok != in) {
        free(tok);
    }
    free(in);
    return 0;
}
