/*
 * The audit schema's table (auditschema.h) as data: each field's name,
 * events, type and archive column, the event and type names, and the
 * checks a reader makes against them.  Lowest of audit/: the entries
 * (audit.c) take their field names from here; where each value comes
 * from when the gateway builds an entry is auditbuild.c's.
 */
#include <stdio.h>
#include <string.h>

#include "auditschema.h"
#include "audit_testing.h"
#include "core/core.h"
#include "json/json.h"

static const struct {
    unsigned    bit;
    const char *name;
} events[] = {
    {CA_EV_DECISION, "decision"},
    {CA_EV_OUTCOME, "outcome"},
    {CA_EV_CHECKPOINT, "checkpoint"},
    {CA_EV_DISCONTINUITY, "discontinuity"},
    {CA_EV_REVOCATION, "revocation"},
};

static const char *const type_names[CA_AT_COUNT] = {
    [CA_AT_TEXT] = "text", [CA_AT_WORD] = "word", [CA_AT_INT] = "integer",
    [CA_AT_MS] = "ms time", [CA_AT_PATHS] = "paths",
    [CA_AT_CHECKS] = "checks", [CA_AT_HEX] = "hex", [CA_AT_HEADS] = "heads",
    [CA_AT_B64URL] = "base64url",
};


/* ---- the table ------------------------------------------------------- */

#define ROW(id, name, ev, some, type, hashed, col, sql, value)              \
    [CA_F_##id] = {name, ev, some, CA_AT_##type, hashed, col, sql},
const ca_audit_field  ca_audit_schema[CA_F_COUNT] = {
    CA_AUDIT_SCHEMA(ROW)
};
#undef ROW



int
ca_audit_field_find(const char *s, size_t len)
{
    for (int i = 0; i < CA_F_COUNT; i++) {
        if (strlen(ca_audit_schema[i].name) == len
            && memcmp(ca_audit_schema[i].name, s, len) == 0)
        {
            return i;
        }
    }
    return -1;
}

const char *
ca_audit_event_name(unsigned event)
{
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        if (events[i].bit == event) {
            return events[i].name;
        }
    }
    return NULL;
}

unsigned
ca_audit_event_find(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        if (strlen(events[i].name) == len
            && memcmp(events[i].name, s, len) == 0)
        {
            return events[i].bit;
        }
    }
    return 0;
}

const char *
ca_audit_type_name(ca_audit_type t)
{
    return (unsigned) t < CA_AT_COUNT ? type_names[t] : "?";
}


/* ---- the archive's columns --------------------------------------------- */

size_t
ca_audit_sql_columns(char *out, size_t len)
{
    size_t  n = 0;
    int     w;

    for (int id = 0; id < CA_F_COUNT; id++) {
        w = snprintf(n < len ? out + n : NULL, n < len ? len - n : 0,
                     "%s    %s %s", id ? ",\n" : "",
                     ca_audit_schema[id].column, ca_audit_schema[id].sql);
        n += w > 0 ? (size_t) w : 0;
    }
    if (n >= len && len > 0) {
        out[0] = '\0';
    }
    return n;
}

static int
decimal_within(const char *s, size_t len, uint64_t max)
{
    uint64_t    v;

    return ca_u64_parse(s, len, &v) == 0 && v <= max;
}

int
ca_audit_column_fits(ca_audit_fid id, const char *s, size_t len)
{
    const char *sql;

    if ((unsigned) id >= CA_F_COUNT) {
        return 0;
    }
    sql = ca_audit_schema[id].sql;
    if (strcmp(sql, "smallint") == 0) {
        return decimal_within(s, len, 32767);
    }
    if (strcmp(sql, "integer") == 0) {
        return decimal_within(s, len, 2147483647);
    }
    if (strcmp(sql, "bigint") == 0) {
        return decimal_within(s, len, INT64_MAX);
    }
    if (memchr(s, '\0', len) != NULL) {
        return 0;
    }
    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq((const unsigned char *) s + i, len - i);

        if (n == 0) {
            return 0;
        }
        i += n;
    }
    return 1;
}

size_t
ca_audit_list_count(const char *s, size_t len)
{
    size_t  n = len > 0;

    for (size_t i = 0; i < len; i++) {
        n += s[i] == ',';
    }
    return n;
}
