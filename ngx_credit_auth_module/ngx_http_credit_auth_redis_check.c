/*
 * What a new Redis connection must show before it is used (SPEC §7.1),
 * pipelined on it without blocking; the caller (…_redis.c) hears the
 * verdict through its callback, with why in its buffer, and says it (once
 * while it lasts); it never learns how the verdict was reached.
 *
 *  0. The handshake: AUTH and SELECT, pipelined ahead of anything else
 *     (Redis answers in order: nothing runs unauthenticated or in the
 *     wrong database), and SCRIPT LOAD of the scripts (EVALSHA needs them,
 *     and Redis may have restarted).  A refusal ends the check.
 *  1. Durability: INFO and CONFIG GET appendfsync show a primary that
 *     keeps what it acknowledges under the configured durability
 *     (lib/redis/redisinfo.c).
 *  2. Loss: the epoch key `<stream>:epoch`, set once (NX) and then only
 *     read, is still the one seen before; and the hash of this worker's
 *     chain heads (credit:chains:<prefix>) still holds every head Redis
 *     acknowledged (lib/audit/auditloss.c).  Either gone or behind: one signed
 *     `discontinuity` entry, through the discontinuity hook.
 *
 * The epoch survives a restart of the gateway in a state file,
 * <spool>/redis-epoch (no spool, no file): worker 0 reads it when it
 * starts and writes it when the epoch it sees is another (rare), so that
 * a Redis that lost everything while the gateway was down too is noticed.
 * Only worker 0 keeps it: a sibling that reads what worker 0 has just
 * written must not take the epoch worker 0 set for a lost one.
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


#define NGX_HTTP_CREDIT_AUTH_EPOCH_LEN  40
#define NGX_HTTP_CREDIT_AUTH_LIST_LEN   1024


typedef struct {
    ngx_http_credit_auth_main_conf_t    *mcf;
    ngx_http_credit_auth_redis_hooks_t   hooks;
    ngx_log_t                           *log;
    redisAsyncContext                   *ac;        /* being checked */
    ngx_http_credit_auth_checked_pt      done;
    char                                *why;
    size_t                               why_len;
    ca_redisinfo                         info;
    char                                 found[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
    char                                 epoch[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
    char                                 saved[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
    u_char                              *state;     /* file; NULL: none */
} ngx_http_credit_auth_check_t;


static ngx_http_credit_auth_check_t  ngx_http_credit_auth_check;


/* The reply belongs to the connection being checked, which still stands. */
static ngx_uint_t
ngx_http_credit_auth_check_current(redisAsyncContext *ac, redisReply *reply)
{
    return ngx_http_credit_auth_check.ac == ac && reply != NULL
           && !(ac->c.flags & REDIS_DISCONNECTING);
}


/* `what` and `why` make the verdict's text (…_redis.c says it). */
static void
ngx_http_credit_auth_check_fail(redisAsyncContext *ac, ngx_int_t rc,
    const char *what, const char *why)
{
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    ngx_snprintf((u_char *) ck->why, ck->why_len - 1, "%s%s%Z", what, why);
    ck->ac = NULL;
    ck->done(ac, rc);
}


static void
ngx_http_credit_auth_check_info_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    if (ck->ac == ac && reply && reply->type == REDIS_REPLY_STRING) {
        ca_redisinfo_parse(&ck->info, reply->str, reply->len);
    }
}


/* A refused CONFIG GET is no error: durability=aof then cannot be
 * verified, which ca_redisinfo_check() says. */
static void
ngx_http_credit_auth_check_fsync_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    if (ck->ac == ac && reply && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING
        && reply->element[1]->len < sizeof(ck->info.appendfsync))
    {
        ngx_memcpy(ck->info.appendfsync, reply->element[1]->str,
                   reply->element[1]->len);
        ck->info.appendfsync[reply->element[1]->len] = '\0';
    }
}


/* --- the epoch's state file ------------------------------------------- */

