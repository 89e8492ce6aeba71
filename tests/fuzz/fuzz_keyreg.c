/*
 * A key registry record (lib/jws/keyreg.c) as the gateway reads it from Redis
 * under credit:key:{e1-es256}: whatever the bytes, a refusal names the
 * kid; an accepted record yields a key, its times and version are within
 * their bounds (credit-consent key list shows the times in milliseconds:
 * once INT64_MAX * 1000, fuzz finding 8), and it encodes back to a record
 * that parses to the same fields.
 */
#include "fuzz.h"
#include "core/isotime.h"
#include "jws/keyreg.h"

#define KID "e1-es256"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_error       err;
    ca_keyreg_meta m, again;
    ca_key         key;
    json_t        *jwk;
    char          *rec, iso[48];

    if (ca_keyreg_parse((const char *) data, size, KID, &m, &key, &err)) {
        FUZZ_CHECK(strncmp(err.text, KID ": ", sizeof(KID ": ") - 1) == 0,
                   "refusal without the kid: %s", err.text);
        return 0;
    }
    FUZZ_CHECK(key.pkey != NULL && strcmp(key.kid, KID) == 0
               && strcmp(m.kid, KID) == 0, "accepted without its key");
    FUZZ_CHECK(m.version >= 1 && m.version <= CA_KEYREG_VERSION_MAX
               && m.not_before >= 0 && m.not_before <= CA_KEYREG_TIME_MAX
               && m.not_after >= 0 && m.not_after <= CA_KEYREG_TIME_MAX
               && (m.not_after == 0 || m.not_after > m.not_before),
               "version %lld window %lld..%lld", (long long) m.version,
               (long long) m.not_before, (long long) m.not_after);
    ca_time_format(m.not_before * 1000, iso, sizeof(iso));
    ca_time_format(m.not_after * 1000, iso, sizeof(iso));
    ca_key_clear(&key);

    jwk = ca_keyreg_jwk((const char *) data, size);
    rec = ca_keyreg_encode(&m, jwk);
    FUZZ_CHECK(rec != NULL, "no encoding");
    FUZZ_CHECK(ca_keyreg_parse(rec, strlen(rec), KID, &again, NULL, &err)
               == 0, "its encoding refused: %s", err.text);
    FUZZ_CHECK(memcmp(&m, &again, sizeof(m)) == 0, "round trip differs");
    free(rec);
    json_decref(jwk);
    return 0;
}
