/*
 * The key registry in Redis (contract §5, docs/keys.md): where the access
 * phase finds a token's key when credit_auth_key_registry is on.
 *
 * Nothing is read at configuration time or at startup.  A kid is looked up
 * in the JWKS file, then in the shared cache (…_keycache.c), then with one
 * bounded GET of credit:key:{kid} (lib/redis/redisget.h: a record longer
 * than CA_KEYREG_RECORD_MAX is refused by its size, never read whole,
 * and so is a version longer than a number): the request waits for the reply like it waits
 * for its decision entry (…_access.c), and requests of one worker asking
 * for the same kid share one GET.  While the worker connects to Redis a
 * lookup waits once for the attempt to end (…_redis.c), then asks or is
 * refused (revocation_unavailable).  Every worker polls credit:keyreg:version every
 * poll= milliseconds; a new version makes every cached key stale, so that
 * add, rotate and revoke reach every gateway within a poll and a round
 * trip, without a reload.
 */
#include <hiredis/hiredis.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_queue_t                 queue;          /* this worker's fetches */
    ngx_queue_t                 waiters;        /* ctx->key.queue */
    uint64_t                    epoch;          /* when it was asked */
    ngx_log_t                  *log;
    char                        kid[CA_KID_MAX + 1];
} ngx_http_credit_auth_fetch_t;


#define NGX_HTTP_CREDIT_AUTH_TWICE_SAID  64


static ngx_queue_t   ngx_http_credit_auth_fetches;
static ngx_event_t   ngx_http_credit_auth_poll_ev;
static ngx_uint_t    ngx_http_credit_auth_polling;

/* kids this worker said were both in the file and the registry */
static uint32_t      ngx_http_credit_auth_twice[
                         NGX_HTTP_CREDIT_AUTH_TWICE_SAID];
static ngx_uint_t    ngx_http_credit_auth_ntwice;


/* GET key, of at most max bytes (an integer reply: its length). */
static ngx_int_t
ngx_http_credit_auth_get_bounded(const char *key, size_t max,
    ngx_http_credit_auth_reply_pt handler, void *data)
{
    u_char       num[NGX_INT_T_LEN];
    const char  *argv[5];
    size_t       argvlen[5];

    argv[0] = "EVALSHA";
    argv[1] = ca_redis_get_script_sha();
    argv[2] = "1";
    argv[3] = key;
    argv[4] = (char *) num;
    argvlen[0] = 7;
    argvlen[1] = 40;
    argvlen[2] = 1;
    argvlen[3] = ngx_strlen(key);
    argvlen[4] = ngx_sprintf(num, "%uz", max) - num;

    return ngx_http_credit_auth_redis_command(5, argv, argvlen, handler,
                                              data);
}


/* NAME=T in seconds, 1..max; NGX_ERROR otherwise. */
static time_t
ngx_http_credit_auth_param_sec(ngx_str_t *arg, size_t skip, time_t max)
{
    time_t     t;
    ngx_str_t  v;

    v.data = arg->data + skip;
    v.len = arg->len - skip;
    t = ngx_parse_time(&v, 1);
    if (t == (time_t) NGX_ERROR || t < 1 || t > max) {
        return NGX_ERROR;
    }
    return t;
}


/* credit_auth_key_registry on [cache=N] [ttl=S] [negative_ttl=S]
 * [poll=MS] */
char *
ngx_http_credit_auth_key_registry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    time_t       t;
    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i;

    if (mcf->key_registry) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (ngx_strcmp(value[1].data, "on") != 0) {
        return "must start with \"on\"";
    }

    mcf->key_registry = 1;
    mcf->keyreg_entries = 10000;
    mcf->keyreg_ttl = 60;
    mcf->keyreg_negative_ttl = 5;
    mcf->keyreg_poll = 250;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "cache=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 1 || n > 10000000) {
                goto invalid;
            }
            mcf->keyreg_entries = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {
            t = ngx_http_credit_auth_param_sec(&value[i], 4, 86400);
            if (t == NGX_ERROR) {
                goto invalid;
            }
            mcf->keyreg_ttl = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "negative_ttl=", 13) == 0) {
            t = ngx_http_credit_auth_param_sec(&value[i], 13, 3600);
            if (t == NGX_ERROR) {
                goto invalid;
            }
            mcf->keyreg_negative_ttl = t;
            continue;
        }

        if (ngx_strncmp(value[i].data, "poll=", 5) == 0) {
            v.data = value[i].data + 5;
            v.len = value[i].len - 5;
            n = ngx_parse_time(&v, 0);
            /* the 1 s promise of contract §5 needs a poll well under it */
            if (n == NGX_ERROR || n < 10 || n > 500) {
                goto invalid;
            }
            mcf->keyreg_poll = n;
            continue;
        }

        goto invalid;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\" "
                       "(cache=1..10000000, ttl=1s..1d, negative_ttl=1s..1h,"
                       " poll=10ms..500ms)", &value[i]);
    return NGX_CONF_ERROR;
}


