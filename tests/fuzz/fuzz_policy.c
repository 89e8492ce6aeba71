/*
 * The policy loader (lib/policy*.c), from text.  A loaded policy then
 * answers the questions the gateway asks it: routes (each route template
 * with a valid USCC matches its own category), verify rules, treatments.
 */
#include "fuzz.h"
#include "policy/policylint.h"

#define USCC "91350100M000100Y43"

/* The template with {uscc} replaced by a valid one. */
static void
route_example(const char *tpl, char *out, size_t len)
{
    const char *u = strstr(tpl, "{uscc}");

    if (u == NULL) {
        snprintf(out, len, "%s", tpl);
    } else {
        snprintf(out, len, "%.*s%s%s", (int) (u - tpl), tpl, USCC, u + 6);
    }
}

static void
on_lint(void *ctx, const ca_lint *w)
{
    (void) ctx;
    FUZZ_CHECK(w->rule != NULL && w->jpath[0] == '$', "lint %s", w->text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ca_error           err;
    ca_policy         *p;
    char               path[CA_PATH_MAX * 2 + 64], buf[64], uscc[19];
    const ca_category *cat;

    p = ca_policy_parse((const char *) data, size, "fuzz.json", &err);
    if (p == NULL) {
        FUZZ_CHECK(err.text[0] != '\0', "refused without a reason");
        return 0;
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        const ca_category *c = &p->categories[i];

        FUZZ_CHECK(ca_policy_find_category(p, c->name) == c, "category %s",
                   c->name);
        for (size_t j = 0; j < c->n_routes; j++) {
            route_example(c->routes[j], path, sizeof(path));
            if (strchr(path, '{') == NULL
                && ca_policy_match_route(p, path, strlen(path), &cat, uscc)
                   == CA_ROUTE_MATCH)
            {
                FUZZ_CHECK(cat != NULL, "a match without a category");
            }
        }
        for (size_t j = 0; j < c->n_fields; j++) {
            FUZZ_CHECK(ca_treatment_format(&c->fields[j].masked, buf,
                                           sizeof(buf)) >= 0, "format");
            (void) ca_treatment_format(&c->fields[j].raw, buf, sizeof(buf));
        }
        for (size_t j = 0; j < c->n_verify; j++) {
            FUZZ_CHECK(ca_category_verify_rule(c, c->verify[j].path) != NULL,
                       "verify rule %s not found", c->verify[j].path);
        }
        for (size_t j = 0; j < c->n_purposes; j++) {
            FUZZ_CHECK(ca_category_allows_purpose(c, c->purposes[j]),
                       "category %s refuses its own purpose", c->name);
        }
    }
    for (size_t j = 0; j < p->n_purposes; j++) {
        FUZZ_CHECK(ca_policy_knows_purpose(p, p->purposes[j]), "purpose");
    }
    /* the strict rules walk every path the loader accepted */
    (void) ca_policy_lint(p, p, on_lint, NULL);
    ca_policy_free(p);
    return 0;
}
