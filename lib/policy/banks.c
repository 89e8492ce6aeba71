/*
 * Banks registry: a bank is known by the SHA-256 of its client
 * certificate, never by anything it says about itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banks.h"

/* Accepts 64 hex digits, or 32 colon-separated pairs as `openssl x509
 * -fingerprint` prints them; either case. */
static int
parse_fingerprint(const char *s, unsigned char out[32])
{
    char   hex[65];
    size_t n = 0, len = strlen(s);

    if (len == 64) {
        return ca_unhex(s, out, 32);
    }
    if (len != 32 * 3 - 1) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':') {
                return -1;
            }
        } else {
            hex[n++] = s[i];
        }
    }
    hex[n] = '\0';
    return ca_unhex(hex, out, 32);
}

static int
bank_has_cert(const ca_bank *bank, const unsigned char sha256[32])
{
    for (size_t c = 0; c < bank->n_certs; c++) {
        if (memcmp(bank->certs[c], sha256, 32) == 0) {
            return 1;
        }
    }
    return 0;
}

static const char *const bank_members[] = {
    "code", "name", "cert_sha256", "status", "purposes",
};

static int
load_bank(json_t *jb, size_t idx, ca_bank *b, const char *file,
          ca_error *err)
{
    char        jpath[64], path[128];
    const char *k;
    json_t     *v, *e;
    size_t      i, j;

    snprintf(jpath, sizeof(jpath), "$.banks[%zu]", idx);
    if (!json_is_object(jb)) {
        ca_error_set(err, file, jpath, "must be an object");
        return -1;
    }
    /* An unknown member is most likely a misspelt one whose rule would
     * silently not apply. */
    json_object_foreach(jb, k, v) {
        for (i = 0; i < sizeof(bank_members) / sizeof(char *); i++) {
            if (strcmp(k, bank_members[i]) == 0) {
                break;
            }
        }
        if (i == sizeof(bank_members) / sizeof(char *)) {
            ca_error_set(err, file, jpath, "unknown member \"%s\"", k);
            return -1;
        }
    }

    snprintf(path, sizeof(path), "%s.code", jpath);
    v = json_object_get(jb, "code");
    if (!ca_json_is_code(v, CA_CODE_MAX)) {
        ca_error_set(err, file, path, v ? "must be 1..%d characters of"
                     " [A-Za-z0-9._-]" : "missing", CA_CODE_MAX);
        return -1;
    }
    strcpy(b->code, json_string_value(v));

    snprintf(path, sizeof(path), "%s.name", jpath);
    v = json_object_get(jb, "name");
    if (!json_is_string(v)) {
        ca_error_set(err, file, path, v ? "must be a string" : "missing");
        return -1;
    }
    if ((b->name = strdup(json_string_value(v))) == NULL) {
        ca_error_set(err, file, path, "out of memory");
        return -1;
    }

    snprintf(path, sizeof(path), "%s.status", jpath);
    v = json_object_get(jb, "status");
    if (json_is_string(v) && strcmp(json_string_value(v), "active") == 0) {
        b->suspended = 0;
    } else if (json_is_string(v)
               && strcmp(json_string_value(v), "suspended") == 0)
    {
        b->suspended = 1;
    } else {
        ca_error_set(err, file, path, v ? "must be \"active\" or"
                     " \"suspended\"" : "missing");
        return -1;
    }

    snprintf(path, sizeof(path), "%s.cert_sha256", jpath);
    v = json_object_get(jb, "cert_sha256");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        ca_error_set(err, file, path, v ? "must be a non-empty array"
                     : "missing");
        return -1;
    }
    b->certs = calloc(json_array_size(v), 32);
    if (b->certs == NULL) {
        ca_error_set(err, file, path, "out of memory");
        return -1;
    }
    json_array_foreach(v, i, e) {
        snprintf(path, sizeof(path), "%s.cert_sha256[%zu]", jpath, i);
        if (!json_is_string(e)
            || parse_fingerprint(json_string_value(e), b->certs[i]) != 0)
        {
            ca_error_set(err, file, path, "must be a SHA-256 fingerprint:"
                         " 64 hex digits, optionally colon-separated");
            return -1;
        }
        for (j = 0; j < i; j++) {
            if (memcmp(b->certs[j], b->certs[i], 32) == 0) {
                ca_error_set(err, file, path, "listed twice");
                return -1;
            }
        }
        b->n_certs = i + 1;
    }

    snprintf(path, sizeof(path), "%s.purposes", jpath);
    v = json_object_get(jb, "purposes");
    if (v == NULL) {
        return 0;
    }
    if (!json_is_array(v)) {
        ca_error_set(err, file, path, "must be an array of purpose codes");
        return -1;
    }
    /* An empty list narrows to nothing: the bank may read no purpose. */
    b->purposes = calloc(json_array_size(v) + 1, sizeof(char *));
    if (b->purposes == NULL) {
        ca_error_set(err, file, path, "out of memory");
        return -1;
    }
    json_array_foreach(v, i, e) {
        snprintf(path, sizeof(path), "%s.purposes[%zu]", jpath, i);
        if (!ca_json_is_code(e, CA_CODE_MAX)) {
            ca_error_set(err, file, path, "must be 1..%d characters of"
                         " [A-Za-z0-9._-]", CA_CODE_MAX);
            return -1;
        }
        if ((b->purposes[i] = strdup(json_string_value(e))) == NULL) {
            ca_error_set(err, file, path, "out of memory");
            return -1;
        }
        b->n_purposes = i + 1;
    }
    return 0;
}

