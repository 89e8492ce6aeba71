/*
 * credit-policy diff OLD NEW: what a policy change widens or narrows.
 * Every change is marked: wider (a bank can receive or learn more: a field
 * disclosed or sent masked where it was withheld, masking lifted or made
 * finer, raw detail allowed, a route or purpose added, a field made
 * verifiable, an operator added, a larger verification budget, token rules
 * loosened), narrower (the reverse) or a note (a description, a class, a
 * purpose no category uses).  Exit 1 when anything widens.  The per
 * category comparison is policy_diffcat.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"
#include "jws/jws.h"
#include "policy/policy.h"
#include "policy_diff.h"
#include "policy_tool.h"

/* ---- token rules ------------------------------------------------------ */

static void
algs_text(unsigned algs, char *out, size_t len)
{
    size_t n = 0;

    out[0] = '\0';
    for (unsigned a = CA_ALG_ES256; a <= CA_ALG_SM2; a <<= 1) {
        if ((algs & a) && n < len) {
            n += (size_t) snprintf(out + n, len - n, "%s%s", n ? " " : "",
                                   ca_alg_name((ca_alg) a));
        }
    }
}

static void
token_change(json_t *list, const char *rule, const char *a, const char *b,
             diff_effect e, diff_tally *t)
{
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "rule", rule,
                                          "old", a, "new", b, "effect",
                                          diff_effect_name(e)));
    diff_count(t, e);
}

/* A longer lifetime or leeway, a new algorithm, cnf no longer required:
 * a consent the old rules refused is now accepted. */
static json_t *
diff_token(const ca_token_rules *o, const ca_token_rules *n, diff_tally *t)
{
    json_t *list = json_array();
    char    a[64], b[64];

    if (o->algs != n->algs) {
        algs_text(o->algs, a, sizeof(a));
        algs_text(n->algs, b, sizeof(b));
        token_change(list, "algs", a, b, (n->algs & ~o->algs)
                     ? DIFF_WIDER : DIFF_NARROWER, t);
    }
    if (o->max_lifetime != n->max_lifetime) {
        snprintf(a, sizeof(a), "%lld", (long long) o->max_lifetime);
        snprintf(b, sizeof(b), "%lld", (long long) n->max_lifetime);
        token_change(list, "max_lifetime", a, b,
                     n->max_lifetime > o->max_lifetime ? DIFF_WIDER
                                                       : DIFF_NARROWER, t);
    }
    if (o->leeway != n->leeway) {
        snprintf(a, sizeof(a), "%lld", (long long) o->leeway);
        snprintf(b, sizeof(b), "%lld", (long long) n->leeway);
        token_change(list, "leeway", a, b, n->leeway > o->leeway
                     ? DIFF_WIDER : DIFF_NARROWER, t);
    }
    if (o->require_cnf != n->require_cnf) {
        token_change(list, "require_cnf", o->require_cnf ? "true" : "false",
                     n->require_cnf ? "true" : "false",
                     n->require_cnf ? DIFF_NARROWER : DIFF_WIDER, t);
    }
    return list;
}

/* ---- what check --strict says of NEW and not of OLD -------------------- */

static void
collect(void *ctx, const ca_lint *w)
{
    char key[1024];

    snprintf(key, sizeof(key), "%s:%s:%s", w->rule,
             w->category ? w->category : "", w->path ? w->path : "");
    json_array_append_new(ctx, json_pack("{s:s,s:s,s:s,s:s}", "rule",
                                         w->rule, "where", w->jpath, "why",
                                         w->text, "key", key));
}

static json_t *
new_warnings(const ca_policy *o, const ca_policy *n)
{
    json_t *old = json_array(), *new = json_array(), *out = json_array();
    json_t *e, *f;
    size_t  i, j;

    ca_policy_lint(o, NULL, collect, old);
    ca_policy_lint(n, NULL, collect, new);
    json_array_foreach(new, i, e) {
        int seen = 0;
        json_array_foreach(old, j, f) {
            seen |= json_equal(json_object_get(e, "key"),
                               json_object_get(f, "key"));
        }
        if (!seen) {
            json_object_del(e, "key");
            json_array_append(out, e);
        }
    }
    json_decref(old);
    json_decref(new);
    return out;
}

/* ---- the text form ---------------------------------------------------- */

static void
line(const char *effect, const char *title, const char *text)
{
    printf("  %-9s %-18s %s\n", effect, title, text);
}

/* A description, its continuation lines under its first. */
static void
print_description(const char *effect, const char *title, const char *s)
{
    char buf[128];

    if (s == NULL) {
        line(effect, title, "(none)");
        return;
    }
    for (int first = 1; *s; first = 0) {
        size_t n = strcspn(s, "\n");
        snprintf(buf, sizeof(buf), "%s%.*s", first ? "" : "  ", (int) n, s);
        line(first ? effect : "", first ? title : "", buf);
        s += n + (s[n] == '\n');
    }
}

