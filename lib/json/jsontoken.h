/*
 * One JSON token at a pointer, validated (engine-internal): a string, a
 * number or a literal, each as strictly as a full parser (UTF-8, escapes,
 * no \u0000, the number grammar, reals within a double's range).  The
 * common cases are inline: the scanner and the filter's walk meet a token
 * every few bytes, and a call would cost more than the check; escapes,
 * multi-byte UTF-8 and long or exponent numbers go out of line.
 */
#ifndef CA_JSONTOKEN_H
#define CA_JSONTOKEN_H

#include <stddef.h>
#include <string.h>

#include "core/core.h"
#include "decnum.h"

/* Length of the well-formed UTF-8 sequence at u, or 0 (overlong forms,
 * surrogates and code points above U+10FFFF are not). */
CA_INTERNAL size_t ca_utf8_seq(const unsigned char *u, size_t left);

/*
 * The escape at p (after the backslash): its code point, the bytes it
 * takes in *n; -1 if it is not a valid escape (lone surrogates and \u0000
 * included, as jansson without JSON_ALLOW_NUL).
 */
CA_INTERNAL long ca_jt_escape(const char *p, const char *end, size_t *n);

/* ca_jt_number_end() for a number with an exponent or a long integer
 * part: described in full, its range checked. */
CA_INTERNAL const char *ca_jt_number_slow(const char *p, const char *end);

/* Validates the string whose body starts at p (past its opening quote):
 * returns the end past its closing quote, or NULL; *esc is set when it
 * holds an escape. */
CA_ALWAYS_INLINE const char *
ca_jt_string_end(const char *p, const char *end, int *esc)
{
    for (;;) {
        size_t n;

        p = ca_bs_string_special(p, end);
        if (p >= end || (unsigned char) *p < 0x20) {
            return NULL;
        }
        if (*p == '"') {
            return p + 1;
        }
        if (*p == '\\') {
            if (p + 1 >= end || ca_jt_escape(p + 1, end, &n) < 0) {
                return NULL;
            }
            *esc = 1;
            p += 1 + n;
        } else if ((n = ca_utf8_seq((const unsigned char *) p,
                                    (size_t) (end - p))) == 0) {
            return NULL;
        } else {
            p += n;
        }
    }
}

/* The end of the number at p, validated as ca_js_number() validates
 * it,
 * or NULL: a skipped or copied number needs no description. */
CA_ALWAYS_INLINE const char *
ca_jt_number_end(const char *p, const char *end)
{
    const char *q = p, *ip;
    int         frac = 0;

    if (q < end && *q == '-') {
        q++;
    }
    ip = q;
    if ((q = ca_dec_int_part(q, end)) == NULL) {
        return NULL;
    }
    if (q < end && *q == '.') {
        size_t nf = ca_dec_digits(q + 1, end);
        if (nf == 0) {
            return NULL;
        }
        q += 1 + nf;
        frac = 1;
    }
    /* a real that might not fit a double: q - ip bounds its integer
     * digits from above */
    if ((q < end && (*q == 'e' || *q == 'E')) || (frac && q - ip > 308)) {
        return ca_jt_number_slow(p, end);
    }
    return q;
}

/* The end of the scalar (not a container) at p, validated, or NULL. */
CA_ALWAYS_INLINE const char *
ca_jt_scalar_end(const char *p, const char *end)
{
    int esc = 0;

    switch (*p) {
    case '"':
        return ca_jt_string_end(p + 1, end, &esc);
    case 't':
        return end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return ca_jt_number_end(p, end);
    }
}

#endif
