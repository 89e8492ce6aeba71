/*
 * The enterprise key registry in Redis (contract §5, docs/keys.md): one record
 * per kid, written by `credit-consent key`, read lazily by the gateways.
 *
 *   credit:key:{<kid>}      the record (a JSON string, below)
 *   credit:keyreg:version   INCR'd after every change; gateways poll it
 *
 * The braces are a Redis Cluster hash tag, kept so that the names would
 * not change if the registry moved to a Cluster; today it lives in the
 * gateway's one Redis, and the gateway refuses a Cluster node.
 *
 * Record: {"kid":"…","uscc":"…","state":"active"|"revoked",
 *          "not_before":T,"not_after":T,"version":N,"jwk":{…}}
 * T: Unix seconds, 0 for no bound, at most CA_KEYREG_TIME_MAX.  The JWK is validated with the JWKS
 * loader's own rules (ca_key_from_jwk) and must agree with kid and uscc.
 */
#ifndef CA_KEYREG_H
#define CA_KEYREG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "keys.h"

#define CA_KEYREG_PREFIX       "credit:key:"
#define CA_KEYREG_VERSION_KEY  "credit:keyreg:version"
#define CA_KEYREG_NAME_MAX     (sizeof(CA_KEYREG_PREFIX) + CA_KID_MAX + 2)
#define CA_KEYREG_RECORD_MAX   8192     /* bytes; an RSA-8192 JWK fits */
/* 9999-12-31T23:59:59Z: the last second written with four digits of
 * year (lib/core/isotime.h); times are 0 (no bound) up to it */
#define CA_KEYREG_TIME_MAX     INT64_C(253402300799)
/* 2^53 - 1: exact in every JSON reader, and one more still fits */
#define CA_KEYREG_VERSION_MAX  INT64_C(9007199254740991)

typedef enum {
    CA_KEYREG_ACTIVE = 0,
    CA_KEYREG_REVOKED,
} ca_keyreg_state;

typedef struct {
    char             kid[CA_KID_MAX + 1];
    char             uscc[19];
    ca_keyreg_state  state;
    int64_t          not_before;        /* 0: none */
    int64_t          not_after;         /* 0: none */
    int64_t          version;           /* >= 1, grows with every change */
} ca_keyreg_meta;

/* "credit:key:{kid}" into out (CA_KEYREG_NAME_MAX); -1 on a bad kid. */
int ca_keyreg_name(const char *kid, size_t len, char *out);

/* The record of meta and a public JWK, compact JSON; the caller frees.
 * NULL when out of memory (or jwk is NULL), never a partial record. */
char *ca_keyreg_encode(const ca_keyreg_meta *meta, json_t *jwk);

/*
 * Parses and validates one record read under the name of kid.  With key,
 * also builds the public key (the expensive part); without, the JWK is
 * still fully validated.  0, or -1 with err naming the kid and the member.
 */
int ca_keyreg_parse(const char *buf, size_t len, const char *kid,
                    ca_keyreg_meta *meta, ca_key *key, ca_error *err);

/* The parsed JWK member of a record, for the tools (caller decrefs). */
json_t *ca_keyreg_jwk(const char *buf, size_t len);

/* NULL if the key may verify at now; otherwise why not. */
const char *ca_keyreg_unusable(const ca_keyreg_meta *meta, int64_t now);

#endif
