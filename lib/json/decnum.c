/*
 * JSON numbers as decimal digits.  The filter copies numbers as bytes and
 * converts only what a treatment needs, here, on the digits themselves:
 * a double would round a long amount before the bucket is taken.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decnum.h"
#include "core/core.h"


int
ca_dec_parse(const char *s, size_t len, ca_decnum *n)
{
    return ca_dec_scan(s, s + len, n) == s + len ? 0 : -1;
}

/* The significant digits of n (integer then fraction digits, leading
 * zeros skipped), walked one at a time. */
typedef struct {
    const ca_decnum *n;
    size_t           i, len;    /* position in the ni + nf digits */
} digits_t;

static char
digit_at(const ca_decnum *n, size_t i)
{
    return i < n->ni ? n->ip[i] : n->fp[i - n->ni];
}

/* Skips leading zeros; returns the number of significant digits (0 for a
 * zero) and sets *lead to the decimal magnitude of the first one. */
static size_t
significant(const ca_decnum *n, digits_t *d, long long *lead)
{
    d->n = n;
    d->i = 0;
    d->len = n->ni + n->nf;
    while (d->i < d->len && digit_at(n, d->i) == '0') {
        d->i++;
    }
    /* the digit at position i stands for 10^(ni - 1 - i) */
    *lead = (long long) n->ni - (long long) d->i;
    return d->len - d->i;
}

/* 2^1024 - 2^970: from here on a double rounds to infinity. */
static const char dbl_overflow[] =
    "1797693134862315807937289714053034150799341327100378269361737789804449"
    "6829276475094664901797758720709633028641669288791094655554785194040263"
    "0657488671505820681908902000708383676273854845817711531764475730270069"
    "8555713669596228429148198608349364752927190741684443655107043427115596"
    "995080930428801779041744977920";

int
ca_dec_overflows(const ca_decnum *n)
{
    digits_t  d;
    long long lead, mag;
    size_t    k;

    if (n->is_int || (n->exp <= 0 && n->ni <= 308)
        || significant(n, &d, &lead) == 0) {
        return 0;
    }
    mag = lead + n->exp;            /* value in [10^(mag-1), 10^mag) */
    if (mag != 309) {
        return mag > 309;
    }
    for (k = 0; k < sizeof(dbl_overflow) - 1; k++, d.i++) {
        char c = d.i < d.len ? digit_at(n, d.i) : '0';
        if (c != dbl_overflow[k]) {
            return c > dbl_overflow[k];
        }
    }
    return 1;                       /* equal or above in later digits */
}

int
ca_dec_int64(const ca_decnum *n, int64_t *v)
{
    uint64_t u = 0, lim = n->neg ? (uint64_t) INT64_MAX + 1 : INT64_MAX;

    if (!n->is_int || n->ni > 19) {
        return 0;
    }
    for (size_t i = 0; i < n->ni; i++) {
        unsigned dg = (unsigned) (n->ip[i] - '0');
        if (u > (lim - dg) / 10) {
            return 0;
        }
        u = u * 10 + dg;
    }
    *v = n->neg ? (int64_t) (0 - u) : (int64_t) u;
    return 1;
}

/* The digits are util.c's (ca_u64_str); the sign is ours. */
size_t
ca_dec_fmt_int(int64_t v, char *buf)
{
    size_t i = 0;

    if (v < 0) {
        buf[i++] = '-';
    }
    return i + ca_u64_str(v < 0 ? 0 - (uint64_t) v : (uint64_t) v, buf + i);
}

/* ---- the bucket, on digits --------------------------------------------- */

/*
 * The bucket number floor(x / width) stays below 2^53, as it did in
 * doubles: a finer bucket of a huge value (1e308 by 100000) would say
 * more about it than any JSON reader can (RFC 8259 §6), so there is none.
 * The bounds are then at most 2^53 times a width of 17 digits: 33 digits.
 */
#define Q_MAX   (1ULL << 53)
#define BOUND_MAX 40

/* width = wd * 10^we with wd of at most 17 digits: the shortest decimal
 * that reads back as the policy's width. */
