/*
 * The audit schema (contract §7, docs/audit-format.md): every field an entry
 * can hold, owned here once.  The gateway's entries are built from it
 * (ca_audit_build), the verifier and the tools read fields through it,
 * the export's CSV columns and the archive's column list
 * (ca_audit_sql_columns) come from it, and a unit test holds
 * docs/audit-format.md's field table against it.
 *
 * One row per field, in the order fields are stored: an entry holds the
 * fields of its event in this order, which is the order they are hashed
 * in.  A row gives:
 *
 *   id          the field's C name (CA_F_<id>)
 *   name        as stored in Redis
 *   events      the events whose entries carry it (CA_EV_*)
 *   sometimes   those of its events whose entries may lack it
 *   type        CA_AT_<type>: what the value looks like
 *   hashed      1 if the entry hash covers it (every field but `hash`)
 *   column      its column in the archive
 *   sql         that column's SQL type
 *   value       where the gateway's value comes from (lib/audit/
 *               auditbuild.c): a member of ca_audit_facts, a function
 *               of them, or the entry's head (ca_entry_init) and seal
 *               (ca_chain_seal)
 *
 * Adding a field is one row here plus its value in ca_audit_facts; if the
 * gateway's readers must tell entries with it from entries before it,
 * CA_AUDIT_VERSION goes up too.  The hash encoding never depends on the
 * fields or on `v`: whatever a version holds verifies the same way.
 */
#ifndef CA_AUDITSCHEMA_H
#define CA_AUDITSCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "core/core.h"
#include "policy/policy.h"

#define CA_EV_DECISION       0x01u
#define CA_EV_OUTCOME        0x02u
#define CA_EV_CHECKPOINT     0x04u
#define CA_EV_DISCONTINUITY  0x08u
#define CA_EV_REVOCATION     0x10u
#define CA_EV_EVERY          0x1fu

typedef enum {
    CA_AT_TEXT,         /* any bytes the gateway chose or was given */
    CA_AT_WORD,         /* one of a documented vocabulary */
    CA_AT_INT,          /* decimal, no sign, no leading zero */
    CA_AT_MS,           /* a time: Unix milliseconds, decimal */
    CA_AT_PATHS,        /* field paths joined by "," */
    CA_AT_CHECKS,       /* "<path> <op>" joined by "," */
    CA_AT_HEX,          /* lower-case hex digits */
    CA_AT_HEADS,        /* lines "<lane> <seq> <hash>\n" */
    CA_AT_B64URL,       /* base64url without padding */
    CA_AT_COUNT
} ca_audit_type;

