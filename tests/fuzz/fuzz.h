/*
 * Shared by the libFuzzer harnesses (tests/fuzz/, docs/fuzzing.md).
 *
 * The engine's loaders read files: a harness hands them its input through
 * one memfd, reopened by path, so that an execution touches no disk.
 * Properties a harness checks are asserted with FUZZ_CHECK, which aborts
 * (libFuzzer then saves the input as a crash).
 */
#ifndef CA_FUZZ_H
#define CA_FUZZ_H

/* memfd_create(): include this before any system header */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "policy/policy.h"

#ifndef CA_FUZZ_ROOT
#error "CA_FUZZ_ROOT: the source tree (the Makefile defines it)"
#endif

#define FUZZ_CHECK(cond, ...)                                           \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "property violated: %s: ", #cond);          \
            fprintf(stderr, __VA_ARGS__);                               \
            fputc('\n', stderr);                                        \
            abort();                                                    \
        }                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes data to the harness's memfd; returns its path ("/proc/self/fd/N"),
 * valid until the next call. */
static inline const char *
fuzz_file(const void *data, size_t size)
{
    static int  fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0
        || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t) size))
    {
        perror("memfd");
        abort();
    }
    return path;
}

/* A NUL-terminated copy (parsers that take C strings). */
static inline char *
fuzz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    if (s == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

/* A policy of the source tree, loaded once; aborts if it does not load. */
static inline ca_policy *
fuzz_policy(const char *rel)
{
    char       file[1024];
    ca_error   err;
    ca_policy *p;

    snprintf(file, sizeof(file), "%s/%s", CA_FUZZ_ROOT, rel);
    p = ca_policy_load(file, &err);
    if (p == NULL) {
        fprintf(stderr, "fuzz: %s\n", err.text);
        abort();
    }
    return p;
}

/*
 * Every category of every shipped policy, sorted by (policy, category
 * name): the first input byte of the filter and checks harnesses picks one
 * (tests/fuzz/seeds.py builds its seeds with the same order).
 */
#define FUZZ_POLICIES_MAX 4
#define FUZZ_CATS_MAX     64

typedef struct {
    ca_policy         *policy[FUZZ_POLICIES_MAX];
    const ca_category *cat[FUZZ_CATS_MAX];
    size_t             n;
} fuzz_cats;

static inline int
fuzz_cat_cmp(const void *a, const void *b)
{
    return strcmp((*(const ca_category *const *) a)->name,
                  (*(const ca_category *const *) b)->name);
}

static inline void
fuzz_categories(fuzz_cats *fc)
{
    static const char *const files[] = {
        "policies/platform-policy.json",
        "tests/unit/fixtures/policy/spec-example.json",
    };

    fc->n = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        ca_policy *p = fuzz_policy(files[f]);
        size_t     first = fc->n;

        fc->policy[f] = p;      /* kept for the process's life */

        for (size_t i = 0; i < p->n_categories && fc->n < FUZZ_CATS_MAX;
             i++)
        {
            fc->cat[fc->n++] = &p->categories[i];
        }
        qsort(&fc->cat[first], fc->n - first, sizeof(fc->cat[0]),
              fuzz_cat_cmp);
    }
}

#endif
