/*
 * Names for people (policy.md §1, "Names"): a category and a purpose may
 * carry `name` and `name_zh`, which the gateway checks and then ignores;
 * the regulator's report and the tools print them beside the codes.
 *
 * A purpose is written as its code, or as an object {"code", "name",
 * "name_zh"}: the codes go through the same checks either way.
 */
#include <jansson.h>

#include "policy_int.h"

#define NAME_MAX_BYTES 256

/* member `member` of obj: optional; a one-line text for a table cell */
int
ca_pol_parse_name(ctx_t *cx, const char *jp, json_t *obj, const char *member,
                  char **out)
{
    json_t     *v = json_object_get(obj, member);
    char        sub[JPATH_MAX];
    const char *s;

    if (v == NULL) {
        return 0;
    }
    jp_key(sub, jp, member, strlen(member));
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > NAME_MAX_BYTES)
    {
        return fail(cx, sub, "must be a non-empty string of at most %d bytes",
                    NAME_MAX_BYTES);
    }
    /* jansson refuses a NUL inside a string (no JSON_ALLOW_NUL) */
    for (s = json_string_value(v); *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return fail(cx, sub, "control characters (a line break too) are"
                        " not allowed: a name is one line of a table");
        }
    }
    if ((*out = strdup(json_string_value(v))) == NULL) {
        return fail(cx, sub, "out of memory");
    }
    return 0;
}

/* "$.purposes": codes, or objects naming them; p->purposes gets the codes
 * and p->purpose_name{,_zh} the names (NULL where none). */
int
ca_pol_parse_purposes(ctx_t *cx, json_t *arr)
{
    static const char *const members[] = {"code", "name", "name_zh", NULL};
    ca_policy *p = cx->p;
    json_t    *codes, *v, *c;
    char       jp[JPATH_MAX], sub[JPATH_MAX];
    size_t     i;
    int        rc;

    if (!json_is_array(arr)) {
        return ca_pol_parse_codes(cx, "$.purposes", arr, &p->purposes,
                                  &p->n_purposes, NULL, 0);
    }
    if ((codes = json_array()) == NULL) {
        return fail(cx, "$.purposes", "out of memory");
    }
    json_array_foreach(arr, i, v) {
        c = v;
        if (json_is_object(v)) {
            jp_idx(jp, "$.purposes", i);
            if (ca_pol_only_members(cx, jp, v, members) != 0) {
                json_decref(codes);
                return -1;
            }
            c = json_object_get(v, "code");
            if (!json_is_string(c)) {
                jp_key(sub, jp, "code", 4);
                json_decref(codes);
                return fail(cx, sub, c == NULL ? "required: the purpose's code"
                            : "must be 1-64 characters of [A-Za-z0-9._-]");
            }
        }
        json_array_append(codes, c);
    }
    rc = ca_pol_parse_codes(cx, "$.purposes", codes, &p->purposes,
                            &p->n_purposes, NULL, 0);
    json_decref(codes);
    if (rc != 0) {
        return -1;
    }
    p->purpose_name = calloc(p->n_purposes, sizeof(char *));
    p->purpose_name_zh = calloc(p->n_purposes, sizeof(char *));
    if (p->purpose_name == NULL || p->purpose_name_zh == NULL) {
        return fail(cx, "$.purposes", "out of memory");
    }
    json_array_foreach(arr, i, v) {
        if (json_is_object(v)) {
            jp_idx(jp, "$.purposes", i);
            if (ca_pol_parse_name(cx, jp, v, "name", &p->purpose_name[i]) != 0
                || ca_pol_parse_name(cx, jp, v, "name_zh",
                                     &p->purpose_name_zh[i]) != 0)
            {
                return -1;
            }
        }
    }
    return 0;
}

void
ca_pol_free_names(ca_policy *p)
{
    for (size_t i = 0; i < p->n_purposes; i++) {
        if (p->purpose_name != NULL) {
            free(p->purpose_name[i]);
        }
        if (p->purpose_name_zh != NULL) {
            free(p->purpose_name_zh[i]);
        }
    }
    free(p->purpose_name);
    free(p->purpose_name_zh);
    for (size_t i = 0; i < p->n_categories; i++) {
        free(p->categories[i].label);
        free(p->categories[i].label_zh);
    }
}