/* The new description; a removed one is shown as it was. */
static void
print_text_change(json_t *obj)
{
    json_t     *d = json_object_get(obj, "description");
    const char *s = json_string_value(json_object_get(d, "new"));

    if (d == NULL) {
        return;
    }
    if (s != NULL) {
        print_description("note", "description", s);
    } else {
        print_description("note", "description was",
                          json_string_value(json_object_get(d, "old")));
    }
}

static void
print_codes(json_t *cat, const char *kind, const char *on_add,
            const char *on_remove)
{
    json_t *d = json_object_get(cat, kind), *e;
    size_t  i;
    char    title[32];

    snprintf(title, sizeof(title), "%s added", kind);
    json_array_foreach(json_object_get(d, "added"), i, e) {
        line(on_add, title, json_string_value(e));
    }
    snprintf(title, sizeof(title), "%s removed", kind);
    json_array_foreach(json_object_get(d, "removed"), i, e) {
        line(on_remove, title, json_string_value(e));
    }
}

static const char *
str(json_t *e, const char *key)
{
    return json_string_value(json_object_get(e, key));
}

/* Field lists: field, level, old -> new; verify lists: field: ops. */
static void
print_list(json_t *cat, const char *kind, const char *title)
{
    json_t *e;
    size_t  i;
    char    buf[1024];

    json_array_foreach(json_object_get(cat, kind), i, e) {
        const char *cls = str(e, "class");
        if (cls != NULL && strcmp(cls, "public") == 0) {
            cls = NULL;
        }
        if (strcmp(kind, "verify_changed") == 0) {
            snprintf(buf, sizeof(buf), "%s: %s -> %s%s%s%s", str(e, "field"),
                     str(e, "old"), str(e, "new"), cls ? " (" : "",
                     cls ? cls : "", cls ? ")" : "");
        } else if (strncmp(kind, "verify", 6) == 0) {
            snprintf(buf, sizeof(buf), "%s: %s%s%s%s", str(e, "field"),
                     str(e, strcmp(kind, "verify_added") ? "old" : "new"),
                     cls ? " (" : "", cls ? cls : "", cls ? ")" : "");
        } else if (strcmp(kind, "class_changed") == 0) {
            snprintf(buf, sizeof(buf), "%-40s %s -> %s", str(e, "field"),
                     str(e, "old"), str(e, "new"));
        } else {
            snprintf(buf, sizeof(buf), "%-40s %-6s %s -> %s",
                     str(e, "field"), str(e, "level"), str(e, "old"),
                     str(e, "new"));
        }
        line(str(e, "effect"), i ? "" : title, buf);
    }
}

static void
print_category(const char *name, json_t *c)
{
    json_t *st = json_object_get(c, "category"), *v;
    char    buf[64];

    printf("\ncategory %s%s%s\n", name, st ? ": " : "",
           st ? json_string_value(st) : "");
    print_text_change(c);
    print_codes(c, "routes", "wider", "narrower");
    print_codes(c, "purposes", "wider", "narrower");
    if ((v = json_object_get(c, "raw_allowed")) != NULL) {
        if (st != NULL) {
            line("", "raw detail", json_is_true(v) ? "allowed"
                                                   : "not allowed");
        } else {
            line(json_is_true(v) ? "wider" : "narrower", "raw detail",
                 json_is_true(v) ? "now allowed" : "no longer allowed");
        }
    }
    if ((v = json_object_get(c, "verify_budget")) != NULL) {
        json_t *o = json_object_get(v, "old"), *n = json_object_get(v, "new");
        if (json_is_integer(o) && json_is_integer(n)) {
            snprintf(buf, sizeof(buf), "%lld -> %lld checks per field per"
                     " consent", (long long) json_integer_value(o),
                     (long long) json_integer_value(n));
        } else {
            snprintf(buf, sizeof(buf), "%lld checks per field per consent",
                     (long long) json_integer_value(json_is_integer(o) ? o
                                                                       : n));
        }
        line(strcmp(str(v, "effect"), "note") ? str(v, "effect") : "",
             "verify budget", buf);
    }
    print_list(c, "verify_added", "verify added");
    print_list(c, "verify_changed", "verify ops");
    print_list(c, "verify_removed", "verify removed");
    print_list(c, "newly_disclosed", "newly disclosed");
    print_list(c, "newly_sent_masked", "newly sent masked");
    print_list(c, "treatment_changed", "treatment changed");
    print_list(c, "newly_masked", "newly masked");
    print_list(c, "newly_withheld", "newly withheld");
    print_list(c, "class_changed", "class changed");
}

