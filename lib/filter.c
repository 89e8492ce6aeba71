/*
 * Least-necessary filtering (SPEC §6).  The output is written fresh as the
 * allowlist tree is walked alongside the document: nothing from the
 * upstream reaches the bank unless a listed path leads to it, so an
 * unexpected member, a changed shape or a value a treatment cannot handle
 * is withheld, never passed.
 */
#define _GNU_SOURCE             /* qsort_r */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "filter.h"

#define TRACE_PATH_MAX 1024

/* ---- numbers as text -------------------------------------------------- */

/* Decimal text of an integer; printf is most of a bucket's cost. */
static size_t
fmt_int(long long v, char *buf)
{
    char               tmp[24];
    size_t             n = 0, i = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long) v
                                 : (unsigned long long) v;

    do {
        tmp[n++] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        buf[i++] = '-';
    }
    while (n) {
        buf[i++] = tmp[--n];
    }
    buf[i] = '\0';
    return i;
}

/* Shortest %g text that reads back as the same double. */
static void
fmt_double(double x, char *buf, size_t len)
{
    x += 0.0;                   /* -0 prints as 0 */
    if (x == floor(x) && fabs(x) < 9.0e15) {
        fmt_int((long long) x, buf);    /* exact below 2^53 */
        return;
    }
    if (x == floor(x) && fabs(x) < 9.2e18) {
        snprintf(buf, len, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) {
            return;
        }
    }
}

/* The decimal text of a JSON number; 0 if v is not a number. */
static int
number_text(json_t *v, char *buf, size_t len)
{
    if (json_is_integer(v) && len >= 24) {
        fmt_int((long long) json_integer_value(v), buf);
        return 1;
    }
    if (json_is_real(v)) {
        fmt_double(json_real_value(v), buf, len);
        return 1;
    }
    return 0;
}

/* ---- mask ------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s, or 0 if it is not well formed
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t
utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0], cp;
    size_t   n;

    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
        return 0;
    }
    return n;
}

/*
 * Keeps `lead` leading and `trail` trailing code points and stars the rest.
 * A mask must hide something: when lead + trail would cover the whole
 * value, lead shrinks first, then trail, until one code point is hidden
 * (a one-character name becomes "*").  The empty string stays empty.
 */
char *
ca_mask_utf8(const char *s, size_t len, unsigned lead, unsigned trail)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t n = 0, i, k, hidden, lead_end = 0, trail_start = len;
    char  *out, *o;

    for (i = 0; i < len; i += k, n++) {
        if ((k = utf8_seq(u + i, len - i)) == 0) {
            return NULL;
        }
    }
    if (n > 0 && (size_t) lead + trail >= n) {
        size_t room = n - 1;
        if (trail > room) {
            lead = 0;
            trail = (unsigned) room;
        } else {
            lead = (unsigned) (room - trail);
        }
    }
    hidden = n - ((n == 0) ? 0 : (size_t) lead + trail);

    /* Byte offsets of the end of the lead and start of the trail. */
    for (i = 0, k = 0; i < len; i += utf8_seq(u + i, len - i), k++) {
        if (k == lead) {
            lead_end = i;
        }
        if (k == n - trail) {
            trail_start = i;
        }
    }
    if (lead == n) {
        lead_end = len;
    }

    out = malloc(lead_end + hidden + (len - trail_start) + 1);
    if (out == NULL) {
        return NULL;
    }
    o = out;
    memcpy(o, s, lead_end);
    o += lead_end;
    memset(o, '*', hidden);
    o += hidden;
    memcpy(o, s + trail_start, len - trail_start);
    o += len - trail_start;
    *o = '\0';
    return out;
}

static json_t *
treat_mask(const ca_treatment *t, json_t *v)
{
    char        num[64], *m;
    const char *s;
    size_t      len;
    json_t     *r;

    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else if (number_text(v, num, sizeof(num))) {
        s = num;
        len = strlen(num);
    } else {
        return NULL;
    }
    if ((m = ca_mask_utf8(s, len, t->a, t->b)) == NULL) {
        return NULL;
    }
    r = json_string(m);
    free(m);
    return r;
}