static void
width_digits(double w, uint64_t *wd, long long *we)
{
    char tmp[40], *e;
    int  prec;

    *we = 0;
    if (w == floor(w) && w < 1e17) {
        *wd = (uint64_t) w;
    } else {
        for (prec = 1; prec < 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, w);
            if (strtod(tmp, NULL) == w) {
                break;
            }
        }
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, w);
        *wd = 0;
        for (e = tmp; *e != 'e'; e++) {
            if (CA_DEC_DIGIT(*e)) {
                *wd = *wd * 10 + (uint64_t) (*e - '0');
            }
        }
        *we = strtoll(e + 1, NULL, 10) - (prec - 1);
    }
    while (*wd % 10 == 0) {
        *wd /= 10;
        ++*we;
    }
}

/*
 * floor(|n| / (wd * 10^we)) into *q, *inexact when that leaves a
 * remainder; -1 when the quotient reaches Q_MAX.  Long division over the
 * significant digits: the remainder stays below wd < 10^17.
 */
static int
quotient(const ca_decnum *n, uint64_t wd, long long we, uint64_t *q,
         int *inexact)
{
    digits_t  d;
    long long lead, keep;
    size_t    nd = significant(n, &d, &lead);
    uint64_t  r = 0;

    /* the digits of floor(|n| / 10^we): `keep` of them */
    keep = lead + n->exp - we;
    *q = 0;
    *inexact = 0;
    if (nd == 0) {
        return 0;
    }
    if (keep > 40) {
        return -1;                  /* N >= 10^40: q >= 10^23 */
    }
    if (keep <= 19) {               /* the usual amount: N fits 64 bits */
        uint64_t big = 0;
        for (long long k = 0; k < keep; k++) {
            big = big * 10 + (d.i < d.len
                              ? (unsigned) (digit_at(n, d.i++) - '0') : 0);
        }
        *q = big / wd;
        r = big % wd;
    } else {
        for (long long k = 0; k < keep; k++) {
            unsigned dg = d.i < d.len ? (unsigned) (digit_at(n, d.i++) - '0')
                                      : 0;
            r = r * 10 + dg;
            *q = *q * 10 + r / wd;
            r %= wd;
            if (*q >= Q_MAX) {
                return -1;
            }
        }
    }
    if (*q >= Q_MAX) {
        return -1;
    }
    *inexact = r != 0;
    while (!*inexact && d.i < d.len) {
        *inexact = digit_at(n, d.i++) != '0';
    }
    return 0;
}

/*
 * ±(a * wd) * 10^we as plain decimal text (no exponent, no trailing zeros
 * after a point); returns the length, 0 if room is short.  a * wd is
 * multiplied out in decimal digits: it may exceed 64 bits.
 */
static size_t
fmt_bound(uint64_t a, uint64_t wd, int neg, long long we, char *o,
          size_t room)
{
    unsigned char d[BOUND_MAX];
    size_t        k = sizeof(d), n, i = 0;
    long long     point;
    uint64_t      carry = 0;
    char          ad[20];
    size_t        na = 0;

    if (!__builtin_mul_overflow(a, wd, &carry)) {   /* fits 64 bits */
        do {
            d[--k] = (unsigned char) (carry % 10);
            carry /= 10;
        } while (carry);
    } else {
        carry = 0;
        do {
            ad[na++] = (char) (a % 10);
            a /= 10;
        } while (a);
        for (size_t j = 0; j < na; j++) {     /* least significant first */
            uint64_t t = (uint64_t) ad[j] * wd + carry;
            d[--k] = (unsigned char) (t % 10);
            carry = t / 10;
        }
        while (carry) {
            d[--k] = (unsigned char) (carry % 10);
            carry /= 10;
        }
    }
    while (k < sizeof(d) && d[k] == 0) {
        k++;
    }
    n = sizeof(d) - k;
    if (n == 0) {
        if (room < 2) {
            return 0;
        }
        o[0] = '0';
        return 1;
    }
    if (room < (size_t) (n + 4 + (we < 0 ? -we : we))) {
        return 0;
    }
    point = (long long) n + we;               /* digits before the point */
    if (neg) {
        o[i++] = '-';
    }
    if (point <= 0) {                         /* 0.000ddd */
        o[i++] = '0';
        o[i++] = '.';
        for (long long z = point; z < 0; z++) {
            o[i++] = '0';
        }
        for (size_t j = 0; j < n; j++) {
            o[i++] = (char) ('0' + d[k + j]);
        }
    } else if (point >= (long long) n) {      /* ddd000 */
        for (size_t j = 0; j < n; j++) {
            o[i++] = (char) ('0' + d[k + j]);
        }
        for (long long z = (long long) n; z < point; z++) {
            o[i++] = '0';
        }
    } else {                                  /* dd.ddd */
        for (size_t j = 0; j < n; j++) {
            if (j == (size_t) point) {
                o[i++] = '.';
            }
            o[i++] = (char) ('0' + d[k + j]);
        }
    }
    if (point < (long long) n) {        /* a fraction: no trailing zeros */
        while (o[i - 1] == '0') {
            i--;
        }
        if (o[i - 1] == '.') {
            i--;
        }
    }
    return i;
}

