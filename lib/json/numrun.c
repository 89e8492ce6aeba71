/*
 * A withheld array of amounts, validated 64 bytes at a time.
 *
 * Element by element, a record's monthly figures ("[\n    10017.05,\n
 * 10018.06, ...]") cost a chain of loads, each waiting for the position
 * the one before gave.  Here a block of 64 bytes is classified at once
 * (digits, zeros, points, signs, whitespace, commas, the closing
 * bracket: one bit per byte) and the JSON grammar of a flat array of
 * plain numbers is checked on those masks for every element of the block
 * together.  Whatever the masks do not settle — an exponent, a string, a
 * nested container, a fault — is left to the scanner's byte-by-byte path,
 * which decides it as always: this only ever accepts what that path
 * accepts.
 *
 * The walk from a byte past a run of whitespace is an addition: adding
 * the bits of the bytes after the starting points to the whitespace mask
 * carries each one through its run, to the first byte that is not
 * whitespace.
 */
#include <stdint.h>

#include "numrun.h"

#if defined(CA_BS_SSE2)

typedef struct {
    uint64_t dig, zero, dot, minus, ws, com, close;
} block_t;

static void
classify(const char *p, block_t *b)
{
    *b = (block_t) {0};
    for (int i = 0; i < 64; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *) (const void *) (p + i));

#define CA_BITS(v) ((uint64_t) (unsigned) _mm_movemask_epi8(v) << i)
#define CA_EQ(ch)  CA_BITS(_mm_cmpeq_epi8(x, _mm_set1_epi8(ch)))
        b->dig |= CA_BITS(_mm_and_si128(
                      _mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                      _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1))));
        b->zero |= CA_EQ('0');
        b->dot |= CA_EQ('.');
        b->minus |= CA_EQ('-');
        b->ws |= CA_BITS(ca_bs_ws16(x));
        b->com |= CA_EQ(',');
        b->close |= CA_EQ(']');
#undef CA_EQ
#undef CA_BITS
    }
}

const char *
ca_numrun_skip(const char *p, const char *end, int *closed)
{
    block_t  b;
    uint64_t tok, start, last, after_tok, after_com, first, stop, in;
    unsigned lim, j;

    *closed = 0;
    if (end - p < 64) {
        return p;
    }
    classify(p, &b);

    tok = b.dig | b.dot | b.minus;          /* bytes of a plain number */
    start = tok & ~(tok << 1);              /* a number's first byte */
    last = tok & ~(tok >> 1);               /* and its last */
    if (!(start & 1)) {
        return p;                           /* not a number here */
    }

    /* the region: up to the first byte that is none of these, or the ']' */
    stop = ~(tok | b.ws | b.com | b.close) | b.close;
    lim = stop ? (unsigned) __builtin_ctzll(stop) : 64;

    /* where a number, and where a comma, is followed after whitespace */
    after_tok = ((last << 1) + b.ws) & ~b.ws;
    after_com = ((b.com << 1) + b.ws) & ~b.ws;

    if (lim < 64 && (b.close >> lim & 1)) {
        /* the array ends in the block: before the ']' (after whitespace)
         * a number, not a comma */
        j = lim;
        if (after_com >> j & 1) {
            return p;
        }
        *closed = 1;
    } else {
        /* up to the last element that a comma leads to, inside the region
         * (that element itself is the byte path's, or the next block's) */
        uint64_t cand = after_com & (lim < 64 ? (2ULL << lim) - 1 : ~0ULL);
        if (cand == 0) {
            return p;
        }
        j = 63 - (unsigned) __builtin_clzll(cand);
    }
    in = (1ULL << j) - 1;                   /* the bytes [0, j) */

    /*
     * Inside a number, what precedes a point is a digit: a sign is only
     * first and followed by a digit, a number does not start with a
     * point, and two points are refused below.  `first` is the first
     * digit of each number that starts in [0, j): for a sign that is the
     * byte after it, which may be byte j itself (a lone "-" before the
     * closing ']'), so it is not masked by `in` again.
     */
    first = (start & in & ~b.minus) | ((start & in & b.minus) << 1);
    if ((after_tok & in & ~b.com)           /* a number, then a comma */
        || (after_com & in & ~start)        /* a comma, then a number */
        || (b.minus & in & ~start)          /* a sign only first */
        || (first & ~b.dig)                 /* then a digit */
        || (first & b.zero & (b.dig >> 1))  /* no leading zero */
        || (b.dot & in & ~(b.dig >> 1))     /* a digit after a point */
        || ((((b.dot << 1) + b.dig) & ~b.dig) & b.dot & in))  /* one */
    {
        *closed = 0;
        return p;
    }
    return p + j + (unsigned) *closed;
}

#else

const char *
ca_numrun_skip(const char *p, const char *end, int *closed)
{
    (void) end;
    *closed = 0;
    return p;
}

#endif
