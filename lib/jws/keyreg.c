/*
 * Registry records: the one format the gateway reads and the tools write,
 * so that a record `credit-consent key add` accepted is one every gateway
 * accepts, and a hand-edited bad one is refused the same way everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyreg.h"
#include "core/core.h"

int
ca_keyreg_name(const char *kid, size_t len, char *out)
{
    char buf[CA_KID_MAX + 1];

    if (len == 0 || len > CA_KID_MAX || memchr(kid, '\0', len) != NULL) {
        return -1;
    }
    memcpy(buf, kid, len);
    buf[len] = '\0';
    /* the kid alphabet has no braces, so the hash tag is the whole kid */
    if (!ca_is_token_chars(buf, CA_KID_MAX)) {
        return -1;
    }
    snprintf(out, CA_KEYREG_NAME_MAX, "%s{%s}", CA_KEYREG_PREFIX, buf);
    return 0;
}

char *
ca_keyreg_encode(const ca_keyreg_meta *m, json_t *jwk)
{
    json_t *rec = json_object();
    char   *s = NULL;

    if (rec == NULL) {
        return NULL;
    }
    /* out of memory must not leave a record short of a member: one
     * without its jwk would lose the key for good */
    if (json_object_set_new(rec, "kid", json_string(m->kid)) == 0
        && json_object_set_new(rec, "uscc", json_string(m->uscc)) == 0
        && json_object_set_new(rec, "state", json_string(
               m->state == CA_KEYREG_REVOKED ? "revoked" : "active")) == 0
        && json_object_set_new(rec, "not_before",
                               json_integer(m->not_before)) == 0
        && json_object_set_new(rec, "not_after",
                               json_integer(m->not_after)) == 0
        && json_object_set_new(rec, "version",
                               json_integer(m->version)) == 0
        && json_object_set(rec, "jwk", jwk) == 0)
    {
        s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(rec);
    return s;
}

/* jansson's type names, for a refusal that says what was found. */
static const char *
type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:  return "an object";
    case JSON_ARRAY:   return "an array";
    case JSON_STRING:  return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL:    return "a real";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    default:           return "null";
    }
}

/* Copies s into out as printable ASCII ('?' for anything else): a record
 * is anyone's with the Redis password, and its bytes go to logs. */
static void
printable(char *out, size_t size, const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len && i + 1 < size; i++) {
        unsigned char c = (unsigned char) s[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char) c : '?';
    }
    out[i] = '\0';
}

/*
 * The record as a JSON object, or NULL with err saying what is wrong:
 * jansson's own words (a number too big, a \u0000, a duplicate member)
 * and where: the byte, and the text from the start of the member (the
 * last ',' or '{' before the fault) that names it.
 */
static json_t *
record_load(const char *buf, size_t len, const char *kid, ca_error *err)
{
    json_t      *rec;
    json_error_t je;
    char         text[sizeof(je.text)], member[48];
    size_t       at, from, n;

    if (buf == NULL || len == 0) {
        ca_error_set(err, kid, NULL, "record is empty");
        return NULL;
    }
    rec = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (rec == NULL) {
        at = je.position > 0 && (size_t) je.position <= len
             ? (size_t) je.position : 0;
        for (from = at; from > 0 && at - from < 256; from--) {
            if (buf[from - 1] == ',' || buf[from - 1] == '{') {
                break;
            }
        }
        n = at - from < sizeof(member) - 4 ? at - from : sizeof(member) - 4;
        printable(text, sizeof(text), je.text, strlen(je.text));
        printable(member, sizeof(member), buf + from, n);
        ca_error_set(err, kid, NULL, "record is not valid JSON: %s (at byte"
                     " %zu: %s%s)", text, at, member,
                     n < at - from ? "..." : "");
        return NULL;
    }
    if (!json_is_object(rec)) {
        ca_error_set(err, kid, NULL, "record is %s, not a JSON object",
                     type_name(rec));
        json_decref(rec);
        return NULL;
    }
    return rec;
}

json_t *
ca_keyreg_jwk(const char *buf, size_t len)
{
    json_t *rec, *jwk;

    if (len > CA_KEYREG_RECORD_MAX) {
        return NULL;
    }
    rec = record_load(buf, len, NULL, NULL);
    jwk = json_incref(json_object_get(rec, "jwk"));
    json_decref(rec);
    return jwk;
}

