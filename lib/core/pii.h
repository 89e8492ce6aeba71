/*
 * Spotting personal identifiers in free text that would otherwise reach the
 * audit trail (SPEC §7: never a personal identifier other than the USCC).
 */
#ifndef CA_PII_H
#define CA_PII_H

#include <stddef.h>

/*
 * 1 if s holds, as a maximal run of digits once '-', '.', '_' and ' ' are
 * skipped (a resident ID may end in X), a mainland mobile number (11
 * digits, 1[3-9]...), a run of 15 or more digits (resident IDs, old and
 * new, whatever their check character; long account numbers), or 13-14
 * digits passing Luhn (card numbers).  This catches identifiers used by accident (a customer's mobile
 * as a correlation id), not one hidden on purpose.
 */
int ca_looks_personal(const char *s, size_t len);

#endif