/* --- the change poller ------------------------------------------------ */

static void
ngx_http_credit_auth_poll_reply(void *data, void *reply)
{
    redisReply  *rep = reply;
    ngx_int_t    v;

    ngx_http_credit_auth_polling = 0;

    if (rep == NULL) {
        /* Redis away: cached keys serve until their TTL (contract §5) */
        return;
    }

    if (rep->type == REDIS_REPLY_NIL) {
        v = 0;

    } else if (rep->type == REDIS_REPLY_STRING
               || rep->type == REDIS_REPLY_INTEGER)
    {
        v = rep->type == REDIS_REPLY_STRING
            ? ngx_atoi((u_char *) rep->str, rep->len) : NGX_ERROR;
        if (v == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "credit_auth: %s is not a number",
                          CA_KEYREG_VERSION_KEY);
            return;
        }

    } else {
        return;
    }

    ngx_http_credit_auth_keycache_set_epoch((uint64_t) v, ngx_cycle->log);
}


static void
ngx_http_credit_auth_poll_handler(ngx_event_t *ev)
{
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);

    if (!ngx_http_credit_auth_polling && ngx_http_credit_auth_redis_ready()) {
        if (ngx_http_credit_auth_get_bounded(CA_KEYREG_VERSION_KEY,
                                             NGX_INT64_LEN,
                                             ngx_http_credit_auth_poll_reply,
                                             NULL)
            == NGX_OK)
        {
            ngx_http_credit_auth_polling = 1;
        }
    }

    ngx_add_timer(ev, mcf->keyreg_poll);
}


ngx_int_t
ngx_http_credit_auth_keyreg_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    ngx_queue_init(&ngx_http_credit_auth_fetches);

    if (!mcf->key_registry) {
        return NGX_OK;
    }

    if (ngx_http_credit_auth_keycache_init_process(cycle, mcf) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "credit_auth: no room for the key registry cache in "
                      "credit_auth_zone");
        return NGX_ERROR;
    }

    ngx_http_credit_auth_polling = 0;
    ngx_http_credit_auth_poll_ev.handler = ngx_http_credit_auth_poll_handler;
    ngx_http_credit_auth_poll_ev.log = cycle->log;
    ngx_http_credit_auth_poll_ev.data = mcf;
    ngx_http_credit_auth_poll_ev.cancelable = 1;
    ngx_add_timer(&ngx_http_credit_auth_poll_ev, mcf->keyreg_poll);

    return NGX_OK;
}


void
ngx_http_credit_auth_keyreg_exit_process(void)
{
    if (ngx_http_credit_auth_poll_ev.timer_set) {
        ngx_del_timer(&ngx_http_credit_auth_poll_ev);
    }
}


/* --- fetching one kid ------------------------------------------------- */

/*
 * Whether the request still waits for a key: for its fetch's reply, or,
 * parked while the worker connects, for that attempt to end (…_ctx.c
 * wakes it; the lookup then goes again, once: …_key_fetch()).
 */
ngx_uint_t
ngx_http_credit_auth_key_waiting(ngx_http_credit_auth_ctx_t *ctx)
{
    return ctx->key.fetching || (ctx->key.parked && ctx->hold.conn.queued);
}


static void
ngx_http_credit_auth_key_gone(void *data)
{
    ngx_http_credit_auth_ctx_t  *ctx = data;

    ngx_http_credit_auth_redis_unwait(&ctx->hold.conn);

    if (ctx->key.fetching) {
        ngx_queue_remove(&ctx->key.queue);
        ctx->key.fetching = 0;
    }
}


/* No answer will come (the worker stops at once): asked, and not
 * answered, it fails closed (revocation_unavailable). */
void
ngx_http_credit_auth_key_abandon(ngx_http_credit_auth_ctx_t *ctx)
{
    if (ctx->state == NGX_HTTP_CREDIT_AUTH_KEY_WAIT
        && ngx_http_credit_auth_key_waiting(ctx))
    {
        ngx_http_credit_auth_key_gone(ctx);
        ctx->key.fetched = 1;
    }
}


