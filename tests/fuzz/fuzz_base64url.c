/*
 * The encodings of lib/core/util.c.  Strict base64url decodes only canonical
 * text, so what decodes encodes back to the same text; standard base64 and
 * hex likewise round-trip.  The output buffers are exactly the sizes the
 * header promises, so ASan sees any write past them.
 */
#include "fuzz.h"
#include "core/util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char    *s = (const char *) data;
    unsigned char *bin = malloc(3 * size / 4 + 3);
    char          *txt, *hex;
    long           n;

    if (bin == NULL) {
        abort();
    }
    n = ca_b64url_decode(s, size, bin);
    if (n >= 0) {
        txt = malloc(4 * (((size_t) n + 2) / 3) + 1);
        FUZZ_CHECK(ca_b64url_encode(bin, (size_t) n, txt) == size
                   && memcmp(txt, s, size) == 0, "base64url round trip");
        free(txt);
    }
    free(bin);

    bin = malloc(3 * size / 4 + 1);
    n = ca_b64std_decode(s, size, bin);
    FUZZ_CHECK(n < 0 || (size % 4 == 0 && (size_t) n <= 3 * size / 4),
               "base64 length");
    free(bin);

    if (size <= 4096) {
        hex = malloc(2 * size + 1);
        bin = malloc(size + 1);
        ca_hex(data, size, hex);
        FUZZ_CHECK(ca_unhex(hex, bin, size) == 0
                   && (size == 0 || memcmp(bin, data, size) == 0),
                   "hex round trip");
        txt = fuzz_strdup(data, size);
        (void) ca_unhex(txt, bin, size / 2);
        free(txt);
        free(hex);
        free(bin);
    }
    return 0;
}
