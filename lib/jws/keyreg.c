/*
 * Registry records: the one format the gateway reads and the tools write,
 * so that a record `credit-consent key add` accepted is one every gateway
 * accepts, and a hand-edited bad one is refused the same way everywhere.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyreg.h"
#include "core/uscc.h"

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

static json_t *
record_load(const char *buf, size_t len)
{
    json_t *rec;

    if (buf == NULL || len == 0 || len > CA_KEYREG_RECORD_MAX) {
        return NULL;
    }
    rec = json_loadb(buf, len, JSON_REJECT_DUPLICATES,
                     NULL);
    if (rec != NULL && !json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

json_t *
ca_keyreg_jwk(const char *buf, size_t len)
{
    json_t *rec = record_load(buf, len), *jwk;

    jwk = json_incref(json_object_get(rec, "jwk"));
    json_decref(rec);
    return jwk;
}

static int
get_time(json_t *rec, const char *member, int64_t *out, const char *kid,
         ca_error *err)
{
    json_t *v = json_object_get(rec, member);
    char    path[32];

    snprintf(path, sizeof(path), "$.%s", member);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        ca_error_set(err, kid, path, v ? "must be an integer >= 0"
                     : "missing");
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
    rec = record_load(buf, len);
    if (rec == NULL) {
        ca_error_set(err, kid, NULL, "record is not a JSON object");
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

    if (get_time(rec, "not_before", &m->not_before, kid, err)
        || get_time(rec, "not_after", &m->not_after, kid, err)
        || get_time(rec, "version", &m->version, kid, err))
    {
        goto done;
    }
    if (m->not_after != 0 && m->not_after <= m->not_before) {
        ca_error_set(err, kid, "$.not_after", "must be after not_before");
        goto done;
    }
    if (m->version < 1) {
        ca_error_set(err, kid, "$.version", "must be at least 1");
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
