/*
 * Compact JWS verified per RFC 8725, for any typ: consent tokens and
 * withdrawals alike (their claims, and the typ each expects: claims.c,
 * which calls this file, never the other way round).
 *
 * The header is trusted for nothing but naming the key: the key's pinned
 * alg decides how the signature is checked (signature.c), and a header
 * that disagrees is refused before any cryptography runs.  The claims are
 * then checked by the callback the caller gave.
 */
#include <stdlib.h>
#include <string.h>

#include "token.h"

/* Decodes one segment into a fresh buffer; NULL when not base64url. */
static unsigned char *
segment(const char *s, size_t len, size_t *out_len)
{
    unsigned char *buf = malloc(3 * len / 4 + 3);
    long           n;

    if (buf == NULL) {
        return NULL;
    }
    n = ca_b64url_decode(s, len, buf);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    *out_len = (size_t) n;
    return buf;
}

/* A JSON object with no duplicate member, no NUL, valid UTF-8. */
static json_t *
json_object_from(const unsigned char *buf, size_t len)
{
    json_t *v;

    if (memchr(buf, '\0', len) != NULL) {
        return NULL;
    }
    v = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* "none", every HS*, and every other name than our five exact ones. */
static ca_alg
header_alg(json_t *hdr)
{
    json_t *v = json_object_get(hdr, "alg");

    if (!json_is_string(v)
        || json_string_length(v) != strlen(json_string_value(v)))
    {
        return CA_ALG_NONE;
    }
    return ca_alg_from_name(json_string_value(v));
}

int
ca_token_kid(const char *token, size_t len, char *kid, size_t *kid_len)
{
    const char    *d1;
    unsigned char *hbuf;
    size_t         hlen = 0;
    json_t        *hdr, *v;
    int            rc = -1;

    if (len == 0 || len > CA_TOKEN_MAX
        || (d1 = memchr(token, '.', len)) == NULL || d1 == token)
    {
        return -1;
    }
    hbuf = segment(token, (size_t) (d1 - token), &hlen);
    hdr = hbuf ? json_object_from(hbuf, hlen) : NULL;
    v = json_object_get(hdr, "kid");
    if (json_is_string(v) && json_string_length(v) > 0
        && json_string_length(v) <= CA_KID_MAX)
    {
        *kid_len = json_string_length(v);
        memcpy(kid, json_string_value(v), *kid_len);
        kid[*kid_len] = '\0';
        rc = 0;
    }
    json_decref(hdr);
    free(hbuf);
    return rc;
}

ca_reason
ca_jws_verify(const char *token, size_t len, const char *typ,
              const ca_keyset *ks, const ca_token_rules *rules,
              ca_jws_claims_pt parse, ca_claims *claims, char *detail,
              size_t detail_len)
{
    const char    *d1, *d2;
    unsigned char *hbuf = NULL, *pbuf = NULL, *sbuf = NULL;
    size_t         hlen = 0, plen = 0, slen = 0, signing_len;
    json_t        *hdr = NULL, *payload = NULL, *v;
    const ca_key  *key;
    ca_alg         alg;
    ca_reason      r;
    ca_claims      c;

    if (detail != NULL && detail_len > 0) {
        detail[0] = '\0';
    }
    if (len == 0 || len > CA_TOKEN_MAX) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, detail_len,
                         "token length must be 1..%d bytes", CA_TOKEN_MAX);
    }
    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - token)) : NULL;
    if (d1 == NULL || d2 == NULL
        || memchr(d2 + 1, '.', len - (size_t) (d2 + 1 - token)) != NULL)
    {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, detail_len,
                         "not a compact JWS of three segments");
    }
    signing_len = (size_t) (d2 - token);
    if (d1 == token || d2 == d1 + 1 || signing_len + 1 == len) {
        return ca_refuse(CA_TOKEN_MALFORMED, detail, detail_len,
                         "empty segment");
    }

    r = CA_TOKEN_MALFORMED;
    hbuf = segment(token, (size_t) (d1 - token), &hlen);
    pbuf = segment(d1 + 1, (size_t) (d2 - d1 - 1), &plen);
    sbuf = segment(d2 + 1, len - signing_len - 1, &slen);
    if (hbuf == NULL || pbuf == NULL || sbuf == NULL) {
        ca_refuse(r, detail, detail_len, "segment is not base64url");
        goto done;
    }
    hdr = json_object_from(hbuf, hlen);
    if (hdr == NULL) {
        ca_refuse(r, detail, detail_len, "header is not a JSON object");
        goto done;
    }

    v = json_object_get(hdr, "alg");
    if (!json_is_string(v)) {
        ca_refuse(r, detail, detail_len, "header alg must be a string");
        goto done;
    }
    alg = header_alg(hdr);
    if (alg == CA_ALG_NONE) {
        r = ca_refuse(CA_ALG_NOT_ALLOWED, detail, detail_len,
                      "alg is not one of ES256 RS256 PS256 EdDSA SM2");
        goto done;
    }
    if ((rules->algs & alg) == 0) {
        r = ca_refuse(CA_ALG_NOT_ALLOWED, detail, detail_len,
                      "alg %s is not allowed by the policy", ca_alg_name(alg));
        goto done;
    }

    v = json_object_get(hdr, "typ");
    if (!json_is_string(v) || strcmp(json_string_value(v), typ)
        || json_string_length(v) != strlen(typ))
    {
        r = ca_refuse(CA_TYP_INVALID, detail, detail_len,
                      "typ must be %s", typ);
        goto done;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        ca_refuse(r, detail, detail_len, "crit names extensions we do not"
                  " understand");
        goto done;
    }
    /* jku, x5u, jwk, x5c: never followed; keys come from the registry. */

    v = json_object_get(hdr, "kid");
    if (!json_is_string(v)) {
        ca_refuse(r, detail, detail_len, "header kid must be a string");
        goto done;
    }
    key = ca_keyset_find(ks, json_string_value(v), json_string_length(v));
    if (key == NULL) {
        r = ca_refuse(CA_KID_UNKNOWN, detail, detail_len,
                      "kid is not in the key file");
        goto done;
    }
    if (key->alg != alg) {
        r = ca_refuse(CA_ALG_NOT_ALLOWED, detail, detail_len,
                      "alg %s differs from the key's pinned alg %s",
                      ca_alg_name(alg), ca_alg_name(key->alg));
        goto done;
    }
    if (!ca_sig_verify(key, token, signing_len, sbuf, slen)) {
        r = ca_refuse(CA_SIGNATURE_INVALID, detail, detail_len,
                      "%s signature does not verify", ca_alg_name(alg));
        goto done;
    }

    payload = json_object_from(pbuf, plen);
    if (payload == NULL) {
        ca_refuse(r, detail, detail_len, "payload is not a JSON object");
        goto done;
    }
    /* the claims as the key's enterprise made them */
    memset(&c, 0, sizeof(c));
    r = parse(payload, key, rules, &c, detail, detail_len);
    if (r == CA_OK) {
        c.alg = alg;
        strcpy(c.kid, key->kid);
        *claims = c;
    }

done:
    json_decref(hdr);
    json_decref(payload);
    free(hbuf);
    free(pbuf);
    free(sbuf);
    return r;
}
