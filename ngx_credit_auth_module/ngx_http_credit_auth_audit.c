/*
 * The audit trail (SPEC §7).  Each worker is one writer; its entries form
 * hash chains that a regulator verifies with the gateway's public key.
 *
 * Chains.  Chain 0 of a worker carries every entry whose content is final
 * when it is sealed: refusals decided here, outcomes, checkpoints.  These
 * are pipelined on the worker's one Redis connection, which keeps them in
 * chain order.  An allow decision is different: revocation, use counting
 * and the XADD happen in one atomic script (one round trip), and the
 * script, not the gateway, learns whether the entry says allow, revoked or
 * exhausted.  Such a decision takes a "lane": a chain of its own that is
 * idle, on which three variants are sealed with the same seq and prev; the
 * script writes exactly one and says which, and the lane's head advances to
 * it.  A lane carries one undecided entry at a time, so every chain stays a
 * plain linear hash chain (docs/audit-format.md).
 *
 * Spool.  When Redis cannot take an entry (down, or the connection dropped
 * before the reply) the command is appended to a per-worker spool file and
 * replayed in order once Redis is back; while the spool holds anything,
 * chain-0 entries go behind it so the stream keeps chain order.  The script
 * is idempotent per (chain, seq): a replay never writes a decision twice.
 * Allow decisions are never spooled: without Redis revocation cannot be
 * checked and the answer is 503 revocation_unavailable, itself spooled.
 */
#include <dirent.h>
#include <signal.h>

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include "ngx_http_credit_auth.h"


/* Lanes are made on demand, up to one per command that may be in flight
 * (credit_auth_redis max_inflight), capped here. */
#define NGX_HTTP_CREDIT_AUTH_LANES_MAX 4096
#define NGX_HTTP_CREDIT_AUTH_PLAIN     1     /* spool record kinds */
#define NGX_HTTP_CREDIT_AUTH_LANE      2
#define NGX_HTTP_CREDIT_AUTH_TICK      100   /* ms */
#define NGX_HTTP_CREDIT_AUTH_REPLAY    64    /* records in flight */

#define NGX_HTTP_CREDIT_AUTH_V_ALLOW      0
#define NGX_HTTP_CREDIT_AUTH_V_REVOKED    1
#define NGX_HTTP_CREDIT_AUTH_V_EXHAUSTED  2
#define NGX_HTTP_CREDIT_AUTH_V_BUDGET     3
#define NGX_HTTP_CREDIT_AUTH_V_FAILED     4
#define NGX_HTTP_CREDIT_AUTH_SEALED       4     /* variants sent per decision */
#define NGX_HTTP_CREDIT_AUTH_VARIANTS     5     /* and the replayed deny */
#define NGX_HTTP_CREDIT_AUTH_GAP_STRIKES  30    /* ticks: ~3 s */


/*
 * KEYS: stream, credit:revoked:<jti>, credit:uses:<jti>,
 *       credit:chain:<chain>, credit:vbudget:<jti>
 * ARGV: seq, max_uses (0: none), uses expire-at, np, ns, mode,
 *       np strings (fields before `decision`), ns strings (fields between
 *       `reason` and `hash`), then per variant (allow, revoked, exhausted,
 *       budget) its decision, reason and hash values, then the
 *       verification budget (checks per field), nb and nb pairs of verify
 *       field and checks this request makes of it.  The variants share all
 *       other fields, so they are sent once.  The budget is a hash per
 *       consent, counted only when the decision is allow, in the same
 *       atomic step as the use count (SPEC §2.1).
 * mode "live" decides; mode "failed" is the replay of a decision whose
 * request was answered 503 when Redis dropped away: it writes the first
 * variant (a deny) without checking or counting anything, unless the
 * original was written after all (then it is a duplicate).
 */
static const char  ngx_http_credit_auth_script[] =
    "local last = redis.call('GET', KEYS[4])\n"
    "if last then\n"
    "  local s, v = string.match(last, '^(%d+) (%a+)$')\n"
    "  if s and tonumber(s) >= tonumber(ARGV[1]) then return {v, ''} end\n"
    "end\n"
    "local variant = 1\n"
    "if ARGV[6] ~= 'live' then\n"
    "  variant = 1\n"
    "elseif redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  variant = 2\n"
    "else\n"
    "  local max = tonumber(ARGV[2])\n"
    "  local used = 0\n"
    "  if max > 0 then\n"
    "    used = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
    "    if used >= max then variant = 3 end\n"
    "  end\n"
    "  local b = 6 + tonumber(ARGV[4]) + tonumber(ARGV[5]) + 12\n"
    "  local budget, nb = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])\n"
    "  if variant == 1 then\n"
    "    for i = 1, nb do\n"
    "      local spent = redis.call('HGET', KEYS[5], ARGV[b + 1 + 2 * i])\n"
    "      if (tonumber(spent) or 0) + tonumber(ARGV[b + 2 + 2 * i])\n"
    "         > budget then variant = 4 end\n"
    "    end\n"
    "  end\n"
    "  if variant == 1 then\n"
    "    if max > 0 then\n"
    "      redis.call('INCR', KEYS[3])\n"
    "      if used == 0 then redis.call('EXPIREAT', KEYS[3], ARGV[3]) end\n"
    "    end\n"
    "    for i = 1, nb do\n"
    "      redis.call('HINCRBY', KEYS[5], ARGV[b + 1 + 2 * i],\n"
    "                 ARGV[b + 2 + 2 * i])\n"
    "    end\n"
    "    if nb > 0 then redis.call('EXPIREAT', KEYS[5], ARGV[3]) end\n"
    "  end\n"
    "end\n"
    "local np, ns = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local f, k = {}, 0\n"
    "for i = 1, np do k = k + 1; f[k] = ARGV[6 + i] end\n"
    "local v = 6 + np + ns + (variant - 1) * 3\n"
    "f[k + 1] = 'decision'; f[k + 2] = ARGV[v + 1]\n"
    "f[k + 3] = 'reason'; f[k + 4] = ARGV[v + 2]\n"
    "k = k + 4\n"
    "for i = 1, ns do k = k + 1; f[k] = ARGV[6 + np + i] end\n"
    "f[k + 1] = 'hash'; f[k + 2] = ARGV[v + 3]\n"
    "local id = redis.call('XADD', KEYS[1], '*', unpack(f))\n"
    "local names = {'allow', 'revoked', 'exhausted', 'budget'}\n"
    "local name = ARGV[6] == 'live' and names[variant] or 'failed'\n"
    "redis.call('SET', KEYS[4], ARGV[1] .. ' ' .. name, 'EX', 2592000)\n"
    "return {name, id}\n";

/* argv positions of the decision command */
#define NGX_HTTP_CREDIT_AUTH_ARG_MAX    9
#define NGX_HTTP_CREDIT_AUTH_ARG_NP     11
#define NGX_HTTP_CREDIT_AUTH_ARG_NS     12
#define NGX_HTTP_CREDIT_AUTH_ARG_MODE   13
#define NGX_HTTP_CREDIT_AUTH_ARG_FIELDS 14
/* after the fields: the sealed variants, budget, nb, nb pairs */
#define NGX_HTTP_CREDIT_AUTH_ARG_TAIL   (3 * NGX_HTTP_CREDIT_AUTH_SEALED + 2)
#define NGX_HTTP_CREDIT_AUTH_ARGV_MAX                                        \
    (NGX_HTTP_CREDIT_AUTH_ARG_FIELDS + 2 * CA_ENTRY_FIELDS                    \
     + NGX_HTTP_CREDIT_AUTH_ARG_TAIL + 2 * CA_CHECKS_MAX)


/*
 * Every other entry, in batches: the entries a worker seals in one turn of
 * its event loop (all of chain 0) go in one call.  Pipelined writes can
 * partly fail (a Redis that is still loading answers -LOADING to some,
 * then accepts the next): the script refuses an entry whose predecessor in
 * its chain is not there, so one failure sends all later entries to the
 * spool behind it and the stream keeps chain order.  Entries of the batch
 * written before such a refusal stay written; a seq already written is a
 * duplicate and skipped, which makes a whole batch safe to replay.  A
 * replay (force) may skip the check for its first unwritten entry: the
 * spool is in chain order, so a predecessor still missing then is lost.
 *
 * KEYS: stream, credit:chain:<chain>
 * ARGV: force, n, then n times: seq, m, m strings (field/value pairs).
 */
static const char  ngx_http_credit_auth_append_script[] =
    "local force = ARGV[1] == '1'\n"
    "local last = redis.call('GET', KEYS[2])\n"
    "local s = last and tonumber(string.match(last, '^(%d+)')) or 0\n"
    "local s0, i = s, 3\n"
    "for e = 1, tonumber(ARGV[2]) do\n"
    "  local seq, m = tonumber(ARGV[i]), tonumber(ARGV[i + 1])\n"
    "  i = i + 2\n"
    "  if seq > s then\n"
    "    if seq ~= s + 1 and not (force and s == s0) then\n"
    "      if s > s0 then\n"
    "        redis.call('SET', KEYS[2], s .. ' plain', 'EX', 2592000)\n"
    "      end\n"
    "      return redis.error_reply('GAP ' .. KEYS[2] .. ' at ' .. s)\n"
    "    end\n"
    "    local f = {}\n"
    "    for j = 1, m do f[j] = ARGV[i + j - 1] end\n"
    "    redis.call('XADD', KEYS[1], '*', unpack(f))\n"
    "    s = seq\n"
    "  end\n"
    "  i = i + m\n"
    "end\n"
    "if s > s0 then\n"
    "  redis.call('SET', KEYS[2], s .. ' plain', 'EX', 2592000)\n"
    "end\n"
    "return 'ok'\n";