/*
 * A time of the record: Unix seconds, 0 for no bound, at most
 * CA_KEYREG_TIME_MAX, so that the tools can show it in milliseconds
 * (credit-consent key list multiplied an INT64_MAX by 1000: fuzz finding
 * 8).  The version likewise, up to CA_KEYREG_VERSION_MAX, so that a
 * change can add one to it.
 */
static int
get_int(json_t *rec, const char *member, int64_t min, int64_t max,
        const char *what, int64_t *out, const char *kid, ca_error *err)
{
    json_t *v = json_object_get(rec, member);
    char    path[32];

    snprintf(path, sizeof(path), "$.%s", member);
    if (v == NULL) {
        ca_error_set(err, kid, path, "missing");
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min
        || json_integer_value(v) > max)
    {
        if (json_is_integer(v)) {
            ca_error_set(err, kid, path, "must be %s from %lld to %lld, not"
                         " %lld", what, (long long) min, (long long) max,
                         (long long) json_integer_value(v));
        } else {
            ca_error_set(err, kid, path, "must be %s from %lld to %lld, not"
                         " %s", what, (long long) min, (long long) max,
                         type_name(v));
        }
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

int
ca_keyreg_parse(const char *buf, size_t len, const char *kid,
                ca_keyreg_meta *m, ca_key *key, ca_error *err)
{
    json_t     *rec, *v, *jwk;
    ca_key      tmp;
    const char *s;
    int         rc = -1;

    memset(m, 0, sizeof(*m));
    if (len > CA_KEYREG_RECORD_MAX) {
        ca_error_set(err, kid, NULL, "record larger than %d bytes",
                     CA_KEYREG_RECORD_MAX);
        return -1;
    }
    rec = record_load(buf, len, kid, err);
    if (rec == NULL) {
        return -1;
    }

    v = json_object_get(rec, "kid");
    if (!json_is_string(v) || strcmp(json_string_value(v), kid) != 0) {
        ca_error_set(err, kid, "$.kid", "must be the kid of the key name");
        goto done;
    }
    snprintf(m->kid, sizeof(m->kid), "%s", kid);

    v = json_object_get(rec, "uscc");
    if (!json_is_string(v)
        || !ca_uscc_valid(json_string_value(v), json_string_length(v)))
    {
        ca_error_set(err, kid, "$.uscc", "not a valid USCC");
        goto done;
    }
    memcpy(m->uscc, json_string_value(v), 18);

    v = json_object_get(rec, "state");
    s = json_string_value(v);
    if (s != NULL && strcmp(s, "active") == 0) {
        m->state = CA_KEYREG_ACTIVE;
    } else if (s != NULL && strcmp(s, "revoked") == 0) {
        m->state = CA_KEYREG_REVOKED;
    } else {
        ca_error_set(err, kid, "$.state", "must be \"active\" or"
                     " \"revoked\"");
        goto done;
    }

    if (get_int(rec, "not_before", 0, CA_KEYREG_TIME_MAX, "Unix seconds",
                &m->not_before, kid, err)
        || get_int(rec, "not_after", 0, CA_KEYREG_TIME_MAX, "Unix seconds",
                   &m->not_after, kid, err)
        || get_int(rec, "version", 1, CA_KEYREG_VERSION_MAX, "an integer",
                   &m->version, kid, err))
    {
        goto done;
    }
    if (m->not_after != 0 && m->not_after <= m->not_before) {
        ca_error_set(err, kid, "$.not_after", "must be after not_before");
        goto done;
    }

    jwk = json_object_get(rec, "jwk");
    if (ca_key_from_jwk(jwk, kid, "$.jwk", &tmp, err) != 0) {
        goto done;
    }
    if (strcmp(tmp.kid, kid) != 0 || strcmp(tmp.uscc, m->uscc) != 0) {
        ca_error_set(err, kid, "$.jwk", "kid and uscc must be the"
                     " record's");
        ca_key_clear(&tmp);
        goto done;
    }
    if (key != NULL) {
        *key = tmp;
    } else {
        ca_key_clear(&tmp);
    }
    rc = 0;

done:
    json_decref(rec);
    return rc;
}

const char *
ca_keyreg_unusable(const ca_keyreg_meta *m, int64_t now)
{
    if (m->state == CA_KEYREG_REVOKED) {
        return "the key is revoked in the registry";
    }
    if (m->not_before != 0 && now < m->not_before) {
        return "the key is not valid yet (registry not_before)";
    }
    if (m->not_after != 0 && now >= m->not_after) {
        return "the key's validity ended (registry not_after)";
    }
    return NULL;
}
