/* Small helpers shared by the engine: configuration errors, encodings. */
#ifndef CA_UTIL_H
#define CA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/*
 * A configuration or input error, formatted "file: json.path: reason" so that
 * nginx -t and the command-line tools print the same line.
 */
typedef struct {
    char text[768];
} ca_error;

void ca_error_set(ca_error *err, const char *file, const char *jpath,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Reads and parses a JSON file.  Duplicate keys are an error: a security
 * officer's file that says one thing twice says nothing reliably.
 */
json_t *ca_json_load_file(const char *file, ca_error *err);

/* Strict base64url without padding (RFC 7515 §2).  Returns decoded length
 * or -1.  out must hold at least 3 * len / 4 + 3 bytes. */
long ca_b64url_decode(const char *in, size_t len, unsigned char *out);
/* Strict standard base64 (RFC 4648 §4) with padding: length a multiple of
 * 4, '=' only at the very end, no other bytes.  Returns the decoded length
 * or -1.  out must hold 3 * len / 4 bytes. */
long ca_b64std_decode(const char *in, size_t len, unsigned char *out);
/* Returns the encoded length; out must hold 4 * ((len + 2) / 3) + 1. */
size_t ca_b64url_encode(const unsigned char *in, size_t len, char *out);

void ca_hex(const unsigned char *in, size_t len, char *out /* 2*len+1 */);
int ca_unhex(const char *in, unsigned char *out, size_t outlen);

void ca_sha256(const void *data, size_t len, unsigned char out[32]);
/* FNV-1a, 64 bits: for in-memory hash tables of names. */
uint64_t ca_fnv1a(const char *s, size_t len);
/* The SHA-1 of a Lua script in hex, as EVALSHA names it, into sha (41
 * bytes) once: left as it is when already there. */
const char *ca_script_sha(const char *script, size_t len, char sha[41]);
/* SHA-256 fetched once per process (see util.c). */
#include <openssl/evp.h>
const EVP_MD *ca_md_sha256(void);
/* A SHA-256 context kept for the process, initialised (not reentrant:
 * finish one digest before starting the next); NULL if out of memory. */
EVP_MD_CTX *ca_sha256_begin(void);
/* The same context, continuing from `from` (a copy of its state) rather
 * than from the start; NULL if out of memory. */
EVP_MD_CTX *ca_sha256_resume(const EVP_MD_CTX *from);
/* A second context kept for the process, initialised, for a digest that
 * stays open while the first one is used (ca_entry_digest_prefix). */
EVP_MD_CTX *ca_sha256_begin_held(void);
/* Releases them (process exit; they are made again if used after). */
void ca_md_release(void);

/*
 * A command in the Redis protocol (RESP): "*argc" then "$len" and the bytes
 * of each argument, every part ended by CRLF.  ca_resp_size() is the
 * length to reserve, ca_resp_format() writes it and returns its length.
 */
size_t ca_resp_size(int argc, const size_t *lens);
size_t ca_resp_format(char *out, int argc, const char **argv,
                      const size_t *lens);

/* Decimal digits of v and a NUL; out needs 21 bytes.  Returns the length. */
size_t ca_u64_str(uint64_t v, char *out);

/* Reads a whole file (bounded at max bytes); caller frees. */
char *ca_read_file(const char *file, size_t max, size_t *len, ca_error *err);

/* True if s is 1..max chars of [A-Za-z0-9._-]. */
int ca_is_token_chars(const char *s, size_t max);
/* True if v is such a string (and holds no NUL byte). */
int ca_json_is_code(json_t *v, size_t max);

#endif
