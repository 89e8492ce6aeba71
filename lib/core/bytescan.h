/*
 * Finding the first byte of a class, many bytes at a time (engine-
 * internal, for the JSON scanner): sixteen with SSE2, which every x86-64
 * has, eight with plain 64-bit arithmetic elsewhere.  A record indented
 * by its platform is mostly runs of spaces, digits and plain string
 * bytes; a byte-at-a-time loop spends its time on the loop itself.
 *
 * Every function reads only bytes in [p, end).
 */
#ifndef CA_BYTESCAN_H
#define CA_BYTESCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The scanner's loops call these for every token: a call would cost more
 * than the work (and each call would reload the SSE2 constants). */
#if defined(__GNUC__)
#define CA_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define CA_ALWAYS_INLINE static inline
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#define CA_BS_SSE2 1
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CA_BS_SWAR 1
#endif

#if defined(CA_BS_SSE2)
/* The bytes of x that are JSON whitespace, 0xff each. */
CA_ALWAYS_INLINE __m128i
ca_bs_ws16(__m128i x)
{
    return _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')),
                                     _mm_cmpeq_epi8(x, _mm_set1_epi8('\n'))),
                        _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\r')),
                                     _mm_cmpeq_epi8(x, _mm_set1_epi8('\t'))));
}
#endif

CA_ALWAYS_INLINE int
ca_bs_is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* The first byte at or after p that is not JSON whitespace, or end. */
CA_ALWAYS_INLINE const char *
ca_bs_skip_ws(const char *p, const char *end)
{
    /* most calls: no whitespace at all (compact input, or already past) */
    if (p < end && (unsigned char) *p > ' ') {
        return p;
    }
#if defined(CA_BS_SSE2)
    while (end - p >= 16) {
        __m128i  x = _mm_loadu_si128((const __m128i *) (const void *) p);
        unsigned m = ~(unsigned) _mm_movemask_epi8(ca_bs_ws16(x)) & 0xffff;

        if (m) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
    while (p < end && ca_bs_is_ws(*p)) {
        p++;
    }
    return p;
}

/* n bytes from s to d, n mostly a key or a number: two overlapping
 * fixed-size moves instead of a call to memcpy, which costs more than
 * copying them. */
CA_ALWAYS_INLINE void
ca_bs_copy(char *d, const char *s, size_t n)
{
    if (n >= 8 && n <= 16) {
        memcpy(d, s, 8);
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++) {
            d[i] = s[i];
        }
    } else {
        memcpy(d, s, n);
    }
}

/* The first n bytes at a and at b alike (n <= max, max 32 with SSE2;
 * max bytes are readable at both). */
CA_ALWAYS_INLINE int
ca_bs_same_prefix(const char *a, const char *b, size_t n, size_t max)
{
#if defined(CA_BS_SSE2)
    if (max >= 32) {
        const __m128i *x = (const __m128i *) (const void *) a;
        const __m128i *y = (const __m128i *) (const void *) b;
        uint32_t eq = (uint32_t) _mm_movemask_epi8(_mm_cmpeq_epi8(
                          _mm_loadu_si128(x), _mm_loadu_si128(y)))
                      | (uint32_t) _mm_movemask_epi8(_mm_cmpeq_epi8(
                          _mm_loadu_si128(x + 1), _mm_loadu_si128(y + 1)))
                        << 16;
        uint32_t want = n >= 32 ? 0xffffffffu : (1u << n) - 1;

        return (eq & want) == want;
    }
#endif
    (void) max;
    return memcmp(a, b, n) == 0;
}

#if defined(CA_BS_SSE2) || defined(CA_BS_SWAR)
/* The high bit of each of the eight bytes of x (little-endian) that is
 * '"', '\\', below 0x20 or from 0x80: exact for the lowest one, which is
 * all the caller reads (a borrow only runs past a byte flagged itself). */
CA_ALWAYS_INLINE uint64_t
ca_bs_special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL;
    uint64_t       q = x ^ (ones * '"'), b = x ^ (ones * '\\');

    return (((q - ones) & ~q) | ((b - ones) & ~b) | (x - ones * 0x20) | x)
           & (ones * 0x80);
}
#endif

/*
 * The first byte at or after p that a JSON string cannot hold as it is:
 * '"', '\\', a control character, or a byte of a multi-byte UTF-8
 * sequence (>= 0x80, which the caller checks in full); end if none.
 */
CA_ALWAYS_INLINE const char *
ca_bs_string_special(const char *p, const char *end)
{
#if defined(CA_BS_SSE2)
    while (end - p >= 16) {
        __m128i  x = _mm_loadu_si128((const __m128i *) (const void *) p);
        /* signed compare: bytes >= 0x80 are negative, below 0x20 too */
        __m128i  c = _mm_or_si128(
                         _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                      _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                         _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
        unsigned m = (unsigned) _mm_movemask_epi8(c);

        if (m) {
            return p + __builtin_ctz(m);
        }
        p += 16;
    }
#endif
#if defined(CA_BS_SSE2) || defined(CA_BS_SWAR)
    while (end - p >= 8) {
        uint64_t x, m;

        memcpy(&x, p, 8);
        if ((m = ca_bs_special8(x)) != 0) {
            return p + (__builtin_ctzll(m) >> 3);
        }
        p += 8;
    }
#endif
    while (p < end && (unsigned char) *p >= 0x20 && (unsigned char) *p < 0x80
           && *p != '"' && *p != '\\') {
        p++;
    }
    return p;
}

#endif