/* ---- hash ------------------------------------------------------------- */

static json_t *
treat_hash(json_t *v, const ca_filter_opts *opts)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen = 0;
    char          num[64], hex[2 * EVP_MAX_MD_SIZE + 1];
    const char   *s;
    size_t        len;

    /* Without a key the pseudonym would be a plain, guessable digest. */
    if (opts == NULL || opts->hash_key == NULL || opts->hash_key_len == 0) {
        return NULL;
    }
    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else if (number_text(v, num, sizeof(num))) {
        s = num;
        len = strlen(num);
    } else {
        return NULL;
    }
    if (HMAC(ca_md_sha256(), opts->hash_key, (int) opts->hash_key_len,
             (const unsigned char *) s, len, md, &mdlen) == NULL) {
        return NULL;
    }
    ca_hex(md, mdlen, hex);
    return json_string(hex);
}

/* ---- bucket ----------------------------------------------------------- */

static json_t *
bucket_text(const char *lo, const char *hi)
{
    char   buf[128];
    size_t a = strlen(lo), b = strlen(hi);

    if (a + b + 2 > sizeof(buf)) {
        return NULL;
    }
    memcpy(buf, lo, a);
    buf[a] = '-';
    memcpy(buf + a + 1, hi, b + 1);
    return json_stringn(buf, a + 1 + b);
}

/*
 * Integers with an integral width are bucketed exactly in 64 bits; the rest
 * in doubles.  When the width is lost in the value's precision (1e308 with
 * a width of 100000) there is no honest bucket: the value is withheld.
 */
static json_t *
treat_bucket(const ca_treatment *t, json_t *v)
{
    char   a[64], b[64];
    double x, q, lo, hi, w = t->width;

    if (json_is_integer(v) && w == floor(w) && w < 9.2e18) {
        json_int_t n = json_integer_value(v), width = (json_int_t) w;
        json_int_t r = n % width, l, h;
        if (r < 0) {
            r += width;
        }
        if (__builtin_sub_overflow(n, r, &l)
            || __builtin_add_overflow(l, width, &h)) {
            return NULL;
        }
        fmt_int((long long) l, a);
        fmt_int((long long) h, b);
        return bucket_text(a, b);
    }
    if (json_is_integer(v)) {
        x = (double) json_integer_value(v);
    } else if (json_is_real(v)) {
        x = json_real_value(v);
    } else {
        return NULL;
    }
    q = floor(x / w);
    if (!isfinite(q)) {
        return NULL;
    }
    /* x / w may round across an integer: step the bucket back or on. */
    lo = q * w;
    if (lo > x) {
        lo = (q - 1) * w;
    } else if (lo + w <= x) {
        lo = (q + 1) * w;
    }
    hi = lo + w;
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo) || lo > x || x >= hi) {
        return NULL;
    }
    fmt_double(lo, a, sizeof(a));
    fmt_double(hi, b, sizeof(b));
    return bucket_text(a, b);
}

/* ---- year ------------------------------------------------------------- */

static json_t *
treat_year(json_t *v)
{
    const char *s;
    size_t      len;
    char        y[5];

    if (!json_is_string(v)) {
        return NULL;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len < 4) {
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return NULL;
        }
    }
    if (len > 4 && strchr("-/.T ", s[4]) == NULL) {
        return NULL;
    }
    memcpy(y, s, 4);
    y[4] = '\0';
    return json_string(y);
}

json_t *
ca_treat_apply(const ca_treatment *t, json_t *value,
               const ca_filter_opts *opts)
{
    switch (t->kind) {
    case CA_TREAT_KEEP:   return json_deep_copy(value);
    case CA_TREAT_DROP:   return NULL;
    case CA_TREAT_MASK:   return treat_mask(t, value);
    case CA_TREAT_HASH:   return treat_hash(value, opts);
    case CA_TREAT_BUCKET: return treat_bucket(t, value);
    case CA_TREAT_YEAR:   return treat_year(value);
    }
    return NULL;
}

