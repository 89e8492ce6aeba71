/*
 * The audit writer (contract §7, docs/audit-format.md): chains, lanes, the job
 * queue and the spool cursor of one writer (a gateway worker).  It does no
 * I/O on the network: it turns audit entries into one command for Redis
 * (ca_aw_flush, ca_aw_replay) and learns their fate from the reply
 * (ca_aw_reply); the caller sends the command and hands the reply back.
 *
 * The unit of work is an entry:
 *  - a final entry (refusal, outcome, checkpoint) is sealed into chain 0
 *    and written when its predecessor is in the stream;
 *  - an allow decision takes a lane, a chain of its own with no undecided
 *    entry, and is sealed once per variant (allow, and one per refusal
 *    its checks can produce); the script runs the checks and writes the
 *    variant they choose, atomically.
 * All entries of one event-loop turn go in one script call, or, while
 * a call is out, in the next one (group commit, calls_max).  What Redis
 * cannot take goes to the spool, as the sealed entry itself, and is
 * replayed in chain order; a (chain, seq) already written is a duplicate
 * and is skipped, so replays are idempotent.
 */
#ifndef CA_AUDITWRITER_H
#define CA_AUDITWRITER_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

#include "audit.h"
#include "core/core.h"

#define CA_AW_CHECKS_MAX    64      /* checks of one decision */
#define CA_AW_VARIANTS_MAX  8       /* allow + distinct refusals */
#define CA_AW_BATCH_MAX     128     /* entries of one command */
#define CA_AW_REPLAY_MAX    64      /* spooled entries of one command */
#ifndef CA_AW_CALLS_MAX
#define CA_AW_CALLS_MAX     1       /* default of calls_max */
#endif

/* How an entry ended, for its owner. */
#define CA_AW_ACKED     1           /* in the stream */
#define CA_AW_SPOOLED   2           /* in the spool: durable, replayed */
#define CA_AW_LOST      3           /* neither, or a decision unconfirmed */
#define CA_AW_QUEUED    4           /* (return value) the owner is told */
#define CA_AW_REFUSED   5           /* a decision Redis refused outright
                                       (-OOM...): nothing written, the
                                       deny went to chain 0 (auditfate.c) */

#define CA_AW_LOG_ALERT 1
#define CA_AW_LOG_ERR   2
#define CA_AW_LOG_WARN  3
#define CA_AW_LOG_INFO  4

/* The settled callback may run inside ca_aw_reply() or ca_aw_flush():
 * it must not call back into the writer. */
typedef void (*ca_aw_settled_pt)(void *owner, int outcome, ca_reason reason);
typedef void (*ca_aw_log_pt)(void *ctx, int level, const char *msg);

typedef struct {
    const char         *gw;             /* gateway id */
    const char         *prefix;         /* "<gw>/<pid>/<start ms>" */
    const char         *stream;         /* the audit stream's key */
    size_t              max_lanes;
    const char         *spool_file;     /* NULL: no spool */
    uint64_t            spool_max;
    size_t              calls_max;      /* entry commands out at once
                                           before the next waits to fill
                                           (group commit); 0: 1 */
    EVP_PKEY           *key;            /* checkpoints; NULL: none */
    ca_aw_settled_pt    settled;
    ca_aw_log_pt        log;
    void               *log_ctx;
} ca_aw_conf;

/*
 * One check of an allow decision, run by the script in order; the first
 * that refuses chooses the entry written (deny, or report in report mode,
 * with `reason`).  'E': refuses when `key` exists (revocation).  'C': a
 * counter (`key`, or `field` of the hash `key`): refuses when adding `by`
 * would pass `max`; counters are charged only when every check passes.
 * The counter expires at `expire_at` (Unix seconds) from its first use.
 */
typedef struct {
    char                op;
    const char         *key;
    const char         *field;          /* NULL: the key is the counter */
    int64_t             by;
    int64_t             max;
    int64_t             expire_at;
    ca_reason           reason;
} ca_aw_check;

#define CA_AW_REPLY_STRING  1
#define CA_AW_REPLY_ERROR   2
#define CA_AW_REPLY_OTHER   3

typedef struct {
    int                 type;
    const char         *str;
    size_t              len;
} ca_aw_rep;

typedef struct ca_aw      ca_aw;
typedef struct ca_aw_job  ca_aw_job;

/* A command for Redis: EVALSHA <sha> 1 <stream> ...; see auditbatch.c. */
typedef struct {
    int                 argc;
    const char        **argv;
    size_t             *lens;
} ca_aw_cmd;

typedef struct {
    uint64_t            sent;           /* entries sent to Redis */
    uint64_t            acked;
    uint64_t            failed;         /* sent, not acknowledged */
    uint64_t            spooled;
    uint64_t            replayed;       /* spooled entries acknowledged */
    uint64_t            replay_failed;  /* replay commands that failed */
    uint64_t            unexpected;     /* replies of an unexpected type */
    uint64_t            refused;        /* refused outright: -OOM,
                                           -NOREPLICAS, -READONLY */
    uint64_t            lost;
} ca_aw_stats;

