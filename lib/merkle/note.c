/*
 * C2SP signed notes and tlog checkpoints, Ed25519 (note.h).  Parsing is
 * strict: a checkpoint is the bytes a verifier will hash, so anything not
 * exactly in the format is refused rather than read generously.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "note.h"
#include "core/core.h"

/* U+2014 EM DASH, then a space: the start of every signature line */
static const char dash[] = "\xe2\x80\x94 ";
#define DASH_LEN 4

size_t
ca_b64std_encode(const unsigned char *in, size_t len, char *out)
{
    return (size_t) EVP_EncodeBlock((unsigned char *) out, in, (int) len);
}

int
ca_note_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > CA_NOTE_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (name[i] <= 0x20 || name[i] >= 0x7f || name[i] == '+') {
            return 0;
        }
    }
    return 1;
}

void
ca_note_key_hash(const char *name, const unsigned char pub[32],
                 unsigned char out[4])
{
    EVP_MD_CTX    *md = ca_sha256_begin();
    unsigned char  h[32], sep[2] = {'\n', 0x01};

    if (md == NULL || EVP_DigestUpdate(md, name, strlen(name)) != 1
        || EVP_DigestUpdate(md, sep, 2) != 1
        || EVP_DigestUpdate(md, pub, 32) != 1
        || EVP_DigestFinal_ex(md, h, NULL) != 1)
    {
        memset(h, 0xff, sizeof(h));
    }
    memcpy(out, h, 4);
}

int
ca_note_vkey(const char *name, const unsigned char pub[32], char *out,
             size_t len)
{
    unsigned char kh[4], k[33];
    char          hex[9], b64[48];

    if (!ca_note_name_ok(name)) {
        return -1;
    }
    ca_note_key_hash(name, pub, kh);
    ca_hex(kh, 4, hex);
    k[0] = 0x01;
    memcpy(k + 1, pub, 32);
    ca_b64std_encode(k, 33, b64);
    return (size_t) snprintf(out, len, "%s+%s+%s", name, hex, b64) < len
           ? 0 : -1;
}

int
ca_note_vkey_parse(const char *s, char *name, size_t namelen,
                   unsigned char pub[32])
{
    const char    *p1 = strchr(s, '+'), *p2;
    unsigned char  kh[4], want[4], k[48];
    size_t         nl;

    if (p1 == NULL || (p2 = strchr(p1 + 1, '+')) == NULL) {
        return -1;
    }
    nl = (size_t) (p1 - s);
    if (nl == 0 || nl >= namelen || p2 - p1 - 1 != 8
        || strlen(p2 + 1) != 44)
    {
        return -1;
    }
    memcpy(name, s, nl);
    name[nl] = '\0';
    {
        char hex[9];

        memcpy(hex, p1 + 1, 8);
        hex[8] = '\0';
        if (ca_unhex(hex, kh, 4) != 0) {
            return -1;
        }
    }
    if (!ca_note_name_ok(name)
        || ca_b64std_decode(p2 + 1, 44, k) != 33 || k[0] != 0x01)
    {
        return -1;
    }
    memcpy(pub, k + 1, 32);
    ca_note_key_hash(name, pub, want);
    return memcmp(kh, want, 4) == 0 ? 0 : -1;
}

int
ca_note_pubkey(EVP_PKEY *key, unsigned char pub[32])
{
    size_t len = 32;

    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519
        || EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != 32)
    {
        return -1;
    }
    return 0;
}

/* The note's text is what comes before its last blank line: every text
 * line and every signature line ends in '\n'. */
static int
text_ok(const char *t, size_t len)
{
    if (len == 0 || t[len - 1] != '\n') {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) t[i];

        if ((c < 0x20 && c != '\n') || c == 0x7f
            || (c == '\n' && i + 1 < len && t[i + 1] == '\n')
            || (c == '\n' && i == 0))
        {
            return 0;
        }
    }
    return 1;
}

size_t
ca_note_sign(const char *text, size_t tlen, const char *name, EVP_PKEY *key,
             char *out, size_t outlen)
{
    unsigned char  pub[32], blob[4 + 64];
    char           b64[100];
    size_t         siglen = 64, need;
    EVP_MD_CTX    *ctx;
    int            ok;

    if (!text_ok(text, tlen) || !ca_note_name_ok(name)
        || ca_note_pubkey(key, pub) != 0)
    {
        return 0;
    }
    ca_note_key_hash(name, pub, blob);
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        return 0;
    }
    ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1
         && EVP_DigestSign(ctx, blob + 4, &siglen,
                           (const unsigned char *) text, tlen) == 1
         && siglen == 64;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return 0;
    }
    ca_b64std_encode(blob, sizeof(blob), b64);
    need = tlen + 1 + DASH_LEN + strlen(name) + 1 + strlen(b64) + 1;
    if (need >= outlen) {
        return 0;
    }
    memcpy(out, text, tlen);
    snprintf(out + tlen, outlen - tlen, "\n%s%s %s\n", dash, name, b64);
    return need;
}

/* The text's length: up to and including the newline before the last
 * blank line; 0 when there is none. */
