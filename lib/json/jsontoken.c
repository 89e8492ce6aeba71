/*
 * The out-of-line parts of jsontoken.h: UTF-8 sequences, escapes, and
 * numbers whose range must be checked on their digits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsontoken.h"

size_t
ca_utf8_seq(const unsigned char *s, size_t left)
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

/*
 * The escape at p (after the backslash): its code point, the bytes it
 * takes in *n; -1 if it is not a valid escape (lone surrogates and \u0000
 * included, as jansson without JSON_ALLOW_NUL).
 */
long
ca_jt_escape(const char *p, const char *end, size_t *n)
{
    long cp, lo;

    switch (*p) {
    case '"': case '\\': case '/':
        *n = 1;
        return *p;
    case 'b': *n = 1; return '\b';
    case 'f': *n = 1; return '\f';
    case 'n': *n = 1; return '\n';
    case 'r': *n = 1; return '\r';
    case 't': *n = 1; return '\t';
    case 'u':
        break;
    default:
        return -1;
    }
    if (end - p < 5 || (cp = hex4(p + 1)) <= 0
        || (cp >= 0xdc00 && cp <= 0xdfff)) {
        return -1;
    }
    *n = 5;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (end - p < 11 || p[5] != '\\' || p[6] != 'u'
            || (lo = hex4(p + 7)) < 0xdc00 || lo > 0xdfff) {
            return -1;
        }
        *n = 11;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return cp;
}

const char *
ca_jt_number_slow(const char *p, const char *end)
{
    ca_decnum n;
    const char *q = ca_dec_scan(p, end, &n);

    if (q == NULL || (!n.is_int && !(n.exp <= 0 && n.ni <= 308)
                      && ca_dec_overflows(&n))) {
        return NULL;
    }
    return q;
}
