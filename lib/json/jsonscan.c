/*
 * The JSON scanner: one pass over the bytes, nothing built.  Tokens are
 * validated where they stand (jsontoken.h); containers are walked here,
 * keys kept for the duplicate check; a copied value is written in runs of
 * input bytes, cut only where whitespace is left out.
 */
#define _GNU_SOURCE             /* qsort_r */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "numrun.h"

void
ca_js_free(ca_jscan *s)
{
    free(s->keys);
    free(s->kbuf);
    s->keys = NULL;
    s->kbuf = NULL;
}

static void
fail(ca_jscan *s)
{
    s->err = 1;
}

/* ---- strings ------------------------------------------------------------ */

/* Validates the string at s->p (on its quote); returns 1 if it holds an
 * escape.  s->p ends past the closing quote. */
static int
skip_string(ca_jscan *s)
{
    int         esc = 0;
    const char *p = ca_jt_string_end(s->p + 1, s->end, &esc);

    if (p == NULL) {
        fail(s);
        return 0;
    }
    s->p = p;
    return esc;
}

static size_t
utf8_put(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        d[0] = (char) cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char) (0xc0 | cp >> 6);
        d[1] = (char) (0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char) (0xe0 | cp >> 12);
        d[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char) (0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char) (0xf0 | cp >> 18);
    d[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char) (0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the body of a validated string (between its quotes) into kbuf:
 * never longer than it was written. */
static int
decode(ca_jscan *s, const char *p, const char *end, size_t *off, size_t *len)
{
    char *d;

    if (s->klen + (size_t) (end - p) >= s->kcap) {
        size_t cap = s->kcap ? s->kcap : 256;
        char  *b;
        while (cap <= s->klen + (size_t) (end - p)) {
            cap *= 2;
        }
        if ((b = realloc(s->kbuf, cap)) == NULL) {
            fail(s);
            return -1;
        }
        s->kbuf = b;
        s->kcap = cap;
    }
    d = s->kbuf + s->klen;
    while (p < end) {
        const char *q = memchr(p, '\\', (size_t) (end - p));
        size_t      n = (size_t) ((q ? q : end) - p);

        memcpy(d, p, n);
        d += n;
        p += n;
        if (q) {
            d += utf8_put(d, (unsigned long) ca_jt_escape(p + 1, end, &n));
            p += 1 + n;
        }
    }
    *off = s->klen;
    *len = (size_t) (d - (s->kbuf + s->klen));
    s->klen += *len;
    return 0;
}

void
ca_js_string(ca_jscan *s, size_t *off, size_t *len)
{
    const char *start = s->p;

    skip_string(s);
    if (!s->err) {
        decode(s, start + 1, s->p - 1, off, len);
    }
}

/* ---- keys --------------------------------------------------------------- */

static const char *
key_bytes(const ca_jscan *s, const ca_jkey *k)
{
    return k->p ? k->p : s->kbuf + k->off;
}

static int
keycmp(const void *a, const void *b, void *arg)
{
    const ca_jkey *x = a, *y = b;
    int            c = memcmp(key_bytes(arg, x), key_bytes(arg, y),
                              x->len < y->len ? x->len : y->len);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

void
ca_js_key_full(ca_jscan *s, const char **raw, size_t *rawlen,
               const char **key, size_t *klen)
{
    ca_jkey *k;
    int      esc;

    ca_js_ws(s);
    if (s->p >= s->end || *s->p != '"') {
        fail(s);
        return;
    }
    *raw = s->p;
    esc = skip_string(s);
    if (s->err) {
        return;
    }
    *rawlen = (size_t) (s->p - *raw);
    if (s->nkeys == s->capkeys) {
        size_t cap = s->capkeys ? 2 * s->capkeys : 64;
        if ((k = realloc(s->keys, cap * sizeof(ca_jkey))) == NULL) {
            fail(s);
            return;
        }
        s->keys = k;
        s->capkeys = cap;
    }
    k = &s->keys[s->nkeys++];
    if (esc) {
        k->p = NULL;
        if (decode(s, *raw + 1, s->p - 1, &k->off, &k->len) != 0) {
            return;
        }
        *key = s->kbuf + k->off;
    } else {
        k->p = *key = *raw + 1;
        k->len = *rawlen - 2;
    }
    *klen = k->len;
    ca_js_ws(s);
    if (s->p >= s->end || *s->p != ':') {
        fail(s);
        return;
    }
    s->p++;
}

/* Any key twice?  A document that says one thing twice says nothing
 * reliably (jansson refused those too). */
void
ca_js_close_keys(ca_jscan *s, size_t mark, size_t kmark)
{
    ca_jkey *k = s->keys + mark;
    size_t   n = s->nkeys - mark;

    if (n <= 16) {                  /* most objects: no sort needed */
        for (size_t i = 1; i < n && !s->err; i++) {
            for (size_t j = 0; j < i; j++) {
                if (k[i].len == k[j].len
                    && ca_js_same(key_bytes(s, &k[i]), key_bytes(s, &k[j]),
                                  k[i].len)) {
                    fail(s);
                    break;
                }
            }
        }
    } else {
        qsort_r(k, n, sizeof(ca_jkey), keycmp, s);
        for (size_t i = 1; i < n; i++) {
            if (keycmp(&k[i - 1], &k[i], s) == 0) {
                fail(s);
                break;
            }
        }
    }
    s->nkeys = mark;
    s->klen = kmark;
}

/* ---- values ------------------------------------------------------------- */

void
ca_js_number(ca_jscan *s, ca_decnum *n)
{
    const char *p = ca_dec_scan(s->p, s->end, n);

    /* below 10^308 without a look at the digits */
    if (p == NULL || (!n->is_int && !(n->exp <= 0 && n->ni <= 308)
                      && ca_dec_overflows(n))) {
        fail(s);
        return;
    }
    s->p = p;
}


/* Whitespace at p inside a copied value: the bytes before it are copied,
 * it is left out.  Returns the cursor past it. */
CA_ALWAYS_INLINE const char *
gap(ca_jscan *s, const char *p, const char *end)
{
    if (p < end && ca_bs_is_ws(*p)) {
        if (s->out) {
            ca_jout_put(s->out, s->run, (size_t) (p - s->run));
        }
        p = ca_bs_skip_ws(p, end);
        s->run = p;
    }
    return p;
}

/* The value at s->p.  The cursor lives in a local while the container's
 * elements are walked and goes back to s->p only around the calls that
 * need it (keys, nested containers). */
static void
value(ca_jscan *s, int depth)
{
    const char *p = s->p, *end = s->end;
    char        close;
    int         obj;
    size_t      mark = s->nkeys, kmark = s->klen;

    if (p >= end) {
        fail(s);
        return;
    }
    if (*p != '{' && *p != '[') {
        if ((p = ca_jt_scalar_end(p, end)) == NULL) {
            fail(s);
            return;
        }
        s->p = p;
        return;
    }
    close = *p == '{' ? '}' : ']';
    obj = *p == '{';
    if (depth > CA_JS_DEPTH_ANY || (s->out && depth > s->copy_depth_max)) {
        fail(s);
        return;
    }
    p = gap(s, p + 1, end);
    if (p < end && *p == close) {
        s->p = p + 1;
        return;
    }
    for (;;) {
        if (obj) {
            const char *raw, *key;
            size_t      rawlen, klen;
            if (p >= end || *p != '"') {
                fail(s);
                return;
            }
            s->p = p;
            ca_js_key(s, &raw, &rawlen, &key, &klen);
            if (s->err) {
                return;
            }
            p = s->p;
            /* the key and its colon were read as one: copy around any
             * whitespace between them */
            if (s->out && p - raw != (ptrdiff_t) rawlen + 1) {
                ca_jout_put(s->out, s->run, (size_t) (raw - s->run)
                                            + rawlen);
                ca_jout_putc(s->out, ':');
                s->run = p;
            }
            p = gap(s, p, end);
        }
        if (!obj && s->out == NULL && p < end
            && (*p == '-' || (*p >= '0' && *p <= '9')))
        {
            /* a withheld run of amounts, a block at a time */
            int         closed;
            const char *q = ca_numrun_skip(p, end, &closed);
            if (q != p) {
                p = q;
                if (closed) {
                    break;
                }
                continue;
            }
        }
        if (p < end && *p != '{' && *p != '[') {
            if ((p = ca_jt_scalar_end(p, end)) == NULL) {
                fail(s);
                return;
            }
        } else {
            s->p = p;
            value(s, depth + 1);
            if (s->err) {
                return;
            }
            p = s->p;
        }
        p = gap(s, p, end);
        if (p < end && *p == ',') {
            p = gap(s, p + 1, end);
            continue;
        }
        if (p < end && *p == close) {
            p++;
            break;
        }
        fail(s);
        return;
    }
    s->p = p;
    if (obj) {
        ca_js_close_keys(s, mark, kmark);
    }
}

void
ca_js_container(ca_jscan *s, int depth, ca_jout *copy)
{
    ca_js_ws(s);
    s->out = copy;
    s->run = s->p;
    value(s, depth);
    if (copy && !s->err) {
        ca_jout_put(copy, s->run, (size_t) (s->p - s->run));
    }
    s->out = NULL;
}
