/*
 * What only a sample can tell about a policy: whether a path it keeps
 * names a whole object or array.  The policy guide (§2.2) asks for leaf
 * paths, since a kept object sends every member the platform adds later;
 * the policy alone does not say what shape a value has, so explain, which
 * has the sample, says it.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "policy/policy.h"
#include "policy_explain.h"

static int
is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Does the (grammar-checked) policy path reach an object or an array in
 * v?  "[]" walks every element. */
static int
reaches_container(json_t *v, const char *s)
{
    size_t  i, n;
    json_t *e;

    if (*s == '\0') {
        return json_is_object(v) || json_is_array(v);
    }
    if (s[0] == '[') {
        if (!json_is_array(v)) {
            return 0;
        }
        json_array_foreach(v, i, e) {
            if (reaches_container(e, s + 2)) {
                return 1;
            }
        }
        return 0;
    }
    if (s[0] == '.') {
        s++;
    }
    for (n = 0; is_name_char(s[n]); n++) {
    }
    if (!json_is_object(v) || (e = json_object_getn(v, s, n)) == NULL) {
        return 0;
    }
    return reaches_container(e, s + n);
}

void
explain_note_whole_values(const ca_category *c, int raw, json_t *resp,
                          json_t *notes)
{
    char note[CA_PATH_MAX + 256];

    for (size_t i = 0; i < c->n_fields; i++) {
        const ca_field *f = &c->fields[i];
        const ca_treatment *t = raw ? &f->raw : &f->masked;

        if (t->kind == CA_TREAT_KEEP && reaches_container(resp, f->path)) {
            snprintf(note, sizeof(note), "field %s keeps a whole object or"
                     " array: members the platform adds to it later will"
                     " be sent too; list its leaf paths (policy guide"
                     " §2.2)", f->path);
            json_array_append_new(notes, json_string(note));
        }
    }
}
