/*
 * credit-policy diff OLD NEW: what a policy change discloses.  Per
 * category and level (masked, raw), each field of either file is at one
 * of three levels: withheld (drop, not listed, or the category or its raw
 * level gone), masked (mask, hash, bucket, year) or disclosed (keep).  A
 * field whose level rises is newly disclosed, one that falls from keep to
 * a treatment newly masked, one that falls to nothing newly withheld.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_tool.h"

enum { WITHHELD = 0, MASKED = 1, DISCLOSED = 2 };

static const ca_field *
find_field(const ca_category *c, const char *path)
{
    for (size_t i = 0; c != NULL && i < c->n_fields; i++) {
        if (strcmp(c->fields[i].path, path) == 0) {
            return &c->fields[i];
        }
    }
    return NULL;
}

/* The field's treatment at a level, or NULL when it is withheld. */
static const ca_treatment *
treatment(const ca_category *c, const char *path, int raw, int *level)
{
    const ca_field     *f = find_field(c, path);
    const ca_treatment *t;

    *level = WITHHELD;
    if (f == NULL || (raw && !c->raw_allowed)) {
        return NULL;
    }
    t = raw ? &f->raw : &f->masked;
    if (t->kind == CA_TREAT_DROP) {
        return NULL;
    }
    *level = t->kind == CA_TREAT_KEEP ? DISCLOSED : MASKED;
    return t;
}

static void
add(json_t *cat, const char *kind, const char *path, int raw,
    const ca_treatment *from, const ca_treatment *to)
{
    char    a[64] = "-", b[64] = "-";
    json_t *list = json_object_get(cat, kind);

    if (from != NULL) {
        ca_treatment_format(from, a, sizeof(a));
    }
    if (to != NULL) {
        ca_treatment_format(to, b, sizeof(b));
    }
    if (list == NULL) {
        list = json_array();
        json_object_set_new(cat, kind, list);
    }
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "field", path,
                                          "level", raw ? "raw" : "masked",
                                          "old", a, "new", b));
}

static void
compare_field(json_t *cat, const ca_category *o, const ca_category *n,
              const char *path)
{
    for (int raw = 0; raw <= 1; raw++) {
        int                 lo, ln;
        const ca_treatment *to = treatment(o, path, raw, &lo);
        const ca_treatment *tn = treatment(n, path, raw, &ln);
        char                a[64], b[64];

        if (ln > lo) {
            add(cat, "newly_disclosed", path, raw, to, tn);
        } else if (ln == MASKED && lo == DISCLOSED) {
            add(cat, "newly_masked", path, raw, to, tn);
        } else if (ln == WITHHELD && lo > WITHHELD) {
            add(cat, "newly_withheld", path, raw, to, tn);
        } else if (ln == MASKED && lo == MASKED) {
            ca_treatment_format(to, a, sizeof(a));
            ca_treatment_format(tn, b, sizeof(b));
            if (strcmp(a, b) != 0) {
                add(cat, "treatment_changed", path, raw, to, tn);
            }
        }
    }
}

/* The codes of b that a does not hold, into out. */
static void
missing_from(char **a, size_t na, char **b, size_t nb, json_t *out)
{
    for (size_t i = 0; i < nb; i++) {
        size_t j = 0;

        while (j < na && strcmp(a[j], b[i]) != 0) {
            j++;
        }
        if (j == na) {
            json_array_append_new(out, json_string(b[i]));
        }
    }
}

static json_t *
code_diff(char **a, size_t na, char **b, size_t nb)
{
    json_t *added = json_array(), *removed = json_array();

    missing_from(a, na, b, nb, added);
    missing_from(b, nb, a, na, removed);
    if (json_array_size(added) == 0 && json_array_size(removed) == 0) {
        json_decref(added);
        json_decref(removed);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "added", added, "removed", removed);
}

