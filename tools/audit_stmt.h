/*
 * credit-audit statement (contract §7.3, docs/transparency.md): an
 * enterprise's monthly access statement.
 *
 *   audit_stmt.c      options, proofs, signing
 *   audit_stmtload.c  what the archive holds of the month
 *   audit_stmtjson.c  the JSON the enterprise checks
 *   audit_stmthtml.c  the page a person reads (Chinese, then English)
 */
#ifndef CA_TOOLS_AUDIT_STMT_H
#define CA_TOOLS_AUDIT_STMT_H

#include "audit_mklog.h"
#include "audit_names.h"
#include "merkle/merkle.h"

typedef struct {
    uint64_t        ord;
    unsigned char  *raw;
    size_t          len;
    unsigned char   leaf[32];
    int             np;
    ca_mk_hash      path[CA_MK_PATH_MAX];
} st_entry;

/* A request: its decision and outcome (SIZE_MAX: none), as indexes of
 * the statement's entries, and its row. */
typedef struct {
    size_t      dec, out;
    ca_span     row[CA_SR_COUNT];
} st_request;

/* A withdrawal of one of the enterprise's consents: its entry's index. */
typedef struct {
    size_t      ent;
    ca_span     row[CA_SRV_COUNT];
} st_revocation;

typedef struct {
    char       *code;
    size_t      n;
} st_count;

typedef struct {
    const char     *enterprise, *month, *tz;
    int64_t         since_ms, until_ms;
    mk_ckpt         ck;
    st_entry       *e;
    size_t          ne, ecap;
    st_request     *rq;
    size_t          nr;
    st_revocation  *rv;
    size_t          nrv;
    size_t          pending;        /* decisions after the checkpoint */
    char           *signed_note;
    /* --previous: the proof from an older checkpoint */
    int             has_prev;
    uint64_t        prev_size;
    unsigned char   prev_root[32];
    ca_mk_hash      prev_proof[CA_MK_CONSIST_MAX];
    int             prev_np;
    names           nm;
    char            made_at[40];
} statement;

/* audit_stmtload.c: the decisions, outcomes and withdrawals of
 * st->enterprise in [since_ms, until_ms) up to the checkpoint st->ck
 * (later ones counted in pending): 0, or -1 after a message. */
int stmt_load(statement *st, PGconn *pg);

/* audit_stmtjson.c */
/* 0, or -1 out of memory (the output is cut short). */
int stmt_json(FILE *out, const statement *st);
/* Counts of a column's values over the requests (caller frees .code and
 * the array). */
st_count *st_counts(const statement *st, int col, size_t *n);
/* A span as a NUL-terminated string (static buffer, one at a time per
 * slot: 0..3). */
const char *st_str(const ca_span *s, int slot);

/* audit_stmthtml.c */
void stmt_html(FILE *out, const statement *st);

#endif
