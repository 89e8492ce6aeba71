/*
 * The archive's shipper, as the gateway sees it (issue 20): the session
 * reads the hash <stream>:shipper that `credit-audit ship` writes after
 * every round (docs/archive.md) once a second with Redis's TIME
 * (lib/redis/sessionpoll.c judges it); the last reading is kept here in
 * the shared zone for the status page and Prometheus.  The states:
 *
 *   ok       a report younger than a minute, lag under 5 minutes
 *   lagging  lag over 5 minutes (a third of ship's default --keep)
 *   stale    no report for a minute: no shipper is running
 *   absent   no hash: no shipper has ever reported on this stream (no
 *            archive configured, or it never ran; the gateway cannot
 *            tell which, so it says only that)
 *   unknown  not read yet, or the hash holds what is not a report
 *
 * A reading ages in the zone while Redis is not read (the connection
 * down): the report's age shown is its age when read plus the time
 * since, and turns stale on its own.  A change of state is said once for
 * the whole gateway, by the worker that changes the zone's state.
 */
#include "ngx_http_credit_auth.h"


static const char  *ngx_http_credit_auth_ship_names[] = {
    "unknown", "absent", "ok", "lagging", "stale", "unknown"
};


/* "<stream>:shipper", as the session keeps C strings. */
char *
ngx_http_credit_auth_redis_ship_key(ngx_pool_t *pool, ngx_str_t *stream)
{
    u_char  *key;

    key = ngx_pnalloc(pool, stream->len + sizeof(":shipper"));
    if (key == NULL) {
        return NULL;
    }
    ngx_sprintf(key, "%V:shipper%Z", stream);
    return (char *) key;
}


static int64_t
ngx_http_credit_auth_ship_now_ms(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


void
ngx_http_credit_auth_redis_ship_seen(const ca_rs_shipper *sh,
    ngx_log_t *log)
{
    ngx_uint_t                         old, state;
    ngx_http_credit_auth_shctx_t      *shm;
    ngx_http_credit_auth_redisship_t  *m;

    shm = ngx_http_credit_auth_shared(NULL);
    if (shm == NULL) {
        return;
    }
    m = &shm->redis_ship;
    m->lag_ms = (ngx_atomic_uint_t) (ngx_atomic_int_t) sh->lag_ms;
    m->age_ms = (ngx_atomic_uint_t) (ngx_atomic_int_t) sh->age_ms;
    m->seen_ms = (ngx_atomic_uint_t) ngx_http_credit_auth_ship_now_ms();
    if (ngx_strcmp(m->archived_id, sh->archived_id) != 0) {
        ngx_cpystrn((u_char *) m->archived_id, (u_char *) sh->archived_id,
                    sizeof(m->archived_id));
    }
    if (ngx_strcmp(m->why, sh->why) != 0) {
        ngx_cpystrn((u_char *) m->why, (u_char *) sh->why, sizeof(m->why));
    }

    old = m->state;
    state = (ngx_uint_t) sh->state + 1;
    if (state == old || !ngx_atomic_cmp_set(&m->state, old, state)) {
        return;
    }

    switch (sh->state) {

    case CA_RS_SHIP_LAGGING:
        ngx_log_error(NGX_LOG_WARN, log, 0, "credit_auth: the archive's "
                      "shipper is %L s behind (over %d s): Redis keeps "
                      "every entry not yet archived", sh->lag_ms / 1000,
                      CA_RS_SHIP_LAG_MS / 1000);
        break;

    case CA_RS_SHIP_STALE:
        ngx_log_error(NGX_LOG_WARN, log, 0, "credit_auth: the archive's "
                      "shipper has not reported for %L s: it is not "
                      "running, and Redis keeps growing", sh->age_ms / 1000);
        break;

    case CA_RS_SHIP_UNKNOWN:
        ngx_log_error(NGX_LOG_WARN, log, 0, "credit_auth: the archive's "
                      "shipper's report cannot be read: %s", sh->why);
        break;

    case CA_RS_SHIP_ABSENT:
        ngx_log_error(NGX_LOG_INFO, log, 0, "credit_auth: no archive "
                      "shipper has reported on this stream");
        break;

    default:
        if (old != 0) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0, "credit_auth: the "
                          "archive's shipper reports, %L ms behind",
                          sh->lag_ms);
        }
    }
}


/* The reading as of now: its report aged by the time since it was read,
 * ok or lagging turned stale when that passes a minute. */
