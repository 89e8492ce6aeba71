/*
 * Internal to the audit writer: a job (one entry on its way to Redis) and
 * the encoding of a batch of jobs into one script call.
 */
#ifndef CA_AUDITBATCH_H
#define CA_AUDITBATCH_H

#include "auditwriter.h"

#define CA_AW_KIND_ENTRY     'E'    /* written after its predecessor */
#define CA_AW_KIND_REPLAY    'F'    /* may follow a lost predecessor */
#define CA_AW_KIND_DECISION  'D'    /* checks choose the variant */

#define CA_AW_NO_SLOT        ((size_t) -1)

typedef struct {
    char                decision[16];
    ca_reason           reason;
    char                hash[65];
} ca_aw_variant;

typedef struct {
    char                op;
    char               *key;
    char               *field;          /* "" for a plain counter */
    char                by[24];
    char                max[24];
    char                expire[24];
    char                variant[4];
} ca_aw_jcheck;

struct ca_aw_job {
    ca_aw_job          *next;
    size_t              cap;            /* bytes allocated */
    char                kind;
    int                 after_gap;      /* sent as 'F': its predecessor
                                           is gone from Redis */
    size_t              slot;           /* lane slot (0: chain 0) */
    uint64_t            seq;
    uint64_t            spool_end;      /* replay: offset past its record */
    void               *owner;

    /* the entry (a decision: its allow variant), copied */
    size_t              n;
    size_t              names_len;      /* the names, NULs included, are
                                           side by side from name[0] */
    size_t              chain;          /* index of `chain`, or -1 */
    const char        **name;
    const char        **value;
    size_t             *len;
    int64_t             ts;

    /* a decision */
    size_t              xpos[3];        /* decision, reason, hash */
    size_t              nvar;
    ca_aw_variant       var[CA_AW_VARIANTS_MAX];
    size_t              ncheck;
    ca_aw_jcheck       *check;
};

typedef struct {
    ca_aw_cmd           cmd;
    ca_aw_job         **jobs;
    size_t              njobs;
    int                 replay;
    size_t              n0;             /* chain-0 entries among jobs */
    char               *scratch;        /* numbers the argv points to */
} ca_aw_batch;

/* Builds the command for jobs[0..n); 0 or -1 (out of memory). */
int ca_aw_encode(ca_aw_batch *b, const char *stream);
void ca_aw_batch_free(ca_aw_batch *b);

/* Copies the fields of e into a new job (NULL: out of memory). */
ca_aw_job *ca_aw_job_new(size_t n, const char *const *names,
                         const char *const *values, const size_t *lens,
                         size_t ncheck, size_t key_bytes);
void ca_aw_job_free(ca_aw_job *job);
/* Frees the jobs kept for reuse. */
void ca_aw_jobs_release(void);

/* The chain field of a job, split at its last '/': writer and lane. */
int ca_aw_job_chain(const ca_aw_job *job, const char **chain, size_t *len,
                    size_t *slash);

/* The writer's state, shared by its files. */
#include "auditckpt.h"
#include "spool.h"

#define CA_AW_HOLD_TICKS  10        /* after a failed replay: ~1 s */

typedef struct ca_aw_heads  ca_aw_heads;

typedef struct {
    ca_chain            chain;
    int                 busy;       /* an entry in flight */
    int                 listed;     /* in the free list */
    uint64_t            checkpointed;
    uint64_t            no;         /* lane number: its chain id's last
                                       component */
    uint64_t            acked_seq;  /* the last entry Redis confirmed */
    unsigned char       acked_head[32];
    uint64_t            listed_seq; /* acked_seq as chain 0 last listed */
} ca_aw_lane;

struct ca_aw {
    ca_aw_conf          conf;
    char                gw[128];
    char                prefix[96];
    char                stream[256];
    char               *spool_file;
    ca_spool           *spool;

    ca_aw_lane         *lanes;      /* [0]: chain 0 */
    size_t              n_lanes;
    size_t             *free;       /* idle lane slots */
    size_t              n_free;
    uint64_t            next_chain; /* number of the next new lane chain */

    ca_aw_job          *queue;      /* this turn's entries */
    ca_aw_job         **tail;
    size_t              inflight;   /* entries sent, reply due */
    size_t              calls;      /* entry commands sent, reply due */
    size_t              outstanding0;   /* chain-0 entries queued or out */
    ca_aw_job          *behind;     /* chain-0 entries for the spool that
                                       wait for those, in seq order */
    int                 replaying;
    int                 hold;
    int                 gap0;       /* chain 0's next entry follows a loss */
    int64_t             last_checkpoint;
    ca_ckpt_head       *ended;      /* retired lane chains' last heads,
                                       for chain 0 to list */
    size_t              n_ended, cap_ended;
    uint64_t            cp0_seq;    /* chain 0's last acknowledged
                                       checkpoint, for the lanes to list */
    unsigned char       cp0_head[32];
    int64_t             oldest_ts;
    ca_aw_stats         stats;
    char                refusing[16];   /* the error Redis answers now */
    uint64_t            refused_since;  /* stats.refused when it began */
    uint64_t            stuck_seq;      /* the replay's, said last */
    ca_aw_heads        *heads;      /* acknowledged heads (auditloss.c) */
};


void ca_aw_log(ca_aw *aw, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ca_aw_settle(ca_aw *aw, ca_aw_job *job, int outcome, ca_reason reason);
size_t ca_aw_lane_get(ca_aw *aw);
void ca_aw_lane_release(ca_aw *aw, size_t slot);
void ca_aw_enqueue(ca_aw *aw, ca_aw_job *job);
int ca_aw_submit(ca_aw *aw, size_t slot, ca_entry *e, const ca_chain *saved,
                 int online, void *owner, ca_aw_job **out);
int ca_aw_result_ok(const ca_aw_job *job, char res);
ca_aw_batch *ca_aw_batch_new(size_t n);
void ca_aw_lane_retire(ca_aw *aw, size_t slot);
void ca_aw_behind(ca_aw *aw, ca_aw_job *job);
void ca_aw_release_behind(ca_aw *aw);

/* auditfate.c */
void ca_aw_failed(ca_aw *aw, ca_aw_job *job);

/* auditreplay.c */
int ca_aw_spool_pending(const ca_aw *aw);
int ca_aw_spool_job(ca_aw *aw, ca_aw_job *job);
int ca_aw_spool_failed_decision(ca_aw *aw, ca_aw_job *job);
void ca_aw_refresh_oldest(ca_aw *aw);
void ca_aw_replayed(ca_aw *aw, ca_aw_batch *b, const char *res);
int ca_aw_spool_record(ca_aw *aw, const ca_spool_record *rec);
int ca_aw_has_spool(const ca_aw *aw);

/* auditsign.c */
void ca_aw_head_acked(ca_aw *aw, ca_aw_job *job,
                      const unsigned char head[32]);
void ca_aw_head_retired(ca_aw *aw, ca_aw_lane *l);
int ca_aw_heads_pending(const ca_aw *aw, int online);

/* auditloss.c */
void ca_aw_heads_acked(ca_aw *aw, uint64_t chain, uint64_t seq);
void ca_aw_heads_replayed(ca_aw *aw, const ca_aw_job *job);
void ca_aw_heads_free(ca_aw *aw);

/* auditadopt.c */
void ca_aw_adopt_claimed(ca_aw *aw, const char *claimed, const char *orphan);

#endif