/* ---- the walk: one pass over the upstream's bytes --------------------- */

/*
 * The filter reads the upstream body once, as text, and writes the
 * disclosed document as it goes: a withheld member is validated and
 * skipped without building anything, a kept value is copied token by
 * token (numbers byte for byte: no re-formatting, no precision loss), and
 * only a value that takes a treatment is decoded, into a jansson scalar
 * for ca_treat_apply().  The input is checked as strictly as jansson would
 * (UTF-8, escapes, no \u0000, duplicate keys at any depth, nesting), so
 * nothing malformed is half-disclosed: any error fails the whole document.
 */

#define DEPTH_ANY 2048              /* anywhere in the input, as jansson */

typedef struct {
    size_t off, len;                /* a decoded key in w->kbuf */
} keyref_t;

typedef struct {
    const ca_filter_opts *opts;
    ca_filter_report     *rep;
    const ca_field       *fields;   /* to index the report flags */
    const char           *p, *end;  /* input cursor */
    int                   err;      /* malformed, too deep, out of memory */
    char                 *out;      /* output text */
    size_t                olen, ocap;
    keyref_t             *keys;     /* keys of the open objects */
    size_t                nkeys, capkeys;
    char                 *kbuf;     /* their decoded bytes */
    size_t                klen, kcap;
    /* The concrete path, maintained only when tracing. */
    char                  path[TRACE_PATH_MAX];
    size_t                plen;
} walk_t;

static int
grow(char **buf, size_t *cap, size_t need)
{
    size_t  n = *cap ? *cap : 256;
    char   *b;

    while (n < need) {
        n *= 2;
    }
    if (n == *cap) {
        return 0;
    }
    b = realloc(*buf, n);
    if (b == NULL) {
        return -1;
    }
    *buf = b;
    *cap = n;
    return 0;
}

static void
emit(walk_t *w, const char *s, size_t n)
{
    if (w->err || grow(&w->out, &w->ocap, w->olen + n + 1) != 0) {
        w->err = 1;
        return;
    }
    memcpy(w->out + w->olen, s, n);
    w->olen += n;
}

static void
emitc(walk_t *w, char c)
{
    emit(w, &c, 1);
}

/* A JSON string from UTF-8 bytes a treatment produced. */
static void
emit_string(walk_t *w, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    size_t            run = 0;

    emitc(w, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        emit(w, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char) c };
            emit(w, e, 2);
        } else {
            char e[6] = { '\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15] };
            emit(w, e, 6);
        }
    }
    emit(w, s + run, n - run);
    emitc(w, '"');
}

static void
ws(walk_t *w)
{
    while (w->p < w->end
           && (*w->p == ' ' || *w->p == '\t' || *w->p == '\n'
               || *w->p == '\r')) {
        w->p++;
    }
}

