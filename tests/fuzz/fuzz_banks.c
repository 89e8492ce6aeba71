/*
 * The bank registry loader (lib/policy/banks.c).  A loaded registry finds each
 * bank by each of its certificate fingerprints.
 */
#include "fuzz.h"
#include "policy/banks.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_error  err;
    ca_banks *b = ca_banks_load(fuzz_file(data, size), &err);

    if (b == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "refused without a reason");
        return 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        const ca_bank *bank = &b->banks[i];

        for (size_t j = 0; j < bank->n_certs; j++) {
            FUZZ_CHECK(ca_banks_find_cert(b, bank->certs[j]) != NULL,
                       "bank %s: certificate %zu not found", bank->code, j);
        }
        (void) ca_bank_allows_purpose(bank, "loan_application");
        for (size_t j = 0; j < bank->n_purposes; j++) {
            FUZZ_CHECK(ca_bank_allows_purpose(bank, bank->purposes[j]),
                       "bank %s: its own purpose refused", bank->code);
        }
    }
    ca_banks_free(b);
    return 0;
}
