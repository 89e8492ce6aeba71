/*
 * A change between two policies and what it does to what a bank can
 * receive or learn (policy_diff.h): the records that both the whole-file
 * comparison (policy_diff.c) and the category's (policy_diffcat.c) add
 * to, and their tally.
 */
#include <string.h>

#include <jansson.h>

#include "policy_diff.h"

const char *
diff_effect_name(diff_effect e)
{
    return e == DIFF_WIDER ? "wider" : e == DIFF_NARROWER ? "narrower"
                                                          : "note";
}

void
diff_count(diff_tally *t, diff_effect e)
{
    if (e == DIFF_WIDER) {
        t->wider++;
    } else if (e == DIFF_NARROWER) {
        t->narrower++;
    } else {
        t->notes++;
    }
}

void
diff_add(json_t *obj, const char *kind, json_t *entry, diff_effect e,
         diff_tally *t)
{
    json_t *list = json_object_get(obj, kind);

    if (list == NULL) {
        list = json_array();
        json_object_set_new(obj, kind, list);
    }
    json_object_set_new(entry, "effect", json_string(diff_effect_name(e)));
    json_array_append_new(list, entry);
    diff_count(t, e);
}

/* The codes of b that a does not hold, into out. */
static void
missing_from(char **a, size_t na, char **b, size_t nb, json_t *out,
             diff_effect e, diff_tally *t)
{
    for (size_t i = 0; i < nb; i++) {
        size_t j = 0;

        while (j < na && strcmp(a[j], b[i]) != 0) {
            j++;
        }
        if (j == na) {
            json_array_append_new(out, json_string(b[i]));
            diff_count(t, e);
        }
    }
}

json_t *
diff_codes(char **a, size_t na, char **b, size_t nb, diff_effect on_add,
           diff_effect on_remove, diff_tally *t)
{
    json_t *added = json_array(), *removed = json_array();

    missing_from(a, na, b, nb, added, on_add, t);
    missing_from(b, nb, a, na, removed, on_remove, t);
    if (json_array_size(added) == 0 && json_array_size(removed) == 0) {
        json_decref(added);
        json_decref(removed);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "added", added, "removed", removed);
}

json_t *
diff_text(const char *a, const char *b, diff_tally *t)
{
    if ((a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0)) {
        return NULL;
    }
    t->notes++;
    return json_pack("{s:s?,s:s?}", "old", a, "new", b);
}
