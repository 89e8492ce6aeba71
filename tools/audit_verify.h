/* Verifying the stream with several keys (tools/audit_verify.c): shared by
 * verify, report (the period's integrity) and archive. */
#ifndef CA_TOOLS_AUDIT_VERIFY_H
#define CA_TOOLS_AUDIT_VERIFY_H

#include <openssl/evp.h>

#include "audit_tool.h"
#include "auditverify.h"

#define AV_KEYS_MAX 16

typedef struct {
    size_t    n;
    EVP_PKEY *key[AV_KEYS_MAX];
    char      name[AV_KEYS_MAX][256];   /* file, or file#k */
} av_keys;

/* --pubkey and --keyring; -1 after an error message. */
int av_keys_load(const common_opts *co, av_keys *ks);
void av_keys_free(av_keys *ks);

typedef struct av_run_s av_run;

/* Called for every entry read by av_run_stream (after verification). */
typedef int (*av_entry_hook)(const entry *e, void *data);

av_run *av_run_new(const av_keys *ks);
void av_run_hook(av_run *r, av_entry_hook hook, void *data);
/* One entry, in stream order (av_run_stream does this for a stream). */
int av_run_add(av_run *r, const entry *e);
int av_run_finish(av_run *r);
/* Reads the whole stream, page by page, and finishes; progress on a
 * terminal.  0 or an exit status after an error message. */
int av_run_stream(av_run *r, redisContext *rc, const char *stream,
                  size_t *count);

size_t av_run_nchains(const av_run *r);
const ca_av_chain *av_run_chain(const av_run *r, size_t i,
                                const char **keyname);
size_t av_run_breaks(const av_run *r);
size_t av_run_entries(const av_run *r);
void av_run_free(av_run *r);

#endif
