/*
 * JSON numbers as decimal digits (engine-internal): what the scanner
 * learns of a number token, the range rule, and the exact arithmetic of
 * the `bucket` treatment.  No binary floating point: a bucket of
 * 123456.78 is computed on the digits, for any number of them.
 */
#ifndef CA_DECNUM_H
#define CA_DECNUM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/core.h"

/* Exponents are read saturating here: far beyond any double either way. */
#define CA_DEC_EXP_SAT 1000000000LL


typedef struct {
    const char *tok;            /* the token as written */
    size_t      toklen;
    int         neg;
    int         is_int;         /* no fraction, no exponent */
    const char *ip;             /* integer digits ("0" or no leading zero) */
    size_t      ni;
    const char *fp;             /* fraction digits, nf may be 0 */
    size_t      nf;
    long long   exp;            /* the exponent, saturated */
} ca_decnum;

/*
 * 1 when the real would overflow a double (|x| >= 2^1024 - 2^970, where
 * round-to-nearest reaches infinity): such a document is refused, as a
 * full parser refuses it.  Integers are never checked (they are copied
 * as written, of any length).
 */
CA_INTERNAL int ca_dec_overflows(const ca_decnum *n);

/* The integer as int64; 0 when it is not an integer token or beyond. */
CA_INTERNAL int ca_dec_int64(const ca_decnum *n, int64_t *v);

/* Decimal text of v into buf (at least 21 bytes); returns its length. */
CA_INTERNAL size_t ca_dec_fmt_int(int64_t v, char *buf);

/*
 * "lo-hi", the multiple of `width` at or below n and the next one, written
 * into buf (CA_DEC_BUCKET_MAX bytes), computed on the decimal digits.  An
 * integer with an integral width is bucketed in 64 bits.  Returns the
 * length, or 0 when the value takes no bucket: an integer beyond 64 bits
 * or a bound beyond 64 bits; a bucket number floor(n / width) of 2^53 or
 * more (the width is finer than the value's magnitude allows a reader to
 * tell, as in doubles); a width that is not a positive finite number.
 */
#define CA_DEC_BUCKET_MAX 1024
CA_INTERNAL size_t ca_dec_bucket(const ca_decnum *n, double width, char *buf);

#define CA_DEC_DIGIT(c) ((unsigned) (c) - '0' <= 9)

/* How many of the bytes at p are digits.  Eight at a time where the
 * machine is little-endian: x ^ '0' leaves a digit's byte below 10, and
 * adding 0x76 lifts anything else to the high bit (a carry only comes from
 * a byte flagged already, and only the first flag is read). */
static inline size_t
ca_dec_digits(const char *p, const char *end)
{
    const char *q = p;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ULL;

    while (end - q >= 8) {
        uint64_t x, a, m;
        memcpy(&x, q, 8);
        a = x ^ (ones * '0');
        m = ((a + ones * 0x76) | a) & (ones * 0x80);
        if (m) {
            return (size_t) (q - p) + (size_t) (__builtin_ctzll(m) >> 3);
        }
        q += 8;
    }
#endif
    while (q < end && CA_DEC_DIGIT(*q)) {
        q++;
    }
    return (size_t) (q - p);
}

/* The end of a number's integer part at p: "0", or a digit from 1 and
 * the digits after it; NULL if there is none. */
static inline const char *
ca_dec_int_part(const char *p, const char *end)
{
    if (p < end && *p == '0') {
        return p + 1;
    }
    if (p < end && *p >= '1' && *p <= '9') {
        return p + ca_dec_digits(p, end);
    }
    return NULL;
}

/* Reads the number token at p (JSON grammar) into n: returns the end of
 * the token, or NULL when the bytes at p are not a number.  Inline: the
 * scanner meets a number every few bytes in a record of amounts. */
static inline const char *
ca_dec_scan(const char *p, const char *end, ca_decnum *n)
{
    n->tok = p;
    n->neg = 0;
    n->is_int = 1;
    n->nf = 0;
    n->fp = NULL;
    n->exp = 0;
    if (p < end && *p == '-') {
        n->neg = 1;
        p++;
    }
    n->ip = p;
    if ((p = ca_dec_int_part(p, end)) == NULL) {
        return NULL;
    }
    n->ni = (size_t) (p - n->ip);
    if (p < end && *p == '.') {
        n->is_int = 0;
        n->fp = ++p;
        n->nf = ca_dec_digits(p, end);
        if (n->nf == 0) {
            return NULL;
        }
        p += n->nf;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int       eneg = 0;
        long long e = 0;

        n->is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !CA_DEC_DIGIT(*p)) {
            return NULL;
        }
        do {
            if (e < CA_DEC_EXP_SAT) {
                e = e * 10 + (*p - '0');
            }
            p++;
        } while (p < end && CA_DEC_DIGIT(*p));
        if (e > CA_DEC_EXP_SAT) {
            e = CA_DEC_EXP_SAT;
        }
        n->exp = eneg ? -e : e;
    }
    n->toklen = (size_t) (p - n->tok);
    return p;
}


/* The same for a whole string; -1 if it is not exactly one number. */
CA_INTERNAL int ca_dec_parse(const char *s, size_t len, ca_decnum *n);

#endif
