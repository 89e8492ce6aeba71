/*
 * Spotting personal identifiers in short free text that would otherwise
 * reach the audit trail or the bank (contract §2.1, §7: never a personal
 * identifier other than the USCC).  One table of forms (lib/core/pii.c,
 * docs/configuration.md "Personal identifiers") serves every caller: the
 * bank's X-Request-Id, the consent's jti, and the values of headers
 * passed from the platform.
 *
 * The forms, as Chinese data writes them:
 *   resident ID       18 characters of GB 11643 (province, birth date,
 *                     sequence, check character 0-9 or X, not verified:
 *                     a mistyped ID is still a person's) or 15 digits
 *                     (before 1999); Hong Kong, Macao and Taiwan
 *                     residents' residence permits (81, 82, 83) too
 *   mobile            1[3-9] and 9 digits, optionally after 86, +86 or 0086
 *   landline          0 + area code (10, 2x, or three digits) + a 7-8 digit
 *                     number, or 86 / +86 / 0086 + area code + number
 *   bank card         16-19 digits passing Luhn or starting 62 (UnionPay);
 *                     never a valid USCC
 *   passport          E + 8 digits, E + letter + 7 digits, G + 8 digits,
 *                     DE / SE / PE + 7 digits
 *   travel permits    C + 8 digits or C + letter + 7 (to Hong Kong and
 *                     Macao), L + 8 digits (to Taiwan), H or M + 8 or 10
 *                     digits (Home Return Permit)
 *   Hong Kong ID      1-2 letters, 6 digits, check character (A123456(7))
 *   Taiwan ID         letter, 1/2/8/9, 8 digits, check digit
 *   email address     local@domain.tld
 *
 * Digit forms are read over groups of digits joined by up to three of
 * " -._()+" (13912345678, 139-1234-5678, +86 139 1234 5678, (0591)
 * 8765-4321): a candidate is always whole groups, never part of a longer
 * run of digits.  Letter forms are whole words of [A-Za-z0-9], either
 * case.  This catches identifiers used by accident (a customer's mobile as
 * a correlation id, a note naming an owner), not one hidden on purpose.
 */
#ifndef CA_PII_H
#define CA_PII_H

#include <stddef.h>

/* The name of the first form s holds ("mobile number", ...), for logs
 * that must not carry the value; NULL if none. */
const char *ca_pii_find(const char *s, size_t len);

/* 1 if s holds any of the forms above. */
int ca_looks_personal(const char *s, size_t len);

#endif
