/*
 * Verification bodies (lib/policy/checks.c): a bank's {"checks":[...]} against a
 * category of the shipped policies, evaluated on the demo platform's
 * record of that category.  Input: one byte choosing the category (as in
 * fuzz_filter.c), then the body.  An accepted body holds 1..32 checks and
 * evaluates to one result per check, in order.
 */
#include "fuzz.h"
#include "policy/checks.h"

#define RECORDS "demo/platform/api/v1/enterprises/91350100M000100Y43"

static fuzz_cats  cats;
static json_t    *docs[FUZZ_CATS_MAX];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char file[1024];

    fuzz_categories(&cats);
    for (size_t i = 0; i < cats.n; i++) {
        snprintf(file, sizeof(file), "%s/%s/%s", CA_FUZZ_ROOT, RECORDS,
                 cats.cat[i]->name);
        docs[i] = json_load_file(file, 0, NULL);
        if (docs[i] == NULL) {
            docs[i] = json_object();
        }
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t     k;
    ca_checks  cs;
    ca_reason  r;
    json_t    *res = NULL, *arr;
    char       detail[256];

    if (size < 1) {
        return 0;
    }
    k = (data[0] & 0x7f) % cats.n;
    memset(&cs, 0, sizeof(cs));
    r = ca_checks_parse((const char *) data + 1, size - 1, cats.cat[k], &cs,
                        detail, sizeof(detail));
    if (r != CA_OK) {
        return 0;
    }
    FUZZ_CHECK(cs.n >= 1 && cs.n <= CA_CHECKS_MAX, "%zu checks", cs.n);
    r = ca_checks_eval(&cs, docs[k], &res, detail, sizeof(detail));
    if (r == CA_OK) {
        arr = json_object_get(res, "results");
        FUZZ_CHECK(json_is_array(arr) && json_array_size(arr) == cs.n,
                   "one result per check");
    } else {
        FUZZ_CHECK(res == NULL, "results with a refusal");
    }
    json_decref(res);
    ca_checks_free(&cs);
    return 0;
}