#define NGX_HTTP_CREDIT_AUTH_FORCE_ARG  5   /* argv index of `force` */
#define NGX_HTTP_CREDIT_AUTH_HEAD_ARGS  7   /* EVALSHA sha 2 stream key f n */
#define NGX_HTTP_CREDIT_AUTH_BATCH_MAX  64


typedef struct {
    ca_chain                chain;
    ngx_uint_t              busy;       /* an undecided entry in flight */
    ngx_uint_t              lost;       /* head unknown: never used again */
    uint64_t                checkpointed;
} ngx_http_credit_auth_lane_t;


/* What the reply of one command must update; malloc'd, outlives requests. */
struct ngx_http_credit_auth_pending_s {
    ngx_http_request_t     *r;          /* NULL once the request is gone */
    ngx_uint_t              lane;       /* 0: plain entry */
    ca_chain                variants[NGX_HTTP_CREDIT_AUTH_VARIANTS];
                                            /* allow revoked exhausted
                                               budget failed */
    ngx_uint_t              checkpoint_lane;   /* a lane's checkpoint */
    struct ngx_http_credit_auth_pending_s  **parts;  /* a batch's entries */
    ngx_uint_t              n_parts;
    ngx_uint_t              replay;
    uint64_t                spool_end;
    int                     argc;
    const char            **argv;
    size_t                 *lens;
};


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    char                               gw[128];
    char                               prefix[96];   /* gw/pid/start */
    char                               sha[41];      /* decision script */
    char                               append_sha[41];
    ngx_http_credit_auth_lane_t       *lanes;        /* [0] = chain 0 */
    ngx_uint_t                         n_lanes;
    ngx_uint_t                         max_lanes;
    ngx_uint_t                        *free;         /* idle lanes */
    ngx_uint_t                         n_free;
    ca_spool                          *spool;
    u_char                            *spool_file;
    ngx_uint_t                         replaying;    /* records in flight */
    uint64_t                           replay_next;  /* read offset */
    ngx_uint_t                         replay_hold;  /* ticks to wait */
    ngx_uint_t                         replay_failed;
    ngx_uint_t                         gap_strikes;
    ngx_queue_t                        parked;      /* decisions waiting for
                                                       the connection */
    ngx_http_credit_auth_pending_t    *batch[NGX_HTTP_CREDIT_AUTH_BATCH_MAX];
    ngx_uint_t                         n_batch;
    ngx_event_t                        flush;
    ngx_msec_t                         last_checkpoint;
    ngx_msec_t                         last_adopt;
    ngx_event_t                        tick;
} ngx_http_credit_auth_audit_t;


static ngx_http_credit_auth_audit_t  ngx_http_credit_auth_audit;


static void ngx_http_credit_auth_settle_parts(
    ngx_http_credit_auth_pending_t *pd, ngx_uint_t ok);
static void ngx_http_credit_auth_resume(ngx_http_request_t *r,
    ngx_uint_t ok);
static void ngx_http_credit_auth_resume_handler(ngx_event_t *ev);


static int64_t
ngx_http_credit_auth_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


/* --- commands: argv kept until the reply, for the spool --------------- */

static ngx_http_credit_auth_pending_t *
ngx_http_credit_auth_pending_new(int argc, const char *const *argv,
    const size_t *lens)
{
    u_char                          *p;
    size_t                           size;
    ngx_int_t                        i;
    ngx_http_credit_auth_pending_t  *pd;

    size = sizeof(ngx_http_credit_auth_pending_t)
           + argc * (sizeof(char *) + sizeof(size_t));
    for (i = 0; i < argc; i++) {
        size += lens[i];
    }

    p = ngx_alloc(size, ngx_http_credit_auth_audit.log);
    if (p == NULL) {
        return NULL;
    }

    pd = (ngx_http_credit_auth_pending_t *) p;
    ngx_memzero(pd, sizeof(ngx_http_credit_auth_pending_t));
    pd->argc = argc;
    pd->argv = (const char **) (p + sizeof(ngx_http_credit_auth_pending_t));
    pd->lens = (size_t *) (pd->argv + argc);
    p = (u_char *) (pd->lens + argc);

    for (i = 0; i < argc; i++) {
        pd->argv[i] = (char *) p;
        pd->lens[i] = lens[i];
        p = ngx_cpymem(p, argv[i], lens[i]);
    }

    return pd;
}


/*
 * Builds the append command for one sealed entry:
 * EVALSHA <append> 2 <stream> credit:chain:<chain> 0 1 <seq> <m> pairs...
 * key and the two small buffers must outlive argv.
 */
static int
ngx_http_credit_auth_append_argv(ca_entry *e, const char **argv,
    size_t *lens, char *key, size_t keylen, char *mbuf)
{
    size_t                         i, len;
    int                            n;
    const char                    *chain, *seq;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    chain = ca_entry_get(e, "chain", NULL);
    seq = ca_entry_get(e, "seq", &len);
    ngx_snprintf((u_char *) key, keylen - 1, "credit:chain:%s%Z", chain);
    ngx_snprintf((u_char *) mbuf, 15, "%uz%Z", 2 * e->n);

    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = au->append_sha;
    lens[1] = 40;
    argv[2] = "2";
    lens[2] = 1;
    argv[3] = (char *) au->mcf->stream.data;
    lens[3] = au->mcf->stream.len;
    argv[4] = key;
    lens[4] = ngx_strlen(key);
    argv[NGX_HTTP_CREDIT_AUTH_FORCE_ARG] = "0";
    lens[NGX_HTTP_CREDIT_AUTH_FORCE_ARG] = 1;
    argv[6] = "1";
    lens[6] = 1;
    argv[7] = seq;
    lens[7] = len;
    argv[8] = mbuf;
    lens[8] = ngx_strlen(mbuf);
    n = 9;
    for (i = 0; i < e->n; i++) {
        argv[n] = e->name[i];
        lens[n++] = ngx_strlen(e->name[i]);
        argv[n] = e->value[i];
        lens[n++] = e->len[i];
    }
    return n;
}


/* A replayed append is in chain order already: skip the gap check. */
static void
ngx_http_credit_auth_force(ngx_http_credit_auth_pending_t *pd)
{
    if (pd->lane == 0 && pd->argc > NGX_HTTP_CREDIT_AUTH_FORCE_ARG
        && pd->lens[1] == 40
        && ngx_strncmp(pd->argv[1], ngx_http_credit_auth_audit.append_sha,
                       40) == 0)
    {
        *(char *) pd->argv[NGX_HTTP_CREDIT_AUTH_FORCE_ARG] = '1';
    }
}


static ngx_int_t
ngx_http_credit_auth_spool_append(ngx_http_credit_auth_pending_t *pd)
{
    u_char                         meta[8 + NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain)];
    size_t                         meta_len;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (au->spool == NULL) {
        return NGX_ERROR;
    }

    /* a lane record remembers which lane it resolves and its variants */
    meta_len = 0;
    if (pd->lane) {
        ngx_memcpy(meta, &pd->lane, sizeof(ngx_uint_t));
        ngx_memcpy(meta + 8, pd->variants, NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain));
        meta_len = sizeof(meta);
    }

    if (ca_spool_append(au->spool,
                        pd->lane ? NGX_HTTP_CREDIT_AUTH_LANE
                                 : NGX_HTTP_CREDIT_AUTH_PLAIN,
                        (char *) meta, meta_len, pd->argc, pd->argv,
                        pd->lens)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                      "credit_auth: audit spool %s is full or unwritable",
                      au->spool_file);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_credit_auth_variant(redisReply *rep)
{
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2
        || rep->element[0]->type != REDIS_REPLY_STRING)
    {
        return (ngx_uint_t) -1;
    }
    if (ngx_strcmp(rep->element[0]->str, "allow") == 0) {
        return NGX_HTTP_CREDIT_AUTH_V_ALLOW;
    }
    if (ngx_strcmp(rep->element[0]->str, "revoked") == 0) {
        return NGX_HTTP_CREDIT_AUTH_V_REVOKED;
    }
    if (ngx_strcmp(rep->element[0]->str, "exhausted") == 0) {
        return NGX_HTTP_CREDIT_AUTH_V_EXHAUSTED;
    }
    if (ngx_strcmp(rep->element[0]->str, "budget") == 0) {
        return NGX_HTTP_CREDIT_AUTH_V_BUDGET;
    }
    if (ngx_strcmp(rep->element[0]->str, "failed") == 0) {
        return NGX_HTTP_CREDIT_AUTH_V_FAILED;
    }
    return (ngx_uint_t) -1;
}


