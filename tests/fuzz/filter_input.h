/*
 * The input layout of the filter harnesses: one byte choosing the category
 * (low 7 bits, index into fuzz_categories()) and the level (high bit:
 * raw), then the upstream body.
 */
#ifndef CA_FUZZ_FILTER_INPUT_H
#define CA_FUZZ_FILTER_INPUT_H

#include "fuzz.h"
#include "policy/filter.h"

static fuzz_cats           cats;
static const unsigned char hash_key[32] = "fuzz-hash-key-of-thirty-two-b!!";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_categories(&cats);
    return 0;
}

/* The category and options byte selects (size >= 1). */
static const ca_category *
filter_input(uint8_t byte, ca_filter_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->hash_key = hash_key;
    opts->hash_key_len = sizeof(hash_key);
    opts->raw = byte >> 7;
    return cats.cat[(byte & 0x7f) % cats.n];
}

#endif