static int
hex4(const char *p)
{
    int v = 0;

    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static size_t
utf8_put(char *d, unsigned cp)
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

/*
 * A string at w->p: validated, and decoded into *dec (w->kbuf from offset
 * *doff, length *dlen) when dec is set.  w->p ends past the closing quote.
 */
static void
scan_string(walk_t *w, int decode, size_t *doff, size_t *dlen)
{
    const char *p = w->p + 1;
    size_t      start = w->klen;

    if (decode && grow(&w->kbuf, &w->kcap,
                       w->klen + (size_t) (w->end - w->p) + 4) != 0) {
        w->err = 1;
        return;
    }
    for (;;) {
        unsigned char c;
        const char   *run = p;

        /* the common case: a run of plain ASCII */
        while (p < w->end && (unsigned char) *p >= 0x20
               && (unsigned char) *p < 0x80 && *p != '"' && *p != '\\') {
            p++;
        }
        if (decode && p > run) {
            memcpy(w->kbuf + w->klen, run, (size_t) (p - run));
            w->klen += (size_t) (p - run);
        }
        if (p >= w->end) {
            w->err = 1;
            return;
        }
        c = (unsigned char) *p;
        if (c == '"') {
            break;
        }
        if (c < 0x20) {
            w->err = 1;
            return;
        }
        if (c == '\\') {
            unsigned cp;
            char     e;
            int      h;

            if (p + 1 >= w->end) {
                w->err = 1;
                return;
            }
            e = p[1];
            p += 2;
            switch (e) {
            case '"': cp = '"'; break;
            case '\\': cp = '\\'; break;
            case '/': cp = '/'; break;
            case 'b': cp = '\b'; break;
            case 'f': cp = '\f'; break;
            case 'n': cp = '\n'; break;
            case 'r': cp = '\r'; break;
            case 't': cp = '\t'; break;
            case 'u':
                if (w->end - p < 4 || (h = hex4(p)) < 0) {
                    w->err = 1;
                    return;
                }
                p += 4;
                cp = (unsigned) h;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    w->err = 1;         /* lone low surrogate */
                    return;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    int lo;
                    if (w->end - p < 6 || p[0] != '\\' || p[1] != 'u'
                        || (lo = hex4(p + 2)) < 0xdc00 || lo > 0xdfff) {
                        w->err = 1;
                        return;
                    }
                    p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10)
                         + ((unsigned) lo - 0xdc00);
                }
                if (cp == 0) {
                    w->err = 1;         /* as jansson without ALLOW_NUL */
                    return;
                }
                break;
            default:
                w->err = 1;
                return;
            }
            if (decode) {
                w->klen += utf8_put(w->kbuf + w->klen, cp);
            }
            continue;
        }
        {
            size_t n = utf8_seq((const unsigned char *) p,
                                (size_t) (w->end - p));
            if (n == 0) {
                w->err = 1;
                return;
            }
            if (decode) {
                memcpy(w->kbuf + w->klen, p, n);
                w->klen += n;
            }
            p += n;
        }
    }
    w->p = p + 1;
    if (decode) {
        *doff = start;
        *dlen = w->klen - start;
    }
}

/* A number at w->p, by the JSON grammar; *is_int when it has no fraction
 * or exponent.  Reals that overflow a double are refused, as jansson. */
static void
scan_number(walk_t *w, int *is_int)
{
    const char *p = w->p, *s = w->p;

    *is_int = 1;
    if (p < w->end && *p == '-') {
        p++;
    }
    if (p >= w->end) {
        w->err = 1;
        return;
    }
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < w->end && *p >= '0' && *p <= '9') p++;
    } else {
        w->err = 1;
        return;
    }
    if (p < w->end && *p == '.') {
        *is_int = 0;
        p++;
        if (p >= w->end || *p < '0' || *p > '9') {
            w->err = 1;
            return;
        }
        while (p < w->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < w->end && (*p == 'e' || *p == 'E')) {
        *is_int = 0;
        p++;
        if (p < w->end && (*p == '+' || *p == '-')) p++;
        if (p >= w->end || *p < '0' || *p > '9') {
            w->err = 1;
            return;
        }
        while (p < w->end && *p >= '0' && *p <= '9') p++;
    }
    if (!*is_int) {
        char   tmp[64];
        size_t n = (size_t) (p - s);
        if (n < sizeof(tmp)) {
            memcpy(tmp, s, n);
            tmp[n] = '\0';
            if (isinf(strtod(tmp, NULL))) {
                w->err = 1;
                return;
            }
        }
    }
    w->p = p;
}

/* Consumes an opening bracket (emitted when `copy`); 1 if the container
 * is empty, its closing bracket then consumed (and emitted) too. */
