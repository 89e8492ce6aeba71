/*
 * ISO 8601 times as a regulator types them into the tools (lib/core/isotime.c),
 * in Asia/Shanghai.  A time that parses is written back (ca_time_format)
 * and that text parses to the same instant; the next month, day or instant
 * is not before it.
 */
#include "fuzz.h"
#include "core/isotime.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[128];

    if (ca_time_set_zone("Asia/Shanghai", err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_isotime: %s\n", err);
        abort();
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *s = fuzz_strdup(data, size), err[256], text[64];
    int64_t       ms, again;
    ca_time_unit  unit;

    if (ca_time_parse(s, &ms, &unit, err, sizeof(err)) == 0) {
        ca_time_format(ms, text, sizeof(text));
        FUZZ_CHECK(ca_time_parse(text, &again, NULL, err, sizeof(err)) == 0
                   && again == ms, "\"%s\" -> %lld -> \"%s\" -> %s", s,
                   (long long) ms, text, err);
        FUZZ_CHECK(ca_time_next(ms, unit) >= ms, "next before %s", text);
    } else {
        FUZZ_CHECK(err[0] != '\0', "refused without a reason");
    }
    free(s);
    return 0;
}