static void
ngx_http_credit_auth_lane_release(ngx_uint_t lane, ca_chain *head)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;
    ngx_http_credit_auth_lane_t   *l = &au->lanes[lane];

    if (head) {
        l->chain = *head;
        l->busy = 0;
        au->free[au->n_free++] = lane;

    } else {
        /* the script may or may not have run: the head is unknown */
        l->lost = 1;
        ngx_log_error(NGX_LOG_WARN, au->log, 0,
                      "credit_auth: audit chain %s ends at an undecided "
                      "entry", l->chain.id);
    }
}


/*
 * A lane decision whose reply never came: its request is answered 503, and
 * what is spooled for replay is a deny (audit_unavailable) in the same
 * chain position, so the trail says what the bank got.  If Redis did run
 * the original after all, the replay is a duplicate and changes nothing.
 */
static ngx_int_t
ngx_http_credit_auth_spool_failed_lane(ngx_http_credit_auth_pending_t *pd)
{
    int                              i, np, ns, n;
    char                             hex[65];
    char                             namebuf[CA_ENTRY_FIELDS + 4][32];
    u_char                           h[32];
    size_t                           lens[NGX_HTTP_CREDIT_AUTH_ARGV_MAX];
    ngx_int_t                        rc;
    const char                      *names[CA_ENTRY_FIELDS + 4];
    const char                      *values[CA_ENTRY_FIELDS + 4];
    size_t                           vlens[CA_ENTRY_FIELDS + 4];
    ngx_http_credit_auth_pending_t  *fd;

    static const char  deny[] = "deny", why[] = "audit_unavailable";

    if (pd->argc < NGX_HTTP_CREDIT_AUTH_ARG_FIELDS
                   + NGX_HTTP_CREDIT_AUTH_ARG_TAIL
        || pd->argc > NGX_HTTP_CREDIT_AUTH_ARGV_MAX)
    {
        return NGX_ERROR;
    }
    np = ngx_atoi((u_char *) pd->argv[NGX_HTTP_CREDIT_AUTH_ARG_NP],
                  pd->lens[NGX_HTTP_CREDIT_AUTH_ARG_NP]);
    ns = ngx_atoi((u_char *) pd->argv[NGX_HTTP_CREDIT_AUTH_ARG_NS],
                  pd->lens[NGX_HTTP_CREDIT_AUTH_ARG_NS]);
    if (np == NGX_ERROR || ns == NGX_ERROR || np % 2 || ns % 2
        || np / 2 + ns / 2 + 2 > CA_ENTRY_FIELDS
        || NGX_HTTP_CREDIT_AUTH_ARG_FIELDS + np + ns
           + NGX_HTTP_CREDIT_AUTH_ARG_TAIL > pd->argc)
    {
        return NGX_ERROR;
    }

    /*
     * The entry as the deny variant: prefix, decision, reason, suffix.
     * Names in the pending copy are not NUL-terminated, as the digest
     * wants them: copy them out.
     */
    n = 0;
    for (i = 0; i < np + ns; i += 2) {
        int  j = NGX_HTTP_CREDIT_AUTH_ARG_FIELDS + i;

        if (i == np) {
            names[n] = "decision";
            values[n] = deny;
            vlens[n++] = sizeof(deny) - 1;
            names[n] = "reason";
            values[n] = why;
            vlens[n++] = sizeof(why) - 1;
        }
        if (pd->lens[j] >= sizeof(namebuf[0])) {
            return NGX_ERROR;
        }
        ngx_memcpy(namebuf[n], pd->argv[j], pd->lens[j]);
        namebuf[n][pd->lens[j]] = '\0';
        names[n] = namebuf[n];
        values[n] = pd->argv[j + 1];
        vlens[n++] = pd->lens[j + 1];
    }
    ca_entry_digest(names, values, vlens, (size_t) n, h);
    ca_hex(h, 32, hex);

    /* same command, mode "failed", max_uses 0, identical variants */
    for (i = 0; i < pd->argc; i++) {
        lens[i] = pd->lens[i];
    }
    {
        const char  *argv[NGX_HTTP_CREDIT_AUTH_ARGV_MAX];
        int          base = NGX_HTTP_CREDIT_AUTH_ARG_FIELDS + np + ns;

        for (i = 0; i < pd->argc; i++) {
            argv[i] = pd->argv[i];
        }
        argv[NGX_HTTP_CREDIT_AUTH_ARG_MAX] = "0";
        lens[NGX_HTTP_CREDIT_AUTH_ARG_MAX] = 1;
        argv[NGX_HTTP_CREDIT_AUTH_ARG_MODE] = "failed";
        lens[NGX_HTTP_CREDIT_AUTH_ARG_MODE] = 6;
        for (i = 0; i < NGX_HTTP_CREDIT_AUTH_SEALED; i++) {
            argv[base + 3 * i] = deny;
            lens[base + 3 * i] = sizeof(deny) - 1;
            argv[base + 3 * i + 1] = why;
            lens[base + 3 * i + 1] = sizeof(why) - 1;
            argv[base + 3 * i + 2] = hex;
            lens[base + 3 * i + 2] = 64;
        }
        fd = ngx_http_credit_auth_pending_new(pd->argc, argv, lens);
    }
    if (fd == NULL) {
        return NGX_ERROR;
    }

    fd->lane = pd->lane;
    ngx_memcpy(fd->variants, pd->variants,
               NGX_HTTP_CREDIT_AUTH_SEALED * sizeof(ca_chain));
    fd->variants[NGX_HTTP_CREDIT_AUTH_V_FAILED] = pd->variants[0];
    fd->variants[NGX_HTTP_CREDIT_AUTH_V_FAILED].seq = pd->variants[0].seq;
    ngx_memcpy(fd->variants[NGX_HTTP_CREDIT_AUTH_V_FAILED].head, h, 32);

    rc = ngx_http_credit_auth_spool_append(fd);
    ngx_free(fd);
    return rc;
}


/* The lane waits for exactly this record: move its head, free it. */
static void
ngx_http_credit_auth_lane_resolved(ngx_http_credit_auth_pending_t *pd,
    ngx_uint_t v)
{
    ngx_http_credit_auth_lane_t   *l;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (pd->lane == 0 || pd->lane >= au->n_lanes) {
        return;
    }
    l = &au->lanes[pd->lane];
    if (l->busy && !l->lost
        && ngx_strcmp(l->chain.id, pd->variants[0].id) == 0
        && l->chain.seq + 1 == pd->variants[0].seq)
    {
        ngx_http_credit_auth_lane_release(pd->lane, &pd->variants[v]);
    }
}


static void
ngx_http_credit_auth_replay_reply(ngx_http_credit_auth_pending_t *pd,
    redisReply *rep, ngx_uint_t ok, ngx_uint_t v)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    au->replaying--;

    if (ok) {
        /* a later record can succeed (a duplicate) after an earlier one
         * failed; the lane may still learn its head, the spool keeps it */
        if (pd->lane) {
            ngx_http_credit_auth_lane_resolved(pd, v);
        }
        if (!au->replay_failed) {
            (void) ca_spool_ack(au->spool, pd->spool_end);
            au->gap_strikes = 0;
        }

    } else if (!au->replay_failed) {
        au->replay_failed = 1;

        if (rep && rep->type == REDIS_REPLY_ERROR) {
            if (ngx_strncmp(rep->str, "GAP", 3) == 0) {
                au->gap_strikes++;

            } else if (ngx_strncmp(rep->str, "NOSCRIPT", 8) == 0
                       && pd->lens[1] == 40
                       && ngx_strncmp(pd->argv[1], au->sha, 40) != 0
                       && ngx_strncmp(pd->argv[1], au->append_sha, 40) != 0)
            {
                /* written by another version of the module: it can never
                 * run; keeping it would block the spool for good */
                ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                              "credit_auth: spooled audit record of another "
                              "module version dropped (script %*s)",
                              (size_t) 40, pd->argv[1]);
                (void) ca_spool_ack(au->spool, pd->spool_end);
                au->replay_failed = 0;
            }
        }
    }

    if (au->replaying == 0 && au->replay_failed) {
        /* read again from what was acked, after a pause */
        au->replay_failed = 0;
        au->replay_next = ca_spool_acked(au->spool);
        au->replay_hold = 10;
    }
}


static void
ngx_http_credit_auth_retry_handler(ngx_event_t *ev)
{
    ngx_http_request_t  *r = ev->data;
    ngx_connection_t    *c = r->connection;

    /* release the hold taken while parked, and decide again */
    r->main->count--;
    ngx_http_core_run_phases(r);
    ngx_http_run_posted_requests(c);
}


/* The connection is up (PONG), or the attempt failed: parked decisions go
 * again, from posted events (this runs inside hiredis callbacks). */