ca_aw *ca_aw_new(const ca_aw_conf *conf, char *err, size_t errlen);
/* Spools what is still queued and closes the spool (commands in flight
 * must have had their answer, NULL at worst, before).  Returns 1 when the
 * spool was empty and has been removed. */
int ca_aw_free(ca_aw *aw);

/* The script's text, for SCRIPT LOAD and EVALSHA. */
const char *ca_aw_script(void);

/*
 * A final entry (no chain fields yet): sealed into chain 0.  CA_AW_QUEUED:
 * the owner is told later (settled); CA_AW_SPOOLED: written to the spool
 * now (Redis offline, or the spool is not empty: chain order); CA_AW_LOST:
 * neither.  `online`: Redis takes commands now.
 */
int ca_aw_final(ca_aw *aw, ca_entry *e, int online, void *owner,
                ca_aw_job **job);

/*
 * A `discontinuity` entry (contract §7.1): Redis came back without entries it
 * had acknowledged.  Sealed into chain 0 like a final entry, and written
 * even though its predecessor is gone from Redis (chain 0 continues from
 * it; verify reports the missing seqs and the discontinuity itself).
 */
int ca_aw_discontinuity(ca_aw *aw, ca_entry *e, int online);

/*
 * A consent withdrawn (contract §3): a `revocation` entry naming the
 * enterprise, the consent (its jti, written as a decision's `consent`,
 * ca_audit_consent_id) and who withdrew it, `by` "enterprise" (a signed
 * withdrawal) or "platform" (credit-consent revoke).  Sealed into chain 0
 * and settled like a final entry: CA_AW_QUEUED, CA_AW_SPOOLED or
 * CA_AW_LOST (also for an invalid USCC, an empty jti or another `by`).
 */
typedef struct {
    int64_t             ts;             /* Unix ms */
    const char         *enterprise;     /* USCC */
    const char         *jti;
    const char         *by;
} ca_aw_revoked;

int ca_aw_revocation(ca_aw *aw, const ca_aw_revoked *rv, int online,
                     void *owner, ca_aw_job **job);

/*
 * An allow (or report) decision: `e` holds every field up to `policy`,
 * `decision` and `reason` included.  `refusal` is the decision word a
 * refusing check writes ("deny", or "report").  CA_AW_QUEUED or
 * CA_AW_LOST (no lane free, entry too large).
 */
int ca_aw_decide(ca_aw *aw, ca_entry *e, const char *refusal,
                 const ca_aw_check *checks, size_t n, void *owner,
                 ca_aw_job **job);

/* The owner is gone: its job settles without telling anyone. */
void ca_aw_detach(ca_aw_job *job);

/*
 * The next command of this turn's queue, or NULL.  Offline, the queue
 * settles now instead (spooled or lost) and NULL is returned.
 */
ca_aw_cmd *ca_aw_flush(ca_aw *aw, int online);
/* Spooled entries to send again, in order, or NULL (nothing, or a replay
 * in flight, or holding off after a failure). */
ca_aw_cmd *ca_aw_replay(ca_aw *aw);
/* The reply to a command; NULL: none will come (connection lost, never
 * sent).  Frees cmd. */
void ca_aw_reply(ca_aw *aw, ca_aw_cmd *cmd, const ca_aw_rep *reply);

/*
 * Housekeeping, every ~100 ms: checkpoints when due (`all`: every chain
 * with unsigned entries, now: the exit flush), adoption of dead workers'
 * spools when due, the replay hold-off.  now_ms: wall clock.
 */
void ca_aw_tick(ca_aw *aw, int64_t now_ms, uint64_t checkpoint_ms, int all,
                int online);
/* fsync of the spool, if anything was appended since the last one. */
int ca_aw_sync(ca_aw *aw);

/* Takes over `dir`/worker-<pid>.spool files of processes that are gone
 * (not own_pid).  A file holding records of another module version is
 * kept aside as <name>.foreign and logged, never dropped. */
void ca_aw_adopt_dir(ca_aw *aw, const char *dir, long own_pid);

/* Nothing queued, in flight, spooled, or unsigned (with a key). */
int ca_aw_idle(const ca_aw *aw, int online);
const ca_aw_stats *ca_aw_get_stats(const ca_aw *aw);
/* Bytes waiting in the spool, and the ts (ms) of the oldest (0: none). */
uint64_t ca_aw_spool_bytes(const ca_aw *aw, int64_t *oldest_ts);

/*
 * Loss detection on a reconnect (contract §7.1).  The key of the hash where
 * the script keeps this writer's chain heads, and HGETALL's answer held
 * against the heads Redis acknowledged: the number of chains it holds
 * behind (missing or shorter), -1 when out of memory.  `expected` and
 * `found` (each `len` bytes) list them as "<chain>:<seq>" ("-": no head),
 * comma-separated, the first 16 and then ",+N more".  A loss is reported
 * once: what Redis holds becomes the heads expected from then on.
 */
const char *ca_aw_heads_key(ca_aw *aw);
long ca_aw_heads_check(ca_aw *aw, size_t n, const char *const *fields,
                       const size_t *flens, const char *const *values,
                       const size_t *vlens, char *expected, char *found,
                       size_t len);

/* Spool record kind of an entry (others are another version's). */
#define CA_AW_RECORD_ENTRY  0x10

#endif
