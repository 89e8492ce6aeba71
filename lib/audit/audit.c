#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "audit.h"
#include "audit_testing.h"
#include "auditschema.h"
#include "core/core.h"

static int
plain_consent_id(const char *s, size_t len)
{
    if (len == 0 || len > 128) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':'
              || c == '-')) {
            return 0;
        }
    }
    return !ca_looks_personal(s, len);
}

size_t
ca_audit_consent_id(const char *jti, size_t len, char *out)
{
    unsigned char md[32];

    if (plain_consent_id(jti, len)) {
        memcpy(out, jti, len);
        out[len] = '\0';
        return len;
    }
    memcpy(out, "sha256:", 7);
    ca_sha256(jti, len, md);
    ca_hex(md, 32, out + 7);
    return 7 + 64;
}

size_t
ca_consent_key(char *out, size_t size, const char *what, const char *iss,
               const char *jti)
{
    int n;

    if (iss != NULL) {
        n = snprintf(out, size, "credit:%s:%s:%s", what, iss, jti);
    } else {
        n = snprintf(out, size, "credit:%s:%s", what, jti);
    }
    return (n < 0 || (size_t) n >= size) ? 0 : (size_t) n;
}

void
ca_entry_init(ca_entry *e, const char *event, int64_t ts_ms, const char *gw)
{
    e->n = 0;
    e->used = 0;
    ca_entry_add(e, CA_AUDIT_NAME(V), CA_AUDIT_VERSION,
                 strlen(CA_AUDIT_VERSION));
    ca_entry_add(e, CA_AUDIT_NAME(EVENT), event, strlen(event));
    ca_entry_add_int(e, CA_AUDIT_NAME(TS), ts_ms);
    ca_entry_add(e, CA_AUDIT_NAME(GW), gw, strlen(gw));
}

int
ca_entry_add(ca_entry *e, const char *name, const char *value, size_t len)
{
    char *dst;

    if (e->n >= CA_ENTRY_FIELDS || e->used + len + 1 > CA_ENTRY_BYTES) {
        e->n = CA_ENTRY_FIELDS + 1;     /* poisoned: sealing refuses it */
        return -1;
    }
    dst = e->buf + e->used;
    memcpy(dst, value, len);
    dst[len] = '\0';
    e->used += len + 1;
    e->name[e->n] = name;
    e->value[e->n] = dst;
    e->len[e->n] = len;
    e->n++;
    return 0;
}

int
ca_entry_addf(ca_entry *e, const char *name, const char *fmt, ...)
{
    char    tmp[512];
    int     n;
    va_list ap;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        e->n = CA_ENTRY_FIELDS + 1;
        return -1;
    }
    return ca_entry_add(e, name, tmp, (size_t) n);
}

int
ca_entry_add_int(ca_entry *e, const char *name, int64_t v)
{
    char    tmp[22];
    size_t  n;

    if (v < 0) {
        tmp[0] = '-';
        n = 1 + ca_u64_str((uint64_t) 0 - (uint64_t) v, tmp + 1);
    } else {
        n = ca_u64_str((uint64_t) v, tmp);
    }
    return ca_entry_add(e, name, tmp, n);
}

int
ca_entry_add_uint(ca_entry *e, const char *name, uint64_t v)
{
    char    tmp[21];

    return ca_entry_add(e, name, tmp, ca_u64_str(v, tmp));
}

const char *
ca_entry_get(const ca_entry *e, const char *name, size_t *len)
{
    for (size_t i = 0; i < e->n && i < CA_ENTRY_FIELDS; i++) {
        if (strcmp(e->name[i], name) == 0) {
            if (len) {
                *len = e->len[i];
            }
            return e->value[i];
        }
    }
    return NULL;
}

void
ca_chain_init(ca_chain *ch, const char *id)
{
    snprintf(ch->id, sizeof(ch->id), "%s", id);
    ch->seq = 0;
    memset(ch->head, 0, sizeof(ch->head));
}

/*
 * The canonical encoding is gathered in a buffer and hashed in a few large
 * updates: four small updates per field cost more than the hashing.
 */
typedef struct {
    EVP_MD_CTX     *md;
    size_t          n;
    unsigned char   b[2048];
} ca_hbuf;

static void
hput(ca_hbuf *h, const void *p, size_t len)
{
    if (h->n + len > sizeof(h->b)) {
        EVP_DigestUpdate(h->md, h->b, h->n);
        h->n = 0;
        if (len > sizeof(h->b)) {
            EVP_DigestUpdate(h->md, p, len);
            return;
        }
    }
    memcpy(h->b + h->n, p, len);
    h->n += len;
}