static size_t
text_len(const char *note, size_t len)
{
    for (size_t i = len; i >= 2; i--) {
        if (note[i - 1] == '\n' && note[i - 2] == '\n') {
            return i - 1;
        }
    }
    return 0;
}

int
ca_note_open(const char *note, size_t len, const char *name,
             const unsigned char pub[32], size_t *tlen)
{
    size_t         t = text_len(note, len), nl = strlen(name), i;
    unsigned char  kh[4], blob[96];
    int            found = 0, bad = 0;

    if (len > CA_NOTE_MAX || memchr(note, '\0', len) != NULL || t == 0
        || !text_ok(note, t) || note[len - 1] != '\n')
    {
        return CA_NOTE_MALFORMED;
    }
    ca_note_key_hash(name, pub, kh);
    for (i = t + 1; i < len;) {
        const char *line = note + i, *eol = memchr(line, '\n', len - i);
        size_t      ll = (size_t) (eol - line);
        const char *sp;
        long        bl;

        if (ll < DASH_LEN + 3 || memcmp(line, dash, DASH_LEN) != 0
            || (sp = memchr(line + DASH_LEN, ' ', ll - DASH_LEN)) == NULL
            || ll - (size_t) (sp + 1 - line) > 108)
        {
            return CA_NOTE_MALFORMED;
        }
        bl = ca_b64std_decode(sp + 1, ll - (size_t) (sp + 1 - line), blob);
        if (bl < 5) {
            return CA_NOTE_MALFORMED;
        }
        if ((size_t) (sp - line - DASH_LEN) == nl
            && memcmp(line + DASH_LEN, name, nl) == 0
            && memcmp(blob, kh, 4) == 0)
        {
            EVP_PKEY   *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519,
                                                        NULL, pub, 32);
            EVP_MD_CTX *ctx = EVP_MD_CTX_new();

            found = 1;
            if (k == NULL || ctx == NULL || bl != 68
                || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) != 1
                || EVP_DigestVerify(ctx, blob + 4, 64,
                                    (const unsigned char *) note, t) != 1)
            {
                bad = 1;
            }
            EVP_MD_CTX_free(ctx);
            EVP_PKEY_free(k);
        }
        i += ll + 1;
    }
    if (!found) {
        return CA_NOTE_UNSIGNED;
    }
    if (bad) {
        return CA_NOTE_BAD_SIG;
    }
    *tlen = t;
    return 0;
}

int
ca_note_signer(const char *note, size_t len, char *name, size_t namelen)
{
    size_t      t = text_len(note, len);
    const char *line = note + t + 1, *sp;

    if (t == 0 || len - t - 1 < DASH_LEN + 3
        || memcmp(line, dash, DASH_LEN) != 0
        || (sp = memchr(line + DASH_LEN, ' ', len - t - 1 - DASH_LEN))
           == NULL
        || (size_t) (sp - line - DASH_LEN) >= namelen)
    {
        return -1;
    }
    memcpy(name, line + DASH_LEN, (size_t) (sp - line - DASH_LEN));
    name[sp - line - DASH_LEN] = '\0';
    return ca_note_name_ok(name) ? 0 : -1;
}

size_t
ca_ckpt_text(const char *origin, uint64_t size, const unsigned char root[32],
             char *out, size_t outlen)
{
    char   b64[48];
    int    n;

    for (const char *p = origin; *p; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            return 0;
        }
    }
    if (origin[0] == '\0') {
        return 0;
    }
    ca_b64std_encode(root, 32, b64);
    n = snprintf(out, outlen, "%s\n%llu\n%s\n", origin,
                 (unsigned long long) size, b64);
    return n > 0 && (size_t) n < outlen ? (size_t) n : 0;
}

int
ca_ckpt_parse(const char *text, size_t tlen, char *origin, size_t olen,
              uint64_t *size, unsigned char root[32])
{
    const char    *l1 = memchr(text, '\n', tlen), *l2, *l3;
    uint64_t       v = 0;
    unsigned char  h[33];

    if (l1 == NULL || l1 == text || (size_t) (l1 - text) >= olen
        || (l2 = memchr(l1 + 1, '\n', tlen - (size_t) (l1 + 1 - text)))
           == NULL
        || (l3 = memchr(l2 + 1, '\n', tlen - (size_t) (l2 + 1 - text)))
           == NULL)
    {
        return -1;
    }
    /* decimal, no leading zero, no sign */
    if (l2 == l1 + 1 || l2 - l1 - 1 > 20 || (l1[1] == '0' && l2 != l1 + 2)) {
        return -1;
    }
    for (const char *p = l1 + 1; p < l2; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) {
            return -1;
        }
        v = v * 10 + (uint64_t) (*p - '0');
    }
    if (l3 - l2 - 1 != 44 || ca_b64std_decode(l2 + 1, 44, h) != 32) {
        return -1;
    }
    memcpy(root, h, 32);
    memcpy(origin, text, (size_t) (l1 - text));
    origin[l1 - text] = '\0';
    *size = v;
    return 0;
}