static ngx_uint_t
ngx_http_credit_auth_ship_now(ngx_http_credit_auth_redisship_t *m,
    int64_t *lag, int64_t *age)
{
    ngx_uint_t  state = m->state;
    int64_t     since;

    *lag = (ngx_atomic_int_t) m->lag_ms;
    *age = (ngx_atomic_int_t) m->age_ms;
    if (state == 0 || *age < 0) {
        return state;
    }
    since = ngx_http_credit_auth_ship_now_ms() - (int64_t) m->seen_ms;
    *age += since > 0 ? since : 0;
    if ((state == CA_RS_SHIP_OK + 1 || state == CA_RS_SHIP_LAGGING + 1)
        && *age > CA_RS_SHIP_STALE_MS)
    {
        state = CA_RS_SHIP_STALE + 1;
    }
    return state;
}


/* The status page's redis.shipper. */
json_t *
ngx_http_credit_auth_redis_ship_json(ngx_http_credit_auth_shctx_t *sh)
{
    char                               note[160];
    int64_t                            lag, age;
    ngx_uint_t                         state;
    ngx_http_credit_auth_redisship_t  *m = &sh->redis_ship;

    state = ngx_http_credit_auth_ship_now(m, &lag, &age);
    switch (state) {
    case CA_RS_SHIP_OK + 1:
        note[0] = '\0';
        break;
    case CA_RS_SHIP_LAGGING + 1:
        ngx_snprintf((u_char *) note, sizeof(note), "the archive is %L s "
                     "behind (over %d s)%Z", lag / 1000,
                     CA_RS_SHIP_LAG_MS / 1000);
        break;
    case CA_RS_SHIP_STALE + 1:
        ngx_snprintf((u_char *) note, sizeof(note), "no report for %L s: "
                     "the shipper is not running%Z", age / 1000);
        break;
    case CA_RS_SHIP_ABSENT + 1:
        ngx_cpystrn((u_char *) note, (u_char *) "no shipper has reported",
                    sizeof(note));
        break;
    default:
        ngx_cpystrn((u_char *) note, (u_char *) (state ? m->why
                                                 : "not read yet"),
                    sizeof(note));
    }

    return json_pack("{s:s, s:o, s:o, s:s, s:s}",
                     "state", ngx_http_credit_auth_ship_names[state < 6
                                                              ? state : 0],
                     "lag_s", lag < 0 ? json_null()
                                      : json_real((double) lag / 1000),
                     "report_age_s", age < 0 ? json_null()
                                  : json_real((double) age / 1000),
                     "archived_id", m->archived_id,
                     "note", note);
}


/* Its Prometheus families into buf (NUL-ended); the length written. */
size_t
ngx_http_credit_auth_redis_ship_prom(ngx_http_credit_auth_shctx_t *sh,
    char *buf, size_t size)
{
    int         n;
    int64_t     lag, age;
    ngx_uint_t  state;

    state = ngx_http_credit_auth_ship_now(&sh->redis_ship, &lag, &age);
    n = snprintf(buf, size,
        "# HELP credit_auth_shipper_lag_seconds The archive's shipper's "
        "lag as it last reported it (lag_ms of <stream>:shipper); -1: not "
        "known.\n"
        "# TYPE credit_auth_shipper_lag_seconds gauge\n"
        "credit_auth_shipper_lag_seconds %.3f\n"
        "# HELP credit_auth_shipper_report_age_seconds Age of the "
        "shipper's last report (Redis's clock); -1: not known.\n"
        "# TYPE credit_auth_shipper_report_age_seconds gauge\n"
        "credit_auth_shipper_report_age_seconds %.3f\n"
        "# HELP credit_auth_shipper_up 1 when a shipper reported within "
        "the last %d s.\n"
        "# TYPE credit_auth_shipper_up gauge\n"
        "credit_auth_shipper_up %d\n"
        "# HELP credit_auth_shipper_state The shipper's state (1): ok, "
        "lagging (over %d s behind), stale, absent, unknown.\n"
        "# TYPE credit_auth_shipper_state gauge\n"
        "credit_auth_shipper_state{state=\"%s\"} 1\n",
        lag < 0 ? -1.0 : (double) lag / 1000,
        age < 0 ? -1.0 : (double) age / 1000,
        CA_RS_SHIP_STALE_MS / 1000,
        state == CA_RS_SHIP_OK + 1 || state == CA_RS_SHIP_LAGGING + 1,
        CA_RS_SHIP_LAG_MS / 1000,
        ngx_http_credit_auth_ship_names[state < 6 ? state : 0]);
    return n < 0 ? 0 : (size_t) n < size ? (size_t) n : size - 1;
}
