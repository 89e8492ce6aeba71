/* Verifying the stream with several keys (tools/audit_verify.c): shared by
 * verify, report (the period's integrity) and archive. */
#ifndef CA_TOOLS_AUDIT_VERIFY_H
#define CA_TOOLS_AUDIT_VERIFY_H

#include <openssl/evp.h>

#include "audit_archread.h"
#include "audit_tool.h"
#include "verify/auditverify.h"

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
/* Reads the stream from id `from` ("-": the start), page by page, and
 * finishes; progress on a terminal.  With t (--archive): the archive,
 * then Redis (audit_archread.h).  0 or an exit status after an error
 * message. */
int av_run_stream(av_run *r, trail *t, redisContext *rc, const char *stream,
                  const char *from, size_t *count);

size_t av_run_nchains(const av_run *r);
const ca_av_chain *av_run_chain(const av_run *r, size_t i,
                                const char **keyname);
size_t av_run_breaks(const av_run *r);
/* A finding that is the expected late start of a resumed chain. */
int av_run_excused(const av_run *r, const ca_av_chain *c,
                   const ca_av_finding *f);
size_t av_run_chain_breaks(const av_run *r, const ca_av_chain *c);
/* The last stream id read. */
const char *av_run_last_id(const av_run *r);
size_t av_run_entries(const av_run *r);
void av_run_free(av_run *r);

/* verify --resume (tools/audit_resume.c) */
typedef struct av_resume_s av_resume;

/* The state of FILE (none yet: from the start); the stream id to read
 * from into from.  NULL after an error message. */
av_resume *av_resume_load(const char *file, const char *stream, char *from,
                          size_t fromlen);
/* 0, or an exit status after an error message. */
int av_run_resume(av_run *r, av_resume *rs);
/* 1: the entry was verified before (skip it), 0: verify it, -1: out of
 * memory. */
int av_resume_filter(av_resume *rs, const entry *e);
/* Tells the verifier each anchor: heads listed at or below it were
 * verified before (ca_av_floor).  -1: out of memory. */
int av_resume_floors(const av_resume *rs, ca_av *av);
int av_resume_excused(const av_resume *rs, const char *chain,
                      const ca_av_finding *f);
/* Anchored chains whose first new entry does not continue the anchor. */
size_t av_resume_breaks(const av_resume *rs);
void av_resume_each_break(const av_resume *rs,
                          void (*cb)(const char *chain, const char *id,
                                     const char *why, void *data),
                          void *data);
size_t av_resume_skipped(const av_resume *rs);
/* After a run without a break: the anchors for the next run. */
int av_resume_save(const av_resume *rs, const av_run *v, const char *stream,
                   const char *file, const char *prev_from,
                   const char *last_id);
void av_resume_free(av_resume *rs);

/* verify --anchor, anchor --out (tools/audit_anchor.c) */
typedef struct av_anchor_s av_anchor;

/* Anchored entries missing count as breaks of the run. */
void av_run_anchor(av_run *r, av_anchor *an);

/* NULL after an error message. */
av_anchor *av_anchor_load(const char *file, const char *stream);
/* An av_entry_hook: notes the anchored entries read. */
int av_anchor_see(const entry *e, void *data);
/* Anchors not found (printed as breaks unless json). */
size_t av_anchor_missing(const av_anchor *an, int json);
void *av_anchor_missing_json(const av_anchor *an);
void av_anchor_free(av_anchor *an);

#endif