static int
open_empty(walk_t *w, char close, int copy)
{
    if (copy) {
        emitc(w, *w->p);
    }
    w->p++;
    ws(w);
    if (w->p < w->end && *w->p == close) {
        w->p++;
        if (copy) {
            emitc(w, close);
        }
        return 1;
    }
    return 0;
}

/* After an element: ',' (1: another follows) or `close` (0: done). */
static int
more(walk_t *w, char close)
{
    ws(w);
    if (w->p < w->end && *w->p == ',') {
        w->p++;
        return 1;
    }
    if (w->p < w->end && *w->p == close) {
        w->p++;
        return 0;
    }
    w->err = 1;
    return 0;
}

static int
keycmp(const void *a, const void *b, void *arg)
{
    const keyref_t *x = a, *y = b;
    const char     *kb = arg;
    int             c = memcmp(kb + x->off, kb + y->off,
                               x->len < y->len ? x->len : y->len);

    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* At an object's close: any key twice?  (jansson refused those too; a
 * document that says one thing twice says nothing reliably.) */
static void
keys_close(walk_t *w, size_t mark, size_t kmark)
{
    size_t n = w->nkeys - mark;

    if (n > 1) {
        qsort_r(w->keys + mark, n, sizeof(keyref_t), keycmp, w->kbuf);
        for (size_t i = mark + 1; i < w->nkeys; i++) {
            if (keycmp(&w->keys[i - 1], &w->keys[i], w->kbuf) == 0) {
                w->err = 1;
                break;
            }
        }
    }
    w->nkeys = mark;
    w->klen = kmark;
}

/* Reads `"key" :`; the decoded key stays in kbuf until the object closes. */
static void
member_key(walk_t *w, const char **raw, size_t *rawlen, size_t *off,
           size_t *len)
{
    ws(w);
    if (w->p >= w->end || *w->p != '"') {
        w->err = 1;
        return;
    }
    *raw = w->p;
    scan_string(w, 1, off, len);
    if (w->err) {
        return;
    }
    *rawlen = (size_t) (w->p - *raw);
    if (w->nkeys == w->capkeys) {
        size_t    cap = w->capkeys ? 2 * w->capkeys : 64;
        keyref_t *k = realloc(w->keys, cap * sizeof(keyref_t));
        if (k == NULL) {
            w->err = 1;
            return;
        }
        w->keys = k;
        w->capkeys = cap;
    }
    w->keys[w->nkeys].off = *off;
    w->keys[w->nkeys].len = *len;
    w->nkeys++;
    ws(w);
    if (w->p >= w->end || *w->p != ':') {
        w->err = 1;
        return;
    }
    w->p++;
}

/*
 * Validates the value at w->p and copies it compactly to the output when
 * `copy` is set; kept subtrees deeper than CA_FILTER_DEPTH_MAX fail the
 * document, as before.  depth is the value's own nesting level.
 */
static void
pass_value(walk_t *w, int depth, int copy)
{
    const char *s;
    int         is_int;

    ws(w);
    if (w->p >= w->end) {
        w->err = 1;
        return;
    }
    s = w->p;
    switch (*w->p) {
    case '{':
    case '[': {
        char   close = *w->p == '{' ? '}' : ']';
        int    obj = *w->p == '{';
        size_t mark = w->nkeys, kmark = w->klen, i = 0;

        if (depth > DEPTH_ANY || (copy && depth > CA_FILTER_DEPTH_MAX)) {
            w->err = 1;
            return;
        }
        if (open_empty(w, close, copy)) {
            return;
        }
        for (;; i++) {
            if (copy && i) {
                emitc(w, ',');
            }
            if (obj) {
                const char *raw;
                size_t      rawlen, off, len;
                member_key(w, &raw, &rawlen, &off, &len);
                if (w->err) {
                    return;
                }
                if (copy) {
                    emit(w, raw, rawlen);
                    emitc(w, ':');
                }
            }
            pass_value(w, depth + 1, copy);
            if (w->err || !more(w, close)) {
                break;
            }
        }
        if (w->err) {
            return;
        }
        if (obj) {
            keys_close(w, mark, kmark);
        }
        if (copy) {
            emitc(w, close);
        }
        return;
    }
    case '"':
        scan_string(w, 0, NULL, NULL);
        break;
    case 't':
    case 'f':
    case 'n': {
        const char *lit = *w->p == 't' ? "true"
                        : *w->p == 'f' ? "false" : "null";
        size_t      n = strlen(lit);
        if ((size_t) (w->end - w->p) < n || memcmp(w->p, lit, n) != 0) {
            w->err = 1;
            return;
        }
        w->p += n;
        break;
    }
    default:
        scan_number(w, &is_int);
        break;
    }
    if (copy && !w->err) {
        emit(w, s, (size_t) (w->p - s));
    }
}

