/*
 * Route templates (contract §6): checked when the policy loads, compiled to
 * segments, refused when two could match the same request path, then
 * matched against every request path.
 */
#include <string.h>

#include "policy.h"
#include "policy_int.h"
#include "core/core.h"

#define ROUTE_MAX          1024
#define ROUTE_SEGS_MAX     32

struct ca_route_tpl {
    const ca_category *cat;
    const char        *tpl;
    size_t             n_segs;
    size_t             uscc_seg;
    struct {
        const char *s;
        size_t      len;
    } segs[ROUTE_SEGS_MAX];
};

/* A route template: /literal/.../{uscc}/..., checked segment by segment. */
int
ca_pol_check_route(ctx_t *cx, const char *jp, const char *s, size_t len)
{
    size_t i = 1, n_uscc = 0, n_segs = 0;

    if (len == 0 || s[0] != '/' || len > ROUTE_MAX || strlen(s) != len) {
        return fail(cx, jp, "a route template starts with '/' and is at"
                    " most %d characters", ROUTE_MAX);
    }
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != '/') {
            unsigned char ch = (unsigned char) s[i];
            if (ch == '?' || ch == '#') {
                return fail(cx, jp, "a route template has no query string"
                            " or fragment");
            }
            if (ch <= 0x20 || ch == 0x7f || ch == '%') {
                return fail(cx, jp, "a route template is written decoded,"
                            " without spaces, control characters or"
                            " percent escapes");
            }
            i++;
        }
        if (i == start) {
            return fail(cx, jp, "empty path segment (a doubled or trailing"
                        " '/')");
        }
        if (++n_segs > ROUTE_SEGS_MAX) {
            return fail(cx, jp, "more than %d segments", ROUTE_SEGS_MAX);
        }
        if (i - start == 6 && memcmp(s + start, "{uscc}", 6) == 0) {
            n_uscc++;
        } else if (memchr(s + start, '{', i - start)
                   || memchr(s + start, '}', i - start)) {
            return fail(cx, jp, "the only placeholder is a whole segment"
                        " {uscc}");
        } else if ((i - start == 1 && s[start] == '.')
                   || (i - start == 2 && s[start] == '.'
                       && s[start + 1] == '.')) {
            return fail(cx, jp, "'.' and '..' segments never match a"
                        " normalised request path");
        }
        i++;
    }
    if (n_uscc != 1) {
        return fail(cx, jp, "a route template has exactly one {uscc}"
                    " segment");
    }
    return 0;
}

/* ---- routes ----------------------------------------------------------- */

static void
route_compile(struct ca_route_tpl *t, const ca_category *c, const char *s)
{
    size_t i = 1, len = strlen(s);

    t->cat = c;
    t->tpl = s;
    t->n_segs = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && s[i] != '/') {
            i++;
        }
        t->segs[t->n_segs].s = s + start;
        t->segs[t->n_segs].len = i - start;
        if (i - start == 6 && memcmp(s + start, "{uscc}", 6) == 0) {
            t->uscc_seg = t->n_segs;
        }
        t->n_segs++;
        i++;
    }
}

/*
 * Two templates overlap when some path matches both: same length and at
 * every segment equal, or {uscc} facing a literal that is itself a valid
 * USCC.  Refusing that makes every request path belong to one category.
 */
static int
routes_overlap(const struct ca_route_tpl *a, const struct ca_route_tpl *b)
{
    if (a->n_segs != b->n_segs) {
        return 0;
    }
    for (size_t i = 0; i < a->n_segs; i++) {
        int au = i == a->uscc_seg, bu = i == b->uscc_seg;
        if (au && bu) {
            continue;
        }
        if (au || bu) {
            const char *lit = au ? b->segs[i].s : a->segs[i].s;
            size_t      ll = au ? b->segs[i].len : a->segs[i].len;
            if (!ca_uscc_valid(lit, ll)) {
                return 0;
            }
            continue;
        }
        if (a->segs[i].len != b->segs[i].len
            || memcmp(a->segs[i].s, b->segs[i].s, a->segs[i].len) != 0) {
            return 0;
        }
    }
    return 1;
}

int
ca_pol_build_routes(ctx_t *cx)
{
    ca_policy *p = cx->p;
    size_t     n = 0, k = 0;
    char       jp[JPATH_MAX], cjp[JPATH_MAX], rjp[JPATH_MAX];

    for (size_t i = 0; i < p->n_categories; i++) {
        n += p->categories[i].n_routes;
    }
    p->route_tpls = calloc(n, sizeof(struct ca_route_tpl));
    if (p->route_tpls == NULL) {
        return fail(cx, "$.categories", "out of memory");
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        ca_category *c = &p->categories[i];
        for (size_t j = 0; j < c->n_routes; j++, k++) {
            struct ca_route_tpl *t = &p->route_tpls[k];
            route_compile(t, c, c->routes[j]);
            p->n_route_tpls = k + 1;
            for (size_t m = 0; m < k; m++) {
                const struct ca_route_tpl *o = &p->route_tpls[m];
                if (!routes_overlap(t, o)) {
                    continue;
                }
                jp_key(cjp, "$.categories", c->name, strlen(c->name));
                jp_key(jp, cjp, "routes", 6);
                jp_idx(rjp, jp, j);
                if (strcmp(t->tpl, o->tpl) == 0) {
                    return fail(cx, rjp, "route \"%s\" is also listed in"
                                " category \"%s\"", t->tpl, o->cat->name);
                }
                return fail(cx, rjp, "route \"%s\" overlaps \"%s\" of"
                            " category \"%s\"", t->tpl, o->tpl,
                            o->cat->name);
            }
        }
    }
    return 0;
}

ca_route_result
ca_policy_match_route(const ca_policy *p, const char *path, size_t len,
                      const ca_category **cat, char uscc[19])
{
    ca_route_result best = CA_ROUTE_NONE;

    for (size_t r = 0; r < p->n_route_tpls; r++) {
        const struct ca_route_tpl *t = &p->route_tpls[r];
        const char *us = NULL;
        size_t      pos = 0, s;

        for (s = 0; s < t->n_segs; s++) {
            size_t start;
            if (pos >= len || path[pos] != '/') {
                break;
            }
            start = ++pos;
            while (pos < len && path[pos] != '/') {
                pos++;
            }
            if (s == t->uscc_seg) {
                if (pos == start) {
                    break;
                }
                us = path + start;
                continue;
            }
            if (pos - start != t->segs[s].len
                || memcmp(path + start, t->segs[s].s, t->segs[s].len) != 0) {
                break;
            }
        }
        if (s < t->n_segs || pos != len) {
            continue;
        }
        /* The {uscc} segment ends at the next '/'; a bad code here is
         * remembered, but a valid match elsewhere still wins. */
        {
            const char *end = memchr(us, '/', (size_t) (path + len - us));
            size_t      ulen = end ? (size_t) (end - us)
                                   : (size_t) (path + len - us);
            if (cat) {
                *cat = t->cat;
            }
            if (!ca_uscc_valid(us, ulen)) {
                best = CA_ROUTE_BAD_USCC;
                continue;
            }
            memcpy(uscc, us, CA_USCC_LEN);
            uscc[CA_USCC_LEN] = '\0';
            return CA_ROUTE_MATCH;
        }
    }
    return best;
}