#define CA_AUDIT_SCHEMA(F)                                                  \
    F(V,           "v",           CA_EV_EVERY, 0, INT, 1,                   \
      "v",           "smallint", HEADER)                                    \
    F(EVENT,       "event",       CA_EV_EVERY, 0, WORD, 1,                  \
      "event",       "text",     HEADER)                                    \
    F(TS,          "ts",          CA_EV_EVERY, 0, MS, 1,                    \
      "ts",          "bigint",   HEADER)                                    \
    F(GW,          "gw",          CA_EV_EVERY, 0, TEXT, 1,                  \
      "gw",          "text",     HEADER)                                    \
    F(RID,         "rid",         CA_EV_DECISION | CA_EV_OUTCOME, 0, TEXT, 1,\
      "rid",         "text",     FACT_STR(rid))                             \
    F(BANK,        "bank",        CA_EV_DECISION, 0, TEXT, 1,               \
      "bank",        "text",     FACT_TEXT(bank))                           \
    F(CERT,        "cert",        CA_EV_DECISION, 0, HEX, 1,                \
      "cert",        "text",     DERIVED(fill_cert))                        \
    F(IP,          "ip",          CA_EV_DECISION, 0, TEXT, 1,               \
      "ip",          "text",     FACT_STR(ip))                              \
    F(METHOD,      "method",      CA_EV_DECISION, 0, WORD, 1,               \
      "method",      "text",     FACT_STR(method))                          \
    F(PATH,        "path",        CA_EV_DECISION, 0, TEXT, 1,               \
      "path",        "text",     DERIVED(fill_path))                        \
    F(CATEGORY,    "category",    CA_EV_DECISION, 0, WORD, 1,               \
      "category",    "text",     FACT_TEXT(category))                       \
    F(ENTERPRISE,  "enterprise",  CA_EV_DECISION | CA_EV_REVOCATION, 0,     \
      TEXT, 1,                                                              \
      "enterprise",  "text",     FACT_TEXT(enterprise))                     \
    F(PURPOSE,     "purpose",     CA_EV_DECISION, 0, WORD, 1,               \
      "purpose",     "text",     DERIVED(fill_purpose))                     \
    F(CONSENT,     "consent",     CA_EV_DECISION | CA_EV_REVOCATION, 0,     \
      TEXT, 1,                                                              \
      "consent",     "text",     DERIVED(fill_consent))                     \
    F(MODE,        "mode",        CA_EV_DECISION, 0, WORD, 1,               \
      "mode",        "text",     DERIVED(fill_mode))                        \
    F(DETAIL,      "detail",      CA_EV_DECISION, 0, WORD, 1,               \
      "detail",      "text",     DERIVED(fill_detail))                      \
    F(DECISION,    "decision",    CA_EV_DECISION, 0, WORD, 1,               \
      "decision",    "text",     DERIVED(fill_decision))                    \
    F(STATUS,      "status",      CA_EV_OUTCOME, 0, INT, 1,                 \
      "status",      "integer",  FACT_NUM(status))                          \
    F(BYTES,       "bytes",       CA_EV_OUTCOME, 0, INT, 1,                 \
      "bytes",       "bigint",   FACT_NUM(bytes))                           \
    F(DISCLOSED,   "disclosed",   CA_EV_OUTCOME, 0, PATHS, 1,               \
      "disclosed",   "text",     FACT_TEXT(disclosed))                      \
    F(MASKED,      "masked",      CA_EV_OUTCOME, 0, PATHS, 1,               \
      "masked",      "text",     FACT_TEXT(masked))                         \
    F(WITHHELD,    "withheld",    CA_EV_OUTCOME, 0, INT, 1,                 \
      "withheld",    "integer",  FACT_NUM(withheld))                        \
    F(UPSTREAM_MS, "upstream_ms", CA_EV_OUTCOME, 0, INT, 1,                 \
      "upstream_ms", "bigint",   FACT_NUM(upstream_ms))                     \
    F(MATCHED,     "matched",     CA_EV_OUTCOME, CA_EV_OUTCOME, INT, 1,     \
      "matched",     "integer",  DERIVED(fill_matched))                     \
    F(UNMATCHED,   "unmatched",   CA_EV_OUTCOME, CA_EV_OUTCOME, INT, 1,     \
      "unmatched",   "integer",  DERIVED(fill_unmatched))                   \
    F(ABSENT,      "absent",      CA_EV_OUTCOME, CA_EV_OUTCOME, INT, 1,     \
      "absent",      "integer",  DERIVED(fill_absent))                      \
    F(REASON,      "reason",      CA_EV_DECISION | CA_EV_OUTCOME,           \
      CA_EV_OUTCOME, WORD, 1,                                               \
      "reason",      "text",     DERIVED(fill_reason))                      \
    F(POLICY,      "policy",      CA_EV_DECISION, 0, TEXT, 1,               \
      "policy",      "text",     FACT_STR(policy))                          \
    F(CHECKS,      "checks",      CA_EV_DECISION, CA_EV_DECISION, CHECKS, 1,\
      "checks",      "text",     DERIVED(fill_checks))                      \
    F(CAUSE,       "cause",       CA_EV_OUTCOME, CA_EV_OUTCOME, WORD, 1,    \
      "cause",       "text",     FACT_TEXT(cause))                          \
    F(COVERS,      "covers",      CA_EV_CHECKPOINT, 0, INT, 1,              \
      "covers",      "bigint",   FACT_NUM(covers))                          \
    F(HEAD,        "head",        CA_EV_CHECKPOINT, 0, HEX, 1,              \
      "head",        "text",     FACT_TEXT(head))                           \
    F(HEADS,       "heads",       CA_EV_CHECKPOINT, CA_EV_CHECKPOINT, HEADS,\
      1,                                                                    \
      "heads",       "text",     FACT_TEXT(heads))                          \
    F(SIG,         "sig",         CA_EV_CHECKPOINT, 0, B64URL, 1,           \
      "sig",         "text",     FACT_TEXT(sig))                            \
    F(MISSING,     "missing",     CA_EV_DISCONTINUITY, 0, TEXT, 1,          \
      "missing",     "text",     FACT_TEXT(missing))                        \
    F(EXPECTED,    "expected",    CA_EV_DISCONTINUITY, 0, TEXT, 1,          \
      "expected",    "text",     FACT_TEXT(expected))                       \
    F(FOUND,       "found",       CA_EV_DISCONTINUITY, 0, TEXT, 1,          \
      "found",       "text",     FACT_TEXT(found))                          \
    F(BY,          "by",          CA_EV_REVOCATION, 0, WORD, 1,             \
      "revoked_by",  "text",     FACT_TEXT(by))                             \
    F(CHAIN,       "chain",       CA_EV_EVERY, 0, TEXT, 1,                  \
      "chain",       "text",     SEALED)                                    \
    F(SEQ,         "seq",         CA_EV_EVERY, 0, INT, 1,                   \
      "seq",         "bigint",   SEALED)                                    \
    F(PREV,        "prev",        CA_EV_EVERY, 0, HEX, 1,                   \
      "prev",        "text",     SEALED)                                    \
    F(HASH,        "hash",        CA_EV_EVERY, 0, HEX, 0,                   \
      "hash",        "text",     SEALED)