/* The bucket of a 64-bit integer by a whole width, in 64-bit arithmetic;
 * 0 when a bound would not fit. */
static size_t
bucket_int64(int64_t v, int64_t w, char *buf)
{
    int64_t r = v % w, l, h;
    size_t  la;

    if (r < 0) {
        r += w;
    }
    if (__builtin_sub_overflow(v, r, &l) || __builtin_add_overflow(l, w, &h)) {
        return 0;
    }
    la = ca_dec_fmt_int(l, buf);
    buf[la++] = '-';
    return la + ca_dec_fmt_int(h, buf + la);
}

/*
 * The usual amount, 123456.78 by 100000: a real without exponent whose
 * integer part m fits 64 bits, by a whole width.  Its bucket is that of
 * an integer: m when it is positive (the fraction never crosses a whole
 * bound), -m - 1 when it is negative with a fraction (nothing whole lies
 * strictly between), -m without one.  0 to take the general path: a
 * quotient from 2^53 (refused there, as a double could not say it) or a
 * bound beyond 64 bits.
 */
static size_t
bucket_short_real(const ca_decnum *n, int64_t w, char *buf)
{
    int64_t m = 0;
    int     frac = 0;

    for (size_t i = 0; i < n->ni; i++) {
        m = m * 10 + (n->ip[i] - '0');
    }
    for (size_t i = 0; i < n->nf && !frac; i++) {
        frac = n->fp[i] != '0';
    }
    if ((uint64_t) (m / w) >= Q_MAX) {
        return 0;
    }
    return bucket_int64(n->neg ? -m - frac : m, w, buf);
}

size_t
ca_dec_bucket(const ca_decnum *n, double width, char *buf)
{
    uint64_t  wd, q, a, b;
    long long we;
    int       inexact, neg;
    size_t    la, lb;
    int64_t   v;

    if (!(width > 0) || !isfinite(width)) {
        return 0;
    }
    if (n->is_int && !ca_dec_int64(n, &v)) {
        return 0;                   /* an integer beyond 64 bits */
    }
    if (n->is_int && width == floor(width) && width < 9.2e18) {
        return bucket_int64(v, (int64_t) width, buf);
    }
    if (!n->is_int && n->exp == 0 && n->ni <= 18 && width == floor(width)
        && width < 9.2e18 && (la = bucket_short_real(n, (int64_t) width,
                                                     buf)) > 0) {
        return la;
    }

    width_digits(width, &wd, &we);
    if (quotient(n, wd, we, &q, &inexact) != 0) {
        return 0;
    }
    neg = n->neg && (q || inexact);         /* -0 is 0 */
    /* lo = floor(x / w) * w, hi = lo + w: for x < 0 from |x|, as a and b
     * widths below zero */
    if (!neg) {
        a = q;
        b = q + 1;
    } else if (inexact) {
        a = q + 1;
        b = q;
    } else {
        a = q;
        b = q - 1;
    }
    if (a > Q_MAX || b > Q_MAX) {
        return 0;
    }
    la = fmt_bound(a, wd, neg, we, buf, CA_DEC_BUCKET_MAX / 2);
    if (la == 0) {
        return 0;
    }
    buf[la++] = '-';
    lb = fmt_bound(b, wd, neg, we, buf + la, CA_DEC_BUCKET_MAX - la);
    return lb ? la + lb : 0;
}
