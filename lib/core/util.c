#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "bytescan.h"
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

#define CA_B64_ALNUM                                                          \
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,        \
    ['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,     \
    ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18,  \
    ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,  \
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,  \
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,  \
    ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,  \
    ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,  \
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54,  \
    ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,  \
    ['8'] = 61, ['9'] = 62

/* value + 1; 0 means "not in the alphabet" */
static const unsigned char b64url_val[256] = { CA_B64_ALNUM, ['-'] = 63,
                                               ['_'] = 64 };
static const unsigned char b64std_val[256] = { CA_B64_ALNUM, ['+'] = 63,
                                               ['/'] = 64 };

/*
 * Four characters at a time; a bank's certificate (Client-Cert, about
 * 1 KiB of base64) is decoded on every request behind a load balancer.
 */
static long
b64_decode(const unsigned char *val, const char *in, size_t len,
           unsigned char *out)
{
    const unsigned char *s = (const unsigned char *) in;
    uint32_t             a, b, c, d, v;
    size_t               i, n = 0;

    if (len % 4 == 1) {
        return -1;
    }
    for (i = 0; i + 4 <= len; i += 4) {
        a = val[s[i]];
        b = val[s[i + 1]];
        c = val[s[i + 2]];
        d = val[s[i + 3]];
        if (a == 0 || b == 0 || c == 0 || d == 0) {
            return -1;
        }
        v = (a - 1) << 18 | (b - 1) << 12 | (c - 1) << 6 | (d - 1);
        out[n++] = (unsigned char) (v >> 16);
        out[n++] = (unsigned char) (v >> 8);
        out[n++] = (unsigned char) v;
    }
    if (i == len) {
        return (long) n;
    }

    a = val[s[i]];
    b = val[s[i + 1]];
    c = (len - i == 3) ? val[s[i + 2]] : 1;
    if (a == 0 || b == 0 || c == 0) {
        return -1;
    }
    v = (a - 1) << 12 | (b - 1) << 6 | (c - 1);
    /* Non-canonical encodings (stray low bits) are refused. */
    if (len - i == 2) {
        if (v & 0x3c0) {
            return -1;
        }
        out[n++] = (unsigned char) (v >> 10);
    } else {
        if (v & 0x3) {
            return -1;
        }
        out[n++] = (unsigned char) (v >> 10);
        out[n++] = (unsigned char) (v >> 2);
    }
    return (long) n;
}

long
ca_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    return b64_decode(b64url_val, in, len, out);
}

long
ca_b64std_decode(const char *in, size_t len, unsigned char *out)
{
    size_t  pad = 0;

    if (len == 0 || len % 4 != 0) {
        return -1;
    }
    if (in[len - 1] == '=') {
        pad = (in[len - 2] == '=') ? 2 : 1;
    }
    return b64_decode(b64std_val, in, len - pad, out);
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

/* Every audit entry carries a few SHA-256s in hex: two digits a byte. */
#define CA_HEX_ROW(h)                                                        \
    h "0" h "1" h "2" h "3" h "4" h "5" h "6" h "7"                          \
    h "8" h "9" h "a" h "b" h "c" h "d" h "e" h "f"

static const char  hex_pairs[] =
    CA_HEX_ROW("0") CA_HEX_ROW("1") CA_HEX_ROW("2") CA_HEX_ROW("3")
    CA_HEX_ROW("4") CA_HEX_ROW("5") CA_HEX_ROW("6") CA_HEX_ROW("7")
    CA_HEX_ROW("8") CA_HEX_ROW("9") CA_HEX_ROW("a") CA_HEX_ROW("b")
    CA_HEX_ROW("c") CA_HEX_ROW("d") CA_HEX_ROW("e") CA_HEX_ROW("f");

void
ca_hex(const unsigned char *in, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        memcpy(out + 2 * i, hex_pairs + 2 * in[i], 2);
    }
    out[2 * len] = '\0';
}

/* value + 1; 0: not a hex digit (the NUL included) */
static const unsigned char hex_val[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6,
    ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
    ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16
};

