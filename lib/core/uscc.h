/* Unified Social Credit Code, GB 32100-2015. */
#ifndef CA_USCC_H
#define CA_USCC_H

#include <stddef.h>

#define CA_USCC_LEN 18

/* 1 if s (len bytes, not NUL-terminated) is a USCC with a valid check
 * character; upper case only, as the standard writes it. */
int ca_uscc_valid(const char *s, size_t len);

/* Computes the check character for the first 17 characters; 0 if any of
 * them is outside the alphabet. */
char ca_uscc_check_char(const char *s17);

#endif
