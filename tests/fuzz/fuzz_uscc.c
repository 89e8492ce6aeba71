/*
 * Identifiers in request paths and audit text: the USCC check character
 * (lib/core/uscc.c), route matching against the shipped policy (lib/policy/policyroute.c:
 * the {uscc} a matching route yields is a valid USCC) and the personal-
 * identifier spotter of the audit trail (lib/core/pii.c).  Input: any bytes.
 */
#include "fuzz.h"
#include "core/pii.h"
#include "core/uscc.h"
#include "core/core_testing.h"

static ca_policy *shipped;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    shipped = fuzz_policy("policies/platform-policy.json");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char        *s = (const char *) data;
    char               u[CA_USCC_LEN + 1], c;
    const ca_category *cat = NULL;
    ca_route_result    r;

    if (ca_uscc_valid(s, size)) {
        FUZZ_CHECK(size == CA_USCC_LEN
                   && ca_uscc_check_char(s) == s[CA_USCC_LEN - 1],
                   "valid without its check character");
    }
    if (size >= CA_USCC_LEN - 1) {
        c = ca_uscc_check_char(s);
        if (c != 0) {
            memcpy(u, s, CA_USCC_LEN - 1);
            u[CA_USCC_LEN - 1] = c;
            FUZZ_CHECK(ca_uscc_valid(u, CA_USCC_LEN), "check character");
        }
    }

    memset(u, 0, sizeof(u));
    r = ca_policy_match_route(shipped, s, size, &cat, u);
    if (r == CA_ROUTE_MATCH) {
        FUZZ_CHECK(cat != NULL && ca_uscc_valid(u, strlen(u)),
                   "a route matched with USCC \"%s\"", u);
    }

    (void) ca_looks_personal(s, size);
    return 0;
}
