/*
 * Properties of the filter's output, whatever the upstream sends (same
 * input layout as fuzz_filter.c: category/level byte, then the body):
 *
 *  0. the filter's verdict is jansson's (jsontext.h): it passes only a
 *     body jansson reads as one object, and passes every such body that
 *     nests no deeper than CA_FILTER_DEPTH_MAX (deeper, only what it
 *     withholds may go to jansson's 2048 levels);
 *  1. it is one JSON object (RFC 8259, UTF-8, reals finite: jsontext.h)
 *     without duplicate members (jansson);
 *  2. it holds only members the policy lists at that path (objects under
 *     object nodes, arrays under "[]" nodes, scalars only at fields);
 *  3. a treated value is a treatment of the value it replaces: a mask
 *     keeps the length in code points, keeps or stars each one and stars
 *     at least one (an empty string stays empty), so it never equals an
 *     original without stars; a hash is 64 hex digits; a bucket "lo-hi"
 *     contains the number; a year is the first four digits; a kept value
 *     is the original; a dropped field never appears.
 *
 * 3 needs the original: when jansson parses the body, every output member
 * is matched with the input member of the same name, and the elements of
 * an output array with input elements in order (withheld elements are
 * left out, so the first compatible element is the one).
 */
#include "filter_input.h"
#include "jsontext.h"

#define PATH_MAX_LEN 512


static size_t
cp_len(const unsigned char *s, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        n += (s[i] & 0xc0) != 0x80;
    }
    return n;
}

/* Next code point of s[*i..len): its bytes. */
static size_t
cp_next(const unsigned char *s, size_t len, size_t *i)
{
    size_t start = (*i)++;

    while (*i < len && (s[*i] & 0xc0) == 0x80) {
        (*i)++;
    }
    return *i - start;
}

/* Why o is not t applied to in (in NULL: the original is unknown), or
 * NULL when it is. */
static const char *
leaf_mismatch(const ca_treatment *t, json_t *in, json_t *o)
{
    const unsigned char *os, *is;
    size_t               ol, il, i, j;
    char                *end;
    double               lo, hi, x;

    switch (t->kind) {
    case CA_TREAT_DROP:
        return "a dropped field was sent";

    case CA_TREAT_KEEP:
        return in == NULL || json_equal(in, o) ? NULL
               : "a kept value differs from the original";

    case CA_TREAT_MASK:
        if (!json_is_string(o)) {
            return "a mask is not a string";
        }
        os = (const unsigned char *) json_string_value(o);
        ol = json_string_length(o);
        if (in != NULL && !json_is_string(in)) {
            return json_is_number(in) && memchr(os, '*', ol) != NULL ? NULL
                   : "a mask of neither a string nor a number";
        }
        if (in == NULL) {
            return ol == 0 || memchr(os, '*', ol) != NULL ? NULL
                   : "a mask hides nothing";
        }
        is = (const unsigned char *) json_string_value(in);
        il = json_string_length(in);
        if (cp_len(os, ol) != cp_len(is, il)) {
            return "a mask changed the length in code points";
        }
        for (i = 0, j = 0; i < ol && j < il;) {
            size_t oi = i, ij = j, on = cp_next(os, ol, &i),
                   in_n = cp_next(is, il, &j);

            if (on == 1 && os[oi] == '*') {
                continue;
            }
            if (on != in_n || memcmp(os + oi, is + ij, on) != 0) {
                return "a mask changed a code point it keeps";
            }
        }
        if (il > 0 && memchr(os, '*', ol) == NULL) {
            return "a mask hides nothing";
        }
        /* the empty string stays empty: nothing to hide */
        if (il > 0 && json_equal(in, o) && memchr(is, '*', il) == NULL) {
            return "a masked value equals the original";
        }
        return NULL;

    case CA_TREAT_HASH:
        if (!json_is_string(o) || json_string_length(o) != 64) {
            return "a hash is not 64 hex digits";
        }
        os = (const unsigned char *) json_string_value(o);
        for (i = 0; i < 64; i++) {
            if (!isxdigit(os[i])) {
                return "a hash is not 64 hex digits";
            }
        }
        if (in != NULL && !json_is_string(in) && !json_is_number(in)) {
            return "a hash of neither a string nor a number";
        }
        return in != NULL && json_equal(in, o)
               ? "a hashed value equals the original" : NULL;

    case CA_TREAT_BUCKET:
        if (!json_is_string(o)) {
            return "a bucket is not a string";
        }
        os = (const unsigned char *) json_string_value(o);
        lo = strtod((const char *) os, &end);
        if (end == (const char *) os || *end != '-') {
            return "a bucket is not lo-hi";
        }
        hi = strtod(end + 1, &end);
        if (*end != '\0' || !(lo < hi)) {
            return "a bucket is not lo-hi with lo < hi";
        }
        if (in == NULL) {
            return NULL;
        }
        if (!json_is_number(in)) {
            return "a bucket of something not a number";
        }
        /* the decimal is exact, the double of it may round onto hi */
        x = json_number_value(in);
        return lo <= x && x <= hi ? NULL : "a bucket misses its value";

    case CA_TREAT_YEAR:
        if (!json_is_string(o) || json_string_length(o) != 4) {
            return "a year is not four digits";
        }
        os = (const unsigned char *) json_string_value(o);
        for (i = 0; i < 4; i++) {
            if (!isdigit(os[i])) {
                return "a year is not four digits";
            }
        }
        if (in == NULL) {
            return NULL;
        }
        if (!json_is_string(in) || json_string_length(in) < 4
            || memcmp(json_string_value(in), os, 4) != 0)
        {
            return "a year is not the original's first four digits";
        }
        return NULL;
    }
    return "an unknown treatment";
}