void
ngx_http_credit_auth_audit_redis_changed(void)
{
    ngx_queue_t                   *q;
    ngx_http_request_t            *r;
    ngx_http_credit_auth_ctx_t    *ctx;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (au->mcf == NULL) {
        return;
    }

    while (!ngx_queue_empty(&au->parked)) {
        q = ngx_queue_head(&au->parked);
        ngx_queue_remove(q);
        ctx = ngx_queue_data(q, ngx_http_credit_auth_ctx_t, parked);
        ctx->is_parked = 0;
        r = ctx->resume.data;

        ctx->state = NGX_HTTP_CREDIT_AUTH_RETRY;
        ctx->resume.handler = ngx_http_credit_auth_retry_handler;
        ctx->resume.log = r->connection->log;
        ngx_post_event(&ctx->resume, &ngx_posted_events);
    }
}


static void
ngx_http_credit_auth_resume_handler(ngx_event_t *ev)
{
    ngx_http_request_t          *r = ev->data;
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    ngx_http_credit_auth_decision_acked(r, ctx, ctx->acked_ok);
}


/* Every reply comes here, in the order the commands were sent. */
static void
ngx_http_credit_auth_audit_reply(void *data, void *reply)
{
    ngx_uint_t                       ok, v;
    redisReply                      *rep = reply;
    ngx_http_request_t              *r;
    ngx_http_credit_auth_ctx_t      *ctx;
    ngx_http_credit_auth_pending_t  *pd = data;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    v = (ngx_uint_t) -1;
    if (pd->lane) {
        v = ngx_http_credit_auth_variant(rep);
        ok = (v != (ngx_uint_t) -1);
    } else {
        ok = (rep != NULL && rep->type == REDIS_REPLY_STRING);
    }

    if (rep && rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, au->log, 0,
                      "credit_auth: redis refused an audit entry: %s",
                      rep->str);
    }

    ngx_http_credit_auth_count_audit(ok ? NGX_HTTP_CREDIT_AUTH_AUDIT_ACKED
                                        : NGX_HTTP_CREDIT_AUTH_AUDIT_FAILED);

    if (pd->replay) {
        ngx_http_credit_auth_replay_reply(pd, rep, ok, v);
        ngx_free(pd);
        return;
    }

    if (!ok && pd->checkpoint_lane) {
        /* spooled, it could reach the stream after the lane's next entry:
         * end the lane here instead */
        au->lanes[pd->checkpoint_lane].lost = 1;

    } else if (!ok && pd->lane) {
        if (ngx_http_credit_auth_spool_failed_lane(pd) != NGX_OK) {
            ngx_http_credit_auth_lane_release(pd->lane, NULL);
        }

    } else if (!ok) {
        /* Unknown whether Redis wrote it: keep it for replay; readers
         * de-duplicate by (chain, seq) and the script by its own record. */
        ok = (ngx_http_credit_auth_spool_append(pd) == NGX_OK);

    } else if (pd->lane) {
        ngx_http_credit_auth_lane_resolved(pd, v);
    }

    if (pd->parts) {
        /* a batch: its refusals stand, written or spooled */
        ngx_http_credit_auth_settle_parts(pd, ok);
        ngx_free(pd);
        return;
    }

    r = pd->r;
    ngx_free(pd);

    if (r == NULL) {
        return;         /* the client went away while we waited */
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    ctx->pending = NULL;

    if (ok && v == NGX_HTTP_CREDIT_AUTH_V_REVOKED) {
        ctx->reason = CA_CONSENT_REVOKED;
    } else if (ok && v == NGX_HTTP_CREDIT_AUTH_V_EXHAUSTED) {
        ctx->reason = CA_CONSENT_EXHAUSTED;
    } else if (ok && v == NGX_HTTP_CREDIT_AUTH_V_BUDGET) {
        ctx->reason = CA_VERIFICATION_BUDGET_EXHAUSTED;
    }
    /* !ok: revocation was not confirmed: 503 in
     * ngx_http_credit_auth_decision_acked() */

    /*
     * Resume from a posted event, not from inside hiredis: when the
     * connection fails, every pending reply comes back NULL in one go, and
     * a request resumed in the middle would seal new entries (its outcome)
     * ahead of older ones still to be spooled.
     */
    ngx_http_credit_auth_resume(r, ok);
}


/*
 * Sends a command, or (plain entries only) spools it when Redis cannot
 * take it now.  NGX_AGAIN: sent, the reply will come; NGX_OK: spooled;
 * NGX_ERROR: neither.  Unless sent, pd is freed and a batch's requests are
 * resumed (settle).
 */
static ngx_int_t
ngx_http_credit_auth_submit(ngx_http_credit_auth_pending_t *pd,
    ngx_uint_t settle)
{
    ngx_int_t                      rc;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (pd->lane
        || (ngx_http_credit_auth_redis_ready()
            && (au->spool == NULL || ca_spool_empty(au->spool))))
    {
        rc = ngx_http_credit_auth_redis_command(pd->argc, pd->argv, pd->lens,
                                        ngx_http_credit_auth_audit_reply, pd);
        if (rc == NGX_OK) {
            ngx_http_credit_auth_count_audit(NGX_HTTP_CREDIT_AUTH_AUDIT_SENT);
            return NGX_AGAIN;
        }
        if (pd->lane) {
            ngx_free(pd);
            return NGX_ERROR;
        }
    }

    rc = ngx_http_credit_auth_spool_append(pd);
    if (settle) {
        ngx_http_credit_auth_settle_parts(pd, rc == NGX_OK);
    }
    ngx_free(pd);

    return rc;
}


/*
 * Resumes the requests of a batch (or of one entry) once it is settled:
 * acknowledged by Redis, spooled (ok too: durable), or neither.
 */
static void
ngx_http_credit_auth_resume(ngx_http_request_t *r, ngx_uint_t ok)
{
    ngx_http_credit_auth_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    ctx->pending = NULL;
    ctx->acked_ok = ok;
    ctx->resume.handler = ngx_http_credit_auth_resume_handler;
    ctx->resume.data = r;
    ctx->resume.log = r->connection->log;
    ngx_post_event(&ctx->resume, &ngx_posted_events);
}


/* Frees the parts, whose bytes the batch's argv points into: call it only
 * when the batch has been sent, spooled or given up. */
static void
ngx_http_credit_auth_settle_parts(ngx_http_credit_auth_pending_t *pd,
    ngx_uint_t ok)
{
    ngx_uint_t                       i;
    ngx_http_request_t              *r;
    ngx_http_credit_auth_pending_t  *part;

    for (i = 0; i < pd->n_parts; i++) {
        part = pd->parts[i];
        r = part->r;
        ngx_free(part);
        if (r != NULL) {
            ngx_http_credit_auth_resume(r, ok);
        }
    }
    ngx_free(pd->parts);
    pd->parts = NULL;
    pd->n_parts = 0;
}


/*
 * Sends the chain-0 entries sealed during this turn of the event loop as
 * one append: one round trip for all of them, in seal order.
 */
static void
ngx_http_credit_auth_flush(ngx_event_t *ev)
{
    int                              argc;
    size_t                           i, k, total;
    const char                     **argv;
    size_t                          *lens;
    char                            *n;
    ngx_http_credit_auth_pending_t  *pd, *e, **parts;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    if (au->flush.posted) {
        ngx_delete_posted_event(&au->flush);
    }
    if (au->n_batch == 0) {
        return;
    }

    total = NGX_HTTP_CREDIT_AUTH_HEAD_ARGS;
    for (i = 0; i < au->n_batch; i++) {
        total += au->batch[i]->argc - NGX_HTTP_CREDIT_AUTH_HEAD_ARGS;
    }

    /*
     * The batch points into its entries' own copies rather than copying
     * them again: they live until the batch is settled.
     */
    pd = ngx_alloc(sizeof(ngx_http_credit_auth_pending_t)
                   + total * (sizeof(char *) + sizeof(size_t)) + 16,
                   au->log);
    parts = ngx_alloc(au->n_batch * sizeof(*parts), au->log);
    if (pd == NULL || parts == NULL) {
        ngx_free(pd);
        ngx_free(parts);
        goto failed;
    }
    ngx_memzero(pd, sizeof(ngx_http_credit_auth_pending_t));
    argv = (const char **) (pd + 1);
    lens = (size_t *) (argv + total);
    n = (char *) (lens + total);

    /* the head of the first entry's command, with the batch's count */
    e = au->batch[0];
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_HEAD_ARGS; k++) {
        argv[k] = e->argv[k];
        lens[k] = e->lens[k];
    }
    ngx_snprintf((u_char *) n, 15, "%ui%Z", au->n_batch);
    argv[6] = n;
    lens[6] = ngx_strlen(n);
    argc = NGX_HTTP_CREDIT_AUTH_HEAD_ARGS;
    for (i = 0; i < au->n_batch; i++) {
        e = au->batch[i];
        for (k = NGX_HTTP_CREDIT_AUTH_HEAD_ARGS; k < (size_t) e->argc; k++) {
            argv[argc] = e->argv[k];
            lens[argc++] = e->lens[k];
        }
        parts[i] = e;
    }
    pd->argc = argc;
    pd->argv = argv;
    pd->lens = lens;
    pd->parts = parts;
    pd->n_parts = au->n_batch;
    au->n_batch = 0;

    /* sent: the reply settles it; spooled or lost: submit() did */
    (void) ngx_http_credit_auth_submit(pd, 1);
    return;

