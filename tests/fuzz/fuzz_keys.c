/*
 * The key registry loader (lib/jws/keys.c, jwk.c): a JWKS file as an enterprise
 * submits it.  A loaded set is sorted and every key is found by its kid;
 * the same file loaded again gets the same verdict, for the same reason
 * (OpenSSL's RSA check with random bases once flapped: fuzz finding 7).
 */
#include "fuzz.h"
#include "jws/keys.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_error   err, err2;
    ca_keyset *ks = ca_keyset_load(fuzz_file(data, size), &err);
    ca_keyset *ks2 = ca_keyset_load(fuzz_file(data, size), &err2);

    FUZZ_CHECK((ks == NULL) == (ks2 == NULL), "loaded once, refused once:"
               " %s", ks ? err2.text : err.text);
    ca_keyset_free(ks2);
    if (ks == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "refused without a reason");
        FUZZ_CHECK(strcmp(err.text, err2.text) == 0, "refused for two"
                   " reasons: %s; %s", err.text, err2.text);
        return 0;
    }
    FUZZ_CHECK(ks->n > 0, "an empty key set loaded");
    for (size_t i = 0; i < ks->n; i++) {
        const ca_key *k = &ks->keys[i];

        FUZZ_CHECK(ca_keyset_find(ks, k->kid, strlen(k->kid)) == k,
                   "kid %s not found", k->kid);
        FUZZ_CHECK(k->pkey != NULL && k->alg != CA_ALG_NONE, "key %s", k->kid);
    }
    ca_keyset_free(ks);
    return 0;
}
