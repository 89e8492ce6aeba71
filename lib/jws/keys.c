/*
 * Enterprise key registry: a JWKS file (RFC 7517) with two extra rules.
 * Every key is pinned to one `alg` (RFC 8725 §3.1), so a token can never
 * choose how its own signature is checked, and every key names the
 * enterprise (`uscc`) it speaks for.  The keys themselves, JWK to OpenSSL
 * and back: jwk.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "keys.h"
#include "core/core.h"

static char *
pkey_to_pem(EVP_PKEY *pkey, size_t *len)
{
    BIO  *bio = BIO_new(BIO_s_mem());
    char *data, *pem = NULL;
    long  n;

    if (bio != NULL && PEM_write_bio_PUBKEY(bio, pkey) == 1) {
        n = BIO_get_mem_data(bio, &data);
        if (n > 0 && (pem = malloc((size_t) n + 1)) != NULL) {
            memcpy(pem, data, (size_t) n);
            pem[n] = '\0';
            *len = (size_t) n;
        }
    }
    BIO_free(bio);
    return pem;
}

/* Members that only a private JWK carries (RFC 7518 §6.2.2, §6.3.2, §6.4;
 * RFC 8037 §2): a public registry that holds one has leaked a key. */
static const char *const private_members[] = {
    "d", "p", "q", "dp", "dq", "qi", "oth", "k",
};

int
ca_key_from_jwk(json_t *jwk, const char *file, const char *jpath,
                ca_key *key, ca_error *err)
{
    char        path[160];
    json_t     *v;
    const char *kty, *s;

    memset(key, 0, sizeof(*key));
    if (!json_is_object(jwk)) {
        ca_error_set(err, file, jpath, "must be an object");
        return -1;
    }
    for (size_t i = 0; i < sizeof(private_members) / sizeof(char *); i++) {
        if (json_object_get(jwk, private_members[i]) != NULL) {
            snprintf(path, sizeof(path), "%s.%s", jpath, private_members[i]);
            ca_error_set(err, file, path, "private key material in a public"
                         " key registry");
            return -1;
        }
    }

    snprintf(path, sizeof(path), "%s.kid", jpath);
    v = json_object_get(jwk, "kid");
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, v ? "must be a string" : "missing");
        return -1;
    }
    s = json_string_value(v);
    if (!ca_is_token_chars(s, CA_KID_MAX)
        || json_string_length(v) != strlen(s))
    {
        ca_error_set(err, file, path, "must be 1..%d characters of"
                     " [A-Za-z0-9._-]", CA_KID_MAX);
        return -1;
    }
    strcpy(key->kid, s);

    snprintf(path, sizeof(path), "%s.use", jpath);
    v = json_object_get(jwk, "use");
    if (v != NULL && !(json_is_string(v)
                       && strcmp(json_string_value(v), "sig") == 0))
    {
        ca_error_set(err, file, path, "must be \"sig\"");
        return -1;
    }

    snprintf(path, sizeof(path), "%s.uscc", jpath);
    v = json_object_get(jwk, "uscc");
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, v ? "must be a string" : "missing");
        return -1;
    }
    if (!ca_uscc_valid(json_string_value(v), json_string_length(v))) {
        ca_error_set(err, file, path, "not a valid USCC (GB 32100-2015)");
        return -1;
    }
    memcpy(key->uscc, json_string_value(v), 18);
    key->uscc[18] = '\0';

    snprintf(path, sizeof(path), "%s.alg", jpath);
    v = json_object_get(jwk, "alg");
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, v ? "must be a string"
                     : "missing: each key is pinned to one alg");
        return -1;
    }
    key->alg = ca_alg_from_name(json_string_value(v));
    if (key->alg == CA_ALG_NONE) {
        ca_error_set(err, file, path, "must be one of ES256 RS256 PS256"
                     " EdDSA SM2");
        return -1;
    }

    snprintf(path, sizeof(path), "%s.kty", jpath);
    v = json_object_get(jwk, "kty");
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, v ? "must be a string" : "missing");
        return -1;
    }
    kty = json_string_value(v);

    key->pkey = ca_jwk_to_pkey(kty, jwk, key->alg, file, jpath, err);
    if (key->pkey == NULL) {
        /* reported through err; left queued, OpenSSL's errors would be
         * blamed on the next TLS call of a gateway reading the registry */
        ERR_clear_error();
        return -1;
    }
    key->pem = pkey_to_pem(key->pkey, &key->pem_len);
    if (key->pem == NULL) {
        ca_error_set(err, file, jpath, "cannot encode the key as PEM");
        ca_key_clear(key);
        return -1;
    }
    return 0;
}

