/*
 * What `credit-policy check --strict` warns about: the rules of the
 * policy guide (docs/policy-guide.md §6) that the loader cannot make
 * errors, because the guide itself makes deliberate exceptions to them
 * (a legal representative's name is public on the business licence) or
 * because they need another file (the policy being replaced).
 */
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"
#include "policylint.h"

const char *const ca_lint_rules[] = {
    "version-unchanged", "personal-raw-keep", "personal-verify",
    "verify-unclassified", "verify-bisect", "masked-eq",
    "verify-no-selector", NULL
};

typedef struct {
    ca_lint_fn fn;
    void      *ctx;
    size_t     n;
} lint_ctx;

static void __attribute__((format(printf, 6, 7)))
warn(lint_ctx *lc, const char *rule, const ca_category *c, const char *path,
     const char *jpath, const char *fmt, ...)
{
    ca_lint w;
    va_list ap;

    memset(&w, 0, sizeof(w));
    w.rule = rule;
    w.category = c ? c->name : NULL;
    w.path = path;
    snprintf(w.jpath, sizeof(w.jpath), "%s", jpath);
    va_start(ap, fmt);
    vsnprintf(w.text, sizeof(w.text), fmt, ap);
    va_end(ap);
    lc->n++;
    lc->fn(lc->ctx, &w);
}

/* $.categories.NAME.MEMBER["path"] */
static void
member_jpath(char *out, const ca_category *c, const char *member,
             const char *path)
{
    char cjp[JPATH_MAX], mjp[JPATH_MAX];

    jp_key(cjp, "$.categories", c->name, strlen(c->name));
    jp_key(mjp, cjp, member, strlen(member));
    jp_key(out, mjp, path, strlen(path));
}

/* Does some level send the value as it is? */
static int
sent_as_is(const ca_category *c, const ca_field *f)
{
    return f->masked.kind == CA_TREAT_KEEP
           || (c->raw_allowed && f->raw.kind == CA_TREAT_KEEP);
}

static unsigned
count_ops(unsigned ops)
{
    unsigned n = 0;

    for (; ops; ops &= ops - 1) {
        n++;
    }
    return n;
}

/*
 * Can a check select an element of the array that prefix ("annual[]")
 * ends with?  A bare [] is refused in a check, and a selector member must
 * be disclosed as it is at the masked level (checks.c).
 */
static int
selectable(const ca_category *c, const char *prefix)
{
    size_t          plen = strlen(prefix);
    const ca_field *g = ca_category_field_at(c, prefix);

    if (g != NULL) {
        /* the element is kept, or masked or dropped, whole */
        return g->masked.kind == CA_TREAT_KEEP;
    }
    for (size_t i = 0; i < c->n_fields; i++) {
        const ca_field *f = &c->fields[i];
        if (f->masked.kind == CA_TREAT_KEEP
            && strncmp(f->path, prefix, plen) == 0 && f->path[plen] == '.'
            && strpbrk(f->path + plen + 1, ".[") == NULL) {
            return 1;
        }
    }
    return 0;
}

static void
lint_selectors(lint_ctx *lc, const ca_category *c, const ca_verify_rule *r,
               const char *jp)
{
    char prefix[CA_PATH_MAX + 1];

    for (const char *b = strchr(r->path, '['); b; b = strchr(b + 2, '[')) {
        size_t n = (size_t) (b - r->path) + 2;
        memcpy(prefix, r->path, n);
        prefix[n] = '\0';
        if (!selectable(c, prefix)) {
            warn(lc, "verify-no-selector", c, r->path, jp,
                 "no check can use this rule: a check must select an"
                 " element of %s with [k=v], and no member of it is"
                 " disclosed as it is to select with (policy guide"
                 " §2.4)", prefix);
            return;
        }
    }
}

static void
lint_verify(lint_ctx *lc, const ca_category *c, const ca_verify_rule *r)
{
    char            jp[JPATH_MAX], ops[64], tr[64];
    const ca_field *g = ca_category_field_at(c, r->path);

    member_jpath(jp, c, "verify", r->path);
    ca_ops_format(r->ops, ops, sizeof(ops));
    if (g == NULL) {
        warn(lc, "verify-unclassified", c, r->path, jp,
             "verifiable (%s) but not listed in fields, so its class is"
             " unknown and the rules on personal data cannot apply: list it"
             " with its class (\"drop\" if it must not be sent)", ops);
    } else if (g->cls == CA_CLASS_PERSONAL) {
        warn(lc, "personal-verify", c, r->path, jp,
             "personal field verifiable (%s): the consent is the"
             " enterprise's, not the person's, and eq on a masked"
             " identifier recovers it by trying what the mask hides (policy"
             " guide §2.3, §2.4)", ops);
    } else if (!sent_as_is(c, g)) {
        ca_treatment_format(&g->masked, tr, sizeof(tr));
        if (count_ops(r->ops) > 1) {
            warn(lc, "verify-bisect", c, r->path, jp,
                 "%u operators (%s) on a value no level sends as it is"
                 " (%s): each answer narrows it down; allow only the"
                 " operator of the bank's question (policy guide §2.4)",
                 count_ops(r->ops), ops, tr);
        }
        if ((r->ops & (CA_OP_EQ | CA_OP_NE))
            && g->masked.kind == CA_TREAT_MASK) {
            warn(lc, "masked-eq", c, r->path, jp,
                 "eq/ne on a value sent as %s: a bank can try the few"
                 " characters the mask hides (policy guide §5 point 4)",
                 tr);
        }
    }
    lint_selectors(lc, c, r, jp);
}

size_t
ca_policy_lint(const ca_policy *p, const ca_policy *previous,
               ca_lint_fn fn, void *ctx)
{
    lint_ctx lc = {fn, ctx, 0};
    char     jp[JPATH_MAX];

    if (previous != NULL && strcmp(previous->sha256, p->sha256) != 0
        && strcmp(previous->version, p->version) == 0) {
        warn(&lc, "version-unchanged", NULL, NULL, "$.version",
             "\"%s\" is also the version of %s, which differs: every audit"
             " decision records the version, so the two could not be told"
             " apart (policy guide §5 point 6)", p->version,
             previous->file);
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        const ca_category *c = &p->categories[i];

        for (size_t j = 0; j < c->n_fields; j++) {
            const ca_field *f = &c->fields[j];
            if (f->cls == CA_CLASS_PERSONAL && c->raw_allowed
                && f->raw.kind == CA_TREAT_KEEP) {
                char fjp[JPATH_MAX];
                member_jpath(fjp, c, "fields", f->path);
                jp_key(jp, fjp, "raw", 3);
                warn(&lc, "personal-raw-keep", c, f->path, jp,
                     "personal field sent as it is at the raw level: the"
                     " enterprise's consent cannot stand for the person's"
                     " (policy guide §2.3, §5 point 2)");
            }
        }
        for (size_t j = 0; j < c->n_verify; j++) {
            lint_verify(&lc, c, &c->verify[j]);
        }
    }
    return lc.n;
}
