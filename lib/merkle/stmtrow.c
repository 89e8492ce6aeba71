/*
 * An access statement's rows from entries' canonical bytes (stmtrow.h).
 */
#include <stdio.h>
#include <string.h>

#include "stmtrow.h"
#include "note.h"
#include "core/core.h"

const char *const ca_sr_names[CA_SR_COUNT] = {
    "ts", "rid", "gw", "bank", "purpose", "category", "mode", "detail",
    "decision", "reason", "status", "disclosed", "masked"
};

const char *const ca_srv_names[CA_SRV_COUNT] = {
    "ts", "gw", "consent", "by"
};

static int
u32(const unsigned char *raw, size_t len, size_t *at, size_t *n)
{
    if (len - *at < 4) {
        return -1;
    }
    *n = (size_t) raw[*at] << 24 | (size_t) raw[*at + 1] << 16
         | (size_t) raw[*at + 2] << 8 | raw[*at + 3];
    *at += 4;
    return *n <= len - *at ? 0 : -1;
}

/* Walks every field (a malformed entry is -1 whatever it holds first);
 * with name, its first value into out and -2 at the end. */
static long
walk(const unsigned char *raw, size_t len, const char *name, ca_span *out)
{
    size_t at = 0, n, v;
    long   count = 0;
    int    found = 0;

    while (at < len) {
        const unsigned char *k;

        if (u32(raw, len, &at, &n) != 0) {
            return -1;
        }
        k = raw + at;
        at += n;
        if (u32(raw, len, &at, &v) != 0) {
            return -1;
        }
        if (name != NULL && !found && n == strlen(name)
            && memcmp(k, name, n) == 0)
        {
            out->p = (const char *) raw + at;
            out->len = v;
            found = 1;
        }
        at += v;
        count++;
    }
    return found ? -2 : count;
}

int
ca_raw_field(const unsigned char *raw, size_t len, const char *name,
             ca_span *out)
{
    long rc;

    out->p = NULL;
    out->len = 0;
    rc = walk(raw, len, name, out);

    if (rc == -2) {
        return 0;
    }
    out->p = NULL;
    out->len = 0;
    return rc < 0 ? -1 : 1;
}

long
ca_raw_count(const unsigned char *raw, size_t len)
{
    return walk(raw, len, NULL, NULL);
}

int
ca_sr_is_event(const unsigned char *raw, size_t len, const char *event)
{
    ca_span s;

    return ca_raw_field(raw, len, "event", &s) == 0
           && s.len == strlen(event) && memcmp(s.p, event, s.len) == 0;
}

int64_t
ca_sr_ts(const unsigned char *raw, size_t len)
{
    ca_span s;
    int64_t v = 0;

    if (ca_raw_field(raw, len, "ts", &s) != 0 || s.len == 0 || s.len > 15) {
        return -1;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return -1;
        }
        v = v * 10 + (s.p[i] - '0');
    }
    return v;
}

static int
same(const unsigned char *a, size_t alen, const unsigned char *b,
     size_t blen, const char *name)
{
    ca_span x, y;

    return ca_raw_field(a, alen, name, &x) == 0
           && ca_raw_field(b, blen, name, &y) == 0 && x.len == y.len
           && memcmp(x.p, y.p, x.len) == 0;
}

int
ca_sr_pairs(const unsigned char *dec, size_t dlen, const unsigned char *out,
            size_t olen)
{
    return same(dec, dlen, out, olen, "rid")
           && same(dec, dlen, out, olen, "gw");
}

int
ca_sr_row(const unsigned char *dec, size_t dlen, const unsigned char *out,
          size_t olen, ca_span row[CA_SR_COUNT])
{
    if (!ca_sr_is_event(dec, dlen, "decision")
        || (out != NULL && (!ca_sr_is_event(out, olen, "outcome")
                            || !ca_sr_pairs(dec, dlen, out, olen))))
    {
        return -1;
    }
    for (int i = 0; i < CA_SR_COUNT; i++) {
        const unsigned char *src = i < CA_SR_FROM_OUTCOME ? dec : out;
        size_t               len = i < CA_SR_FROM_OUTCOME ? dlen : olen;

        row[i].p = NULL;
        row[i].len = 0;
        if (src != NULL && ca_raw_field(src, len, ca_sr_names[i], &row[i])
            < 0)
        {
            return -1;
        }
    }
    return 0;
}

int
ca_sr_revocation(const unsigned char *raw, size_t len,
                 ca_span row[CA_SRV_COUNT])
{
    if (!ca_sr_is_event(raw, len, "revocation")) {
        return -1;
    }
    for (int i = 0; i < CA_SRV_COUNT; i++) {
        if (ca_raw_field(raw, len, ca_srv_names[i], &row[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

size_t
ca_stmt_text(const ca_stmt_head *h, char *out, size_t outlen)
{
    const char *v[4] = {h->origin, h->enterprise, h->month, h->tz};
    char        r[48], d[48];
    int         n;

    for (int i = 0; i < 4; i++) {
        if (v[i] == NULL || v[i][0] == '\0' || strpbrk(v[i], "\r\n")) {
            return 0;
        }
    }
    ca_b64std_encode(h->root, 32, r);
    ca_b64std_encode(h->digest, 32, d);
    n = snprintf(out, outlen, "%s\n%s\n%s\n%s %s\n%lld %lld\n%llu\n%s\n"
                 "%llu\n%s\n", CA_STMT_TITLE, h->origin, h->enterprise,
                 h->month, h->tz, (long long) h->since_ms,
                 (long long) h->until_ms, (unsigned long long) h->size, r,
                 (unsigned long long) h->count, d);
    return n > 0 && (size_t) n < outlen ? (size_t) n : 0;
}

void
ca_stmt_digest(const uint64_t *ords, const unsigned char *leaves, size_t n,
               unsigned char out[32])
{
    EVP_MD_CTX *md = ca_sha256_begin();
    int         ok = md != NULL;

    for (size_t i = 0; i < n && ok; i++) {
        unsigned char b[8];

        for (int j = 0; j < 8; j++) {
            b[j] = (unsigned char) (ords[i] >> (56 - 8 * j));
        }
        ok = EVP_DigestUpdate(md, b, 8) == 1
             && EVP_DigestUpdate(md, leaves + 32 * i, 32) == 1;
    }
    if (!ok || EVP_DigestFinal_ex(md, out, NULL) != 1) {
        memset(out, 0xff, 32);
    }
}
