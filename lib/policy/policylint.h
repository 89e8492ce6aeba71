/*
 * The policy guide's rules that a loadable policy may still break
 * (docs/policy-guide.md §6): what `credit-policy check --strict` warns
 * about.  The gateway never calls this; a valid policy loads whatever the
 * warnings say.
 */
#ifndef CA_POLICYLINT_H
#define CA_POLICYLINT_H

#include "policy.h"

typedef struct {
    const char *rule;           /* "personal-verify" */
    const char *category;       /* NULL for a rule on the whole policy */
    const char *path;           /* the field or verify path, or NULL */
    char        jpath[512];     /* where, as load errors say it */
    char        text[512];      /* why */
} ca_lint;

typedef void (*ca_lint_fn)(void *ctx, const ca_lint *w);

/* Every rule's name, NULL-terminated. */
extern const char *const ca_lint_rules[];

/*
 * Calls fn once per warning, in policy order.  previous: the policy this
 * one replaces (its version must differ), or NULL.  Returns how many.
 */
size_t ca_policy_lint(const ca_policy *p, const ca_policy *previous,
                      ca_lint_fn fn, void *ctx);

#endif
