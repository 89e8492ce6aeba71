/*
 * ISO 8601 times as a regulator types them into the tools
 * (lib/core/isotime.c), in zones east and west of UTC, one with an offset
 * of seconds after 1970 (Africa/Monrovia, -00:44:30 until 1972) and UTC.
 * In each: a time that parses is one of the forms isotime.h documents
 * ("+08:" was read as "+08:00"), is written back (ca_time_format) and
 * that text parses to the same instant; the next month, day or instant is
 * not before it.  The input's first 8 bytes are also an instant in
 * milliseconds, any int64 (finding 9: INT64_MIN overflowed the writer):
 * what is written for it reads back to it, or is refused -- never read as
 * another instant -- and a four-digit year always reads back.
 */
#include "fuzz.h"

#include <regex.h>

#include "core/isotime.h"

/* isotime.h's forms ('t', 'z' and a decimal comma too) */
#define FORMS "^([0-9]{5,12}|[0-9]{4}-[0-9]{2}(-[0-9]{2}([Tt ][0-9]{2}:" \
              "[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?([Zz]|[-+][0-9]{2}"      \
              "(:?[0-9]{2})?)?)?)?)$"

static regex_t forms;

static const char *const zones[] = {
    "Asia/Shanghai", "America/New_York", "Africa/Monrovia", "UTC",
};

static void
set_zone(const char *z)
{
    char err[128];

    if (ca_time_set_zone(z, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_isotime: %s\n", err);
        abort();
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (regcomp(&forms, FORMS, REG_EXTENDED | REG_NOSUB) != 0) {
        abort();
    }
    set_zone(zones[0]);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *s = fuzz_strdup(data, size), err[256], text[64];
    int64_t       ms, again, raw = 0;
    ca_time_unit  unit;

    if (size >= 8) {
        memcpy(&raw, data, 8);
    }
    for (size_t z = 0; z < sizeof(zones) / sizeof(zones[0]); z++) {
        set_zone(zones[z]);
        if (ca_time_parse(s, &ms, &unit, err, sizeof(err)) == 0) {
            FUZZ_CHECK(regexec(&forms, s, 0, NULL, 0) == 0, "\"%s\" read,"
                       " not one of the forms", s);
            ca_time_format(ms, text, sizeof(text));
            FUZZ_CHECK(ca_time_parse(text, &again, NULL, err, sizeof(err))
                       == 0 && again == ms, "%s: \"%s\" -> %lld -> \"%s\""
                       " -> %s", zones[z], s, (long long) ms, text, err);
            FUZZ_CHECK(ca_time_next(ms, unit) >= ms, "next before %s",
                       text);
        } else {
            FUZZ_CHECK(err[0] != '\0', "refused without a reason");
        }

        ca_time_format(raw, text, sizeof(text));
        if (ca_time_parse(text, &again, NULL, err, sizeof(err)) == 0) {
            FUZZ_CHECK(again == raw, "%s: %lld written \"%s\", read %lld",
                       zones[z], (long long) raw, text, (long long) again);
        } else {
            FUZZ_CHECK(!(strlen(text) > 4 && text[0] >= '0'
                         && text[0] <= '9' && text[4] == '-'),
                       "%s: %lld written \"%s\", refused: %s", zones[z],
                       (long long) raw, text, err);
        }
    }
    free(s);
    return 0;
}
