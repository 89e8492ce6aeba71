/*
 * What every check of credit-consent statement verify stands on
 * (consent_stmt.h): a failure said on its own line, the log key read,
 * a signed note opened with it, hashes read from the statement's JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "consent_stmt.h"
#include "core/core.h"
#include "merkle/merkle.h"

void
fail(verifier *v, const char *fmt, ...)
{
    va_list ap;

    printf("FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    v->failed++;
}

/* --log-key: a verifier key, a file with one, or a PEM public key. */
int
read_key(verifier *v, const char *arg)
{
    char     *text, line[CA_NOTE_VKEY_MAX + 2];
    size_t    len;
    ca_error  err;
    FILE     *f;
    EVP_PKEY *k;

    if (ca_note_vkey_parse(arg, v->name, sizeof(v->name), v->pub) == 0) {
        return 0;
    }
    if ((text = ca_read_file(arg, 65536, &len, &err)) == NULL) {
        fprintf(stderr, "credit-consent: --log-key: not a verifier key, "
                "and %s\n", err.text);
        return -1;
    }
    snprintf(line, sizeof(line), "%.*s", (int) strcspn(text, "\r\n"), text);
    free(text);
    if (ca_note_vkey_parse(line, v->name, sizeof(v->name), v->pub) == 0) {
        return 0;
    }
    v->name[0] = '\0';
    if ((f = fopen(arg, "r")) != NULL) {
        k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        fclose(f);
        if (k != NULL && ca_note_pubkey(k, v->pub) == 0) {
            EVP_PKEY_free(k);
            return 0;
        }
        EVP_PKEY_free(k);
    }
    fprintf(stderr, "credit-consent: --log-key %s: neither a verifier key "
            "(NAME+HASH+KEY) nor an Ed25519 public key in PEM\n", arg);
    return -1;
}

/* The note's text if signed by the key (the name from the note when the
 * key came as PEM: its key hash binds it); NULL after a failure. */
int
open_note(verifier *v, const char *what, const char *note, size_t *tlen)
{
    char name[CA_NOTE_NAME_MAX + 1];
    int  rc;

    if (v->name[0] == '\0') {
        if (ca_note_signer(note, strlen(note), name, sizeof(name)) != 0) {
            fail(v, "%s: not a signed note", what);
            return -1;
        }
    } else {
        snprintf(name, sizeof(name), "%s", v->name);
    }
    snprintf(v->signer, sizeof(v->signer), "%s", name);
    rc = ca_note_open(note, strlen(note), name, v->pub, tlen);
    if (rc != 0) {
        fail(v, "%s: %s", what, rc == CA_NOTE_UNSIGNED
             ? "not signed by the log key" : rc == CA_NOTE_BAD_SIG
             ? "its signature by the log key is wrong (changed after "
               "signing, or forged)" : "not a signed note");
        return -1;
    }
    return 0;
}

const char *
str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int
hash_of(json_t *v, unsigned char out[32])
{
    const char   *s = json_string_value(v);
    unsigned char b[33];

    return s != NULL && strlen(s) == 44 && ca_b64std_decode(s, 44, b) == 32
           ? (memcpy(out, b, 32), 0) : -1;
}

int
hashes_of(json_t *a, ca_mk_hash *out, size_t max, size_t *n)
{
    size_t i;
    json_t *h;

    if (!json_is_array(a) || json_array_size(a) > max) {
        return -1;
    }
    json_array_foreach(a, i, h) {
        if (hash_of(h, out[i]) != 0) {
            return -1;
        }
    }
    *n = json_array_size(a);
    return 0;
}
