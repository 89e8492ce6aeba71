/*
 * An access statement's rows (contract §7.3, docs/transparency.md): what the
 * statement shows of one request, taken from its archived entries'
 * canonical bytes (the `raw` encoding: u32be(length) name u32be(length)
 * value, each field in stored order).  The maker (credit-audit statement)
 * writes rows with this, the enterprise's check (credit-consent statement
 * verify) recomputes them with this and compares: a row that says other
 * than its proven entries is caught.
 */
#ifndef CA_STMTROW_H
#define CA_STMTROW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *p;          /* NULL: the entry has no such field */
    size_t      len;
} ca_span;

/* The first value of field `name` in raw: 0 found, 1 absent, -1 raw is
 * malformed (anywhere: nothing is read from a malformed entry). */
int ca_raw_field(const unsigned char *raw, size_t len, const char *name,
                 ca_span *out);
/* -1 malformed, else the number of fields. */
long ca_raw_count(const unsigned char *raw, size_t len);

/* A row's columns: the decision's, then its outcome's. */
enum {
    CA_SR_TS, CA_SR_RID, CA_SR_GW, CA_SR_BANK, CA_SR_PURPOSE,
    CA_SR_CATEGORY, CA_SR_MODE, CA_SR_DETAIL, CA_SR_DECISION, CA_SR_REASON,
    CA_SR_STATUS, CA_SR_DISCLOSED, CA_SR_MASKED,
    CA_SR_COUNT
};
#define CA_SR_FROM_OUTCOME CA_SR_STATUS

/* The JSON member names of the columns, in order. */
extern const char *const ca_sr_names[CA_SR_COUNT];

/* The row of a decision entry and its outcome (NULL: none): 0, or -1
 * when either is malformed or not of its event. */
int ca_sr_row(const unsigned char *dec, size_t dlen,
              const unsigned char *out, size_t olen, ca_span row[CA_SR_COUNT]);
/* Whether an outcome belongs to a decision: the same rid and gateway. */
int ca_sr_pairs(const unsigned char *dec, size_t dlen,
                const unsigned char *out, size_t olen);
/* A withdrawal of one of the enterprise's consents (a `revocation` entry,
 * docs/audit-format.md): the row a statement shows of it. */
enum { CA_SRV_TS, CA_SRV_GW, CA_SRV_CONSENT, CA_SRV_BY, CA_SRV_COUNT };
extern const char *const ca_srv_names[CA_SRV_COUNT];
/* 0, or -1 when raw is malformed or not a revocation. */
int ca_sr_revocation(const unsigned char *raw, size_t len,
                     ca_span row[CA_SRV_COUNT]);

/* An entry's event and ts (ms; -1 when absent or not a number). */
int ca_sr_is_event(const unsigned char *raw, size_t len, const char *event);
int64_t ca_sr_ts(const unsigned char *raw, size_t len);

/* What the log key signs of a statement (a signed note's text): the
 * enterprise, the period, the checkpoint it proves against, and a digest
 * of its entries in order (SHA-256 over u64be(ord) ‖ leaf hash of each):
 * an entry removed, added or reordered after signing changes it. */
typedef struct {
    const char     *origin, *enterprise, *month, *tz;
    int64_t         since_ms, until_ms;
    uint64_t        size, count;
    unsigned char   root[32], digest[32];
} ca_stmt_head;

/* The statement's format: its JSON's "version", and the first line of
 * what is signed (so a signature binds the format it was made in).  v2:
 * a table of proof nodes, no decoded fields beside the bytes, the
 * enterprise's revocations. */
#define CA_STMT_VERSION 2
#define CA_STMT_TITLE "credit-auth access statement v2"

/* Its length, 0 when out is too small or a value holds a newline. */
size_t ca_stmt_text(const ca_stmt_head *h, char *out, size_t outlen);
/* The digest: begin, add each entry, end. */
void ca_stmt_digest(const uint64_t *ords, const unsigned char *leaves,
                    size_t n, unsigned char out[32]);

#endif