void
ca_key_clear(ca_key *key)
{
    EVP_PKEY_free(key->pkey);
    free(key->pem);
    key->pkey = NULL;
    key->pem = NULL;
    key->pem_len = 0;
}

static int
key_cmp(const void *a, const void *b)
{
    return strcmp(((const ca_key *) a)->kid, ((const ca_key *) b)->kid);
}

/* Rare path: names both places in file order, for the officer. */
static void
dup_error(json_t *keys, const char *kid, const char *file, ca_error *err)
{
    size_t first = (size_t) -1, i;
    json_t *jwk;
    char    path[64];

    json_array_foreach(keys, i, jwk) {
        const char *s = json_string_value(json_object_get(jwk, "kid"));
        if (s == NULL || strcmp(s, kid) != 0) {
            continue;
        }
        if (first == (size_t) -1) {
            first = i;
            continue;
        }
        snprintf(path, sizeof(path), "$.keys[%zu].kid", i);
        ca_error_set(err, file, path, "duplicate kid (also $.keys[%zu])",
                     first);
        return;
    }
}

ca_keyset *
ca_keyset_load(const char *file, ca_error *err)
{
    json_t    *root, *keys;
    ca_keyset *ks = NULL;
    size_t     n;

    root = ca_json_load_file(file, err);
    if (root == NULL) {
        return NULL;
    }
    if (!json_is_object(root)) {
        ca_error_set(err, file, "$", "must be an object {\"keys\":[...]}");
        goto fail;
    }
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        ca_error_set(err, file, "$.keys", keys ? "must be an array"
                     : "missing");
        goto fail;
    }
    n = json_array_size(keys);
    if (n == 0) {
        ca_error_set(err, file, "$.keys", "no keys");
        goto fail;
    }

    ks = calloc(1, sizeof(*ks));
    if (ks == NULL || (ks->keys = calloc(n, sizeof(ca_key))) == NULL) {
        ca_error_set(err, file, NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        char jpath[64];

        snprintf(jpath, sizeof(jpath), "$.keys[%zu]", i);
        ks->n = i + 1;      /* so that free() sees the partly built key */
        if (ca_key_from_jwk(json_array_get(keys, i), file, jpath,
                            &ks->keys[i], err))
        {
            goto fail;
        }
    }
    qsort(ks->keys, ks->n, sizeof(ca_key), key_cmp);
    for (size_t i = 1; i < ks->n; i++) {
        if (strcmp(ks->keys[i - 1].kid, ks->keys[i].kid) == 0) {
            dup_error(keys, ks->keys[i].kid, file, err);
            goto fail;
        }
    }
    json_decref(root);
    return ks;

fail:
    ca_keyset_free(ks);
    json_decref(root);
    return NULL;
}

static int
kid_cmp(const void *k, const void *elem)
{
    return strcmp(k, ((const ca_key *) elem)->kid);
}

const ca_key *
ca_keyset_find(const ca_keyset *ks, const char *kid, size_t len)
{
    char buf[CA_KID_MAX + 1];

    if (ks == NULL || len == 0 || len > CA_KID_MAX
        || memchr(kid, '\0', len) != NULL)
    {
        return NULL;
    }
    memcpy(buf, kid, len);
    buf[len] = '\0';
    return bsearch(buf, ks->keys, ks->n, sizeof(ca_key), kid_cmp);
}

void
ca_keyset_free(ca_keyset *ks)
{
    if (ks == NULL) {
        return;
    }
    for (size_t i = 0; i < ks->n; i++) {
        ca_key_clear(&ks->keys[i]);
    }
    free(ks->keys);
    free(ks);
}

EVP_PKEY *
ca_key_generate(ca_alg alg)
{
    switch (alg) {
    case CA_ALG_RS256:
    case CA_ALG_PS256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    case CA_ALG_ES256:
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    case CA_ALG_EDDSA:
        return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    case CA_ALG_SM2:
        return EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    default:
        return NULL;
    }
}