#define CA_AUDIT_ID(id, name, ev, some, type, hashed, col, sql, value)      \
    CA_F_##id,
typedef enum {
    CA_AUDIT_SCHEMA(CA_AUDIT_ID)
    CA_F_COUNT
} ca_audit_fid;
#undef CA_AUDIT_ID

typedef struct {
    const char     *name;
    unsigned        events;
    unsigned        sometimes;
    ca_audit_type   type;
    unsigned        hashed;
    const char     *column;
    const char     *sql;
} ca_audit_field;

extern const ca_audit_field  ca_audit_schema[CA_F_COUNT];

/* A field's stored name: CA_AUDIT_NAME(BANK) is "bank". */
#define CA_AUDIT_NAME(id)   (ca_audit_schema[CA_F_##id].name)

/* The field named s, or -1. */
int ca_audit_field_find(const char *s, size_t len);

/* "decision", "outcome", ...; NULL for anything but one CA_EV_* bit. */
const char *ca_audit_event_name(unsigned event);
/* The CA_EV_* bit of an event name, 0 if unknown. */
unsigned ca_audit_event_find(const char *s, size_t len);

/*
 * What the gateway knows when it writes an entry; ca_audit_build() picks
 * what each event's fields hold.  A NULL text is "" in a field every
 * entry of the event has, and no field at all in one it may lack.
 */
typedef struct {
    const char     *s;
    size_t          len;
} ca_audit_str;

typedef struct {
    int64_t              ts;            /* Unix ms */
    const char          *gw;            /* gateway id */

    /* a request: decision and outcome */
    ca_audit_str         rid;
    const char          *bank;          /* code; NULL: not identified */
    const unsigned char *cert_sha256;   /* of the DER; NULL: none */
    ca_audit_str         ip;
    ca_audit_str         method;
    ca_audit_str         path;          /* recorded once a route matched:
                                           category and enterprise set */
    const char          *category;      /* NULL: no route matched */
    const char          *enterprise;    /* USCC (also a revocation's) */
    ca_audit_str         purpose;       /* as sent */
    const char          *purpose_code;  /* the policy's; NULL: unknown */
    ca_audit_str         jti;           /* NULL: no token (also a
                                           revocation's consent) */
    unsigned             verify:1;      /* a verification */
    unsigned             raw:1;         /* raw detail asked for */
    unsigned             report:1;      /* report-only location */
    ca_reason            reason;        /* the decision's */
    ca_audit_str         policy;        /* "<version> <sha256>" */
    const ca_checks     *checks;        /* a verification's */

    /* outcome */
    int64_t              status;
    int64_t              bytes;
    const char          *disclosed;     /* paths */
    const char          *masked;
    int64_t              withheld;
    int64_t              upstream_ms;
    ca_checks_tally      tally;         /* a verification's answers */
    ca_reason            refused;       /* after the decision allowed */
    const char          *cause;         /* with upstream_invalid */

    /* checkpoint */
    int64_t              covers;
    const char          *head;
    const char          *heads;         /* NULL: a v1 checkpoint */
    const char          *sig;

    /* discontinuity */
    const char          *missing;
    const char          *expected;
    const char          *found;

    /* revocation (enterprise, jti and) */
    const char          *by;            /* "enterprise" or "platform" */
} ca_audit_facts;

/*
 * Builds the fields of an entry of `event` (one CA_EV_* bit) from f, up
 * to and not including the seal (chain, seq, prev, hash: ca_chain_seal).
 * 0, or -1 when the entry would be too large or a field every entry of
 * the event has got no value (the entry is then marked: sealing refuses
 * it).
 */
int ca_audit_build(ca_entry *e, unsigned event, const ca_audit_facts *f);

/*
 * The archive's columns, one per field in schema order: "    <column>
 * <SQL type>" lines joined by ",\n", no trailing comma or newline, for a
 * CREATE TABLE.  Returns the length (without the NUL); writes it only when
 * it fits in out[len], like snprintf.
 */
size_t ca_audit_sql_columns(char *out, size_t len);

/* 1 when value s fits field id's archive column: an integer column takes
 * the canonical decimal the gateway writes, within the SQL type's range;
 * a text column any valid UTF-8 without NUL. */
int ca_audit_column_fits(ca_audit_fid id, const char *s, size_t len);

/* Items of a "paths" or "checks" value ("" holds none). */
size_t ca_audit_list_count(const char *s, size_t len);

#endif
