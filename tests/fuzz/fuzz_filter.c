/*
 * The response filter through its public API (lib/policy/filter.h), on every
 * category of the shipped policies, masked and raw.  Input: one byte
 * choosing the category (low 7 bits) and the level (high bit), then the
 * upstream body.  Beyond the sanitizers: a refused body yields no output,
 * an accepted one yields a report whose path lists can be built.
 */
#include "filter_input.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ca_category *c;
    ca_filter_opts     opts;
    ca_filter_report   rep;
    char              *out, *paths;
    size_t             out_len = 0;
    json_t            *doc, *applied;

    if (size < 1) {
        return 0;
    }
    c = filter_input(data[0], &opts);

    FUZZ_CHECK(ca_filter_report_init(&rep, c) == 0, "report_init");
    out = ca_filter_text(c, (const char *) data + 1, size - 1, &opts, &rep,
                         &out_len);
    if (out != NULL) {
        FUZZ_CHECK(out_len > 0 && out[0] == '{' && out[out_len - 1] == '}',
                   "output is not an object: %.*s", (int) out_len, out);
        for (int masked = 0; masked < 2; masked++) {
            paths = ca_filter_report_paths(&rep, c, masked);
            FUZZ_CHECK(paths != NULL, "report paths");
            free(paths);
        }
        free(out);
    }
    ca_filter_report_free(&rep);

    /* the tools' path: the same on a parsed document */
    doc = json_loadb((const char *) data + 1, size - 1, 0, NULL);
    if (doc != NULL) {
        FUZZ_CHECK(ca_filter_report_init(&rep, c) == 0, "report_init");
        applied = ca_filter_apply(c, doc, &opts, &rep);
        /* a document nested deeper than the filter goes is refused */
        FUZZ_CHECK(applied == NULL || (json_is_object(doc)
                                       && json_is_object(applied)),
                   "ca_filter_apply: an object comes only from an object");
        json_decref(applied);
        ca_filter_report_free(&rep);
        json_decref(doc);
    }
    return 0;
}
