/* credit-consent's pieces (tools/credit-consent.c, tools/consent_*.c). */
#ifndef CA_TOOLS_CONSENT_H
#define CA_TOOLS_CONSENT_H

#include <jansson.h>

#include "common.h"

/* "credit-consent: <fmt>", then the usage; EXIT_USAGE. */
int usage_error(const char *usage, const char *fmt, const char *arg);
int parse_i64(const char *s, long long min, long long *out);
/* A base64url JSON segment of a compact JWS, or NULL. */
json_t *decode_part(const char *s, size_t len);
/* TOKEN, or standard input for NULL or "-"; "Bearer " and white space
 * trimmed.  Caller frees. */
char *read_token(const char *arg);

/* Appends name to the list of missing options when value is NULL. */
void need(char *list, size_t len, const char *value, const char *name);

int cmd_sign(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_key(int argc, char **argv);

#endif