/* Extends the traced document path; returns the length to pop back to. */
static size_t
path_push(walk_t *w, const char *fmt, ...)
{
    size_t  old = w->plen;
    int     n;
    va_list ap;

    if (w->opts->trace == NULL) {
        return old;
    }
    va_start(ap, fmt);
    n = vsnprintf(w->path + old, sizeof(w->path) - old, fmt, ap);
    va_end(ap);
    w->plen = n < 0 ? old : old + (size_t) n;
    if (w->plen >= sizeof(w->path)) {
        w->plen = sizeof(w->path) - 1;
    }
    return old;
}

static void
path_pop(walk_t *w, size_t old)
{
    w->plen = old;
    w->path[old] = '\0';
}

static void
trace(walk_t *w, const ca_field *f, const ca_treatment *t, ca_trace_what what)
{
    if (w->opts->trace) {
        w->opts->trace(w->opts->trace_ctx, w->path, f, t, what);
    }
}

static void
withhold(walk_t *w)
{
    if (w->rep) {
        w->rep->withheld++;
    }
}

static const ca_node *
find_child(const ca_node *n, const char *k, size_t klen)
{
    size_t lo = 0, hi = n->n_children;

    while (lo < hi) {
        size_t      mid = lo + (hi - lo) / 2;
        const char *ck = n->children[mid].key;
        size_t      cl = strlen(ck);
        int         c = memcmp(k, ck, klen < cl ? klen : cl);
        if (c == 0) {
            c = klen < cl ? -1 : klen > cl;
        }
        if (c == 0) {
            return &n->children[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* The scalar at w->p as a jansson value, for a treatment; NULL when it is
 * an object or array, or an integer beyond 64 bits (both withheld). */
static json_t *
scalar_value(walk_t *w)
{
    const char *s = w->p;
    size_t      kmark = w->klen, off, len;
    int         is_int;
    json_t     *v = NULL;

    switch (*w->p) {
    case '"':
        scan_string(w, 1, &off, &len);
        if (!w->err) {
            v = json_stringn(w->kbuf + off, len);
        }
        w->klen = kmark;
        return v;
    case 't':
    case 'f':
    case 'n':
        pass_value(w, 1, 0);
        return w->err ? NULL : *s == 't' ? json_true()
               : *s == 'f' ? json_false() : json_null();
    default:
        scan_number(w, &is_int);
        if (w->err) {
            return NULL;
        }
        {
            char   tmp[64];
            size_t n = (size_t) (w->p - s);
            if (n >= sizeof(tmp)) {
                return NULL;
            }
            memcpy(tmp, s, n);
            tmp[n] = '\0';
            if (is_int) {
                char     *e;
                long long x;
                errno = 0;
                x = strtoll(tmp, &e, 10);
                return errno ? NULL : json_integer((json_int_t) x);
            }
            return json_real(strtod(tmp, NULL));
        }
    }
}

static int node_value(walk_t *w, const ca_node *n, int depth);

/* A listed field: its treatment at this level.  1 if something was sent. */
static int
field_value(walk_t *w, const ca_field *f, int depth)
{
    const ca_treatment *t = w->opts->raw ? &f->raw : &f->masked;
    size_t              idx = (size_t) (f - w->fields);
    json_t             *v, *r;
    char               *text;

    ws(w);
    if (w->p >= w->end) {
        w->err = 1;
        return 0;
    }
    if (t->kind == CA_TREAT_DROP) {
        pass_value(w, depth, 0);
        trace(w, f, t, CA_TRACE_DROPPED);
        withhold(w);
        return 0;
    }
    if (t->kind == CA_TREAT_KEEP) {
        pass_value(w, depth, 1);
        if (w->err) {
            return 0;
        }
    } else {
        if (*w->p == '{' || *w->p == '[') {
            pass_value(w, depth, 0);
            trace(w, f, t, CA_TRACE_UNFIT);
            withhold(w);
            return 0;
        }
        v = scalar_value(w);
        if (w->err) {
            json_decref(v);
            return 0;
        }
        r = v ? ca_treat_apply(t, v, w->opts) : NULL;
        json_decref(v);
        if (r == NULL) {
            trace(w, f, t, CA_TRACE_UNFIT);
            withhold(w);
            return 0;
        }
        if (json_is_string(r)) {
            emit_string(w, json_string_value(r), json_string_length(r));
            json_decref(r);
        } else {
            text = json_dumps(r, JSON_ENCODE_ANY | JSON_COMPACT);
            json_decref(r);
            if (text == NULL) {
                w->err = 1;
                return 0;
            }
            emit(w, text, strlen(text));
            free(text);
        }
    }
    trace(w, f, t, CA_TRACE_SENT);
    if (w->rep && idx < w->rep->n_fields) {
        w->rep->disclosed[idx] = 1;
        if (t->kind != CA_TREAT_KEEP) {
            w->rep->masked[idx] = 1;
        }
    }
    return 1;
}

/* An object under an allowlist node: listed members only (a node without
 * children, such as an empty policy root, withholds every member). */
static void
filter_object(walk_t *w, const ca_node *n, int depth)
{
    size_t mark = w->nkeys, kmark = w->klen, sent = 0;

    if (open_empty(w, '}', 1)) {
        return;
    }
    for (;;) {
        const char    *raw;
        size_t         rawlen, off, len, saved, old;
        const ca_node *c;

        member_key(w, &raw, &rawlen, &off, &len);
        if (w->err) {
            return;
        }
        c = find_child(n, w->kbuf + off, len);
        old = path_push(w, "%s%.*s", w->plen ? "." : "", (int) len,
                        w->kbuf + off);
        if (c == NULL) {
            pass_value(w, depth + 1, 0);
            trace(w, NULL, NULL, CA_TRACE_UNLISTED);
            withhold(w);
        } else {
            saved = w->olen;
            if (sent) {
                emitc(w, ',');
            }
            emit(w, raw, rawlen);
            emitc(w, ':');
            if (node_value(w, c, depth + 1)) {
                sent++;
            } else {
                w->olen = saved;
            }
        }
        path_pop(w, old);
        if (w->err || !more(w, '}')) {
            break;
        }
    }
    if (w->err) {
        return;
    }
    keys_close(w, mark, kmark);
    emitc(w, '}');
}

static void
filter_array(walk_t *w, const ca_node *each, int depth)
{
    size_t i, sent = 0, saved, old;

    if (open_empty(w, ']', 1)) {
        return;
    }
    for (i = 0;; i++) {
        saved = w->olen;
        if (sent) {
            emitc(w, ',');
        }
        old = path_push(w, "[%zu]", i);
        /* An element that is withheld is left out, not replaced. */
        if (node_value(w, each, depth + 1)) {
            sent++;
        } else {
            w->olen = saved;
        }
        path_pop(w, old);
        if (w->err || !more(w, ']')) {
            break;
        }
    }
    emitc(w, ']');
}

/* A value under an allowlist node; 1 if something was sent for it. */
static int
node_value(walk_t *w, const ca_node *n, int depth)
{
    if (depth > CA_FILTER_DEPTH_MAX) {
        w->err = 1;
        return 0;
    }
    if (n->field) {
        return field_value(w, n->field, depth);
    }
    ws(w);
    if (w->p < w->end && *w->p == '{' && n->n_children > 0) {
        filter_object(w, n, depth);
        return !w->err;
    }
    if (w->p < w->end && *w->p == '[' && n->each) {
        filter_array(w, n->each, depth);
        return !w->err;
    }
    pass_value(w, depth, 0);
    trace(w, NULL, NULL, CA_TRACE_UNFIT);
    withhold(w);
    return 0;
}

char *
ca_filter_text(const ca_category *c, const char *in, size_t len,
               const ca_filter_opts *opts, ca_filter_report *rep,
               size_t *out_len)
{
    static const ca_filter_opts none;
    walk_t                     *w;
    char                       *out = NULL;

    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->opts = opts ? opts : &none;
    w->rep = rep;
    w->fields = c->fields;
    w->p = in;
    w->end = in + len;

    ws(w);
    if (w->p >= w->end || *w->p != '{') {
        w->err = 1;                 /* only an object can be filtered */
    } else {
        /* The root is walked as an object even when no field is listed:
         * every member is then unlisted. */
        filter_object(w, &c->tree, 1);
    }
    ws(w);
    if (!w->err && w->p != w->end) {
        w->err = 1;                 /* trailing bytes */
    }

    if (!w->err) {
        w->out[w->olen] = '\0';
        out = w->out;
        w->out = NULL;
        if (out_len) {
            *out_len = w->olen;
        }
    }
    free(w->out);
    free(w->keys);
    free(w->kbuf);
    free(w);
    return out;
}

json_t *
ca_filter_apply(const ca_category *c, json_t *doc, const ca_filter_opts *opts,
                ca_filter_report *rep)
{
    char        *text, *out;
    json_t      *res;
    json_error_t je;

    if (!json_is_object(doc)) {
        return NULL;
    }
    text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL) {
        return NULL;
    }
    out = ca_filter_text(c, text, strlen(text), opts, rep, NULL);
    free(text);
    if (out == NULL) {
        return NULL;
    }
    res = json_loads(out, JSON_REJECT_DUPLICATES, &je);
    free(out);
    return res;
}

/* ---- the report ------------------------------------------------------- */

int
ca_filter_report_init(ca_filter_report *rep, const ca_category *c)
{
    size_t n = c->n_fields ? c->n_fields : 1;

    memset(rep, 0, sizeof(*rep));
    rep->disclosed = calloc(n, 1);
    rep->masked = calloc(n, 1);
    if (rep->disclosed == NULL || rep->masked == NULL) {
        ca_filter_report_free(rep);
        return -1;
    }
    rep->n_fields = c->n_fields;
    return 0;
}

void
ca_filter_report_free(ca_filter_report *rep)
{
    free(rep->disclosed);
    free(rep->masked);
    memset(rep, 0, sizeof(*rep));
}

char *
ca_filter_report_paths(const ca_filter_report *rep, const ca_category *c,
                       int masked)
{
    const unsigned char *flags = masked ? rep->masked : rep->disclosed;
    size_t               len = 1, n = rep->n_fields;
    char                *out, *o;

    if (n > c->n_fields) {
        n = c->n_fields;
    }
    for (size_t i = 0; i < n; i++) {
        if (flags[i]) {
            len += strlen(c->fields[i].path) + 1;
        }
    }
    if ((out = malloc(len)) == NULL) {
        return NULL;
    }
    o = out;
    for (size_t i = 0; i < n; i++) {
        if (flags[i]) {
            size_t l = strlen(c->fields[i].path);
            if (o != out) {
                *o++ = ',';
            }
            memcpy(o, c->fields[i].path, l);
            o += l;
        }
    }
    *o = '\0';
    return out;
}