static void
ngx_http_credit_auth_fetch_reply(void *data, void *reply)
{
    ngx_http_credit_auth_fetch_t  *f = data;

    ca_key                       key;
    ca_error                     err;
    redisReply                  *rep = reply;
    ngx_queue_t                 *q;
    ca_keyreg_meta               meta;
    ngx_http_credit_auth_ctx_t  *ctx;

    if (rep == NULL) {
        /* no answer: nothing is cached, the waiters fail closed */

    } else if (rep->type == REDIS_REPLY_NIL) {
        ngx_http_credit_auth_keycache_put(f->kid, f->epoch, NULL, 0, NULL, 0,
                                          NULL);

    } else if (rep->type == REDIS_REPLY_STRING
               && ca_keyreg_parse(rep->str, rep->len, f->kid, &meta, &key,
                                  &err) == 0)
    {
        ngx_http_credit_auth_keycache_put(f->kid, f->epoch, &meta, 0,
                                          rep->str, rep->len, &key);

    } else if (rep->type == REDIS_REPLY_ERROR
               && ngx_strncmp(rep->str, "WRONGTYPE", 9) != 0)
    {
        /* no word on the record (NOSCRIPT: the script was flushed since
         * the connect): nothing cached, the waiters fail closed */
        ngx_log_error(NGX_LOG_ERR, f->log, 0, "credit_auth: key registry "
                      "lookup of kid \"%s\": %s", f->kid, rep->str);

    } else {
        /* cached as unusable for the negative TTL: no hammering, and
         * never a key */
        if (rep->type == REDIS_REPLY_INTEGER) {
            ngx_snprintf((u_char *) err.text, sizeof(err.text),
                         "%s: record of %L bytes, more than %d: not read"
                         "%Z", f->kid, (int64_t) rep->integer,
                         CA_KEYREG_RECORD_MAX);

        } else if (rep->type != REDIS_REPLY_STRING) {
            ngx_snprintf((u_char *) err.text, sizeof(err.text),
                         "%s: not a string value%Z", f->kid);
        }
        ngx_log_error(NGX_LOG_ERR, f->log, 0,
                      "credit_auth: key registry record of kid \"%s\" "
                      "refused: %s", f->kid, err.text);
        ngx_http_credit_auth_keycache_put(f->kid, f->epoch, NULL, 1, NULL, 0,
                                          NULL);
    }

    while (!ngx_queue_empty(&f->waiters)) {
        q = ngx_queue_head(&f->waiters);
        ngx_queue_remove(q);
        ctx = ngx_queue_data(q, ngx_http_credit_auth_ctx_t, key.queue);
        ctx->key.fetching = 0;
        ctx->key.fetched = 1;
        ngx_http_credit_auth_wake(ctx);
    }

    ngx_queue_remove(&f->queue);
    ngx_free(f);
}


/* Joins the worker's GET of kid, or sends one.  NGX_AGAIN: wait. */
static ngx_int_t
ngx_http_credit_auth_key_fetch(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *kid, size_t len)
{
    char                           name[CA_KEYREG_NAME_MAX];
    ngx_int_t                      rc;
    ngx_queue_t                   *q;
    ngx_pool_cleanup_t            *cln;
    ngx_http_credit_auth_fetch_t  *f;

    if (!ctx->key.cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }
        cln->handler = ngx_http_credit_auth_key_gone;
        cln->data = ctx;
        ctx->key.cleanup = 1;
    }

    for (q = ngx_queue_head(&ngx_http_credit_auth_fetches);
         q != ngx_queue_sentinel(&ngx_http_credit_auth_fetches);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_http_credit_auth_fetch_t, queue);
        if (ngx_strcmp(f->kid, kid) == 0) {
            ngx_queue_insert_tail(&f->waiters, &ctx->key.queue);
            ctx->key.fetching = 1;
            return NGX_AGAIN;
        }
    }

    if (!ngx_http_credit_auth_redis_ready()) {
        rc = NGX_DECLINED;
        if (!ctx->key.parked) {
            /* a worker just started or Redis just came back: wait for
             * that attempt rather than refuse */
            ctx->key.parked = 1;
            rc = ngx_http_credit_auth_redis_wait(&ctx->hold.conn);
            if (rc == NGX_AGAIN) {
                return NGX_AGAIN;
            }
        }
        if (rc != NGX_OK) {
            return NGX_DECLINED;
        }
    }

    if (ca_keyreg_name(kid, len, name) != 0) {
        return NGX_ERROR;
    }

    f = ngx_alloc(sizeof(ngx_http_credit_auth_fetch_t), r->connection->log);
    if (f == NULL) {
        return NGX_ERROR;
    }
    f->epoch = ngx_http_credit_auth_keycache_epoch();
    f->log = ngx_cycle->log;
    ngx_memcpy(f->kid, kid, len + 1);
    ngx_queue_init(&f->waiters);

    if (ngx_http_credit_auth_get_bounded(name, CA_KEYREG_RECORD_MAX,
                                         ngx_http_credit_auth_fetch_reply, f)
        != NGX_OK)
    {
        ngx_free(f);
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&ngx_http_credit_auth_fetches, &f->queue);
    ngx_queue_insert_tail(&f->waiters, &ctx->key.queue);
    ctx->key.fetching = 1;

    return NGX_AGAIN;
}