static json_t *
compare_category(const ca_category *o, const ca_category *n)
{
    json_t            *cat = json_object(), *d;
    const ca_category *any = n ? n : o;

    if (o == NULL || n == NULL) {
        json_object_set_new(cat, "category", json_string(o ? "removed"
                                                            : "added"));
    }
    if (o != NULL && n != NULL) {
        if (o->raw_allowed != n->raw_allowed) {
            json_object_set_new(cat, "raw_allowed",
                                json_boolean(n->raw_allowed));
        }
        if ((d = code_diff(o->purposes, o->n_purposes, n->purposes,
                           n->n_purposes)) != NULL)
        {
            json_object_set_new(cat, "purposes", d);
        }
        if ((d = code_diff(o->routes, o->n_routes, n->routes, n->n_routes))
            != NULL)
        {
            json_object_set_new(cat, "routes", d);
        }
    }
    for (size_t i = 0; o != NULL && i < o->n_fields; i++) {
        compare_field(cat, o, n, o->fields[i].path);
    }
    for (size_t i = 0; n != NULL && i < n->n_fields; i++) {
        if (find_field(o, n->fields[i].path) == NULL) {
            compare_field(cat, o, n, n->fields[i].path);
        }
    }
    (void) any;
    return cat;
}

static void
print_list(json_t *cat, const char *kind, const char *title)
{
    json_t *list = json_object_get(cat, kind), *e;
    size_t  i;

    json_array_foreach(list, i, e) {
        printf("  %-18s %-40s %-6s %s -> %s\n", i ? "" : title,
               json_string_value(json_object_get(e, "field")),
               json_string_value(json_object_get(e, "level")),
               json_string_value(json_object_get(e, "old")),
               json_string_value(json_object_get(e, "new")));
    }
}

static void
print_codes(json_t *cat, const char *kind)
{
    json_t *d = json_object_get(cat, kind), *e;
    size_t  i;

    json_array_foreach(json_object_get(d, "added"), i, e) {
        printf("  %s added: %s\n", kind, json_string_value(e));
    }
    json_array_foreach(json_object_get(d, "removed"), i, e) {
        printf("  %s removed: %s\n", kind, json_string_value(e));
    }
}

int
policy_diff(const char *old_file, const char *new_file, int as_json)
{
    ca_error   err = {{0}};
    ca_policy *o, *n;
    json_t    *cats, *out, *c;
    const char *name;
    int        changed = 0;

    if ((o = ca_policy_load(old_file, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return EXIT_USAGE;
    }
    if ((n = ca_policy_load(new_file, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        ca_policy_free(o);
        return EXIT_USAGE;
    }
    cats = json_object();
    for (size_t i = 0; i < o->n_categories; i++) {
        const ca_category *oc = &o->categories[i];

        json_object_set_new(cats, oc->name, compare_category(
                                oc, ca_policy_find_category(n, oc->name)));
    }
    for (size_t i = 0; i < n->n_categories; i++) {
        const ca_category *nc = &n->categories[i];

        if (ca_policy_find_category(o, nc->name) == NULL) {
            json_object_set_new(cats, nc->name,
                                compare_category(NULL, nc));
        }
    }
    /* unchanged categories say nothing */
    {
        void *it = json_object_iter(cats), *next;

        while (it != NULL) {
            next = json_object_iter_next(cats, it);
            if (json_object_size(json_object_iter_value(it)) == 0) {
                json_object_del(cats, json_object_iter_key(it));
            }
            it = next;
        }
    }
    changed = json_object_size(cats) > 0;
    out = json_pack("{s:s,s:s,s:s,s:s,s:o}", "old", o->file ? o->file : "",
                    "old_version", o->version ? o->version : "",
                    "new", n->file ? n->file : "",
                    "new_version", n->version ? n->version : "",
                    "categories", cats);
    if (as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        printf("policy %s (%s) -> %s (%s)\n", old_file,
               o->version ? o->version : "?", new_file,
               n->version ? n->version : "?");
        json_object_foreach(cats, name, c) {
            json_t *st = json_object_get(c, "category");

            printf("\ncategory %s%s%s\n", name, st ? ": " : "",
                   st ? json_string_value(st) : "");
            if (json_object_get(c, "raw_allowed") != NULL) {
                printf("  raw detail         %s\n",
                       json_is_true(json_object_get(c, "raw_allowed"))
                       ? "now allowed" : "no longer allowed");
            }
            print_codes(c, "purposes");
            print_codes(c, "routes");
            print_list(c, "newly_disclosed", "newly disclosed");
            print_list(c, "newly_masked", "newly masked");
            print_list(c, "newly_withheld", "newly withheld");
            print_list(c, "treatment_changed", "treatment changed");
        }
        if (!changed) {
            printf("no change in what is disclosed\n");
        }
    }
    json_decref(out);
    ca_policy_free(o);
    ca_policy_free(n);
    return changed ? EXIT_FINDING : 0;
}
