/*
 * The response filter's speed, engine only: ca_filter_text() with the
 * shipped policy's `tax` category on generated records, masked and raw,
 * in MB of upstream body per second of user CPU time.
 *
 *   sparse  the record `make bench` serves (scripts/stack/records.py tax_record):
 *           rows of year, amount and a filing reference; few numbers
 *   dense   rows of ten amounts each (five listed, three of them bucketed
 *           at the masked level, twelve monthly figures withheld): what
 *           tax and utilities platforms send
 *
 * at 16 KiB and 256 KiB, written as the bench upstream writes them
 * (json.dumps indent=1).  Built by `make bench-filter` against
 * build/libcreditauth.a:
 *
 *   cc -O2 -Ilib bench/filter_speed.c build/libcreditauth.a \
 *      -ljwt -lhiredis -ljansson -lssl -lcrypto -o filter_speed
 *   ./filter_speed [--seconds S] [--policy FILE] [--case NAME]
 *
 * --case runs one record only (dense-256k, sparse-16k, ...): for profiling.
 *
 * Prints one line per case: name, level, bytes, MB/s, output bytes.
 * Exit status 1 if the filter refuses a record.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creditauth.h"
#include "user_time.h"

typedef struct {
    char   *s;
    size_t  len, cap;
} buf_t;

static void
put(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int     n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n < b->cap - b->len) {
            b->len += (size_t) n;
            return;
        }
        b->cap = b->cap ? 2 * b->cap : 4096;
        if ((b->s = realloc(b->s, b->cap)) == NULL) {
            exit(2);
        }
    }
}

static void
head(buf_t *b)
{
    put(b, "{\n \"uscc\": \"91350100M000100Y43\",\n"
           " \"name\": \"\xe7\xa6\x8f\xe5\xb7\x9e\xe9\x97\xbd\xe6\xb1\x9f"
           "\xe7\xb2\xbe\xe5\xaf\x86\xe6\x9c\xba\xe6\xa2\xb0\xe6\x9c\x89"
           "\xe9\x99\x90\xe5\x85\xac\xe5\x8f\xb8\",\n"
           " \"credit_rating\": \"A\",\n \"annual\": [");
}

static void
tail(buf_t *b)
{
    put(b, "\n ],\n \"legal_representative\": {\n"
           "  \"name\": \"\xe5\xbc\xa0\xe4\xb8\x89\xe4\xb8\xb0\",\n"
           "  \"id_number\": \"110101199003071234\",\n"
           "  \"mobile\": \"13812345678\"\n },\n"
           " \"internal_notes\": \"UPSTREAM-INTERNAL-NOTE do not disclose\"\n"
           "}");
}

static char *
sparse_record(size_t kb, size_t *len)
{
    buf_t b = {0};

    head(&b);
    for (int i = 0; b.len < kb * 1024 - 200; i++) {
        put(&b, "%s\n  {\n   \"year\": %d,\n   \"tax_paid\": %d,\n"
                "   \"filing_ref\": \"FR-%d-%05d\"\n  }",
            i ? "," : "", 2021 - i, 500000 + 1000 * i, 2021 - i, i);
    }
    tail(&b);
    *len = b.len;
    return b.s;
}

static char *
dense_record(size_t kb, size_t *len)
{
    buf_t b = {0};

    head(&b);
    for (int i = 0; b.len < kb * 1024 - 400; i++) {
        put(&b, "%s\n  {\n   \"year\": %d,\n   \"tax_paid\": %d.%02d,\n"
                "   \"revenue\": %d.%02d,\n   \"vat_paid\": %d.%02d,\n"
                "   \"arrears\": %d,\n   \"monthly\": [",
            i ? "," : "", 2021 - i, 1234567 + 37 * i, i % 100,
            98765432 + 101 * i, (i * 7) % 100, 234567 + 13 * i,
            (i * 3) % 100, i % 5 ? 0 : 1000 + i);
        for (int m = 0; m < 12; m++) {
            put(&b, "%s\n    %d.%02d", m ? "," : "", 10000 + 17 * i + m,
                (i + m) % 100);
        }
        put(&b, "\n   ]\n  }");
    }
    tail(&b);
    *len = b.len;
    return b.s;
}


static int
run(const ca_category *c, const char *name, const char *rec, size_t len,
    int raw, double seconds)
{
    ca_filter_opts   opts;
    ca_filter_report rep;
    size_t           out_len = 0;
    long long        n = 0;
    double           t0, t;

    memset(&opts, 0, sizeof(opts));
    opts.raw = raw;
    t0 = user_s();
    do {
        for (int k = 0; k < 16; k++, n++) {
            char *out;
            if (ca_filter_report_init(&rep, c) != 0) {
                return -1;
            }
            out = ca_filter_text(c, rec, len, &opts, &rep, &out_len);
            ca_filter_report_free(&rep);
            if (out == NULL) {
                fprintf(stderr, "filter_speed: %s refused\n", name);
                return -1;
            }
            free(out);
        }
        t = user_s() - t0;
    } while (t < seconds);
    printf("%-8s %-6s %8zu bytes %9.1f MB/s   out %zu bytes\n", name,
           raw ? "raw" : "masked", len, (double) len * (double) n / t / 1e6,
           out_len);
    fflush(stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    const char        *policy = "policies/platform-policy.json";
    const char        *only = NULL;
    double             seconds = 1.0;
    const ca_category *c;
    ca_policy         *p;
    ca_error           err;
    int                rc = 0;
    static const size_t kbs[] = {16, 256};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc) {
            policy = argv[++i];
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: filter_speed [--seconds S] "
                            "[--policy FILE] [--case NAME]\n");
            return 2;
        }
    }
    if ((p = ca_policy_load(policy, &err)) == NULL) {
        fprintf(stderr, "filter_speed: %s: %s\n", policy, err.text);
        return 2;
    }
    if ((c = ca_policy_find_category(p, "tax")) == NULL) {
        fprintf(stderr, "filter_speed: no tax category in %s\n", policy);
        return 2;
    }
    for (size_t k = 0; k < sizeof(kbs) / sizeof(kbs[0]); k++) {
        char   name[32], *rec;
        size_t len;

        for (int dense = 0; dense <= 1; dense++) {
            rec = dense ? dense_record(kbs[k], &len)
                        : sparse_record(kbs[k], &len);
            snprintf(name, sizeof(name), "%s-%zuk", dense ? "dense" : "sparse",
                     kbs[k]);
            for (int raw = 0; raw <= 1; raw++) {
                if (only && strcmp(only, name) != 0) {
                    continue;
                }
                if (run(c, name, rec, len, raw, seconds) != 0) {
                    rc = 1;
                }
            }
            free(rec);
        }
    }
    ca_policy_free(p);
    return rc;
}