/* "<epoch>\n<stream>\n": an epoch of another stream is not ours. */
static void
ngx_http_credit_auth_check_read_state(void)
{
    u_char                         buf[512], *nl;
    ssize_t                        n;
    ngx_fd_t                       fd;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    fd = ngx_open_file(ck->state, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;                 /* the first start: nothing seen yet */
    }
    n = read(fd, buf, sizeof(buf) - 1);
    ngx_close_file(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    nl = (u_char *) ngx_strchr(buf, '\n');
    if (nl == NULL || nl == buf || nl - buf >= NGX_HTTP_CREDIT_AUTH_EPOCH_LEN
        || (size_t) (buf + n - (nl + 1)) != ck->mcf->stream.len + 1
        || ngx_strncmp(nl + 1, ck->mcf->stream.data, ck->mcf->stream.len)
           != 0)
    {
        ngx_log_error(NGX_LOG_WARN, ck->log, 0, "credit_auth: \"%s\" is "
                      "not the epoch of stream \"%V\": ignored", ck->state,
                      &ck->mcf->stream);
        return;
    }
    ngx_memcpy(ck->epoch, buf, nl - buf);
    ck->epoch[nl - buf] = '\0';
    ngx_memcpy(ck->saved, ck->epoch, nl - buf + 1);
}


/*
 * Written once per epoch, so rarely that a few blocking syscalls on the
 * event loop cost nothing; renamed into place so that a crash leaves the
 * old file or the new one, never half of one.
 */
static void
ngx_http_credit_auth_check_write_state(const char *epoch)
{
    u_char                         tmp[NGX_MAX_PATH], line[512], *p;
    ngx_fd_t                       fd;
    ngx_err_t                      err;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    p = ngx_snprintf(line, sizeof(line), "%s\n%V\n", epoch,
                     &ck->mcf->stream);
    ngx_snprintf(tmp, sizeof(tmp) - 1, "%s.%P%Z", ck->state, ngx_pid);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE
        || write(fd, line, p - line) != p - line || fsync(fd) != 0)
    {
        err = ngx_errno;
        if (fd != NGX_INVALID_FILE) {
            ngx_close_file(fd);
        }
        (void) ngx_delete_file(tmp);
        ngx_log_error(NGX_LOG_ERR, ck->log, err, "credit_auth: cannot write "
                      "\"%s\": a loss of Redis while the gateway is down "
                      "will not be noticed", tmp);
        return;
    }
    ngx_close_file(fd);
    if (ngx_rename_file(tmp, ck->state) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ck->log, ngx_errno, "credit_auth: "
                      "cannot rename \"%s\"", tmp);
        (void) ngx_delete_file(tmp);
        return;
    }
    ngx_cpystrn((u_char *) ck->saved, (u_char *) epoch, sizeof(ck->saved));
}


/* --- loss --------------------------------------------------------------- */