/* Checked whole before out is written: a bad string leaves it as it was. */
int
ca_unhex(const char *in, unsigned char *out, size_t outlen)
{
    const unsigned char *s = (const unsigned char *) in;
    size_t               i;

    for (i = 0; i < 2 * outlen; i++) {
        if (hex_val[s[i]] == 0) {
            return -1;
        }
    }
    if (s[2 * outlen] != '\0') {
        return -1;
    }
    for (i = 0; i < outlen; i++) {
        out[i] = (unsigned char) ((hex_val[s[2 * i]] - 1) << 4
                                  | (hex_val[s[2 * i + 1]] - 1));
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

/* The digest contexts too: a new one per digest is two allocations and a
 * provider context set-up, for hashing a few hundred bytes. */
static EVP_MD_CTX *sha256_ctx, *sha256_held;

static EVP_MD_CTX *
sha256_ctx_get(EVP_MD_CTX **ctx)
{
    if (*ctx == NULL) {
        *ctx = EVP_MD_CTX_new();
    }
    return *ctx;
}

EVP_MD_CTX *
ca_sha256_begin(void)
{
    EVP_MD_CTX  *md = sha256_ctx_get(&sha256_ctx);

    if (md == NULL || EVP_DigestInit_ex(md, ca_md_sha256(), NULL) != 1) {
        return NULL;
    }
    return md;
}

/* No init first: the copy replaces the provider's state anyway. */
EVP_MD_CTX *
ca_sha256_resume(const EVP_MD_CTX *from)
{
    EVP_MD_CTX  *md = sha256_ctx_get(&sha256_ctx);

    if (md == NULL || EVP_MD_CTX_copy_ex(md, from) != 1) {
        return NULL;
    }
    return md;
}

EVP_MD_CTX *
ca_sha256_begin_held(void)
{
    EVP_MD_CTX  *md = sha256_ctx_get(&sha256_held);

    if (md == NULL || EVP_DigestInit_ex(md, ca_md_sha256(), NULL) != 1) {
        return NULL;
    }
    return md;
}

void
ca_md_release(void)
{
    EVP_MD_CTX_free(sha256_ctx);
    sha256_ctx = NULL;
    EVP_MD_CTX_free(sha256_held);
    sha256_held = NULL;
    EVP_MD_free(sha256_md);
    sha256_md = NULL;
}

size_t
ca_resp_size(int argc, const size_t *lens)
{
    size_t  n = 1 + 20 + 2;
    int     i;

    for (i = 0; i < argc; i++) {
        n += 1 + 20 + 2 + lens[i] + 2;
    }
    return n;
}

/* hiredis formats argument by argument into a growing string, with a
 * printf per length; a batch of a few dozen entries has a thousand. */
size_t
ca_resp_format(char *out, int argc, const char **argv, const size_t *lens)
{
    char  *p = out;
    int    i;

    *p++ = '*';
    p += ca_u64_str((uint64_t) argc, p);
    *p++ = '\r';
    *p++ = '\n';
    for (i = 0; i < argc; i++) {
        *p++ = '$';
        p += ca_u64_str(lens[i], p);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t) (p - out);
}

/* A script call carries a length for each of its hundreds of arguments,
 * a bucket two bounds: eight digits per 64-bit division, then halves of
 * halves, so that the divisions of one number do not each wait for the
 * one before. */
#define CA_DEC_ROW(t)                                                        \
    t "0" t "1" t "2" t "3" t "4" t "5" t "6" t "7" t "8" t "9"

static const char  dec_pairs[] =
    CA_DEC_ROW("0") CA_DEC_ROW("1") CA_DEC_ROW("2") CA_DEC_ROW("3")
    CA_DEC_ROW("4") CA_DEC_ROW("5") CA_DEC_ROW("6") CA_DEC_ROW("7")
    CA_DEC_ROW("8") CA_DEC_ROW("9");

/* x < 10000 as four digits at t: its two halves found side by side. */
static void
dec4(char *t, uint32_t x)
{
    memcpy(t, dec_pairs + 2 * (x / 100), 2);
    memcpy(t + 2, dec_pairs + 2 * (x % 100), 2);
}

size_t
ca_u64_str(uint64_t v, char *out)
{
    char     tmp[24];
    char    *t = tmp + sizeof(tmp);
    size_t   n;
    uint32_t x;

    while (v >= 100000000) {
        x = (uint32_t) (v % 100000000);
        v /= 100000000;
        t -= 8;
        dec4(t, x / 10000);
        dec4(t + 4, x % 10000);
    }
    x = (uint32_t) v;                   /* below 10^8 */
    if (x >= 10000) {
        t -= 4;
        dec4(t, x % 10000);
        x /= 10000;
    }
    if (x >= 100) {                     /* below 10^4 */
        t -= 2;
        memcpy(t, dec_pairs + 2 * (x % 100), 2);
        x /= 100;
    }
    if (x >= 10) {
        t -= 2;
        memcpy(t, dec_pairs + 2 * x, 2);
    } else {
        *--t = (char) ('0' + x);
    }
    n = (size_t) (tmp + sizeof(tmp) - t);
    ca_bs_copy(out, t, n);
    out[n] = '\0';
    return n;
}

void
ca_sha256(const void *data, size_t len, unsigned char out[32])
{
    EVP_MD_CTX   *md = ca_sha256_begin();

    if (md == NULL || EVP_DigestUpdate(md, data, len) != 1
        || EVP_DigestFinal_ex(md, out, NULL) != 1)
    {
        /* cannot happen with a fetched SHA-256; fail loudly, not open */
        memset(out, 0xff, 32);
    }
}

const char *
ca_script_sha(const char *script, size_t len, char sha[41])
{
    unsigned char  md[SHA_DIGEST_LENGTH];

    if (sha[0] == '\0') {
        SHA1((const unsigned char *) script, len, md);
        ca_hex(md, SHA_DIGEST_LENGTH, sha);
    }
    return sha;
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

uint64_t
ca_fnv1a(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }
    return h;
}
