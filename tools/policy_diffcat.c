/*
 * credit-policy diff, one category: what a bank may receive (fields per
 * level) and what it may learn by verification (verify fields, their
 * operators, the budget).  Each field of either file is, per level
 * (masked, raw), withheld (drop, not listed, no such category or raw
 * level), masked (mask, hash, bucket, year) or disclosed (keep); a field
 * governed by an enclosing path ("a" for "a.b") takes that path's rule,
 * as the filter does.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "policy/policy.h"
#include "policy_diff.h"

enum { WITHHELD = 0, MASKED = 1, DISCLOSED = 2 };

#define TREAT_TEXT 256

/* The rule for path at a level, or NULL when it is withheld. */
static const ca_treatment *
treatment(const ca_category *c, const char *path, int raw, int *level)
{
    const ca_field     *f = c ? ca_category_field_at(c, path) : NULL;
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

static int
same_treatment(const ca_treatment *a, const ca_treatment *b)
{
    return a->kind == b->kind && a->a == b->a && a->b == b->b
           && a->width == b->width;
}

/* Between two treatments that both send something masked: another kind
 * tells something else (wider), a mask that keeps more characters or a
 * narrower bucket tells more. */
static diff_effect
treatment_effect(const ca_treatment *from, const ca_treatment *to)
{
    if (from->kind != to->kind) {
        return DIFF_WIDER;
    }
    if (to->kind == CA_TREAT_MASK) {
        return to->a > from->a || to->b > from->b ? DIFF_WIDER
                                                  : DIFF_NARROWER;
    }
    return to->width < from->width ? DIFF_WIDER : DIFF_NARROWER;
}

static void
add_field(json_t *cat, const char *kind, const char *path, int raw,
          const ca_treatment *from, const ca_treatment *to, diff_effect e,
          diff_tally *t)
{
    char a[TREAT_TEXT] = "-", b[TREAT_TEXT] = "-";

    if (from != NULL) {
        ca_treatment_format(from, a, sizeof(a));
    }
    if (to != NULL) {
        ca_treatment_format(to, b, sizeof(b));
    }
    diff_add(cat, kind, json_pack("{s:s,s:s,s:s,s:s}", "field", path,
                                  "level", raw ? "raw" : "masked",
                                  "old", a, "new", b), e, t);
}

static void
compare_field(json_t *cat, const ca_category *o, const ca_category *n,
              const char *path, diff_tally *t)
{
    for (int raw = 0; raw <= 1; raw++) {
        int                 lo, ln;
        const ca_treatment *to = treatment(o, path, raw, &lo);
        const ca_treatment *tn = treatment(n, path, raw, &ln);

        if (ln == DISCLOSED && lo < DISCLOSED) {
            add_field(cat, "newly_disclosed", path, raw, to, tn,
                      DIFF_WIDER, t);
        } else if (ln == MASKED && lo == WITHHELD) {
            add_field(cat, "newly_sent_masked", path, raw, to, tn,
                      DIFF_WIDER, t);
        } else if (ln == MASKED && lo == DISCLOSED) {
            add_field(cat, "newly_masked", path, raw, to, tn,
                      DIFF_NARROWER, t);
        } else if (ln == WITHHELD && lo > WITHHELD) {
            add_field(cat, "newly_withheld", path, raw, to, tn,
                      DIFF_NARROWER, t);
        } else if (ln == MASKED && lo == MASKED
                   && !same_treatment(to, tn)) {
            add_field(cat, "treatment_changed", path, raw, to, tn,
                      treatment_effect(to, tn), t);
        }
    }
}

/* A field listed in both files whose class changed: the rules on
 * personal data follow the class, what is sent does not. */
static void
compare_class(json_t *cat, const ca_category *o, const ca_category *n,
              diff_tally *t)
{
    for (size_t i = 0; o && n && i < n->n_fields; i++) {
        const ca_field *fo = ca_category_field_at(o, n->fields[i].path);
        const ca_field *fn = &n->fields[i];

        if (fo != NULL && strcmp(fo->path, fn->path) == 0
            && fo->cls != fn->cls) {
            diff_add(cat, "class_changed", json_pack(
                         "{s:s,s:s,s:s}", "field", fn->path,
                         "old", ca_class_name(fo->cls),
                         "new", ca_class_name(fn->cls)), DIFF_NOTE, t);
        }
    }
}

static unsigned
verify_ops(const ca_category *c, const char *path)
{
    const ca_verify_rule *r = c ? ca_category_verify_rule(c, path) : NULL;

    return r ? r->ops : 0;
}

/* One verify path: added, removed, or its operators changed (wider when
 * any operator is new). */
static void
compare_verify_path(json_t *cat, const ca_category *o, const ca_category *n,
                    const char *path, diff_tally *t)
{
    unsigned        oo = verify_ops(o, path), no = verify_ops(n, path);
    char            a[64], b[64];
    const char     *kind;
    const ca_field *f;
    json_t         *e;
    diff_effect     eff;

    if (oo == no) {
        return;
    }
    ca_ops_format(oo, a, sizeof(a));
    ca_ops_format(no, b, sizeof(b));
    kind = oo == 0 ? "verify_added" : no == 0 ? "verify_removed"
                                              : "verify_changed";
    eff = (no & ~oo) ? DIFF_WIDER : DIFF_NARROWER;
    e = json_pack("{s:s,s:s,s:s}", "field", path, "old", oo ? a : "-",
                  "new", no ? b : "-");
    /* what the officer must know of a newly verifiable field: whose data
     * it is (policy guide §2.4) */
    if (eff == DIFF_WIDER) {
        f = ca_category_field_at(n, path);
        json_object_set_new(e, "class", json_string(
                                f ? ca_class_name(f->cls) : "unlisted"));
    }
    diff_add(cat, kind, e, eff, t);
}

static void
compare_verify(json_t *cat, const ca_category *o, const ca_category *n,
               diff_tally *t)
{
    for (size_t i = 0; o != NULL && i < o->n_verify; i++) {
        compare_verify_path(cat, o, n, o->verify[i].path, t);
    }
    for (size_t i = 0; n != NULL && i < n->n_verify; i++) {
        if (verify_ops(o, n->verify[i].path) == 0) {
            compare_verify_path(cat, o, n, n->verify[i].path, t);
        }
    }
    /* an added or removed category shows its budget, for the record */
    if (o == NULL || n == NULL || o->verify_budget != n->verify_budget) {
        diff_effect e = o == NULL || n == NULL ? DIFF_NOTE
                        : n->verify_budget > o->verify_budget ? DIFF_WIDER
                        : DIFF_NARROWER;
        json_object_set_new(cat, "verify_budget", json_pack(
            "{s:o,s:o,s:s}",
            "old", o ? json_integer(o->verify_budget) : json_null(),
            "new", n ? json_integer(n->verify_budget) : json_null(),
            "effect", diff_effect_name(e)));
        if (e != DIFF_NOTE) {
            diff_count(t, e);
        }
    }
}

/* Fields in path order of the old file, then those only the new lists. */
static void
compare_fields(json_t *cat, const ca_category *o, const ca_category *n,
               diff_tally *t)
{
    for (size_t i = 0; o != NULL && i < o->n_fields; i++) {
        compare_field(cat, o, n, o->fields[i].path, t);
    }
    for (size_t i = 0; n != NULL && i < n->n_fields; i++) {
        int listed = 0;
        for (size_t j = 0; o != NULL && j < o->n_fields; j++) {
            listed |= strcmp(o->fields[j].path, n->fields[i].path) == 0;
        }
        if (!listed) {
            compare_field(cat, o, n, n->fields[i].path, t);
        }
    }
}

json_t *
diff_category(const ca_category *o, const ca_category *n, diff_tally *t)
{
    static char *none[1];
    json_t      *cat = json_object(), *d;
    const ca_category *any = n ? n : o;

    if (o == NULL || n == NULL) {
        json_object_set_new(cat, "category", json_string(o ? "removed"
                                                            : "added"));
    }
    if ((d = diff_text(o ? o->description : NULL,
                       n ? n->description : NULL, t)) != NULL) {
        json_object_set_new(cat, "description", d);
    }
    if ((d = diff_codes(o ? o->routes : none, o ? o->n_routes : 0,
                        n ? n->routes : none, n ? n->n_routes : 0,
                        DIFF_WIDER, DIFF_NARROWER, t)) != NULL) {
        json_object_set_new(cat, "routes", d);
    }
    if ((d = diff_codes(o ? o->purposes : none, o ? o->n_purposes : 0,
                        n ? n->purposes : none, n ? n->n_purposes : 0,
                        DIFF_WIDER, DIFF_NARROWER, t)) != NULL) {
        json_object_set_new(cat, "purposes", d);
    }
    if (o == NULL || n == NULL) {
        /* an added category's raw setting, whatever it is */
        json_object_set_new(cat, "raw_allowed",
                            json_boolean(any->raw_allowed));
    } else if (o->raw_allowed != n->raw_allowed) {
        json_object_set_new(cat, "raw_allowed",
                            json_boolean(n->raw_allowed));
        diff_count(t, n->raw_allowed ? DIFF_WIDER : DIFF_NARROWER);
    }
    compare_verify(cat, o, n, t);
    compare_fields(cat, o, n, t);
    compare_class(cat, o, n, t);
    return cat;
}
