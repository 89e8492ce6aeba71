/*
 * Checkpoint messages, entries and signatures (see auditckpt.h and
 * docs/audit-format.md §3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditckpt.h"
#include "audit_testing.h"
#include "auditschema.h"
#include "core/core.h"

#define CKPT_FIXED  512         /* the message without its heads */

size_t
ca_checkpoint_message(const char *chain, uint64_t seq, const char *head_hex,
                      const char *heads, size_t heads_len, char *out,
                      size_t outlen)
{
    int n = snprintf(out, outlen, "credit-auth checkpoint v%c\n%s\n%llu\n%s\n",
                     heads ? '2' : '1', chain, (unsigned long long) seq,
                     head_hex);

    if (n < 0 || (size_t) n >= outlen || heads_len > outlen - (size_t) n) {
        return 0;
    }
    if (heads_len > 0) {
        memcpy(out + n, heads, heads_len);
    }
    return (size_t) n + heads_len;
}

int
ca_ckpt_parse_hash(const char *s, size_t len, unsigned char out[32])
{
    char buf[65];

    if (len != 64) {
        return -1;
    }
    for (size_t i = 0; i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return -1;
        }
    }
    memcpy(buf, s, 64);
    buf[64] = '\0';
    return ca_unhex(buf, out, 32);
}

size_t
ca_ckpt_heads_format(const ca_ckpt_head *h, size_t n, char *out,
                     size_t outlen)
{
    size_t used = 0;
    char   hex[65];
    int    k;

    if (outlen == 0) {
        return 0;
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        ca_hex(h[i].hash, 32, hex);
        k = snprintf(out + used, outlen - used, "%llu %llu %s\n",
                     (unsigned long long) h[i].lane,
                     (unsigned long long) h[i].seq, hex);
        if (k < 0 || (size_t) k >= outlen - used) {
            return 0;
        }
        used += (size_t) k;
    }
    return used;
}

long
ca_ckpt_heads_parse(const char *s, size_t len, ca_ckpt_head *out,
                    size_t max)
{
    size_t      n = 0;
    const char *end = s + len, *sp1, *sp2, *nl;

    while (s < end) {
        nl = memchr(s, '\n', (size_t) (end - s));
        sp1 = nl ? memchr(s, ' ', (size_t) (nl - s)) : NULL;
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t) (nl - sp1 - 1)) : NULL;
        if (sp2 == NULL || n == max
            || ca_u64_parse(s, (size_t) (sp1 - s), &out[n].lane) != 0
            || ca_u64_parse(sp1 + 1, (size_t) (sp2 - sp1 - 1),
                                 &out[n].seq) != 0
            || out[n].seq == 0
            || ca_ckpt_parse_hash(sp2 + 1, (size_t) (nl - sp2 - 1),
                                  out[n].hash) != 0
            || (n > 0 && out[n].lane <= out[n - 1].lane))
        {
            return -1;
        }
        n++;
        s = nl + 1;
    }
    return (long) n;
}

int
ca_checkpoint_build(ca_chain *ch, ca_entry *e, int64_t ts_ms, const char *gw,
                    EVP_PKEY *key, const char *heads)
{
    char          head[65], sig64[128], *msg;
    unsigned char sig[64];
    size_t        mlen, slen = sizeof(sig), hlen = heads ? strlen(heads) : 0;
    EVP_MD_CTX   *md;
    int           ok;
    ca_audit_facts f;

    /* The signature certifies the chain up to and including entry `seq`,
     * whose hash is `head` (and, v2, the heads listed); the checkpoint is
     * then chained like any entry, so deleting it is itself detectable. */
    msg = malloc(CKPT_FIXED + hlen);
    if (msg == NULL) {
        return -1;
    }
    ca_hex(ch->head, 32, head);
    mlen = ca_checkpoint_message(ch->id, ch->seq, head, heads, hlen, msg,
                                 CKPT_FIXED + hlen);
    md = mlen ? EVP_MD_CTX_new() : NULL;
    ok = md != NULL
         && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1
         && EVP_DigestSign(md, sig, &slen, (unsigned char *) msg, mlen) == 1;
    EVP_MD_CTX_free(md);
    free(msg);
    if (!ok) {
        return -1;
    }
    ca_b64url_encode(sig, slen, sig64);

    memset(&f, 0, sizeof(f));
    f.ts = ts_ms;
    f.gw = gw;
    f.covers = (int64_t) ch->seq;
    f.head = head;
    f.heads = heads;
    f.sig = sig64;
    if (ca_audit_build(e, CA_EV_CHECKPOINT, &f) != 0) {
        return -1;
    }
    return ca_chain_seal(ch, e);
}

int
ca_checkpoint_verify(EVP_PKEY *key, const char *chain, uint64_t covers,
                     const char *head_hex, const char *heads,
                     size_t heads_len, const char *sig, size_t siglen)
{
    char          *msg;
    unsigned char  raw[96];
    size_t         mlen;
    EVP_MD_CTX    *md;
    int            ok;

    if (key == NULL || siglen > 88 || ca_b64url_decode(sig, siglen, raw) != 64)
    {
        return 0;
    }
    msg = malloc(CKPT_FIXED + strlen(chain) + heads_len);
    if (msg == NULL) {
        return 0;
    }
    mlen = ca_checkpoint_message(chain, covers, head_hex, heads, heads_len,
                                 msg, CKPT_FIXED + strlen(chain) + heads_len);
    md = mlen ? EVP_MD_CTX_new() : NULL;
    ok = md != NULL
         && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1
         && EVP_DigestVerify(md, raw, 64, (const unsigned char *) msg,
                             mlen) == 1;
    EVP_MD_CTX_free(md);
    free(msg);
    return ok;
}
