/*
 * Least-necessary filtering (SPEC §6).  The output is built fresh from the
 * allowlist tree: nothing from the upstream document reaches the bank
 * unless a listed path leads to it, so an unexpected member, a changed
 * shape or a value a treatment cannot handle is withheld, never passed.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "filter.h"

#define TRACE_PATH_MAX 1024

typedef struct {
    const ca_filter_opts *opts;
    ca_filter_report     *rep;
    const ca_field       *fields;       /* to index the report flags */
    int                   too_deep;
    /* The concrete path, maintained only when tracing. */
    char                  path[TRACE_PATH_MAX];
    size_t                plen;
} walk_t;

/* ---- numbers as text -------------------------------------------------- */

/* Shortest %g text that reads back as the same double. */
static void
fmt_double(double x, char *buf, size_t len)
{
    x += 0.0;                   /* -0 prints as 0 */
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
    if (json_is_integer(v)) {
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
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
    char buf[128];
    snprintf(buf, sizeof(buf), "%s-%s", lo, hi);
    return json_string(buf);
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
        snprintf(a, sizeof(a), "%" JSON_INTEGER_FORMAT, l);
        snprintf(b, sizeof(b), "%" JSON_INTEGER_FORMAT, h);
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

/* ---- the walk --------------------------------------------------------- */

static size_t
path_push_key(walk_t *w, const char *k, size_t klen)
{
    size_t old = w->plen;
    int    n;

    if (w->opts->trace == NULL) {
        return old;
    }
    n = snprintf(w->path + old, sizeof(w->path) - old, "%s%.*s",
                 old ? "." : "", (int) klen, k);
    w->plen = n < 0 ? old : old + (size_t) n;
    if (w->plen >= sizeof(w->path)) {
        w->plen = sizeof(w->path) - 1;
    }
    return old;
}

static size_t
path_push_idx(walk_t *w, size_t i)
{
    size_t old = w->plen;
    int    n;

    if (w->opts->trace == NULL) {
        return old;
    }
    n = snprintf(w->path + old, sizeof(w->path) - old, "[%zu]", i);
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

/* json_deep_copy with a depth bound and keys that may hold NUL bytes. */
static json_t *
copy_value(walk_t *w, json_t *v, int depth)
{
    json_t *out, *m;

    if (!json_is_object(v) && !json_is_array(v)) {
        return json_copy(v);
    }
    if (depth > CA_FILTER_DEPTH_MAX) {
        w->too_deep = 1;
        return NULL;
    }
    if (json_is_object(v)) {
        const char *k;
        size_t      klen;
        out = json_object();
        json_object_keylen_foreach(v, k, klen, m) {
            json_t *c = copy_value(w, m, depth + 1);
            if (c == NULL || out == NULL
                || json_object_setn_new(out, k, klen, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    out = json_array();
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *c = copy_value(w, json_array_get(v, i), depth + 1);
        if (c == NULL || out == NULL || json_array_append_new(out, c) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
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

static json_t *apply_node(walk_t *w, const ca_node *n, json_t *v, int depth);

static json_t *
apply_field(walk_t *w, const ca_field *f, json_t *v, int depth)
{
    const ca_treatment *t = w->opts->raw ? &f->raw : &f->masked;
    size_t              idx = (size_t) (f - w->fields);
    json_t             *out;

    if (t->kind == CA_TREAT_DROP) {
        trace(w, f, t, CA_TRACE_DROPPED);
        withhold(w);
        return NULL;
    }
    out = t->kind == CA_TREAT_KEEP ? copy_value(w, v, depth)
                                   : ca_treat_apply(t, v, w->opts);
    if (out == NULL) {
        if (!w->too_deep) {
            trace(w, f, t, CA_TRACE_UNFIT);
            withhold(w);
        }
        return NULL;
    }
    trace(w, f, t, CA_TRACE_SENT);
    if (w->rep && idx < w->rep->n_fields) {
        w->rep->disclosed[idx] = 1;
        if (t->kind != CA_TREAT_KEEP) {
            w->rep->masked[idx] = 1;
        }
    }
    return out;
}

static json_t *
apply_object(walk_t *w, const ca_node *n, json_t *v, int depth)
{
    json_t     *out = json_object(), *m, *r;
    const char *k;
    size_t      klen, old;

    if (out == NULL) {
        w->too_deep = 1;            /* out of memory: fail the document */
        return NULL;
    }
    json_object_keylen_foreach(v, k, klen, m) {
        const ca_node *c = find_child(n, k, klen);
        old = path_push_key(w, k, klen);
        if (c == NULL) {
            trace(w, NULL, NULL, CA_TRACE_UNLISTED);
            withhold(w);
        } else if ((r = apply_node(w, c, m, depth + 1)) != NULL) {
            json_object_setn_new(out, k, klen, r);
        }
        path_pop(w, old);
        if (w->too_deep) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *
apply_array(walk_t *w, const ca_node *each, json_t *v, int depth)
{
    json_t *out = json_array(), *r;
    size_t  old;

    if (out == NULL) {
        w->too_deep = 1;
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        old = path_push_idx(w, i);
        r = apply_node(w, each, json_array_get(v, i), depth + 1);
        path_pop(w, old);
        if (w->too_deep) {
            json_decref(r);
            json_decref(out);
            return NULL;
        }
        /* An element that is withheld is left out, not replaced. */
        if (r != NULL) {
            json_array_append_new(out, r);
        }
    }
    return out;
}

static json_t *
apply_node(walk_t *w, const ca_node *n, json_t *v, int depth)
{
    if (depth > CA_FILTER_DEPTH_MAX) {
        w->too_deep = 1;
        return NULL;
    }
    if (n->field) {
        return apply_field(w, n->field, v, depth);
    }
    if (json_is_object(v) && n->n_children > 0) {
        return apply_object(w, n, v, depth);
    }
    if (json_is_array(v) && n->each) {
        return apply_array(w, n->each, v, depth);
    }
    trace(w, NULL, NULL, CA_TRACE_UNFIT);
    withhold(w);
    return NULL;
}

json_t *
ca_filter_apply(const ca_category *c, json_t *doc, const ca_filter_opts *opts,
                ca_filter_report *rep)
{
    static const ca_filter_opts none;
    walk_t *w;
    json_t *out;

    if (!json_is_object(doc)) {
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->opts = opts ? opts : &none;
    w->rep = rep;
    w->fields = c->fields;
    /* The root is walked as an object even when no field is listed. */
    out = c->tree.n_children > 0 ? apply_object(w, &c->tree, doc, 1)
                                 : json_object();
    if (out != NULL && c->tree.n_children == 0) {
        if (rep) {
            rep->withheld += json_object_size(doc);
        }
        if (w->opts->trace) {
            const char *k;
            size_t      klen, old;
            json_t     *m;
            json_object_keylen_foreach(doc, k, klen, m) {
                old = path_push_key(w, k, klen);
                trace(w, NULL, NULL, CA_TRACE_UNLISTED);
                path_pop(w, old);
            }
        }
    }
    if (w->too_deep) {
        json_decref(out);
        out = NULL;
    }
    free(w);
    return out;
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
