/*
 * The enterprise's signing key, for sign and withdraw: the private PEM
 * keygen wrote (PKCS#8, encrypted with --passphrase-file or not) and the
 * public JWK beside it, which says the key's alg, kid and enterprise.
 * Reading those from the JWK rather than retyping them is what keeps a
 * finance person's command short and right; a JWK that is not the private
 * key's own is refused here, before a bank or the gateway refuses what it
 * signed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "consent.h"
#include "core/core.h"

typedef struct {
    const char *passphrase;     /* NULL: none given */
    int         asked;          /* the key is encrypted */
} passphrase_ctx;

static int
passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    passphrase_ctx *pc = u;
    size_t          n;

    pc->asked = 1;
    if (pc->passphrase == NULL) {
        return -1;              /* never a prompt: the tool runs in scripts */
    }
    n = strlen(pc->passphrase);
    if (n > (size_t) size) {
        return -1;
    }
    memcpy(buf, pc->passphrase, n);
    return (int) n;
}

EVP_PKEY *
read_private(const char *path, const char *passphrase_file)
{
    char            pass[1024];
    FILE           *f;
    EVP_PKEY       *pkey;
    passphrase_ctx  pc = {NULL, 0};

    if (passphrase_file != NULL) {
        if (tool_secret_file("--passphrase-file", passphrase_file, pass,
                             sizeof(pass)) != 0)
        {
            return NULL;
        }
        pc.passphrase = pass;
    }
    if ((f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "credit-consent: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    pkey = PEM_read_PrivateKey(f, NULL, passphrase_cb, &pc);
    fclose(f);
    OPENSSL_cleanse(pass, sizeof(pass));
    if (pkey != NULL) {
        return pkey;
    }
    if (pc.asked && pc.passphrase == NULL) {
        fprintf(stderr, "credit-consent: %s is encrypted: give "
                "--passphrase-file FILE (its first line is the passphrase)"
                "\n", path);
    } else if (pc.asked) {
        fprintf(stderr, "credit-consent: %s: cannot decrypt it with the "
                "passphrase in %s\n", path, passphrase_file);
    } else {
        fprintf(stderr, "credit-consent: %s: not a PEM private key\n", path);
    }
    return NULL;
}

/* The key material members of the private key's public JWK equal the
 * JWK's: the JWK describes this very key. */
static int
same_key(EVP_PKEY *pkey, ca_alg alg, json_t *jwk)
{
    static const char *const members[] = {"kty", "crv", "x", "y", "n", "e"};
    json_t *mine = ca_jwk_from_pkey(pkey, alg, "k", "x");
    int     same = mine != NULL;

    for (size_t i = 0; same && i < sizeof(members) / sizeof(members[0]);
         i++)
    {
        json_t *a = json_object_get(mine, members[i]);

        same = a == NULL || json_equal(a, json_object_get(jwk, members[i]));
    }
    json_decref(mine);
    return same;
}

/* An option given on the command line and the JWK's value must agree. */
static int
agrees(const char *option, const char *given, const char *in_jwk,
       const char *jwk_file)
{
    if (given != NULL && strcmp(given, in_jwk) != 0) {
        fprintf(stderr, "credit-consent: %s %s, but %s says %s (leave the "
                "option out: the JWK gives it)\n", option, given, jwk_file,
                in_jwk);
        return 0;
    }
    return 1;
}

int
signer_load(signer *s, const char *key, const char *passphrase_file,
            const char *jwk_file, const char *alg, const char *kid,
            const char *uscc, int need_uscc, const char *usage)
{
    char      missing[64];
    json_t   *jwk = NULL;
    ca_key    k;
    ca_error  err;

    memset(s, 0, sizeof(*s));
    if (jwk_file != NULL) {
        jwk = ca_json_load_file(jwk_file, &err);
        if (jwk == NULL || ca_key_from_jwk(jwk, jwk_file, "$", &k, &err)
                           != 0)
        {
            fprintf(stderr, "credit-consent: %s\n", err.text);
            json_decref(jwk);
            return EXIT_USAGE;
        }
        if (!agrees("--alg", alg, ca_alg_name(k.alg), jwk_file)
            || !agrees("--kid", kid, k.kid, jwk_file)
            || !agrees("--iss", uscc, k.uscc, jwk_file))
        {
            ca_key_clear(&k);
            json_decref(jwk);
            return EXIT_USAGE;
        }
        s->alg = k.alg;
        snprintf(s->kid_buf, sizeof(s->kid_buf), "%s", k.kid);
        snprintf(s->uscc_buf, sizeof(s->uscc_buf), "%s", k.uscc);
        s->kid = s->kid_buf;
        s->uscc = s->uscc_buf;
        ca_key_clear(&k);

    } else {
        missing[0] = '\0';
        need(missing, sizeof(missing), alg, "--alg");
        need(missing, sizeof(missing), kid, "--kid");
        if (need_uscc) {
            need(missing, sizeof(missing), uscc, "--iss");
        }
        if (missing[0] != '\0') {
            return usage_error(usage, "missing %s (or --jwk FILE, the key's"
                               " JWK, which gives them)", missing);
        }
        if ((s->alg = ca_alg_from_name(alg)) == CA_ALG_NONE) {
            return usage_error(usage, "unknown alg %s (ES256, RS256, PS256,"
                               " EdDSA or SM2)", alg);
        }
        if (!ca_is_token_chars(kid, CA_KID_MAX)) {
            return usage_error(usage, "bad kid %s (1..128 characters of "
                               "[A-Za-z0-9._-])", kid);
        }
        s->kid = kid;
        s->uscc = uscc;
    }

    s->pkey = read_private(key, passphrase_file);
    if (s->pkey != NULL && jwk != NULL && !same_key(s->pkey, s->alg, jwk)) {
        fprintf(stderr, "credit-consent: %s is not the public key of %s: "
                "give the JWK that keygen wrote with it\n", jwk_file, key);
        EVP_PKEY_free(s->pkey);
        s->pkey = NULL;
    }
    json_decref(jwk);
    return s->pkey != NULL ? 0 : EXIT_USAGE;
}

void
signer_free(signer *s)
{
    EVP_PKEY_free(s->pkey);
    s->pkey = NULL;
}