static const ca_treatment *
treatment(const ca_field *f, int raw)
{
    return raw ? &f->raw : &f->masked;
}

/* Could o be what the filter sent for the input element in? */
static int
compatible(const ca_node *n, json_t *in, json_t *o, int raw)
{
    if (n->field) {
        return leaf_mismatch(treatment(n->field, raw), in, o) == NULL;
    }
    return (json_is_object(in) && json_is_object(o))
           || (json_is_array(in) && json_is_array(o));
}

static const ca_node *
child(const ca_node *n, const char *key)
{
    for (size_t i = 0; i < n->n_children; i++) {
        if (strcmp(n->children[i].key, key) == 0) {
            return &n->children[i];
        }
    }
    return NULL;
}

static void
check_node(const ca_node *n, json_t *in, json_t *o, int raw,
           const char *path)
{
    char        sub[PATH_MAX_LEN];
    const char *key, *why;
    json_t     *v;
    size_t      i, cur = 0;

    if (n->field) {
        why = leaf_mismatch(treatment(n->field, raw), in, o);
        FUZZ_CHECK(why == NULL, "%s at %s (field %s)", why, path,
                   n->field->path);
        return;
    }
    if (json_is_object(o)) {
        FUZZ_CHECK(n->n_children > 0, "an object at %s, where the policy"
                   " lists no member", path);
        FUZZ_CHECK(in == NULL || json_is_object(in), "an object at %s"
                   " from a non-object", path);
        json_object_foreach(o, key, v) {
            const ca_node *c = child(n, key);
            json_t        *iv = in ? json_object_get(in, key) : NULL;

            snprintf(sub, sizeof(sub), "%s.%s", path, key);
            FUZZ_CHECK(c != NULL, "member %s is not in the policy", sub);
            FUZZ_CHECK(in == NULL || iv != NULL, "member %s is not in the"
                       " input", sub);
            check_node(c, iv, v, raw, sub);
        }
    } else if (json_is_array(o)) {
        FUZZ_CHECK(n->each != NULL, "an array at %s, where the policy"
                   " lists no elements", path);
        FUZZ_CHECK(in == NULL || json_is_array(in), "an array at %s"
                   " from a non-array", path);
        json_array_foreach(o, i, v) {
            json_t *iv = NULL;

            snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
            if (in != NULL) {
                while (cur < json_array_size(in)
                       && !compatible(n->each, json_array_get(in, cur), v,
                                      raw))
                {
                    cur++;
                }
                FUZZ_CHECK(cur < json_array_size(in), "element %s is no"
                           " treatment of an input element in order", sub);
                iv = json_array_get(in, cur++);
            }
            check_node(n->each, iv, v, raw, sub);
        }
    } else {
        FUZZ_CHECK(0, "a scalar at %s, which the policy lists only as a"
                   " container", path);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ca_category *c;
    ca_filter_opts     opts;
    char              *out, *zeroed;
    size_t             out_len = 0;
    json_t            *in, *o;
    json_error_t       je;
    int                valid, deepest;

    if (size < 1) {
        return 0;
    }
    c = filter_input(data[0], &opts);

    out = ca_filter_text(c, (const char *) data + 1, size - 1, &opts, NULL,
                         &out_len);
    valid = jansson_reads_object((const char *) data + 1, size - 1,
                                 &deepest);
    FUZZ_CHECK(out == NULL || valid, "the filter passed a body jansson"
               " refuses: %.*s", (int) size - 1, (const char *) data + 1);
    FUZZ_CHECK(out != NULL || !valid || deepest > CA_FILTER_DEPTH_MAX,
               "the filter refused a body jansson reads (%d deep): %.*s",
               deepest, (int) size - 1, (const char *) data + 1);
    if (out == NULL) {
        return 0;
    }
    FUZZ_CHECK(json_object_text(out, out_len, &zeroed), "output is not one"
               " JSON object: %.*s", (int) out_len, out);
    /* the original is known when jansson reads both the same way */
    o = json_loadb(out, out_len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                   &je);
    in = json_loadb((const char *) data + 1, size - 1,
                    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (o == NULL || in == NULL || !json_is_object(in)) {
        /* numbers beyond jansson's range: the structure only */
        json_decref(o);
        json_decref(in);
        in = NULL;
        o = json_loads(zeroed, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                       &je);
    }
    FUZZ_CHECK(o != NULL, "output: %s: %.*s", je.text, (int) out_len, out);
    FUZZ_CHECK(json_is_object(o), "output is not an object");
    check_node(&c->tree, in, o, opts.raw, "$");
    json_decref(in);
    json_decref(o);
    free(zeroed);
    free(out);
    return 0;
}
