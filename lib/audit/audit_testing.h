/*
 * audit/ functions exported for the unit tests only: nothing in the
 * engine, the glue or the tools calls them from outside their file
 * (tests/integration/test_layers.py keeps it so).
 */
#ifndef CA_AUDIT_TESTING_H
#define CA_AUDIT_TESTING_H

#include "audit.h"

/* audit.c: a formatted value (tests build odd entries with it). */
int ca_entry_addf(ca_entry *e, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* auditbatch.c: the SHA-1 (hex) of ca_aw_script(). */
const char *ca_aw_script_sha(void);

/* auditckpt.c: the signed bytes; heads NULL: v1, else v2 with the stored
 * `heads` value (possibly empty).  Returns the length, 0 when out is too
 * small. */
size_t ca_checkpoint_message(const char *chain, uint64_t seq,
                             const char *head_hex, const char *heads,
                             size_t heads_len, char *out, size_t outlen);

/* auditschema.c: "text", "word", "integer", ... as docs/audit-format.md
 * names them (the test that holds its table against the schema). */
const char *ca_audit_type_name(ca_audit_type t);

#endif
