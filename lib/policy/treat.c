/*
 * Field treatments (contract §6): mask, hash, bucket, year.  Each turns one
 * scalar into the string that is sent instead of it, or refuses it (the
 * value is then withheld).  Numbers arrive as the digits the upstream
 * wrote: a bucket is computed on them exactly (decnum.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy_testing.h"
#include "treat.h"

/* ---- numbers as text ----------------------------------------------------- */

/* Shortest %g text that reads back as the same double. */
static void
fmt_double(double x, char *buf, size_t len)
{
    x += 0.0;                   /* -0 prints as 0 */
    if (x == floor(x) && fabs(x) < 9.0e15) {
        ca_dec_fmt_int((int64_t) x, buf);       /* exact below 2^53 */
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

/*
 * The text a mask or a pseudonym is taken of: a 64-bit integer in
 * decimal, a real as the shortest text of its double (so that 1.50 and
 * 1.5 hash alike, as they always did).  0 for anything else; scratch
 * holds a long real's copy for strtod and is left as it was.
 */
static int
number_text(const ca_scalar *v, char *buf, size_t len, ca_jout *scratch)
{
    int64_t i;
    double  x;
    size_t  mark = scratch->len;

    if (v->real) {
        fmt_double(*v->real, buf, len);
        return 1;
    }
    if (v->num.is_int) {
        if (!ca_dec_int64(&v->num, &i)) {
            return 0;
        }
        ca_dec_fmt_int(i, buf);
        return 1;
    }
    ca_jout_put(scratch, v->num.tok, v->num.toklen);
    ca_jout_putc(scratch, '\0');
    if (scratch->err) {
        return 0;
    }
    x = strtod(scratch->s + mark, NULL);
    scratch->len = mark;
    fmt_double(x, buf, len);
    return 1;
}

/* The bytes a mask or hash reads; NULL when the value is neither a string
 * nor a number it can take. */
static const char *
text_of(const ca_scalar *v, char *num, size_t numlen, ca_jout *scratch,
        size_t *len)
{
    if (v->kind == CA_SCALAR_STRING) {
        *len = v->len;
        return v->s;
    }
    if (v->kind == CA_SCALAR_NUMBER
        && number_text(v, num, numlen, scratch)) {
        *len = strlen(num);
        return num;
    }
    return NULL;
}

/* ---- mask --------------------------------------------------------------- */

/*
 * Keeps `lead` leading and `trail` trailing code points and stars the rest.
 * A mask must hide something: when lead + trail would cover the whole
 * value, lead shrinks first, then trail, until one code point is hidden
 * (a one-character name becomes "*").  The empty string stays empty.
 */
static int
mask(const char *s, size_t len, unsigned lead, unsigned trail, ca_jout *o)
{
    const unsigned char *u = (const unsigned char *) s;
    size_t n = 0, i, k, hidden, lead_end = 0, trail_start = len;

    for (i = 0; i < len; i += k, n++) {
        if ((k = ca_utf8_seq(u + i, len - i)) == 0) {
            return 0;
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
    for (i = 0, k = 0; i < len; i += ca_utf8_seq(u + i, len - i), k++) {
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
    ca_jout_put(o, s, lead_end);
    for (i = 0; i < hidden; i++) {
        ca_jout_putc(o, '*');
    }
    ca_jout_put(o, s + trail_start, len - trail_start);
    return 1;
}

char *
ca_mask_utf8(const char *s, size_t len, unsigned lead, unsigned trail)
{
    ca_jout o = {0};

    if (!mask(s, len, lead, trail, &o) || (ca_jout_putc(&o, '\0'), o.err)) {
        free(o.s);
        return NULL;
    }
    return o.s;
}

/* ---- hash --------------------------------------------------------------- */

static int
hash(const char *s, size_t len, const ca_filter_opts *opts, ca_jout *o)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int  mdlen = 0;
    char          hex[2 * EVP_MAX_MD_SIZE + 1];

    /* Without a key the pseudonym would be a plain, guessable digest. */
    if (opts == NULL || opts->hash_key == NULL || opts->hash_key_len == 0) {
        return 0;
    }
    if (HMAC(ca_md_sha256(), opts->hash_key, (int) opts->hash_key_len,
             (const unsigned char *) s, len, md, &mdlen) == NULL) {
        return 0;
    }
    ca_hex(md, mdlen, hex);
    ca_jout_put(o, hex, 2 * mdlen);
    return 1;
}

/* ---- bucket ------------------------------------------------------------- */

/*
 * A value that is already a double (a jansson real) is bucketed in
 * doubles, as the binary value it is.  When the width is lost in the
 * value's precision (1e308 with a width of 100000) there is no honest
 * bucket: the value is withheld.
 */
static int
bucket_double(double x, double w, ca_jout *o)
{
    char   a[64], b[64];
    double q = floor(x / w), lo, hi;

    if (!isfinite(q)) {
        return 0;
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
        return 0;
    }
    fmt_double(lo, a, sizeof(a));
    fmt_double(hi, b, sizeof(b));
    ca_jout_put(o, a, strlen(a));
    ca_jout_putc(o, '-');
    ca_jout_put(o, b, strlen(b));
    return 1;
}

static int
bucket(const ca_treatment *t, const ca_scalar *v, ca_jout *o)
{
    size_t n;

    if (v->kind != CA_SCALAR_NUMBER) {
        return 0;
    }
    if (v->real) {
        return bucket_double(*v->real, t->width, o);
    }
    if (o->len + CA_DEC_BUCKET_MAX >= o->cap
        && ca_jout_grow(o, o->len + CA_DEC_BUCKET_MAX + 1) != 0) {
        return 0;
    }
    n = ca_dec_bucket(&v->num, t->width, o->s + o->len);
    o->len += n;
    return n > 0;
}

/* ---- year --------------------------------------------------------------- */

static int
year(const ca_scalar *v, ca_jout *o)
{
    if (v->kind != CA_SCALAR_STRING || v->len < 4) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (v->s[i] < '0' || v->s[i] > '9') {
            return 0;
        }
    }
    if (v->len > 4 && strchr("-/.T ", v->s[4]) == NULL) {
        return 0;
    }
    ca_jout_put(o, v->s, 4);
    return 1;
}

int
ca_treat_scalar(const ca_treatment *t, const ca_scalar *v,
                const ca_filter_opts *opts, ca_jout *res)
{
    char        num[64];
    const char *s;
    size_t      len, mark = res->len;
    int         ok = 0;

    switch (t->kind) {
    case CA_TREAT_KEEP:
    case CA_TREAT_DROP:
        break;
    case CA_TREAT_MASK:
        s = text_of(v, num, sizeof(num), res, &len);
        ok = s && mask(s, len, t->a, t->b, res);
        break;
    case CA_TREAT_HASH:
        s = text_of(v, num, sizeof(num), res, &len);
        ok = s && hash(s, len, opts, res);
        break;
    case CA_TREAT_BUCKET:
        ok = bucket(t, v, res);
        break;
    case CA_TREAT_YEAR:
        ok = year(v, res);
        break;
    }
    if (!ok || res->err) {
        res->len = mark;
        return 0;
    }
    return 1;
}

json_t *
ca_treat_apply(const ca_treatment *t, json_t *value,
               const ca_filter_opts *opts)
{
    ca_scalar v;
    ca_jout   res = {0};
    char      text[64];
    double    x;
    json_t   *r = NULL;

    if (t->kind == CA_TREAT_KEEP) {
        return json_deep_copy(value);
    }
    memset(&v, 0, sizeof(v));
    if (json_is_string(value)) {
        v.kind = CA_SCALAR_STRING;
        v.s = json_string_value(value);
        v.len = json_string_length(value);
    } else if (json_is_integer(value)) {
        v.kind = CA_SCALAR_NUMBER;
        ca_dec_parse(text, ca_dec_fmt_int(json_integer_value(value), text),
                     &v.num);
    } else if (json_is_real(value)) {
        v.kind = CA_SCALAR_NUMBER;
        x = json_real_value(value);
        v.real = &x;
    }
    if (ca_treat_scalar(t, &v, opts, &res)) {
        r = json_stringn(res.s, res.len);
    }
    free(res.s);
    return r;
}
