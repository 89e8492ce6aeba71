/*
 * Enterprise key registry (contract §5): a JWKS file whose keys each carry the
 * `uscc` of the enterprise they belong to and are pinned to one `alg`.
 */
#ifndef CA_KEYS_H
#define CA_KEYS_H

#include <stddef.h>
#include <openssl/evp.h>

#include "core/core.h"

typedef enum {
    CA_ALG_NONE  = 0,
    CA_ALG_ES256 = 1 << 0,
    CA_ALG_RS256 = 1 << 1,
    CA_ALG_PS256 = 1 << 2,
    CA_ALG_EDDSA = 1 << 3,
    CA_ALG_SM2   = 1 << 4,
} ca_alg;

#define CA_ALG_ALL (CA_ALG_ES256 | CA_ALG_RS256 | CA_ALG_PS256 \
                    | CA_ALG_EDDSA | CA_ALG_SM2)

/* Exact, case-sensitive: "ES256" -> CA_ALG_ES256; anything else NONE. */
ca_alg ca_alg_from_name(const char *name);
const char *ca_alg_name(ca_alg alg);

#define CA_KID_MAX 128

typedef struct {
    char      kid[CA_KID_MAX + 1];
    char      uscc[19];
    ca_alg    alg;
    EVP_PKEY *pkey;
    char     *pem;        /* SubjectPublicKeyInfo PEM, for libjwt */
    size_t    pem_len;
} ca_key;

typedef struct {
    ca_key *keys;         /* sorted by kid */
    size_t  n;
} ca_keyset;

/* Loads and validates a JWKS file: duplicate kid, missing alg, a key that
 * does not fit its alg, an RSA key under 2048 bits, a bad uscc, are errors. */
ca_keyset *ca_keyset_load(const char *file, ca_error *err);
const ca_key *ca_keyset_find(const ca_keyset *ks, const char *kid, size_t len);
void ca_keyset_free(ca_keyset *ks);

/* A new private key for alg (RSA 2048, P-256, Ed25519, SM2): tools, tests
 * and the bench; the gateway itself never generates keys. */
EVP_PKEY *ca_key_generate(ca_alg alg);

/*
 * Validates one public JWK (kid, use, uscc, pinned alg, kty and the key
 * itself, no private members) into *key: the one rule set shared by the
 * JWKS file, the Redis registry and `credit-consent key add`.  Errors name
 * file and jpath.  0, or -1 with err set and *key empty.
 */
int ca_key_from_jwk(json_t *jwk, const char *file, const char *jpath,
                    ca_key *key, ca_error *err);
void ca_key_clear(ca_key *key);

/* jwk.c: converts one JWK object to a public key; NULL with err set
 * otherwise. */
EVP_PKEY *ca_jwk_to_pkey(const char *kty, json_t *jwk, ca_alg alg,
                         const char *file, const char *jpath, ca_error *err);

/* The public JWK of a key, with kid, alg, use "sig" and uscc, as the
 * registry expects it (tools and tests).  NULL if the key does not fit alg;
 * the caller decrefs. */
json_t *ca_jwk_from_pkey(EVP_PKEY *pkey, ca_alg alg, const char *kid,
                         const char *uscc);

#endif