/*
 * Said once per kid (a client could fill the log otherwise: every token
 * of such a kid is refused), counted every time; a worker remembers the
 * first NGX_HTTP_CREDIT_AUTH_TWICE_SAID kids it said.
 */
static void
ngx_http_credit_auth_kid_twice(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, const char *kid, size_t len)
{
    uint32_t    crc;
    ngx_uint_t  i;

    ngx_http_credit_auth_count_event(NGX_HTTP_CREDIT_AUTH_EV_KID_TWICE);

    crc = ngx_crc32_short((u_char *) kid, len);
    for (i = 0; i < ngx_http_credit_auth_ntwice; i++) {
        if (ngx_http_credit_auth_twice[i] == crc) {
            return;
        }
    }
    if (ngx_http_credit_auth_ntwice == NGX_HTTP_CREDIT_AUTH_TWICE_SAID) {
        return;
    }
    ngx_http_credit_auth_twice[ngx_http_credit_auth_ntwice++] = crc;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "credit_auth: kid \"%s\" is both in %V and in the key "
                  "registry: refused until one is removed (said once: "
                  "its refusals are counted, events on the status page)",
                  kid, &mcf->keys_file);
}


#define ngx_http_credit_auth_key_detail(ctx, ...)                            \
    ngx_snprintf((u_char *) (ctx)->detail, sizeof((ctx)->detail) - 1,        \
                 __VA_ARGS__)[0] = '\0'


/*
 * The key a token names.  NGX_OK: *key is it, or NULL and *reason says
 * why not (kid_unknown, key_revoked, revocation_unavailable); NGX_AGAIN:
 * the request waits in state KEY_WAIT and is run again.  ctx->key is
 * written here only.
 */
ngx_int_t
ngx_http_credit_auth_key_find(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *kid, size_t len,
    const ca_key **key, ca_reason *reason)
{
    char                               name[CA_KEYREG_NAME_MAX];
    ngx_int_t                          rc;
    const char                        *why;
    const ca_key                      *file_key;
    ngx_http_credit_auth_keyinfo_t     info;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_credit_auth_module);

    *key = NULL;
    *reason = CA_KID_UNKNOWN;

    file_key = ca_keyset_find(mcf->keys, kid, len);

    if (!mcf->key_registry) {
        *key = file_key;
        return NGX_OK;
    }

    if (ca_keyreg_name(kid, len, name) != 0) {
        /* a kid no registry record can have: no round trip */
        *key = file_key;
        return NGX_OK;
    }

    rc = ngx_http_credit_auth_keycache_get(kid, ctx->key.fetched, &info);

    if (rc != NGX_OK) {
        if (ctx->key.fetched) {
            /* asked already, and no answer kept: fail closed */
            *reason = CA_REVOCATION_UNAVAILABLE;
            ngx_http_credit_auth_key_detail(ctx, "the key registry did not "
                                            "answer%Z");
            return NGX_OK;
        }

        rc = ngx_http_credit_auth_key_fetch(r, ctx, kid, len);
        if (rc == NGX_AGAIN) {
            ctx->state = NGX_HTTP_CREDIT_AUTH_KEY_WAIT;
            return NGX_AGAIN;
        }
        *reason = CA_REVOCATION_UNAVAILABLE;
        ngx_http_credit_auth_key_detail(ctx, "the key registry is "
                                        "unavailable%Z");
        return NGX_OK;
    }

    if (!info.found) {
        if (info.malformed && file_key == NULL) {
            ngx_http_credit_auth_key_detail(ctx, "the registry record of "
                                            "this kid is malformed%Z");
        }
        *key = file_key;
        return NGX_OK;
    }

    if (file_key != NULL) {
        ngx_http_credit_auth_kid_twice(r, mcf, kid, len);
        ngx_http_credit_auth_key_detail(ctx, "the kid is registered twice "
                                        "(key file and registry)%Z");
        return NGX_OK;
    }

    why = ca_keyreg_unusable(&info.meta, (int64_t) ngx_time());
    if (why != NULL) {
        *reason = CA_KEY_REVOKED;
        ngx_http_credit_auth_key_detail(ctx, "%s%Z", why);
        return NGX_OK;
    }

    *key = ngx_http_credit_auth_keycache_key(kid, info.meta.version,
                                             info.crc, r->connection->log);
    if (*key == NULL) {
        *reason = CA_REVOCATION_UNAVAILABLE;
        ngx_http_credit_auth_key_detail(ctx, "the registry key could not be"
                                        " used%Z");
    }

    return NGX_OK;
}