failed:

    ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                  "credit_auth: audit batch lost: out of memory");
    for (i = 0; i < au->n_batch; i++) {
        e = au->batch[i];
        if (e->r) {
            ngx_http_credit_auth_resume(e->r, 0);
        }
        ngx_free(e);
    }
    au->n_batch = 0;
}


/* Queues an entry sealed into chain 0 for this turn's batch. */
static ngx_int_t
ngx_http_credit_auth_queue(ca_entry *e, ngx_http_request_t *r,
    ngx_http_credit_auth_pending_t **out)
{
    int                              argc;
    char                             key[160], mbuf[16];
    size_t                           lens[9 + 2 * CA_ENTRY_FIELDS];
    const char                      *argv[9 + 2 * CA_ENTRY_FIELDS];
    ngx_http_credit_auth_pending_t  *pd;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    argc = ngx_http_credit_auth_append_argv(e, argv, lens, key,
                                            sizeof(key), mbuf);
    pd = ngx_http_credit_auth_pending_new(argc, argv, lens);
    if (pd == NULL) {
        return NGX_ERROR;
    }
    pd->r = r;

    if (au->n_batch == NGX_HTTP_CREDIT_AUTH_BATCH_MAX) {
        ngx_http_credit_auth_flush(&au->flush);
    }
    au->batch[au->n_batch++] = pd;
    if (!au->flush.posted) {
        ngx_post_event(&au->flush, &ngx_posted_events);
    }

    if (out) {
        *out = pd;
    }
    return NGX_AGAIN;
}


/* Seals a final entry into chain 0 and queues it. */
static ngx_int_t
ngx_http_credit_auth_audit_plain(ca_entry *e, ngx_http_request_t *r,
    ngx_http_credit_auth_pending_t **out)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    /* Seal only what can be delivered: a sealed entry that never reaches
     * the stream would read as a deletion. */
    if (au->spool == NULL && !ngx_http_credit_auth_redis_ready()) {
        return NGX_ERROR;
    }

    if (ca_chain_seal(&au->lanes[0].chain, e) != 0) {
        ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                      "credit_auth: audit entry too large");
        return NGX_ERROR;
    }

    return ngx_http_credit_auth_queue(e, r, out);
}


/* Chain ids: "<gateway>/<pid>/<worker start ms>/<lane>". */
static void
ngx_http_credit_auth_chain_init(ca_chain *chain, ngx_uint_t lane)
{
    char  id[sizeof(chain->id)];

    ngx_snprintf((u_char *) id, sizeof(id) - 1, "%s/%ui%Z",
                 ngx_http_credit_auth_audit.prefix, lane);
    ca_chain_init(chain, id);
}


static ngx_uint_t
ngx_http_credit_auth_lane_get(void)
{
    ngx_uint_t                     i;
    ngx_http_credit_auth_lane_t   *l;
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    while (au->n_free) {
        i = au->free[--au->n_free];
        if (!au->lanes[i].lost) {
            au->lanes[i].busy = 1;
            return i;
        }
    }

    if (au->n_lanes == au->max_lanes + 1) {
        return 0;
    }

    i = au->n_lanes++;
    l = &au->lanes[i];
    ngx_memzero(l, sizeof(ngx_http_credit_auth_lane_t));
    ngx_http_credit_auth_chain_init(&l->chain, i);
    l->busy = 1;
    return i;
}


/* An allow candidate: four variants on a lane, one script round trip. */
static ngx_int_t
ngx_http_credit_auth_audit_lane(ca_entry *e, ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    int                              argc;
    char                             seq[24], max[24], expire[24];
    char                             np[8], ns[8], budget[8], nb[8];
    char                             counts[CA_CHECKS_MAX][8];
    char                             kr[128], ku[128], kc[160], kb[128];
    char                             hashes[NGX_HTTP_CREDIT_AUTH_SEALED][65];
    size_t                           lens[NGX_HTTP_CREDIT_AUTH_ARGV_MAX];
    size_t                           k, prefix, rlen, n_uses;
    ca_chain                         chains[NGX_HTTP_CREDIT_AUTH_SEALED];
    ca_check_use                     uses[CA_CHECKS_MAX];
    ngx_uint_t                       lane, v;
    const char                      *argv[NGX_HTTP_CREDIT_AUTH_ARGV_MAX];
    const char                      *decision, *hash;
    ngx_http_credit_auth_pending_t  *pd;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    static const char  *reasons[NGX_HTTP_CREDIT_AUTH_SEALED] = {
        "", "consent_revoked", "consent_exhausted",
        "verification_budget_exhausted"
    };

    lane = ngx_http_credit_auth_lane_get();
    if (lane == 0) {
        return NGX_ERROR;
    }

    /*
     * Seal each variant in turn on a copy of the lane's chain: the entry
     * is the same but for decision and reason, whose values are rewritten
     * in place, and the trailing chain fields, which are dropped again.
     */
    prefix = e->n;
    decision = ctx->report ? "report" : "allow";
    ca_entry_add(e, "decision", decision, ngx_strlen(decision));
    ca_entry_add(e, "reason", reasons[2], ngx_strlen(reasons[2]));
    ca_entry_addf(e, "policy", "%s %s", au->mcf->policy->version,
                  au->mcf->policy->sha256);
    rlen = e->used;

    for (v = 0; v < NGX_HTTP_CREDIT_AUTH_SEALED; v++) {
        decision = ctx->report ? "report" : (v == 0 ? "allow" : "deny");
        e->value[prefix] = decision;
        e->len[prefix] = ngx_strlen(decision);
        e->value[prefix + 1] = reasons[v];
        e->len[prefix + 1] = ngx_strlen(reasons[v]);
        e->n = prefix + 3;
        e->used = rlen;

        chains[v] = au->lanes[lane].chain;
        if (ca_chain_seal(&chains[v], e) != 0) {
            ngx_http_credit_auth_lane_release(lane, &au->lanes[lane].chain);
            return NGX_ERROR;
        }
        hash = ca_entry_get(e, "hash", NULL);
        ngx_memcpy(hashes[v], hash, 65);
    }

    ngx_snprintf((u_char *) seq, sizeof(seq) - 1, "%uL%Z",
                 (uint64_t) chains[0].seq);
    ngx_snprintf((u_char *) max, sizeof(max) - 1, "%L%Z",
                 (int64_t) ctx->claims->max_uses);
    ngx_snprintf((u_char *) expire, sizeof(expire) - 1, "%L%Z",
                 (int64_t) ctx->claims->exp + au->mcf->policy->token.leeway);
    ngx_snprintf((u_char *) np, sizeof(np) - 1, "%uz%Z", 2 * prefix);
    /* policy, chain, seq, prev */
    ngx_snprintf((u_char *) ns, sizeof(ns) - 1, "%uz%Z",
                 2 * (e->n - prefix - 3));
    ngx_snprintf((u_char *) kr, sizeof(kr) - 1, "credit:revoked:%s%Z",
                 ctx->claims->jti);
    ngx_snprintf((u_char *) ku, sizeof(ku) - 1, "credit:uses:%s%Z",
                 ctx->claims->jti);
    ngx_snprintf((u_char *) kc, sizeof(kc) - 1, "credit:chain:%s%Z",
                 chains[0].id);
    ngx_snprintf((u_char *) kb, sizeof(kb) - 1, "credit:vbudget:%s%Z",
                 ctx->claims->jti);

    n_uses = (ctx->verify && ctx->checks)
             ? ca_checks_budget(ctx->checks, uses) : 0;
    ngx_snprintf((u_char *) budget, sizeof(budget) - 1, "%ui%Z",
                 (ngx_uint_t) ctx->category->verify_budget);
    ngx_snprintf((u_char *) nb, sizeof(nb) - 1, "%uz%Z", n_uses);
    for (k = 0; k < n_uses; k++) {
        ngx_snprintf((u_char *) counts[k], sizeof(counts[k]) - 1, "%ui%Z",
                     (ngx_uint_t) uses[k].count);
    }

    argc = 0;
#define ARG(s, l)  (argv[argc] = (s), lens[argc++] = (l))
    ARG("EVALSHA", 7);
    ARG(au->sha, 40);
    ARG("5", 1);
    ARG((char *) au->mcf->stream.data, au->mcf->stream.len);
    ARG(kr, ngx_strlen(kr));
    ARG(ku, ngx_strlen(ku));
    ARG(kc, ngx_strlen(kc));
    ARG(kb, ngx_strlen(kb));
    ARG(seq, ngx_strlen(seq));
    ARG(max, ngx_strlen(max));
    ARG(expire, ngx_strlen(expire));
    ARG(np, ngx_strlen(np));
    ARG(ns, ngx_strlen(ns));
    ARG("live", 4);
    for (k = 0; k < prefix; k++) {
        ARG(e->name[k], ngx_strlen(e->name[k]));
        ARG(e->value[k], e->len[k]);
    }
    for (k = prefix + 2; k < e->n - 1; k++) {
        ARG(e->name[k], ngx_strlen(e->name[k]));
        ARG(e->value[k], e->len[k]);
    }
    for (v = 0; v < NGX_HTTP_CREDIT_AUTH_SEALED; v++) {
        decision = ctx->report ? "report" : (v == 0 ? "allow" : "deny");
        ARG(decision, ngx_strlen(decision));
        ARG(reasons[v], ngx_strlen(reasons[v]));
        ARG(hashes[v], 64);
    }
    ARG(budget, ngx_strlen(budget));
    ARG(nb, ngx_strlen(nb));
    for (k = 0; k < n_uses; k++) {
        ARG(uses[k].field, ngx_strlen(uses[k].field));
        ARG(counts[k], ngx_strlen(counts[k]));
    }
#undef ARG

    pd = ngx_http_credit_auth_pending_new(argc, argv, lens);
    if (pd == NULL) {
        ngx_http_credit_auth_lane_release(lane, &au->lanes[lane].chain);
        return NGX_ERROR;
    }
    pd->lane = lane;
    pd->r = r;
    ngx_memcpy(pd->variants, chains, sizeof(chains));

    if (ngx_http_credit_auth_submit(pd, 0) != NGX_AGAIN) {
        ngx_http_credit_auth_lane_release(lane, &au->lanes[lane].chain);
        return NGX_ERROR;
    }

    ctx->pending = pd;
    ctx->decided = 1;
    return NGX_AGAIN;
}


