/*
 * The gateways' audit public keys for verify, report, archive and anchor:
 * --pubkey (repeatable, a file may hold several PEM keys) and --keyring.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit_verify.h"

/* Every PEM public key of file; -1 after an error message. */
static int
load_file(av_keys *ks, const char *file)
{
    FILE     *f = fopen(file, "r");
    EVP_PKEY *k;
    size_t    got = 0;

    if (f == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", file, strerror(errno));
        return -1;
    }
    while ((k = PEM_read_PUBKEY(f, NULL, NULL, NULL)) != NULL) {
        if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
            fprintf(stderr, "credit-audit: %s: key %zu is not Ed25519 (the "
                    "gateway's audit key is, see docs/keys.md)\n", file,
                    got + 1);
            EVP_PKEY_free(k);
            fclose(f);
            return -1;
        }
        if (ks->n == AV_KEYS_MAX) {
            fprintf(stderr, "credit-audit: more than %d audit keys\n",
                    AV_KEYS_MAX);
            EVP_PKEY_free(k);
            fclose(f);
            return -1;
        }
        ks->key[ks->n] = k;
        snprintf(ks->name[ks->n], sizeof(ks->name[0]), "%s#%zu", file,
                 got + 1);
        ks->n++;
        got++;
    }
    ERR_clear_error();      /* the end of the file reads as an error */
    fclose(f);
    if (got == 0) {
        fprintf(stderr, "credit-audit: %s: no PEM public key (-----BEGIN "
                "PUBLIC KEY-----)\n", file);
        return -1;
    }
    if (got == 1) {
        snprintf(ks->name[ks->n - 1], sizeof(ks->name[0]), "%s", file);
    }
    return 0;
}

int
av_keys_load(const common_opts *co, av_keys *ks)
{
    memset(ks, 0, sizeof(*ks));
    for (size_t i = 0; i < co->npubkeys; i++) {
        if (load_file(ks, co->pubkey[i]) != 0) {
            av_keys_free(ks);
            return -1;
        }
    }
    if (co->keyring != NULL && load_file(ks, co->keyring) != 0) {
        av_keys_free(ks);
        return -1;
    }
    return 0;
}

void
av_keys_free(av_keys *ks)
{
    for (size_t i = 0; i < ks->n; i++) {
        EVP_PKEY_free(ks->key[i]);
    }
    ks->n = 0;
}
