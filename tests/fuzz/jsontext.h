/*
 * RFC 8259 text, strictly, for the filter's property harness: one value,
 * whitespace around it, strings of valid UTF-8 without raw control
 * characters.  jansson cannot be the judge of "valid JSON" here: it
 * refuses integers beyond 64 bits, which are JSON and which the filter
 * passes on as written.  The check also copies the text with every number
 * replaced by 0, so that jansson can then read the document's structure
 * (and judge the rest: duplicates, escapes, depth).
 *
 * One rule beyond the grammar is the project's: a real (with a fraction or
 * an exponent) must be finite as a double; the filter refuses a document
 * with 1e999 in it whole rather than pass on a value no reader agrees on.
 */
#ifndef CA_FUZZ_JSONTEXT_H
#define CA_FUZZ_JSONTEXT_H

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

typedef struct {
    const unsigned char *p, *end;
    char                *o;
    int                  depth, depth_max, deepest;
} jv_t;

static int jv_value(jv_t *v);

static void
jv_ws(jv_t *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n'
                             || *v->p == '\r'))
    {
        v->p++;
    }
}

static void
jv_put(jv_t *v)
{
    *v->o++ = (char) *v->p++;
}

static int
jv_lit(jv_t *v, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t) (v->end - v->p) < n || memcmp(v->p, lit, n) != 0) {
        return 0;
    }
    memcpy(v->o, lit, n);
    v->o += n;
    v->p += n;
    return 1;
}

static int
jv_digits(jv_t *v)
{
    const unsigned char *s = v->p;

    while (v->p < v->end && isdigit(*v->p)) {
        v->p++;
    }
    return v->p > s;
}

/* A real's value: not infinite. */
static int
jv_finite(const unsigned char *s, size_t n)
{
    char *tmp = malloc(n + 1);
    int   ok;

    if (tmp == NULL) {
        abort();
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    ok = !isinf(strtod(tmp, NULL));
    free(tmp);
    return ok;
}

static int
jv_number(jv_t *v)
{
    const unsigned char *s = v->p;
    int                  real = 0;

    if (v->p < v->end && *v->p == '-') {
        v->p++;
    }
    if (v->p < v->end && *v->p == '0') {
        v->p++;
    } else if (v->p >= v->end || *v->p < '1' || *v->p > '9'
               || !jv_digits(v))
    {
        return 0;
    }
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        real = 1;
        if (!jv_digits(v)) {
            return 0;
        }
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        real = 1;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-')) {
            v->p++;
        }
        if (!jv_digits(v)) {
            return 0;
        }
    }
    if (real && !jv_finite(s, (size_t) (v->p - s))) {
        return 0;
    }
    *v->o++ = '0';
    return 1;
}

/* One UTF-8 sequence: not overlong, no surrogate, at most U+10FFFF. */
static int
jv_utf8(jv_t *v)
{
    const unsigned char *s = v->p;
    size_t               k;

    k = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (k == 0 || s[0] > 0xf4 || (size_t) (v->end - s) < k) {
        return 0;
    }
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    if ((k == 3 && s[0] == 0xe0 && s[1] < 0xa0)
        || (k == 3 && s[0] == 0xed && s[1] >= 0xa0)
        || (k == 4 && s[0] == 0xf0 && s[1] < 0x90)
        || (k == 4 && s[0] == 0xf4 && s[1] >= 0x90))
    {
        return 0;
    }
    v->p += k;
    return 1;
}

static int
jv_string(jv_t *v)
{
    const unsigned char *s = v->p++;

    for (;;) {
        if (v->p >= v->end || *v->p < 0x20) {
            return 0;
        }
        if (*v->p == '"') {
            v->p++;
            break;
        }
        if (*v->p == '\\') {
            if (++v->p >= v->end) {
                return 0;
            }
            if (*v->p == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (v->p + i >= v->end || !isxdigit(v->p[i])) {
                        return 0;
                    }
                }
                v->p += 5;
            } else if (memchr("\"\\/bfnrt", *v->p, 8) != NULL) {
                v->p++;
            } else {
                return 0;
            }
        } else if (*v->p < 0x80) {
            v->p++;
        } else if (!jv_utf8(v)) {
            return 0;
        }
    }
    memcpy(v->o, s, (size_t) (v->p - s));
    v->o += v->p - s;
    return 1;
}

/* An object or array; v->p is on its opening bracket. */
static int
jv_container(jv_t *v)
{
    unsigned char close = *v->p == '{' ? '}' : ']';

    if (++v->depth > v->depth_max) {
        return 0;
    }
    if (v->depth > v->deepest) {
        v->deepest = v->depth;
    }
    jv_put(v);
    jv_ws(v);
    if (v->p < v->end && *v->p == close) {
        jv_put(v);
        v->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            jv_ws(v);
            if (v->p >= v->end || *v->p != '"' || !jv_string(v)) {
                return 0;
            }
            jv_ws(v);
            if (v->p >= v->end || *v->p != ':') {
                return 0;
            }
            jv_put(v);
        }
        if (!jv_value(v)) {
            return 0;
        }
        jv_ws(v);
        if (v->p < v->end && *v->p == close) {
            jv_put(v);
            v->depth--;
            return 1;
        }
        if (v->p >= v->end || *v->p != ',') {
            return 0;
        }
        jv_put(v);
    }
}

static int
jv_value(jv_t *v)
{
    jv_ws(v);
    if (v->p >= v->end) {
        return 0;
    }
    switch (*v->p) {
    case '"': return jv_string(v);
    case 't': return jv_lit(v, "true");
    case 'f': return jv_lit(v, "false");
    case 'n': return jv_lit(v, "null");
    case '{':
    case '[': return jv_container(v);
    default:  return jv_number(v);
    }
}

/* 1 if text is one JSON object nested at most depth_max deep (the root
 * is 1); *zeroed (malloc'd) gets the copy with its numbers replaced by 0,
 * *deepest (if not NULL) how deep it goes. */
static int
jv_object(const char *text, size_t len, int depth_max, char **zeroed,
          int *deepest)
{
    jv_t v = {(const unsigned char *) text,
              (const unsigned char *) text + len, NULL, 0, depth_max, 0};
    int  ok;

    *zeroed = malloc(len + 1);
    if (*zeroed == NULL) {
        abort();
    }
    v.o = *zeroed;
    jv_ws(&v);
    ok = v.p < v.end && *v.p == '{' && jv_value(&v);
    jv_ws(&v);
    *v.o = '\0';
    if (deepest) {
        *deepest = v.deepest;
    }
    return ok && v.p == v.end;
}

/* 1 if text is one JSON object; *zeroed as above. */
static int
json_object_text(const char *text, size_t len, char **zeroed)
{
    return jv_object(text, len, 1000, zeroed, NULL);
}

/*
 * jansson's verdict on an upstream body, the one the filter must give:
 * 1 if jansson reads it as one object without duplicate members (nor
 * \u0000, nor bad escapes, nor nesting beyond its 2048 levels), integers
 * beyond 64 bits aside -- those are JSON, jansson alone cannot hold
 * them.  The grammar is checked here with every number, then jansson
 * reads the copy whose numbers are 0.  *deepest: how deep it goes.
 */
static int
jansson_reads_object(const char *text, size_t len, int *deepest)
{
    char   *zeroed;
    json_t *j = NULL;

    /* deeper than jansson's own limit, so that jansson decides on it */
    if (jv_object(text, len, 4096, &zeroed, deepest)) {
        j = json_loads(zeroed, JSON_REJECT_DUPLICATES, NULL);
    }
    free(zeroed);
    json_decref(j);
    return j != NULL;
}

#endif
