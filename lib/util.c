#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "util.h"

void
ca_error_set(ca_error *err, const char *file, const char *jpath,
             const char *fmt, ...)
{
    char    reason[512];
    va_list ap;

    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    if (jpath != NULL && jpath[0] != '\0') {
        snprintf(err->text, sizeof(err->text), "%s: %s: %s",
                 file ? file : "-", jpath, reason);
    } else {
        snprintf(err->text, sizeof(err->text), "%s: %s",
                 file ? file : "-", reason);
    }
}

json_t *
ca_json_load_file(const char *file, ca_error *err)
{
    json_error_t je;
    json_t      *root;

    root = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (je.line <= 0 && je.position == 0) {
            ca_error_set(err, file, NULL, "%s", je.text);
        } else {
            ca_error_set(err, file, NULL, "invalid JSON at line %d column %d:"
                         " %s", je.line, je.column, je.text);
        }
    }
    return root;
}

static const signed char b64url_val[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};  /* value + 1; 0 means "not in the alphabet" */

long
ca_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    uint32_t acc = 0;
    size_t   i, bits = 0, n = 0;

    if (len % 4 == 1) {
        return -1;
    }
    for (i = 0; i < len; i++) {
        int v = b64url_val[(unsigned char) in[i]];
        if (v == 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t) (v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }
    /* Non-canonical encodings (stray low bits) are refused. */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    return (long) n;
}

long
ca_b64std_decode(const char *in, size_t len, unsigned char *out)
{
    size_t         pad = 0, i, n;
    unsigned char *tmp;
    long           r;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }
    n = len - pad;

    /* map onto the base64url alphabet and reuse its strict decoder */
    tmp = malloc(n ? n : 1);
    if (tmp == NULL) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        char c = in[i];
        if (c == '+') {
            c = '-';
        } else if (c == '/') {
            c = '_';
        } else if (c == '-' || c == '_' || c == '=') {
            free(tmp);
            return -1;
        }
        tmp[i] = (unsigned char) c;
    }
    r = ca_b64url_decode((char *) tmp, n, out);
    free(tmp);
    return r;
}

size_t
ca_b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t   i, n = 0;
    uint32_t v;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8 | in[i + 2];
        out[n++] = alpha[v >> 18];
        out[n++] = alpha[(v >> 12) & 63];
        out[n++] = alpha[(v >> 6) & 63];
        out[n++] = alpha[v & 63];
    }
    if (len - i == 1) {
        v = (uint32_t) in[i] << 16;
        out[n++] = alpha[v >> 18];
        out[n++] = alpha[(v >> 12) & 63];
    } else if (len - i == 2) {
        v = (uint32_t) in[i] << 16 | (uint32_t) in[i + 1] << 8;
        out[n++] = alpha[v >> 18];
        out[n++] = alpha[(v >> 12) & 63];
        out[n++] = alpha[(v >> 6) & 63];
    }
    out[n] = '\0';
    return n;
}

void
ca_hex(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int
ca_unhex(const char *in, unsigned char *out, size_t outlen)
{
    if (strlen(in) != 2 * outlen) {
        return -1;
    }
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (unsigned char) (hi << 4 | lo);
    }
    return 0;
}

/*
 * OpenSSL 3 looks an algorithm up by name (locks, string compares, a hash
 * table walk) every time EVP_sha256() or SHA256() is used implicitly; on
 * the request path that lookup costs more than hashing a token.  Fetch
 * once per process and reuse.
 */
static EVP_MD *sha256_md;

const EVP_MD *
ca_md_sha256(void)
{
    if (sha256_md == NULL) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    return sha256_md;
}

void
ca_md_release(void)
{
    EVP_MD_free(sha256_md);
    sha256_md = NULL;
}

void
ca_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;

    if (EVP_Digest(data, len, out, &n, ca_md_sha256(), NULL) != 1) {
        /* cannot happen with a fetched SHA-256; fail loudly, not open */
        memset(out, 0xff, 32);
    }
}

char *
ca_read_file(const char *file, size_t max, size_t *len, ca_error *err)
{
    FILE  *f;
    char  *buf;
    size_t n;
    struct stat st;

    f = fopen(file, "rb");
    if (f == NULL) {
        ca_error_set(err, file, NULL, "%s", strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) != 0 || (size_t) st.st_size > max) {
        ca_error_set(err, file, NULL, "file is larger than %zu bytes", max);
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        ca_error_set(err, file, NULL, "out of memory");
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, (size_t) st.st_size, f);
    fclose(f);
    if (n != (size_t) st.st_size) {
        ca_error_set(err, file, NULL, "short read");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) {
        *len = n;
    }
    return buf;
}

int
ca_is_token_chars(const char *s, size_t max)
{
    size_t n = 0;
    for (; *s; s++, n++) {
        char c = *s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return 0;
        }
    }
    return n >= 1 && n <= max;
}

int
ca_json_is_code(json_t *v, size_t max)
{
    return json_is_string(v)
           && json_string_length(v) == strlen(json_string_value(v))
           && ca_is_token_chars(json_string_value(v), max);
}
