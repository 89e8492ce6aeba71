/*
 * What the policy loader's files share (lib/policy/policy.c, policyparse.c,
 * policycat.c, policynames.c, policytree.c, policyroute.c); engine-internal,
 * not part of policy.h.
 */
#ifndef CA_POLICY_INT_H
#define CA_POLICY_INT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "policy.h"

#define JPATH_MAX          512

typedef struct {
    const char *file;
    ca_error   *err;
    ca_policy  *p;
} ctx_t;

static inline int __attribute__((format(printf, 3, 4)))
fail(ctx_t *cx, const char *jp, const char *fmt, ...)
{
    char    reason[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    ca_error_set(cx->err, cx->file, jp, "%s", reason);
    return -1;
}

/* ---- JSON paths for error messages ------------------------------------ */

static inline int
is_ident(const char *k, size_t len)
{
    if (len == 0 || (k[0] >= '0' && k[0] <= '9')) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = k[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '_')) {
            return 0;
        }
    }
    return 1;
}

/* parent.key, or parent["key"] when key is not an identifier. */
static inline void
jp_key(char *out, const char *parent, const char *key, size_t klen)
{
    size_t n;

    if (is_ident(key, klen)) {
        if (snprintf(out, JPATH_MAX, "%s.%.*s", parent, (int) klen, key)
            >= JPATH_MAX) {
            out[JPATH_MAX - 1] = '\0';
        }
        return;
    }
    n = (size_t) snprintf(out, JPATH_MAX, "%s[\"", parent);
    if (n + 8 >= JPATH_MAX) {
        out[JPATH_MAX - 1] = '\0';
        return;
    }
    for (size_t i = 0; i < klen && n + 8 < JPATH_MAX; i++) {
        unsigned char c = (unsigned char) key[i];
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char) c;
        } else if (c < 0x20 || c == 0x7f) {
            n += (size_t) snprintf(out + n, JPATH_MAX - n, "\\u%04x", c);
        } else {
            out[n++] = (char) c;
        }
    }
    snprintf(out + n, JPATH_MAX - n, "\"]");
}

static inline void
jp_idx(char *out, const char *parent, size_t i)
{
    /* A truncated path is still a useful prefix; the length is checked
     * only to tell the compiler that truncation was considered. */
    if (snprintf(out, JPATH_MAX, "%s[%zu]", parent, i) >= JPATH_MAX) {
        out[JPATH_MAX - 1] = '\0';
    }
}

static inline int
key_eq(const char *k, size_t klen, const char *name)
{
    return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

static inline char *
dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* policyparse.c */
CA_INTERNAL int ca_pol_printable_text(json_t *v, int newlines);
CA_INTERNAL int ca_pol_is_code(const char *s, size_t len);
CA_INTERNAL int ca_pol_find_str(char **list, size_t n, const char *s);
CA_INTERNAL int ca_pol_only_members(ctx_t *cx, const char *jp, json_t *obj,
                                    const char *const *names);
CA_INTERNAL int ca_pol_parse_description(ctx_t *cx, const char *jp,
                                         json_t *v, char **out);
CA_INTERNAL int ca_pol_parse_codes(ctx_t *cx, const char *jp, json_t *arr,
                                   char ***out, size_t *n, char **within,
                                   size_t n_within);

/* policycat.c */
CA_INTERNAL int ca_pol_parse_category(ctx_t *cx, const char *jp,
                                      const char *name, json_t *obj,
                                      ca_category *c);

/* policynames.c */
CA_INTERNAL int ca_pol_parse_name(ctx_t *cx, const char *jp, json_t *obj,
                                  const char *member, char **out);
CA_INTERNAL int ca_pol_parse_purposes(ctx_t *cx, json_t *arr);
CA_INTERNAL void ca_pol_free_names(ca_policy *p);

/* policytree.c */
CA_INTERNAL int ca_pol_check_path(const char *s, size_t len,
                                  const char **why);
CA_INTERNAL int ca_pol_tree_add(ctx_t *cx, const char *jp, ca_node *root,
                                const ca_field *f);
CA_INTERNAL void ca_pol_tree_sort(ca_node *n);
CA_INTERNAL void ca_pol_node_free(ca_node *n);

/* policyroute.c */
CA_INTERNAL int ca_pol_check_route(ctx_t *cx, const char *jp, const char *s,
                                   size_t len);
CA_INTERNAL int ca_pol_build_routes(ctx_t *cx);

#endif
