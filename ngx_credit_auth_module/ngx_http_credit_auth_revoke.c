/*
 * A consent's revocation written by the gateway itself (SPEC §3 v3, the
 * withdrawal endpoint, …_withdraw.c): credit:revoked:<iss>:<jti>, the key
 * every gateway's decision script checks, acknowledged on the configured
 * durability like any command of …_redis_cmd.c (aof verified on connect,
 * or WAIT N behind it).  The caller learns the answer through a callback;
 * it may leave before it comes (ngx_http_credit_auth_revoke_detach).
 */
#include <hiredis/hiredis.h>

#include "ngx_http_credit_auth.h"


typedef struct {
    ngx_http_credit_auth_revoked_pt   done;     /* NULL: nobody waits */
    void                             *data;
    ngx_log_t                        *log;
} ngx_http_credit_auth_revoke_t;


/*
 * Expires at ARGV[1], when no consent with this jti issued until now can
 * still be valid, but never shortens a revocation already there (the
 * platform's, or one without expiry).
 */
static const char  ngx_http_credit_auth_revoke_script[] =
    "if redis.call('SET', KEYS[1], '1', 'NX', 'EXAT', ARGV[1]) then\n"
    "  return 1\n"
    "end\n"
    "redis.call('EXPIREAT', KEYS[1], ARGV[1], 'GT')\n"
    "return 0\n";


static void
ngx_http_credit_auth_revoke_reply(void *data, void *reply)
{
    ngx_uint_t                      ok;
    redisReply                     *rep = reply;
    ngx_http_credit_auth_revoke_t  *rv = data;

    ok = (rep != NULL && rep->type == REDIS_REPLY_INTEGER);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rv->log, 0, "credit_auth: revocation: "
                      "redis: %*s", (size_t) ngx_min(rep->len, 200),
                      rep->str);
    }
    if (rv->done) {
        rv->done(rv->data, ok);
    }
    ngx_free(rv);
}


/* NGX_AGAIN: `done` hears whether Redis acknowledged it (*handle lets the
 * caller leave); NGX_ERROR: not sent. */
ngx_int_t
ngx_http_credit_auth_revoke(const char *iss, const char *jti, time_t until,
    ngx_http_credit_auth_revoked_pt done, void *data, ngx_log_t *log,
    void **handle)
{
    char                            key[CA_CONSENT_KEY_MAX], exat[24];
    size_t                          lens[5];
    const char                     *argv[5];
    ngx_http_credit_auth_revoke_t  *rv;

    if (ca_consent_key(key, sizeof(key), "revoked", iss, jti) == 0) {
        return NGX_ERROR;
    }
    ngx_sprintf((u_char *) exat, "%T%Z", until);

    argv[0] = "EVAL";
    argv[1] = ngx_http_credit_auth_revoke_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = exat;
    lens[0] = 4;
    lens[1] = sizeof(ngx_http_credit_auth_revoke_script) - 1;
    lens[2] = 1;
    lens[3] = ngx_strlen(key);
    lens[4] = ngx_strlen(exat);

    rv = ngx_alloc(sizeof(ngx_http_credit_auth_revoke_t), log);
    if (rv == NULL) {
        return NGX_ERROR;
    }
    rv->done = done;
    rv->data = data;
    rv->log = ngx_cycle->log;

    if (ngx_http_credit_auth_redis_command(5, argv, lens,
                                           ngx_http_credit_auth_revoke_reply,
                                           rv)
        != NGX_OK)
    {
        ngx_free(rv);
        return NGX_ERROR;
    }

    *handle = rv;
    return NGX_AGAIN;
}


void
ngx_http_credit_auth_revoke_detach(void *handle)
{
    ngx_http_credit_auth_revoke_t  *rv = handle;

    rv->done = NULL;
}
