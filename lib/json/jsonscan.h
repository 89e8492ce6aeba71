/*
 * A JSON scanner over bytes (engine-internal): validates as strictly as a
 * full parser (UTF-8, escapes, no \u0000, duplicate keys at any depth,
 * nesting, reals within a double's range) and either skips a value or
 * copies it compactly, without building anything.  The filter walks a
 * document with it; see filter.c.
 */
#ifndef CA_JSONSCAN_H
#define CA_JSONSCAN_H

#include <stddef.h>
#include <string.h>

#include "jsontoken.h"

#define CA_JS_DEPTH_ANY 2048        /* anywhere in the input, as jansson */

/* A growing output buffer (jsonout.c); err is set (and sticks) when
 * memory runs out. */
typedef struct {
    char   *s;
    size_t  len, cap;
    int     err;
} ca_jout;

CA_INTERNAL int ca_jout_grow(ca_jout *o, size_t need);

static inline void
ca_jout_put(ca_jout *o, const char *s, size_t n)
{
    if (o->len + n >= o->cap && ca_jout_grow(o, o->len + n + 1) != 0) {
        return;
    }
    ca_bs_copy(o->s + o->len, s, n);
    o->len += n;
}

static inline void
ca_jout_putc(ca_jout *o, char c)
{
    if (o->len + 1 >= o->cap && ca_jout_grow(o, o->len + 2) != 0) {
        return;
    }
    o->s[o->len++] = c;
}

/* UTF-8 bytes as a JSON string, quotes included. */
CA_INTERNAL void ca_jout_string(ca_jout *o, const char *s, size_t n);

/* n bytes alike: keys are short, a call to memcmp costs more than this. */
static inline int
ca_js_same(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

/* A key of an open object: in the input (p) or decoded in kbuf (off). */
typedef struct {
    const char *p;
    size_t      off, len;
} ca_jkey;

typedef struct {
    const char *p, *end;            /* cursor */
    int         err;                /* malformed, too deep, out of memory */
    int         copy_depth_max;     /* deepest copied value */
    ca_jout    *out;                /* while copying */
    const char *run;                /* start of the bytes not yet copied */
    ca_jkey    *keys;               /* keys of the open objects */
    size_t      nkeys, capkeys;
    char       *kbuf;               /* decoded keys and strings */
    size_t      klen, kcap;
} ca_jscan;

CA_INTERNAL void ca_js_free(ca_jscan *s);

static inline void
ca_js_ws(ca_jscan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r'
                             || *s->p == '\t')) {
        s->p++;
    }
}

/* The container ({ or [) at s->p: ca_js_value() without its scalar
 * case. */
CA_INTERNAL void ca_js_container(ca_jscan *s, int depth, ca_jout *copy);

/*
 * The value at s->p (after whitespace), validated; copied compactly to
 * `copy` unless NULL.  depth is its own nesting level; a copied value
 * nested deeper than s->copy_depth_max fails the document.  A scalar,
 * what most listed fields hold, is checked and copied here, inline.
 */
CA_ALWAYS_INLINE void
ca_js_value(ca_jscan *s, int depth, ca_jout *copy)
{
    const char *q;

    ca_js_ws(s);
    if (s->p < s->end && *s->p != '{' && *s->p != '[') {
        if ((q = ca_jt_scalar_end(s->p, s->end)) == NULL) {
            s->err = 1;
            return;
        }
        if (copy) {
            ca_jout_put(copy, s->p, (size_t) (q - s->p));
        }
        s->p = q;
        return;
    }
    ca_js_container(s, depth, copy);
}

/* The string at s->p, validated, decoded into kbuf at *off (klen grows:
 * the caller resets it). */
CA_INTERNAL void ca_js_string(ca_jscan *s, size_t *off, size_t *len);

/* The number at s->p, validated and described in *n. */
CA_INTERNAL void ca_js_number(ca_jscan *s, ca_decnum *n);

/* Consumes the opening bracket at s->p; 1 if the container is empty, its
 * closing bracket then consumed too. */
static inline int
ca_js_open(ca_jscan *s, char close)
{
    s->p++;
    ca_js_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 1;
    }
    return 0;
}

/* After an element: ',' (1: another follows) or `close` (0: done). */
static inline int
ca_js_more(ca_jscan *s, char close)
{
    ca_js_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        return 1;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    s->err = 1;
    return 0;
}

/* ca_js_key() for every case: escaped keys, the key list grown, faults. */
CA_INTERNAL void ca_js_key_full(ca_jscan *s, const char **raw,
                                size_t *rawlen, const char **key,
                                size_t *klen);

/*
 * `"key" :` at s->p: raw, rawlen the key as written; key, klen decoded
 * (valid until the scanner next decodes something).  The key is kept for
 * the duplicate check at ca_js_close_keys(), with the marks taken when the
 * object opened (s->nkeys, s->klen).  Inline for a plain key with room
 * in the list, as an object's keys mostly are.
 */
static inline void
ca_js_key(ca_jscan *s, const char **raw, size_t *rawlen, const char **key,
          size_t *klen)
{
    const char *p, *q;
    int         esc = 0;

    ca_js_ws(s);
    p = s->p;
    if (p < s->end && *p == '"' && s->nkeys < s->capkeys
        && (q = ca_jt_string_end(p + 1, s->end, &esc)) != NULL && !esc)
    {
        ca_jkey *k = &s->keys[s->nkeys++];

        k->p = *key = p + 1;
        k->len = *klen = (size_t) (q - p) - 2;
        *raw = p;
        *rawlen = (size_t) (q - p);
        while (q < s->end && ca_bs_is_ws(*q)) {
            q++;
        }
        s->p = q;
        if (q < s->end && *q == ':') {
            s->p++;
        } else {
            s->err = 1;
        }
        return;
    }
    ca_js_key_full(s, raw, rawlen, key, klen);
}

CA_INTERNAL void ca_js_close_keys(ca_jscan *s, size_t mark, size_t kmark);

#endif
