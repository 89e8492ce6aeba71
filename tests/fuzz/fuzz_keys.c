/*
 * The key registry loader (lib/jws/keys.c, jwk.c): a JWKS file as an enterprise
 * submits it.  A loaded set is sorted and every key is found by its kid.
 */
#include "fuzz.h"
#include "jws/keys.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_error   err;
    ca_keyset *ks = ca_keyset_load(fuzz_file(data, size), &err);

    if (ks == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "refused without a reason");
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
