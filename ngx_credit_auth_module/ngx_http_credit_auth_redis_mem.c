/*
 * Redis's memory, watched (contract §7.2, issue 19).  A maxmemory-policy that
 * can evict is refused on every connect, and found within a second when
 * set while connected (CONFIG SET): the connection is then dropped and
 * the next one refused (lib/redis/session.c decides both).  What INFO
 * says of memory, on connect and then every second, is kept here in the
 * shared zone for the status page.  Crossing 80 % of maxmemory,
 * reaching it (a noeviction Redis then answers -OOM to every write) and
 * coming back are each said once for the whole gateway: the worker that
 * changes the zone's state says it.
 */
#include "ngx_http_credit_auth.h"


/* With some hysteresis: a Redis that hovers at 80 % is not said again
 * and again. */
static ngx_uint_t
ngx_http_credit_auth_mem_state(ngx_uint_t old, const ca_redisinfo *ri)
{
    unsigned  pct;

    if (ca_redisinfo_evicts(ri->policy)) {
        return NGX_HTTP_CREDIT_AUTH_MEM_EVICTING;
    }
    pct = ca_redisinfo_percent(ri);
    if (ri->maxmemory == 0) {
        return NGX_HTTP_CREDIT_AUTH_MEM_OK;
    }
    if (pct >= 100 || (old == NGX_HTTP_CREDIT_AUTH_MEM_FULL && pct >= 95)) {
        return NGX_HTTP_CREDIT_AUTH_MEM_FULL;
    }
    if (pct >= 80
        || ((old == NGX_HTTP_CREDIT_AUTH_MEM_HIGH
             || old == NGX_HTTP_CREDIT_AUTH_MEM_FULL) && pct >= 75))
    {
        return NGX_HTTP_CREDIT_AUTH_MEM_HIGH;
    }
    return NGX_HTTP_CREDIT_AUTH_MEM_OK;
}


void
ngx_http_credit_auth_redis_mem_seen(const ca_redisinfo *ri, ngx_log_t *log)
{
    ngx_uint_t                        old, state;
    ngx_http_credit_auth_shctx_t     *sh;
    ngx_http_credit_auth_redismem_t  *m;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh == NULL) {
        return;
    }
    m = &sh->redis_mem;

    m->used = (ngx_atomic_uint_t) ri->used_memory;
    m->max = (ngx_atomic_uint_t) ri->maxmemory;
    m->seen = (ngx_atomic_uint_t) ngx_time();
    if (ngx_strcmp(m->policy, ri->policy) != 0) {
        ngx_cpystrn((u_char *) m->policy, (u_char *) ri->policy,
                    sizeof(m->policy));
    }

    old = m->state;
    state = ngx_http_credit_auth_mem_state(old, ri);
    if (state == old || !ngx_atomic_cmp_set(&m->state, old, state)) {
        return;
    }

    switch (state) {

    case NGX_HTTP_CREDIT_AUTH_MEM_EVICTING:
        ngx_log_error(NGX_LOG_ERR, log, 0, "credit_auth: redis "
                      "maxmemory-policy is %s: it may evict consent state "
                      "and the audit stream, so it is not used (needs "
                      "noeviction)", ri->policy[0] ? ri->policy : "not said");
        break;

    case NGX_HTTP_CREDIT_AUTH_MEM_FULL:
        ngx_log_error(NGX_LOG_ERR, log, 0, "credit_auth: redis memory full "
                      "(used_memory %uL of maxmemory %uL): it refuses every "
                      "write (-OOM), decisions are refused (503) and spooled "
                      "until memory is freed or maxmemory raised",
                      ri->used_memory, ri->maxmemory);
        break;

    case NGX_HTTP_CREDIT_AUTH_MEM_HIGH:
        ngx_log_error(NGX_LOG_WARN, log, 0, "credit_auth: redis memory at "
                      "%ui%% of maxmemory (used_memory %uL of %uL): at 100%% "
                      "it refuses every decision",
                      (ngx_uint_t) ca_redisinfo_percent(ri),
                      ri->used_memory, ri->maxmemory);
        break;

    default:
        if (old != NGX_HTTP_CREDIT_AUTH_MEM_UNKNOWN) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0, "credit_auth: redis "
                          "memory back under 80%% of maxmemory "
                          "(used_memory %uL of %uL, maxmemory-policy %s)",
                          ri->used_memory, ri->maxmemory, ri->policy);
        }
    }
}