static void
ngx_http_credit_auth_request_gone(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    if (ctx->pending) {
        ctx->pending->r = NULL;
        ctx->pending = NULL;
    }
    if (ctx->resume.posted) {
        ngx_delete_posted_event(&ctx->resume);
    }
    if (ctx->is_parked) {
        ngx_queue_remove(&ctx->parked);
        ctx->is_parked = 0;
    }
}


static void
ngx_http_credit_auth_add_str(ca_entry *e, const char *name, ngx_str_t *s)
{
    ca_entry_add(e, name, s->len ? (char *) s->data : "", s->len);
}


/*
 * The decision entry.  NGX_AGAIN: wait for Redis (the reply resumes the
 * request); NGX_OK: durably spooled, decided now; NGX_ERROR: no audit.
 */
ngx_int_t
ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx)
{
    char                               cert[65], purpose[CA_CODE_MAX + 1];
    char                               consent[CA_CONSENT_ID_MAX + 1];
    ngx_int_t                          rc;
    ca_entry                          *e;
    ngx_str_t                          ip;
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_audit_t      *au = &ngx_http_credit_auth_audit;
    ngx_http_credit_auth_main_conf_t  *mcf = au->mcf;

    e = ngx_palloc(r->pool, sizeof(ca_entry));
    if (e == NULL) {
        return NGX_ERROR;
    }
    if (!ctx->gone_handler) {
        /* once: a decision parked for the connection comes here again */
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
        cln->handler = ngx_http_credit_auth_request_gone;
        cln->data = ctx;
        ctx->gone_handler = 1;
    }

    ca_entry_init(e, "decision", ngx_http_credit_auth_now_ms(), au->gw);
    ngx_http_credit_auth_add_str(e, "rid", &ctx->rid);
    ca_entry_add(e, "bank", ctx->bank ? ctx->bank->code : "",
                 ctx->bank ? ngx_strlen(ctx->bank->code) : 0);
    if (ctx->has_cert) {
        ca_hex(ctx->cert_sha256, 32, cert);
    } else {
        cert[0] = '\0';
    }
    ca_entry_add(e, "cert", cert, ngx_strlen(cert));
    ip = r->connection->addr_text;
    ngx_http_credit_auth_add_str(e, "ip", &ip);
    ngx_http_credit_auth_add_str(e, "method", &ctx->method);

    /*
     * Never a personal identifier in the audit (SPEC §7): a path is
     * recorded only once it matched a route (literal segments and a valid
     * USCC); a purpose only once the policy knows it.
     */
    if (ctx->category && ctx->uscc[0]) {
        ngx_http_credit_auth_add_str(e, "path", &r->uri);
    } else {
        ca_entry_add(e, "path", "", 0);
    }
    ca_entry_add(e, "category", ctx->category ? ctx->category->name : "",
                 ctx->category ? ngx_strlen(ctx->category->name) : 0);
    ca_entry_add(e, "enterprise", ctx->uscc, ngx_strlen(ctx->uscc));

    purpose[0] = '\0';
    if (ctx->purpose.len && ctx->purpose.len <= CA_CODE_MAX) {
        ngx_memcpy(purpose, ctx->purpose.data, ctx->purpose.len);
        purpose[ctx->purpose.len] = '\0';
        if (!ca_policy_knows_purpose(mcf->policy, purpose)) {
            ngx_cpystrn((u_char *) purpose, (u_char *) "(unknown)",
                        sizeof(purpose));
        }
    }
    ca_entry_add(e, "purpose", purpose, ngx_strlen(purpose));
    consent[0] = '\0';
    if (ctx->has_claims) {
        ca_audit_consent_id(ctx->claims->jti, ngx_strlen(ctx->claims->jti),
                            consent);
    }
    ca_entry_add(e, "consent", consent, ngx_strlen(consent));
    ca_entry_add(e, "mode", ctx->verify ? "verify" : "query",
                 ctx->verify ? 6 : 5);
    ca_entry_add(e, "detail", ctx->want_raw ? "raw" : "masked",
                 ctx->want_raw ? 3 : 6);

    if (ctx->reason == CA_OK && ctx->has_claims) {
        if (ngx_http_credit_auth_redis_ready()) {
            return ngx_http_credit_auth_audit_lane(e, r, ctx);
        }
        if (!ctx->waited_for_redis && ngx_http_credit_auth_redis_connecting())
        {
            /* a worker just started, or Redis just came back: wait for one
             * handshake (at most connect_timeout) rather than refuse */
            ctx->waited_for_redis = 1;
            ngx_queue_insert_tail(&au->parked, &ctx->parked);
            ctx->is_parked = 1;
            ctx->resume.data = r;
            return NGX_AGAIN;
        }
        ctx->reason = CA_REVOCATION_UNAVAILABLE;
    }

    ca_entry_add(e, "decision", ctx->report ? "report"
                 : ctx->reason == CA_OK ? "allow" : "deny",
                 ctx->report ? 6 : ctx->reason == CA_OK ? 5 : 4);
    ca_entry_add(e, "reason", ca_reason_name(ctx->reason),
                 ngx_strlen(ca_reason_name(ctx->reason)));
    ca_entry_addf(e, "policy", "%s %s", mcf->policy->version,
                  mcf->policy->sha256);

    rc = ngx_http_credit_auth_audit_plain(e, r, &ctx->pending);
    if (rc != NGX_ERROR && (ctx->reason == CA_OK || ctx->report)) {
        ctx->decided = 1;
    }

    if (rc == NGX_OK && ctx->report && au->spool) {
        /* report mode discloses on a spooled decision: make it durable
         * before anything goes upstream */
        if (ca_spool_sync(au->spool) != 0) {
            return NGX_ERROR;
        }
    }

    return rc;
}


/* Log phase: what was actually sent, for every allowed request. */
ngx_int_t
ngx_http_credit_auth_log_handler(ngx_http_request_t *r)
{
    ca_entry                     *e;
    ngx_uint_t                    i;
    ngx_msec_t                    ms;
    ngx_http_upstream_state_t    *st;
    ngx_http_credit_auth_ctx_t   *ctx;
    ngx_http_credit_auth_audit_t *au = &ngx_http_credit_auth_audit;

    if (r != r->main) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_credit_auth_module);
    if (ctx == NULL || !ctx->decided) {
        return NGX_OK;
    }

    e = ngx_palloc(r->pool, sizeof(ca_entry));
    if (e == NULL) {
        return NGX_OK;
    }

    ms = 0;
    if (r->upstream_states) {
        st = r->upstream_states->elts;
        for (i = 0; i < r->upstream_states->nelts; i++) {
            if (st[i].response_time != (ngx_msec_t) -1) {
                ms += st[i].response_time;
            }
        }
    }

    ca_entry_init(e, "outcome", ngx_http_credit_auth_now_ms(), au->gw);
    ngx_http_credit_auth_add_str(e, "rid", &ctx->rid);
    ca_entry_addf(e, "status", "%u", (unsigned) r->headers_out.status);
    ca_entry_addf(e, "bytes", "%lld", (long long) ctx->bytes_out);
    ca_entry_add(e, "disclosed", ctx->disclosed ? ctx->disclosed : "",
                 ctx->disclosed ? ngx_strlen(ctx->disclosed) : 0);
    ca_entry_add(e, "masked", ctx->masked ? ctx->masked : "",
                 ctx->masked ? ngx_strlen(ctx->masked) : 0);
    ca_entry_addf(e, "withheld", "%zu", ctx->withheld);
    ca_entry_addf(e, "upstream_ms", "%lu", (unsigned long) ms);
    if (ctx->filter_reason != CA_OK || ctx->state != NGX_HTTP_CREDIT_AUTH_ALLOWED)
    {
        ca_reason why = ctx->filter_reason != CA_OK ? ctx->filter_reason
                                                    : ctx->reason;
        ca_entry_add(e, "reason", ca_reason_name(why),
                     ngx_strlen(ca_reason_name(why)));
    }
    if (ctx->cause) {
        /* which answer became upstream_invalid (docs/audit-format.md) */
        ca_entry_add(e, "cause", ctx->cause, ngx_strlen(ctx->cause));
    }

    if (ngx_http_credit_auth_audit_plain(e, NULL, NULL) == NGX_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "credit_auth: outcome of request %V not audited",
                      &ctx->rid);
    }

    return NGX_OK;
}


