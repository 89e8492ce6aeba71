/*
 * core/ functions exported for the unit tests only (and the fuzzers):
 * nothing in the engine, the glue or the tools calls them from outside
 * their file (tests/integration/test_layers.py keeps it so).
 */
#ifndef CA_CORE_TESTING_H
#define CA_CORE_TESTING_H

/* uscc.c: the check character for the first 17 characters; 0 if any of
 * them is outside the alphabet (tests make valid USCCs with it). */
char ca_uscc_check_char(const char *s17);

#endif