static void
hput_u32(ca_hbuf *h, size_t n)
{
    unsigned char b[4] = {
        (unsigned char) (n >> 24), (unsigned char) (n >> 16),
        (unsigned char) (n >> 8), (unsigned char) n
    };
    hput(h, b, 4);
}

/* nlens NULL: names are C strings. */
static void
hfields(ca_hbuf *h, const char *const *names, const size_t *nlens,
        const char *const *values, const size_t *lens, size_t from,
        size_t n)
{
    static const size_t hl = sizeof("hash") - 1;

    for (size_t i = from; i < n; i++) {
        size_t nl = nlens ? nlens[i] : strlen(names[i]);

        if (nl == hl && memcmp(names[i], CA_AUDIT_NAME(HASH), hl) == 0) {
            continue;               /* the one field not hashed */
        }
        /* Length prefixes make the encoding unambiguous whatever bytes the
         * values hold (contract §7). */
        hput_u32(h, nl);
        hput(h, names[i], nl);
        hput_u32(h, lens[i]);
        hput(h, values[i], lens[i]);
    }
}

static void
hfinal(ca_hbuf *h, unsigned char out[32])
{
    if (EVP_DigestUpdate(h->md, h->b, h->n) != 1
        || EVP_DigestFinal_ex(h->md, out, NULL) != 1)
    {
        memset(out, 0xff, 32);
    }
}

void
ca_entry_digest(const char *const *names, const char *const *values,
                const size_t *lens, size_t n, unsigned char out[32])
{
    ca_entry_digest_bin(names, NULL, values, lens, n, out);
}

/* name_lens NULL: names are C strings. */
void
ca_entry_digest_bin(const char *const *names, const size_t *name_lens,
                    const char *const *values, const size_t *value_lens,
                    size_t n, unsigned char out[32])
{
    ca_hbuf  h;

    h.md = ca_sha256_begin();
    if (h.md == NULL) {
        memset(out, 0xff, 32);
        return;
    }
    h.n = 0;
    hfields(&h, names, name_lens, values, value_lens, 0, n);
    hfinal(&h, out);
}

EVP_MD_CTX *
ca_entry_digest_prefix(const ca_entry *e, size_t upto)
{
    ca_hbuf  h;

    h.md = ca_sha256_begin_held();
    if (h.md == NULL) {
        return NULL;
    }
    h.n = 0;
    hfields(&h, e->name, NULL, e->value, e->len, 0, upto);
    if (EVP_DigestUpdate(h.md, h.b, h.n) != 1) {
        return NULL;
    }
    return h.md;
}

int
ca_chain_seal(ca_chain *ch, ca_entry *e)
{
    return ca_chain_seal_prefixed(ch, e, NULL, 0);
}

int
ca_chain_seal_prefixed(ca_chain *ch, ca_entry *e, const EVP_MD_CTX *prefix,
                       size_t upto)
{
    char          hex[65];
    unsigned char h[32];
    ca_hbuf       hb;

    if (e->n > CA_ENTRY_FIELDS) {
        return -1;
    }
    ca_hex(ch->head, 32, hex);
    if (ca_entry_add(e, CA_AUDIT_NAME(CHAIN), ch->id, strlen(ch->id)) != 0
        || ca_entry_add_uint(e, CA_AUDIT_NAME(SEQ), ch->seq + 1) != 0
        || ca_entry_add(e, CA_AUDIT_NAME(PREV), hex, 64) != 0)
    {
        return -1;
    }
    if (prefix == NULL) {
        ca_entry_digest(e->name, e->value, e->len, e->n, h);
    } else {
        hb.md = ca_sha256_resume(prefix);
        if (hb.md == NULL) {
            return -1;
        }
        hb.n = 0;
        hfields(&hb, e->name, NULL, e->value, e->len, upto, e->n);
        hfinal(&hb, h);
    }
    ca_hex(h, 32, hex);
    if (ca_entry_add(e, CA_AUDIT_NAME(HASH), hex, 64) != 0) {
        return -1;
    }
    ch->seq++;
    memcpy(ch->head, h, 32);
    return 0;
}

EVP_PKEY *
ca_audit_key_load(const char *file, int private_key, char *err, size_t errlen)
{
    FILE     *f;
    EVP_PKEY *k;

    f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", file);
        return NULL;
    }
    k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                    : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL) {
        snprintf(err, errlen, "%s: not a PEM %s key", file,
                 private_key ? "private" : "public");
        ERR_clear_error();
        return NULL;
    }
    if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        snprintf(err, errlen, "%s: the audit key must be Ed25519", file);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}