static void
ngx_http_credit_auth_check_heads_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                         missing[32], *m;
    u_char                         expected[NGX_HTTP_CREDIT_AUTH_LIST_LEN
                                            + 64];
    u_char                         found[NGX_HTTP_CREDIT_AUTH_LIST_LEN + 64];
    u_char                        *e, *f;
    char                           exp_heads[NGX_HTTP_CREDIT_AUTH_LIST_LEN];
    char                           found_heads[NGX_HTTP_CREDIT_AUTH_LIST_LEN];
    char                           lost[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
    ngx_int_t                      behind;
    ngx_uint_t                     epoch;
    redisReply                    *reply = r;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    if (!ngx_http_credit_auth_check_current(ac, reply)) {
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_credit_auth_check_fail(ac, NGX_DECLINED, "not used: ",
                                        "cannot read the chain heads");
        return;
    }

    epoch = ck->epoch[0] && ngx_strcmp(ck->epoch, ck->found) != 0;
    if (epoch) {
        ngx_memcpy(lost, ck->epoch, sizeof(lost));
    }
    behind = ck->hooks.heads(reply, exp_heads, found_heads,
                             sizeof(exp_heads));

    ngx_memcpy(ck->epoch, ck->found, sizeof(ck->epoch));
    if (ck->state && ngx_strcmp(ck->saved, ck->found) != 0) {
        ngx_http_credit_auth_check_write_state(ck->found);
    }

    /* ready first: the entry that says what is missing goes to Redis */
    ck->ac = NULL;
    ck->done(ac, NGX_OK);

    if (!epoch && behind <= 0) {
        return;
    }
    m = missing;
    e = expected;
    f = found;
    if (epoch) {
        m = ngx_sprintf(m, "epoch");
        e = ngx_sprintf(e, "epoch=%s", lost);
        f = ngx_sprintf(f, "epoch=%s", ck->found);
    }
    if (behind > 0) {
        m = ngx_sprintf(m, "%schains", epoch ? " " : "");
        e = ngx_slprintf(e, expected + sizeof(expected) - 1, "%schains=%s",
                         epoch ? " " : "", exp_heads);
        f = ngx_slprintf(f, found + sizeof(found) - 1, "%schains=%s",
                         epoch ? " " : "", found_heads);
    }
    *m = *e = *f = '\0';
    ngx_log_error(NGX_LOG_ALERT, ck->log, 0,
                  "credit_auth: redis lost acknowledged data (missing: %s): "
                  "expected %s, found %s: audit entries and revocations "
                  "acknowledged before may be missing", missing, expected,
                  found);
    ck->hooks.discontinuity((char *) missing, (char *) expected,
                            (char *) found);
}


static void
ngx_http_credit_auth_check_epoch_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                    *reply = r;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    if (!ngx_http_credit_auth_check_current(ac, reply)) {
        return;
    }
    if (reply->type != REDIS_REPLY_STRING || reply->len >= sizeof(ck->found))
    {
        ngx_http_credit_auth_check_fail(ac, NGX_DECLINED, "not used: ",
                                        "cannot read the epoch key");
        return;
    }
    ngx_memcpy(ck->found, reply->str, reply->len);
    ck->found[reply->len] = '\0';
}


static void
ngx_http_credit_auth_check_ignore(redisAsyncContext *ac, void *r,
    void *privdata)
{
}


static void
ngx_http_credit_auth_check_ready_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    char                           mine[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
    char                           why[256];
    const char                    *key;
    ngx_int_t                      rc;
    redisReply                    *reply = r;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    /* an earlier refusal (AUTH, SELECT, SCRIPT LOAD) is already closing it */
    if (!ngx_http_credit_auth_check_current(ac, reply)) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_credit_auth_check_fail(ac, NGX_DECLINED, "not ready: ",
                                        reply->str);
        return;
    }

    /* the status page shows the memory of a Redis refused for it too */
    if (ck->info.seen) {
        ngx_http_credit_auth_redis_mem_seen(&ck->info, ck->log);
    }

    rc = ca_redisinfo_check(&ck->info, (int) ck->mcf->durability,
                            (long) ck->mcf->wait_replicas, why, sizeof(why));
    if (rc != 0) {
        /* -2: never usable as configured (a cluster node) */
        ngx_http_credit_auth_check_fail(ac, rc == -2 ? NGX_ABORT
                                                     : NGX_DECLINED,
                                        rc == -2 ? "refused: " : "not used: ",
                                        why);
        return;
    }
    /* a warning, or "" */
    ngx_cpystrn((u_char *) ck->why, (u_char *) why, ck->why_len);

    /*
     * A fresh epoch offered each time: if ours from before were offered
     * again, a Redis that lost it would get the same one back.  The heads
     * are read last, behind the GET: nothing of ours is written on this
     * connection before the verdict, so they are what Redis kept.
     */
    ngx_snprintf((u_char *) mine, sizeof(mine) - 1, "%xL-%xL%Z",
                 (uint64_t) ngx_current_msec,
                 ((uint64_t) ngx_random() << 31) ^ (uint64_t) ngx_random()
                 ^ ((uint64_t) ngx_pid << 40));
    redisAsyncCommand(ac, ngx_http_credit_auth_check_ignore, NULL,
                      "SET %s:epoch %s NX", ck->mcf->stream.data, mine);
    redisAsyncCommand(ac, ngx_http_credit_auth_check_epoch_reply, NULL,
                      "GET %s:epoch", ck->mcf->stream.data);
    key = ck->hooks.heads_key();
    redisAsyncCommand(ac, ngx_http_credit_auth_check_heads_reply, NULL,
                      "HGETALL %s", key ? key : "credit:chains:");
}


