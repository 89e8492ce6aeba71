/*
 * credit-consent statement verify (contract §7.3, docs/enterprise.md §6):
 *
 *   consent_statement.c   the command and the order of the checks
 *   consent_stmtnote.c    failures, the log key, signed notes, hashes
 *   consent_stmtcheck.c   the checks of the entries, rows, totals, the
 *                         signed summary and the previous checkpoint
 */
#ifndef CA_TOOLS_CONSENT_STMT_H
#define CA_TOOLS_CONSENT_STMT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "merkle/merkle.h"

typedef struct {
    char            name[CA_NOTE_NAME_MAX + 1];    /* "" from the note */
    char            signer[CA_NOTE_NAME_MAX + 1];  /* the name it used */
    unsigned char   pub[32];
    int             failed;
} verifier;

typedef struct {
    uint64_t        ord;
    unsigned char  *raw;
    size_t          len;
    unsigned char   leaf[32];
    int             used;           /* by a request */
} v_entry;

/* consent_stmtnote.c */
/* --log-key: a verifier key, a file with one, or a PEM public key; 0, or
 * -1 after saying why on stderr. */
int read_key(verifier *v, const char *arg);
/* A failure, on its own line ("FAIL: ..."), counted. */
void fail(verifier *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* 0 when the note is signed by the log key (*tlen: its text), else -1
 * after a failure naming `what`. */
int open_note(verifier *v, const char *what, const char *note,
              size_t *tlen);
const char *str(json_t *o, const char *k);
int hash_of(json_t *v, unsigned char out[32]);
int hashes_of(json_t *a, ca_mk_hash *out, size_t max, size_t *n);

/* consent_stmtcheck.c */
/* The statement's table of proof nodes (each distinct hash once; an
 * entry's proof lists indexes into it): NULL after a failure. */
ca_mk_hash *read_nodes(verifier *v, json_t *st, size_t *n);
v_entry *check_entries(verifier *v, json_t *st, const ca_mk_hash *nodes,
                       size_t nn, uint64_t size,
                       const unsigned char root[32], const char *uscc,
                       size_t *n);
void check_requests(verifier *v, json_t *st, v_entry *e, size_t n);
void check_revocations(verifier *v, json_t *st, v_entry *e, size_t n);
/* After the requests and revocations: every entry in exactly one row. */
void check_unused(verifier *v, const v_entry *e, size_t n);
void check_signed(verifier *v, json_t *st, const char *origin,
                  uint64_t size, const unsigned char root[32], v_entry *e,
                  size_t n);
void check_previous(verifier *v, json_t *st, const char *file,
                    uint64_t size, const unsigned char root[32]);

#endif
