/*
 * Audit entries and per-writer hash chains (contract §7,
 * docs/audit-format.md).
 *
 * An entry is an ordered list of field/value pairs.  ca_chain_seal() adds
 * chain, seq, prev and finally hash = SHA-256 over the canonical encoding of
 * every other field in order:
 *
 *     for each field: u32be(len(name)) name u32be(len(value)) value
 */
#ifndef CA_AUDIT_H
#define CA_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* The schema version, `v` (lib/audit/auditschema.h): 2 since decisions of
 * a verification list their checks, their outcomes count the answers, and
 * revocations are entries.  Entries of every version hash alike. */
#define CA_AUDIT_VERSION   "2"
#define CA_ENTRY_FIELDS    40
/* a verification's 32 checks of 256-byte paths fit */
#define CA_ENTRY_BYTES     16384

typedef struct {
    size_t      n;
    const char *name[CA_ENTRY_FIELDS];
    const char *value[CA_ENTRY_FIELDS];
    size_t      len[CA_ENTRY_FIELDS];
    size_t      used;                   /* bytes of buf in use */
    char        buf[CA_ENTRY_BYTES];    /* values live here */
} ca_entry;

typedef struct {
    char          id[96];       /* "<gw>/<pid>/<start ms>" */
    uint64_t      seq;          /* seq of the last sealed entry */
    unsigned char head[32];     /* hash of the last sealed entry */
} ca_chain;

/*
 * The `consent` value of a decision entry (contract §2.1): the jti itself when
 * it is 1-128 of [A-Za-z0-9._:-] and does not look like a personal
 * identifier (lib/core/pii.h), else "sha256:" and the hex SHA-256 of the jti,
 * so the audit never holds an ID number a jti was made of.  out needs
 * CA_CONSENT_ID_MAX + 1 bytes; returns the length written.
 */
#define CA_CONSENT_ID_MAX 135
size_t ca_audit_consent_id(const char *jti, size_t len, char *out);

/*
 * The Redis key of a consent's state (contract §3, v3): a consent is its
 * issuing enterprise's, so revocation, use count and verification budget
 * are kept per (iss, jti): credit:<what>:<iss>:<jti>, what being
 * "revoked", "uses" or "vbudget".  With iss NULL, the key of before v3,
 * credit:<what>:<jti>, which old revocations still hold until they
 * expire.  A USCC holds no ':' and a jti is [A-Za-z0-9._-]: the two forms
 * never meet.  Returns the length, or 0 when it does not fit in size.
 */
#define CA_CONSENT_KEY_MAX 128
size_t ca_consent_key(char *out, size_t size, const char *what,
                      const char *iss, const char *jti);

/* Starts an entry with v, event, ts and gw. */
void ca_entry_init(ca_entry *e, const char *event, int64_t ts_ms,
                   const char *gw);
/* Copies value into the entry; returns -1 when the entry is full (the
 * entry is then marked truncated: sealing refuses it). */
int ca_entry_add(ca_entry *e, const char *name, const char *value,
                 size_t len);
/* Decimal integers, without printf. */
int ca_entry_add_int(ca_entry *e, const char *name, int64_t v);
int ca_entry_add_uint(ca_entry *e, const char *name, uint64_t v);
/* Value of a field, or NULL. */
const char *ca_entry_get(const ca_entry *e, const char *name, size_t *len);

void ca_chain_init(ca_chain *ch, const char *id);
/* Appends chain, seq, prev, hash; advances the chain.  -1 if full. */
int ca_chain_seal(ca_chain *ch, ca_entry *e);

/* The same, with the digest of fields [0, upto) given (a context from
 * ca_entry_digest_prefix() over an entry whose first upto fields are the
 * same): variants of one decision differ only after them. */
int ca_chain_seal_prefixed(ca_chain *ch, ca_entry *e,
                           const EVP_MD_CTX *prefix, size_t upto);
/* The digest of fields [0, upto) of e, in a context kept for the process
 * (ca_sha256_begin_held): valid until the next call, not to be freed.
 * NULL if out of memory. */
EVP_MD_CTX *ca_entry_digest_prefix(const ca_entry *e, size_t upto);

/* SHA-256 over the canonical encoding of all fields but `hash`. */
void ca_entry_digest(const char *const *names, const char *const *values,
                     const size_t *lens, size_t n, unsigned char out[32]);
/* The same over names with lengths (any bytes, a NUL included): what a
 * reader of the stream or of the archive hashes. */
void ca_entry_digest_bin(const char *const *names, const size_t *name_lens,
                         const char *const *values, const size_t *value_lens,
                         size_t n, unsigned char out[32]);

EVP_PKEY *ca_audit_key_load(const char *file, int private_key, char *err,
                            size_t errlen);

/*
 * audit/audit.h is the component's public header: the rest of audit/'s
 * public API comes with it.  Internal: auditbatch.h (the writer's parts),
 * audit_testing.h.
 */
#include "auditschema.h"
#include "auditckpt.h"
#include "auditwriter.h"
#include "spool.h"

#endif