ca_banks *
ca_banks_load(const char *file, ca_error *err)
{
    json_t   *root, *list;
    ca_banks *b = NULL;
    size_t    n;

    root = ca_json_load_file(file, err);
    if (root == NULL) {
        return NULL;
    }
    if (!json_is_object(root)) {
        ca_error_set(err, file, "$", "must be an object {\"banks\":[...]}");
        goto fail;
    }
    if (json_object_size(root) != 1 || !json_object_get(root, "banks")) {
        ca_error_set(err, file, "$", "must hold exactly one member,"
                     " \"banks\"");
        goto fail;
    }
    list = json_object_get(root, "banks");
    if (!json_is_array(list)) {
        ca_error_set(err, file, "$.banks", "must be an array");
        goto fail;
    }
    n = json_array_size(list);

    b = calloc(1, sizeof(*b));
    if (b == NULL || (n > 0 && (b->banks = calloc(n, sizeof(ca_bank)))
                               == NULL))
    {
        ca_error_set(err, file, NULL, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        b->n = i + 1;
        if (load_bank(json_array_get(list, i), i, &b->banks[i], file, err)) {
            goto fail;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(b->banks[j].code, b->banks[i].code) == 0) {
                char path[64];
                snprintf(path, sizeof(path), "$.banks[%zu].code", i);
                ca_error_set(err, file, path, "duplicate code (also"
                             " $.banks[%zu])", j);
                goto fail;
            }
        }
        /* One certificate, one bank: otherwise who is calling is a guess. */
        for (size_t c = 0; c < b->banks[i].n_certs; c++) {
            for (size_t j = 0; j < i; j++) {
                if (bank_has_cert(&b->banks[j], b->banks[i].certs[c])) {
                    char path[96];
                    snprintf(path, sizeof(path), "$.banks[%zu]"
                             ".cert_sha256[%zu]", i, c);
                    ca_error_set(err, file, path, "certificate already"
                                 " belongs to $.banks[%zu]", j);
                    goto fail;
                }
            }
        }
    }
    json_decref(root);
    return b;

fail:
    ca_banks_free(b);
    json_decref(root);
    return NULL;
}

const ca_bank *
ca_banks_find_cert(const ca_banks *b, const unsigned char sha256[32])
{
    if (b == NULL || sha256 == NULL) {
        return NULL;
    }
    /* Linear: registries hold hundreds of banks, and the result is
     * looked up once per request. */
    for (size_t i = 0; i < b->n; i++) {
        if (bank_has_cert(&b->banks[i], sha256)) {
            return &b->banks[i];
        }
    }
    return NULL;
}

int
ca_bank_allows_purpose(const ca_bank *bank, const char *purpose)
{
    if (bank->purposes == NULL) {
        return 1;
    }
    for (size_t i = 0; i < bank->n_purposes; i++) {
        if (strcmp(bank->purposes[i], purpose) == 0) {
            return 1;
        }
    }
    return 0;
}

void
ca_banks_free(ca_banks *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        free(b->banks[i].name);
        free(b->banks[i].certs);
        for (size_t j = 0; j < b->banks[i].n_purposes; j++) {
            free(b->banks[i].purposes[j]);
        }
        free(b->banks[i].purposes);
    }
    free(b->banks);
    free(b);
}
