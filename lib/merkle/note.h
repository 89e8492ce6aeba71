/*
 * Signed notes and checkpoints (C2SP signed-note and tlog-checkpoint; Go's
 * golang.org/x/mod/sumdb/note reads the same bytes), Ed25519 only:
 *
 *   <origin>\n<tree size, decimal>\n<base64 root hash>\n     the text
 *   \n
 *   — <key name> <base64(key hash[4] ‖ Ed25519 signature[64])>\n
 *
 * The key hash is the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖
 * public key); a verifier key is written "name+hex(key hash)+base64(0x01 ‖
 * public key)" (note's vkey).  The signature is over the text, its final
 * newline included.
 */
#ifndef CA_NOTE_H
#define CA_NOTE_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#define CA_NOTE_NAME_MAX    128
#define CA_NOTE_MAX         8192
/* a verifier key's text at most */
#define CA_NOTE_VKEY_MAX    (CA_NOTE_NAME_MAX + 1 + 8 + 1 + 48 + 1)

/* ca_note_open's failures */
#define CA_NOTE_MALFORMED   (-1)
#define CA_NOTE_UNSIGNED    (-2)    /* no signature line by this key */
#define CA_NOTE_BAD_SIG     (-3)    /* this key's signature is wrong */

/* A key name: 1 to 128 bytes of printable ASCII, no space, no '+'. */
int ca_note_name_ok(const char *name);
void ca_note_key_hash(const char *name, const unsigned char pub[32],
                      unsigned char out[4]);
/* The verifier key text; 0, or -1 (a bad name, out too small). */
int ca_note_vkey(const char *name, const unsigned char pub[32], char *out,
                 size_t len);
/* Reads one (its key hash must match); 0 or -1. */
int ca_note_vkey_parse(const char *s, char *name, size_t namelen,
                       unsigned char pub[32]);
/* An Ed25519 key's raw public key; 0 or -1. */
int ca_note_pubkey(EVP_PKEY *key, unsigned char pub[32]);

/* The signed note of text (non-empty, ending in '\n', no blank line):
 * its length, 0 on failure (out too small, a bad name, signing failed). */
size_t ca_note_sign(const char *text, size_t tlen, const char *name,
                    EVP_PKEY *key, char *out, size_t outlen);
/* Checks that note carries a valid signature by (name, pub): 0 with
 * *tlen the length of its text, or CA_NOTE_*. */
int ca_note_open(const char *note, size_t len, const char *name,
                 const unsigned char pub[32], size_t *tlen);
/* The first signature line's key name, to say whose a note is. */
int ca_note_signer(const char *note, size_t len, char *name,
                   size_t namelen);

/* A checkpoint's text; its length, 0 when out is too small or the
 * origin is not one line of printable text. */
size_t ca_ckpt_text(const char *origin, uint64_t size,
                    const unsigned char root[32], char *out, size_t outlen);
/* Reads a checkpoint's text (extension lines after the root allowed): 0,
 * or -1 when it is not one. */
int ca_ckpt_parse(const char *text, size_t tlen, char *origin,
                  size_t olen, uint64_t *size, unsigned char root[32]);

/* Standard base64 with padding; returns the length written (out holds
 * 4 * ((len + 2) / 3) + 1). */
size_t ca_b64std_encode(const unsigned char *in, size_t len, char *out);

#endif
