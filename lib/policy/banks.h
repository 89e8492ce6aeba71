/* Banks registry (contract §5): identity by client-certificate SHA-256. */
#ifndef CA_BANKS_H
#define CA_BANKS_H

#include <stddef.h>

#include "jws/jws.h"
#include "core/core.h"

typedef struct {
    char            code[CA_CODE_MAX + 1];
    char           *name;
    int             suspended;
    unsigned char (*certs)[32];
    size_t          n_certs;
    char          **purposes;       /* narrowing; NULL = no narrowing */
    size_t          n_purposes;
} ca_bank;

typedef struct {
    ca_bank *banks;
    size_t   n;
} ca_banks;

ca_banks *ca_banks_load(const char *file, ca_error *err);
const ca_bank *ca_banks_find_cert(const ca_banks *b,
                                  const unsigned char sha256[32]);
/* 1 if the bank does not narrow purposes or lists this one. */
int ca_bank_allows_purpose(const ca_bank *bank, const char *purpose);
void ca_banks_free(ca_banks *b);

#endif
