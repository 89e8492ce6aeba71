/*
 * A withheld array of amounts, validated 64 bytes at a time (engine-
 * internal, for the JSON scanner; numrun.c).
 */
#ifndef CA_NUMRUN_H
#define CA_NUMRUN_H

#include "core/core.h"
#include "decnum.h"

/*
 * p is on an element of an array being skipped (not copied).  Returns
 * how far the elements from p are settled, as the JSON grammar reads
 * them: the first byte of a later element, or past the array's ']' with
 * *closed = 1.  Returns p itself when the 64 bytes at p settle nothing
 * (not a plain number there, fewer than 64 bytes left, anything but
 * numbers, whitespace and commas before the next element): the caller
 * reads on byte by byte.  It only ever accepts what that reading accepts.
 */
CA_INTERNAL const char *ca_numrun_skip(const char *p, const char *end,
                                       int *closed);

#endif
