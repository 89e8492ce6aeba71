/* Unified Social Credit Code, GB 32100-2015. */
#ifndef CA_USCC_H
#define CA_USCC_H

#include <stddef.h>

#define CA_USCC_LEN 18

/* 1 if s (len bytes, not NUL-terminated) is a USCC with a valid check
 * character; upper case only, as the standard writes it. */
int ca_uscc_valid(const char *s, size_t len);


/*
 * Why s (len bytes) is not a USCC, in words for a person, into buf: "has
 * 17 characters, a USCC has 18", "is in lower case: a USCC is written in
 * upper case (91350100M000100Y43)", "character 9 'I' is not used in a
 * USCC (0-9 and A-Z without I, O, S, V, Z)", "check character (the 18th)
 * is 4, the first 17 give 3".  Returns buf, or NULL when s is valid.
 */
const char *ca_uscc_problem(const char *s, size_t len, char *buf,
                            size_t buflen);

#endif