/* --- checkpoints, replay, adoption: one tick ---------------------------- */

static void
ngx_http_credit_auth_checkpoints(void)
{
    int                              argc;
    char                             key[160], mbuf[16];
    size_t                           lens[9 + 2 * CA_ENTRY_FIELDS];
    ca_entry                         e;
    ngx_uint_t                       i;
    const char                      *argv[9 + 2 * CA_ENTRY_FIELDS];
    ngx_http_credit_auth_pending_t  *pd;
    ngx_http_credit_auth_lane_t     *l;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    if (au->mcf->audit_key == NULL) {
        return;
    }

    for (i = 0; i < au->n_lanes; i++) {
        l = &au->lanes[i];
        if (l->busy || l->lost || l->chain.seq == l->checkpointed) {
            continue;
        }

        /* A lane's entries must reach the stream in order and go straight
         * to Redis; only chain 0 may queue behind the spool. */
        if (i != 0 && (!ngx_http_credit_auth_redis_ready()
                       || (au->spool && !ca_spool_empty(au->spool))))
        {
            continue;
        }

        if (ca_checkpoint_build(&l->chain, &e, ngx_http_credit_auth_now_ms(),
                                au->gw, au->mcf->audit_key)
            != 0)
        {
            ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                          "credit_auth: cannot sign checkpoint");
            return;
        }
        l->checkpointed = l->chain.seq;

        if (i == 0) {
            (void) ngx_http_credit_auth_queue(&e, NULL, NULL);
            continue;
        }
        argc = ngx_http_credit_auth_append_argv(&e, argv, lens, key,
                                                sizeof(key), mbuf);
        pd = ngx_http_credit_auth_pending_new(argc, argv, lens);
        if (pd == NULL) {
            l->lost = 1;
            continue;
        }
        pd->checkpoint_lane = i;
        if (ngx_http_credit_auth_submit(pd, 0) == NGX_ERROR) {
            l->lost = 1;
        }
    }
}


/* Sends spooled records, in order, while Redis takes them. */
static void
ngx_http_credit_auth_replay(void)
{
    int                              rc;
    ngx_uint_t                       lane;
    ca_spool_record                  rec;
    ngx_http_credit_auth_pending_t  *pd;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    if (au->spool == NULL || ca_spool_empty(au->spool)
        || !ngx_http_credit_auth_redis_ready())
    {
        return;
    }

    if (au->replay_hold) {
        au->replay_hold--;
        return;
    }

    if (au->replaying == 0) {
        au->replay_next = ca_spool_acked(au->spool);
    }

    while (au->replaying < NGX_HTTP_CREDIT_AUTH_REPLAY) {
        rc = ca_spool_read(au->spool, au->replay_next, &rec);
        if (rc == 0) {
            return;
        }
        if (rc < 0) {
            if (au->replaying == 0) {
                ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                              "credit_auth: audit spool %s is corrupt after "
                              "offset %uL; the rest is dropped",
                              au->spool_file, au->replay_next);
                (void) ca_spool_ack(au->spool, ca_spool_size(au->spool));
            }
            return;
        }

        pd = ngx_http_credit_auth_pending_new(rec.argc, rec.argv, rec.lens);
        if (pd == NULL) {
            ca_spool_record_free(&rec);
            return;
        }
        pd->replay = 1;
        pd->spool_end = rec.end;
        ngx_http_credit_auth_force(pd);
        if (rec.kind == NGX_HTTP_CREDIT_AUTH_LANE
            && rec.meta_len == 8 + NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain))
        {
            ngx_memcpy(&lane, rec.meta, sizeof(ngx_uint_t));
            pd->lane = lane;
            ngx_memcpy(pd->variants, rec.meta + 8, NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain));
        }
        ca_spool_record_free(&rec);

        /* the head record skips the gap check once its predecessor has
         * been missing for a while: Redis lost it, nothing will bring it */
        if (au->replaying == 0
            && au->gap_strikes >= NGX_HTTP_CREDIT_AUTH_GAP_STRIKES)
        {
            ngx_log_error(NGX_LOG_ALERT, au->log, 0,
                          "credit_auth: an audit entry before the spool's "
                          "head is not in Redis (lost by Redis?); the chain "
                          "will show the gap");
            ngx_http_credit_auth_force(pd);
            au->gap_strikes = 0;
        }

        if (ngx_http_credit_auth_redis_command(pd->argc, pd->argv, pd->lens,
                                        ngx_http_credit_auth_audit_reply, pd)
            != NGX_OK)
        {
            ngx_free(pd);
            return;
        }
        au->replaying++;
        au->replay_next = pd->spool_end;
    }
}


/*
 * Takes over the spool files of workers that are gone (a reload, a crash):
 * their records are appended to ours and replayed with them.  rename()
 * decides which worker gets a file.
 */
static void
ngx_http_credit_auth_adopt(void)
{
    int                             rc;
    DIR                            *dir;
    long                            pid;
    char                            claimed[NGX_MAX_PATH];
    char                            orphan[NGX_MAX_PATH];
    char                            err[256];
    uint64_t                        off;
    ca_spool                       *sp;
    struct dirent                  *de;
    ca_spool_record                 rec;
    ngx_http_credit_auth_audit_t   *au = &ngx_http_credit_auth_audit;

    dir = opendir((char *) au->mcf->spool_path.data);
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        if (sscanf(de->d_name, "worker-%ld.spool", &pid) != 1
            || ngx_strchr(de->d_name + 7, '.') == NULL
            || ngx_strcmp(ngx_strchr(de->d_name + 7, '.'), ".spool") != 0
            || pid == (long) ngx_pid
            || kill((pid_t) pid, 0) == 0 || errno != ESRCH)
        {
            continue;
        }

        ngx_snprintf((u_char *) orphan, sizeof(orphan) - 1, "%V/%s%Z",
                     &au->mcf->spool_path, de->d_name);
        ngx_snprintf((u_char *) claimed, sizeof(claimed) - 1,
                     "%V/adopted-%P-%s%Z", &au->mcf->spool_path, ngx_pid,
                     de->d_name);
        if (rename(orphan, claimed) != 0) {
            continue;                   /* another worker took it */
        }

        sp = ca_spool_open(claimed, (uint64_t) -1, err, sizeof(err));
        if (sp == NULL) {
            continue;
        }
        for (off = 0; (rc = ca_spool_read(sp, off, &rec)) == 1;
             off = rec.end)
        {
            /* the lanes it names are another worker's: replay only */
            if (ca_spool_append(au->spool, NGX_HTTP_CREDIT_AUTH_PLAIN, NULL,
                                0, rec.argc, rec.argv, rec.lens)
                != 0)
            {
                ca_spool_record_free(&rec);
                break;
            }
            ca_spool_record_free(&rec);
        }
        ca_spool_close(sp);

        if (rc == 1) {
            /* ours is full: give the rest back for later */
            (void) rename(claimed, orphan);
            continue;
        }

        ngx_log_error(NGX_LOG_NOTICE, au->log, 0,
                      "credit_auth: adopted audit spool %s", orphan);
        (void) unlink(claimed);
    }

    closedir(dir);
}


static void
ngx_http_credit_auth_tick_handler(ngx_event_t *ev)
{
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    if (ngx_exiting) {
        return;
    }

    if (ngx_current_msec - au->last_checkpoint
        >= au->mcf->checkpoint_interval)
    {
        au->last_checkpoint = ngx_current_msec;
        ngx_http_credit_auth_checkpoints();
    }

    if (au->spool) {
        if (ngx_current_msec - au->last_adopt >= 5000) {
            au->last_adopt = ngx_current_msec;
            ngx_http_credit_auth_adopt();
        }

        ngx_http_credit_auth_replay();

        /* refusals are answered once appended; durability follows within
         * a tick (batched: fsync on every append would stall the loop) */
        (void) ca_spool_sync(au->spool);
    }

    ngx_add_timer(ev, NGX_HTTP_CREDIT_AUTH_TICK);
}