/* A step of the handshake (privdata: its name): the first refusal ends
 * the check; those behind it (NOAUTH after a refused AUTH) follow from it
 * and are not its verdict. */
static void
ngx_http_credit_auth_check_step_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    u_char                         what[32];
    redisReply                    *reply = r;

    if (ngx_http_credit_auth_check_current(ac, reply)
        && reply->type == REDIS_REPLY_ERROR)
    {
        ngx_snprintf(what, sizeof(what) - 1, "%s refused: %Z",
                     (char *) privdata);
        ngx_http_credit_auth_check_fail(ac, NGX_DECLINED, (char *) what,
                                        reply->str);
    }
}


void
ngx_http_credit_auth_redis_check(void *actx, char *why, size_t why_len,
    ngx_http_credit_auth_checked_pt done)
{
    char                               db[32];
    ngx_uint_t                         i;
    redisAsyncContext                 *ac = actx;
    ngx_http_credit_auth_check_t      *ck = &ngx_http_credit_auth_check;
    ngx_http_credit_auth_main_conf_t  *mcf = ck->mcf;

    ck->ac = ac;
    ck->why = why;
    ck->why_len = why_len;
    ck->done = done;
    ck->found[0] = '\0';
    ngx_memzero(&ck->info, sizeof(ca_redisinfo));

    if (mcf->redis_password.len) {
        redisAsyncCommand(ac, ngx_http_credit_auth_check_step_reply, "AUTH",
                          "AUTH %b", mcf->redis_password.data,
                          (size_t) mcf->redis_password.len);
    }
    if (mcf->redis_db) {
        ngx_snprintf((u_char *) db, sizeof(db) - 1, "%i%Z", mcf->redis_db);
        redisAsyncCommand(ac, ngx_http_credit_auth_check_step_reply, "SELECT",
                          "SELECT %s", db);
    }
    for (i = 0; ck->hooks.scripts[i]; i++) {
        redisAsyncCommand(ac, ngx_http_credit_auth_check_step_reply,
                          "SCRIPT LOAD", "SCRIPT LOAD %s",
                          ck->hooks.scripts[i]);
    }

    /* what the server is and keeps: judged when the PING comes back */
    redisAsyncCommand(ac, ngx_http_credit_auth_check_info_reply, NULL,
                      "INFO");
    redisAsyncCommand(ac, ngx_http_credit_auth_check_fsync_reply, NULL,
                      "CONFIG GET appendfsync");
    redisAsyncCommand(ac, ngx_http_credit_auth_check_ready_reply, NULL,
                      "PING");
}


ngx_int_t
ngx_http_credit_auth_redis_check_init(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf,
    const ngx_http_credit_auth_redis_hooks_t *hooks)
{
    size_t                         len;
    ngx_http_credit_auth_check_t  *ck = &ngx_http_credit_auth_check;

    ngx_memzero(ck, sizeof(ngx_http_credit_auth_check_t));
    ck->mcf = mcf;
    ck->hooks = *hooks;
    ck->log = cycle->log;

    if (ngx_worker != 0 || mcf->spool_path.len == 0) {
        return NGX_OK;
    }
    len = mcf->spool_path.len + sizeof("/redis-epoch");
    ck->state = ngx_pnalloc(cycle->pool, len);
    if (ck->state == NULL) {
        return NGX_ERROR;
    }
    ngx_snprintf(ck->state, len, "%V/redis-epoch%Z", &mcf->spool_path);
    ngx_http_credit_auth_check_read_state();

    return NGX_OK;
}
