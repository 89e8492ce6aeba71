/*
 * The JSON writer's output buffer: grown by doubling, an allocation
 * failure sticky in err so that a writer checks once at the end, and
 * strings written with the escapes JSON requires (the scanner's copies
 * need none: jsonscan.c).
 */
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"

int
ca_jout_grow(ca_jout *o, size_t need)
{
    size_t n = o->cap ? o->cap : 256;
    char  *b;

    if (o->err) {
        return -1;
    }
    while (n < need) {
        n *= 2;
    }
    if (n > o->cap) {
        if ((b = realloc(o->s, n)) == NULL) {
            o->err = 1;
            return -1;
        }
        o->s = b;
        o->cap = n;
    }
    return 0;
}

void
ca_jout_string(ca_jout *o, const char *s, size_t n)
{
    static const char hexd[] = "0123456789abcdef";
    size_t            run = 0;
    const char       *p = s, *end = s + n;

    /* multi-byte UTF-8 needs no escape: only '"', '\\' and controls do */
    while ((p = ca_bs_string_special(p, end)) < end
           && (unsigned char) *p >= 0x80) {
        p++;
    }
    if (p == end) {                 /* the usual case: nothing to escape */
        if (o->len + n + 2 >= o->cap && ca_jout_grow(o, o->len + n + 3)) {
            return;
        }
        o->s[o->len] = '"';
        memcpy(o->s + o->len + 1, s, n);
        o->s[o->len + 1 + n] = '"';
        o->len += n + 2;
        return;
    }
    ca_jout_putc(o, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        ca_jout_put(o, s + run, i - run);
        run = i + 1;
        if (c == '"' || c == '\\') {
            char e[2] = { '\\', (char) c };
            ca_jout_put(o, e, 2);
        } else {
            char e[6] = { '\\', 'u', '0', '0', hexd[c >> 4], hexd[c & 15] };
            ca_jout_put(o, e, 6);
        }
    }
    ca_jout_put(o, s + run, n - run);
    ca_jout_putc(o, '"');
}