ngx_int_t
ngx_http_credit_auth_audit_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    char                           err[256];
    u_char                         md[SHA_DIGEST_LENGTH];
    ngx_http_credit_auth_audit_t  *au = &ngx_http_credit_auth_audit;

    ngx_memzero(au, sizeof(ngx_http_credit_auth_audit_t));
    au->mcf = mcf;
    au->log = cycle->log;
    ngx_queue_init(&au->parked);

    ngx_cpystrn((u_char *) au->gw, mcf->gateway_id.data,
                ngx_min(mcf->gateway_id.len + 1, sizeof(au->gw)));

    /* one writer = one worker process incarnation */
    ngx_snprintf((u_char *) au->prefix, sizeof(au->prefix) - 1, "%s/%P/%L%Z",
                 au->gw, ngx_pid, (int64_t) ngx_http_credit_auth_now_ms());

    SHA1((u_char *) ngx_http_credit_auth_script,
         sizeof(ngx_http_credit_auth_script) - 1, md);
    ca_hex(md, SHA_DIGEST_LENGTH, au->sha);
    SHA1((u_char *) ngx_http_credit_auth_append_script,
         sizeof(ngx_http_credit_auth_append_script) - 1, md);
    ca_hex(md, SHA_DIGEST_LENGTH, au->append_sha);

    au->max_lanes = ngx_min(mcf->max_inflight, NGX_HTTP_CREDIT_AUTH_LANES_MAX);
    au->lanes = ngx_pcalloc(cycle->pool, (au->max_lanes + 1)
                                   * sizeof(ngx_http_credit_auth_lane_t));
    au->free = ngx_palloc(cycle->pool, (au->max_lanes + 1)
                                       * sizeof(ngx_uint_t));
    if (au->lanes == NULL || au->free == NULL) {
        return NGX_ERROR;
    }
    ngx_http_credit_auth_chain_init(&au->lanes[0].chain, 0);
    au->n_lanes = 1;

    if (mcf->spool_path.len) {
        au->spool_file = ngx_pnalloc(cycle->pool, mcf->spool_path.len + 64);
        if (au->spool_file == NULL) {
            return NGX_ERROR;
        }
        ngx_snprintf(au->spool_file, mcf->spool_path.len + 63,
                     "%V/worker-%P.spool%Z", &mcf->spool_path, ngx_pid);

        au->spool = ca_spool_open((char *) au->spool_file,
                                  (uint64_t) mcf->spool_max, err,
                                  sizeof(err));
        if (au->spool == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "credit_auth: cannot open audit spool: %s", err);
            return NGX_ERROR;
        }
        ngx_http_credit_auth_adopt();
        au->last_adopt = ngx_current_msec;
    }

    au->flush.handler = ngx_http_credit_auth_flush;
    au->flush.log = cycle->log;
    au->flush.data = au;

    au->last_checkpoint = ngx_current_msec;
    au->tick.handler = ngx_http_credit_auth_tick_handler;
    au->tick.log = cycle->log;
    au->tick.data = au;
    au->tick.cancelable = 1;
    ngx_add_timer(&au->tick, NGX_HTTP_CREDIT_AUTH_TICK);

    return NGX_OK;
}


const char *
ngx_http_credit_auth_audit_script(ngx_uint_t i)
{
    return i == 0 ? ngx_http_credit_auth_script
         : i == 1 ? ngx_http_credit_auth_append_script : NULL;
}


/* A blocking connection, for the exiting worker only. */
static redisContext *
ngx_http_credit_auth_sync_connect(void)
{
    ngx_uint_t                         i;
    redisReply                        *rep;
    redisContext                      *c;
    struct timeval                     tv = { 1, 0 };
    ngx_http_credit_auth_main_conf_t  *mcf = ngx_http_credit_auth_audit.mcf;

    c = mcf->redis_unix.len
        ? redisConnectUnixWithTimeout((char *) mcf->redis_unix.data, tv)
        : redisConnectWithTimeout((char *) mcf->redis_host.data,
                                  (int) mcf->redis_port, tv);
    if (c == NULL || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        goto failed;
    }

    if (mcf->redis_password.len) {
        rep = redisCommand(c, "AUTH %b", mcf->redis_password.data,
                           (size_t) mcf->redis_password.len);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            freeReplyObject(rep);
            goto failed;
        }
        freeReplyObject(rep);
    }
    if (mcf->redis_db) {
        rep = redisCommand(c, "SELECT %d", (int) mcf->redis_db);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            freeReplyObject(rep);
            goto failed;
        }
        freeReplyObject(rep);
    }
    for (i = 0; ngx_http_credit_auth_audit_script(i); i++) {
        rep = redisCommand(c, "SCRIPT LOAD %s",
                           ngx_http_credit_auth_audit_script(i));
        if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
            freeReplyObject(rep);
            goto failed;
        }
        freeReplyObject(rep);
    }

    return c;

failed:

    if (c) {
        redisFree(c);
    }
    return NULL;
}


/* Sends one command synchronously; lane replies move the lane's head. */
static ngx_int_t
ngx_http_credit_auth_sync_send(redisContext *c,
    ngx_http_credit_auth_pending_t *pd)
{
    ngx_uint_t                     v, ok;
    redisReply                    *rep;

    rep = redisCommandArgv(c, pd->argc, pd->argv, pd->lens);
    if (pd->lane) {
        v = ngx_http_credit_auth_variant(rep);
        ok = (v != (ngx_uint_t) -1);
        if (ok) {
            ngx_http_credit_auth_lane_resolved(pd, v);
        }
    } else {
        ok = (rep != NULL && rep->type == REDIS_REPLY_STRING);
    }
    freeReplyObject(rep);

    return ok ? NGX_OK : NGX_ERROR;
}


/*
 * Graceful exit: no request is left.  What is still unacknowledged comes
 * back from hiredis and goes to the spool; the spool is then delivered over
 * a blocking connection (this worker serves nobody any more) and every
 * chain gets its final checkpoint.  What cannot be delivered stays in the
 * spool file for the next worker to adopt.
 */
void
ngx_http_credit_auth_audit_exit_process(ngx_cycle_t *cycle)
{
    int                              argc;
    char                             key[160], mbuf[16];
    size_t                           lens[9 + 2 * CA_ENTRY_FIELDS];
    uint64_t                         off;
    ca_entry                         e;
    ngx_uint_t                       i, lane, delivered;
    const char                      *argv[9 + 2 * CA_ENTRY_FIELDS];
    redisContext                    *c;
    ca_spool_record                  rec;
    ngx_http_credit_auth_lane_t     *l;
    ngx_http_credit_auth_pending_t  *pd;
    ngx_http_credit_auth_audit_t    *au = &ngx_http_credit_auth_audit;

    if (au->tick.timer_set) {
        ngx_del_timer(&au->tick);
    }

    /* the last batch goes out (or, with the connection, to the spool) */
    ngx_http_credit_auth_flush(&au->flush);
    ngx_http_credit_auth_redis_exit_process();

    c = ngx_http_credit_auth_sync_connect();

    delivered = 1;
    if (au->spool) {
        for (off = ca_spool_acked(au->spool);
             c != NULL && ca_spool_read(au->spool, off, &rec) == 1;
             off = rec.end)
        {
            pd = ngx_http_credit_auth_pending_new(rec.argc, rec.argv,
                                                  rec.lens);
            if (pd && rec.kind == NGX_HTTP_CREDIT_AUTH_LANE
                && rec.meta_len == 8 + NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain))
            {
                ngx_memcpy(&lane, rec.meta, sizeof(ngx_uint_t));
                pd->lane = lane;
                ngx_memcpy(pd->variants, rec.meta + 8, NGX_HTTP_CREDIT_AUTH_VARIANTS * sizeof(ca_chain));
            }
            ca_spool_record_free(&rec);
            if (pd) {
                /* the exiting worker cannot wait for a lost predecessor */
                ngx_http_credit_auth_force(pd);
            }
            if (pd == NULL || ngx_http_credit_auth_sync_send(c, pd) != NGX_OK)
            {
                ngx_free(pd);
                break;
            }
            ngx_free(pd);
            (void) ca_spool_ack(au->spool, rec.end);
        }
        delivered = ca_spool_empty(au->spool);
    }

    for (i = 0; au->mcf->audit_key && i < au->n_lanes; i++) {
        l = &au->lanes[i];
        if (l->busy || l->lost || l->chain.seq == l->checkpointed) {
            continue;
        }
        /* a lane writes only straight to Redis, chain 0 may spool */
        if (i != 0 && (c == NULL || !delivered)) {
            continue;
        }
        if (ca_checkpoint_build(&l->chain, &e, ngx_http_credit_auth_now_ms(),
                                au->gw, au->mcf->audit_key)
            != 0)
        {
            break;
        }
        l->checkpointed = l->chain.seq;

        argc = ngx_http_credit_auth_append_argv(&e, argv, lens, key,
                                                sizeof(key), mbuf);
        pd = ngx_http_credit_auth_pending_new(argc, argv, lens);
        if (pd == NULL) {
            break;
        }
        if (c == NULL || !delivered
            || ngx_http_credit_auth_sync_send(c, pd) != NGX_OK)
        {
            if (i == 0) {
                delivered = 0;
                (void) ngx_http_credit_auth_spool_append(pd);
            }
        }
        ngx_free(pd);
    }

    if (c) {
        redisFree(c);
    }

    if (au->spool) {
        ca_spool_close(au->spool);
        au->spool = NULL;
        if (delivered) {
            (void) unlink((char *) au->spool_file);
        } else {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "credit_auth: audit entries left in %s for the "
                          "next worker", au->spool_file);
        }
    }
}