static void
print_text(json_t *out, const diff_tally *t)
{
    json_t     *c, *e;
    const char *name;
    size_t      i;

    printf("policy %s (%s) -> %s (%s)\n", str(out, "old"),
           str(out, "old_version"), str(out, "new"), str(out, "new_version"));
    if (json_object_get(out, "description") || json_object_get(out, "purposes")
        || json_is_true(json_object_get(out, "version_unchanged"))) {
        printf("\npolicy\n");
        if (json_is_true(json_object_get(out, "version_unchanged"))) {
            line("note", "version", "unchanged, though the files differ"
                 " (the audit could not tell them apart)");
        }
        print_text_change(out);
        print_codes(out, "purposes", "note", "note");
    }
    if (json_array_size(json_object_get(out, "token")) > 0) {
        printf("\ntoken\n");
        json_array_foreach(json_object_get(out, "token"), i, e) {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s -> %s", str(e, "old"),
                     str(e, "new"));
            line(str(e, "effect"), str(e, "rule"), buf);
        }
    }
    json_object_foreach(json_object_get(out, "categories"), name, c) {
        print_category(name, c);
    }
    if (json_array_size(json_object_get(out, "strict_warnings")) > 0) {
        printf("\nnew warnings of check --strict\n");
        json_array_foreach(json_object_get(out, "strict_warnings"), i, e) {
            printf("  %s: %s [%s]\n", str(e, "where"), str(e, "why"),
                   str(e, "rule"));
        }
    }
    if (t->wider + t->narrower + t->notes == 0) {
        printf("no change in what is disclosed or verifiable\n");
    } else {
        printf("\n%zu wider, %zu narrower, %zu note%s%s\n", t->wider,
               t->narrower, t->notes, t->notes == 1 ? "" : "s",
               t->wider ? ": this change widens what banks can receive"
                          " or learn" : "");
    }
}

/* ---- both files ------------------------------------------------------- */

static json_t *
diff_categories(const ca_policy *o, const ca_policy *n, diff_tally *t)
{
    json_t *cats = json_object(), *c;

    for (size_t i = 0; i < o->n_categories; i++) {
        const ca_category *oc = &o->categories[i];

        c = diff_category(oc, ca_policy_find_category(n, oc->name), t);
        json_object_set_new(cats, oc->name, c);
    }
    for (size_t i = 0; i < n->n_categories; i++) {
        const ca_category *nc = &n->categories[i];

        if (ca_policy_find_category(o, nc->name) == NULL) {
            json_object_set_new(cats, nc->name, diff_category(NULL, nc, t));
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
    return cats;
}

int
policy_diff(const char *old_file, const char *new_file, int as_json)
{
    ca_error    err = {{0}};
    ca_policy  *o, *n;
    json_t     *out, *d;
    diff_tally  t = {0, 0, 0};

    if ((o = ca_policy_load(old_file, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return EXIT_USAGE;
    }
    if ((n = ca_policy_load(new_file, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        ca_policy_free(o);
        return EXIT_USAGE;
    }
    out = json_pack("{s:s,s:s,s:s,s:s}", "old", old_file,
                    "old_version", o->version, "new", new_file,
                    "new_version", n->version);
    if (strcmp(o->version, n->version) == 0
        && strcmp(o->sha256, n->sha256) != 0) {
        json_object_set_new(out, "version_unchanged", json_true());
        t.notes++;
    }
    if ((d = diff_text(o->description, n->description, &t)) != NULL) {
        json_object_set_new(out, "description", d);
    }
    /* a purpose no category names changes nothing a bank can do; one a
     * category names shows under that category */
    if ((d = diff_codes(o->purposes, o->n_purposes, n->purposes,
                        n->n_purposes, DIFF_NOTE, DIFF_NOTE, &t)) != NULL) {
        json_object_set_new(out, "purposes", d);
    }
    json_object_set_new(out, "token", diff_token(&o->token, &n->token, &t));
    json_object_set_new(out, "categories", diff_categories(o, n, &t));
    json_object_set_new(out, "strict_warnings", new_warnings(o, n));
    json_object_set_new(out, "wider", json_integer((json_int_t) t.wider));
    json_object_set_new(out, "narrower",
                        json_integer((json_int_t) t.narrower));
    json_object_set_new(out, "notes", json_integer((json_int_t) t.notes));
    if (as_json) {
        json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        print_text(out, &t);
    }
    json_decref(out);
    ca_policy_free(o);
    ca_policy_free(n);
    return t.wider > 0 ? EXIT_FINDING : 0;
}
