/*
 * The credit_auth_status endpoint: the shared zone's counters
 * (…_zone.c) as JSON (?format=json or none), or Prometheus text with
 * ?format=prometheus; any other format is a 400.
 */
#include "ngx_http_credit_auth.h"
#include <core/core.h>


static const char  *ngx_http_credit_auth_audit_names[] = {
    "sent", "acked", "failed", "replays_ok", "replays_failed",
    "unexpected_replies", "discontinuities", "refused"
};

/* NGX_HTTP_CREDIT_AUTH_EV_*: conditions said once, then counted */
static const char  *ngx_http_credit_auth_event_names[] = {
    "redis_unavailable", "redis_loading", "redis_not_writable",
    "wait_short", "kid_in_file_and_registry"
};

static const char  *ngx_http_credit_auth_mem_names[] = {
    "unknown", "ok", "high", "full", "evicting"
};


static const char *
ngx_http_credit_auth_mem_state(ngx_http_credit_auth_redismem_t *m)
{
    ngx_uint_t  s = m->state;

    return ngx_http_credit_auth_mem_names[s < 5 ? s : 0];
}


/* used_memory as a percentage of maxmemory (0: no maxmemory) */
static ngx_uint_t
ngx_http_credit_auth_mem_percent(ngx_http_credit_auth_redismem_t *m)
{
    ca_redisinfo  ri;

    ri.used_memory = m->used;
    ri.maxmemory = m->max;
    return ca_redisinfo_percent(&ri);
}


/* Over the live workers' writers: bytes waiting in their spools, and the
 * age of the oldest entry waiting (seconds). */
static void
ngx_http_credit_auth_spool_state(ngx_http_credit_auth_shctx_t *sh,
    json_int_t *bytes, json_int_t *age)
{
    int64_t     now, oldest;
    ngx_uint_t  i;

    now = (int64_t) ngx_time() * 1000;
    *bytes = 0;
    *age = 0;
    for (i = 0; i < NGX_HTTP_CREDIT_AUTH_WRITERS; i++) {
        if (sh->writers[i].pid == 0) {
            continue;
        }
        *bytes += (json_int_t) sh->writers[i].state.spool_bytes;
        oldest = sh->writers[i].state.spool_oldest_ms;
        if (oldest > 0 && now > oldest && (now - oldest) / 1000 > *age) {
            *age = (json_int_t) ((now - oldest) / 1000);
        }
    }
}


/* "aof", "replicas:N", or "none" (contract §7.1: visible on this page) */
static const char *
ngx_http_credit_auth_durability(void)
{
    static char                        buf[32];
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);
    if (mcf->durability != CA_DURABLE_REPLICAS) {
        return ca_durability_name((int) mcf->durability);
    }
    ngx_snprintf((u_char *) buf, sizeof(buf) - 1, "replicas:%ui%Z",
                 mcf->wait_replicas);
    return buf;
}


static json_t *
ngx_http_credit_auth_status_json(ngx_http_credit_auth_shctx_t *sh)
{
    int          i;
    json_int_t   bytes, age;
    json_t      *doc, *reasons, *report, *audit, *cache, *labels[3];
    json_t      *redis, *events;
    ngx_uint_t   k, n;

    reasons = json_object();
    report = json_object();
    for (i = 1; i < CA_REASON_COUNT; i++) {
        json_object_set_new(reasons, ca_reason_name(i),
                            json_integer((json_int_t) sh->reasons[i]));
        json_object_set_new(report, ca_reason_name(i),
                            json_integer((json_int_t) sh->report_reasons[i]));
    }

    audit = json_object();
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS; k++) {
        json_object_set_new(audit, ngx_http_credit_auth_audit_names[k],
                            json_integer((json_int_t) sh->audit[k]));
    }
    json_object_set_new(audit, "inflight",
                        json_integer(ngx_http_credit_auth_redis_inflight()));
    ngx_http_credit_auth_spool_state(sh, &bytes, &age);
    json_object_set_new(audit, "spool_bytes", json_integer(bytes));
    json_object_set_new(audit, "spool_oldest_age_s", json_integer(age));

    cache = json_pack("{s:I, s:I, s:I, s:I}",
                      "hits", (json_int_t) sh->cache_hits,
                      "misses", (json_int_t) sh->cache_misses,
                      "entries", (json_int_t) sh->cache_entries,
                      "evictions", (json_int_t) sh->cache_evictions);

    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_LABEL_KINDS; k++) {
        labels[k] = json_object();
    }
    n = sh->n_labels;
    for (k = 0; k < n; k++) {
        json_object_set_new(labels[sh->labels[k].kind], sh->labels[k].name,
                            json_integer((json_int_t) sh->labels[k].count));
    }

    events = json_object();
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_EVENTS; k++) {
        json_object_set_new(events, ngx_http_credit_auth_event_names[k],
                            json_integer((json_int_t) sh->events[k]));
    }

    redis = json_pack("{s:b, s:s, s:s, s:{s:I, s:I, s:s, s:I, s:s}}",
                      "connected", (int) ngx_http_credit_auth_redis_ready(),
                      "durability", ngx_http_credit_auth_durability(),
                      "state", ngx_http_credit_auth_redis_why(),
                      "memory",
                          "used", (json_int_t) sh->redis_mem.used,
                          "max", (json_int_t) sh->redis_mem.max,
                          "policy", sh->redis_mem.policy,
                          "percent", (json_int_t)
                              ngx_http_credit_auth_mem_percent(
                                  &sh->redis_mem),
                          "state",
                              ngx_http_credit_auth_mem_state(&sh->redis_mem));
    if (redis != NULL) {
        json_object_set_new(redis, "shipper",
                            ngx_http_credit_auth_redis_ship_json(sh));
    }

    doc = json_pack("{s:{s:I, s:I, s:I}, s:o, s:o, s:o, s:o, s:o, s:o,"
                    " s:o, s:o, s:o}",
                    "decisions",
                        "allow", (json_int_t) sh->allow,
                        "deny", (json_int_t) sh->deny,
                        "report", (json_int_t) sh->report,
                    "reasons", reasons,
                    "report_reasons", report,
                    "banks", labels[0],
                    "categories", labels[1],
                    "purposes", labels[2],
                    "audit", audit,
                    "token_cache", cache,
                    "events", events,
                    "redis", redis);
    if (doc != NULL) {
        json_object_set_new(doc, "pass_headers",
                            json_pack("{s:I}", "dropped_personal",
                                      (json_int_t) sh->pass_dropped));
    }
    return doc;
}


/*
 * Prometheus text (docs/configuration.md lists every family).  Counters
 * and histograms are sums over the zone, i.e. over every worker since the
 * zone was created; the spool gauges are over the live workers' writers;
 * the Redis connection and commands in flight are the answering worker's
 * own, labelled with its pid.
 */

typedef struct {
    char    *out;
    size_t   size;
    size_t   len;
} ngx_http_credit_auth_text_t;


static void ngx_http_credit_auth_prom(ngx_http_credit_auth_text_t *t,
    const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
ngx_http_credit_auth_prom(ngx_http_credit_auth_text_t *t, const char *fmt,
    ...)
{
    int      n;
    char    *p;
    size_t   size;
    va_list  args;

    for ( ;; ) {
        va_start(args, fmt);
        n = vsnprintf(t->out + t->len, t->size - t->len, fmt, args);
        va_end(args);
        if (n < 0) {
            return;
        }
        if ((size_t) n < t->size - t->len) {
            t->len += n;
            return;
        }
        size = 2 * t->size + n;
        p = realloc(t->out, size);
        if (p == NULL) {
            return;     /* the caller sees a truncated text and fails */
        }
        t->out = p;
        t->size = size;
    }
}


static void
ngx_http_credit_auth_family(ngx_http_credit_auth_text_t *t, const char *name,
    const char *type, const char *help)
{
    ngx_http_credit_auth_prom(t, "# HELP %s %s\n# TYPE %s %s\n",
                              name, help, name, type);
}


/* A label value of the exposition format: \\, \" and \n escaped. */
static const char *
ngx_http_credit_auth_label_value(const char *s, char *buf, size_t size)
{
    size_t  n;

    for (n = 0; *s && n + 3 < size; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[n++] = '\\';
            buf[n++] = (*s == '\n') ? 'n' : *s;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}


static void
ngx_http_credit_auth_histogram(ngx_http_credit_auth_text_t *t,
    const char *name, const char *help, ngx_http_credit_auth_hist_t *h)
{
    uint64_t    cum, count;
    ngx_uint_t  i;

    static const uint64_t  bounds[] = { NGX_HTTP_CREDIT_AUTH_BUCKET_BOUNDS };

    /*
     * An observation adds its bucket first and the count last: read the
     * count first and cap every bucket to it: a scrape racing one never
     * shows a bucket above +Inf (only _sum may be one ahead).
     */
    count = h->count;
    ngx_memory_barrier();

    ngx_http_credit_auth_family(t, name, "histogram", help);
    cum = 0;
    for (i = 0; i < NGX_HTTP_CREDIT_AUTH_BUCKETS - 1; i++) {
        cum += h->bucket[i];
        ngx_http_credit_auth_prom(t, "%s_bucket{le=\"%g\"} %llu\n", name,
                                  (double) bounds[i] / 1e6,
                                  (unsigned long long) ngx_min(cum, count));
    }
    ngx_http_credit_auth_prom(t, "%s_bucket{le=\"+Inf\"} %llu\n", name,
                              (unsigned long long) count);
    ngx_http_credit_auth_prom(t, "%s_sum %.6f\n", name,
                              (double) h->sum_us / 1e6);
    ngx_http_credit_auth_prom(t, "%s_count %llu\n", name,
                              (unsigned long long) count);
}


static char *
ngx_http_credit_auth_status_prometheus(ngx_http_credit_auth_shctx_t *sh)
{
    int                                i;
    char                               v1[256], v2[512], ship[1536];
    json_int_t                         bytes, age;
    ngx_uint_t                         k, n;
    ngx_http_credit_auth_text_t        t;
    ngx_http_credit_auth_main_conf_t  *mcf;

    static const char  *kinds[][2] = {
        { "credit_auth_bank_requests_total",
          "Decided requests per bank (registry code)." },
        { "credit_auth_category_requests_total",
          "Decided requests per data category of the policy." },
        { "credit_auth_purpose_requests_total",
          "Decided requests per purpose the policy knows." },
    };
    static const char  *label[] = { "bank", "category", "purpose" };

    t.size = 16384;
    t.len = 0;
    t.out = malloc(t.size);
    if (t.out == NULL) {
        return NULL;
    }

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);

    ngx_http_credit_auth_family(&t, "credit_auth_info", "gauge",
        "The module's version and the policy in force (always 1).");
    ngx_http_credit_auth_prom(&t, "credit_auth_info{version=\"%s\","
        "policy_version=\"%s\",policy_sha256=\"%s\"} 1\n", CA_VERSION,
        ngx_http_credit_auth_label_value(mcf->policy && mcf->policy->version
                                         ? mcf->policy->version : "",
                                         v2, sizeof(v2)),
        mcf->policy ? mcf->policy->sha256 : "");

    ngx_http_credit_auth_family(&t, "credit_auth_decisions_total", "counter",
        "Decisions acknowledged, over all workers.");
    ngx_http_credit_auth_prom(&t,
        "credit_auth_decisions_total{decision=\"allow\"} %lu\n"
        "credit_auth_decisions_total{decision=\"deny\"} %lu\n"
        "credit_auth_decisions_total{decision=\"report\"} %lu\n",
        (unsigned long) sh->allow, (unsigned long) sh->deny,
        (unsigned long) sh->report);

    ngx_http_credit_auth_family(&t, "credit_auth_refusals_total", "counter",
        "Refusals sent, per reason code (contract §4).");
    for (i = 1; i < CA_REASON_COUNT; i++) {
        ngx_http_credit_auth_prom(&t,
            "credit_auth_refusals_total{reason=\"%s\"} %lu\n",
            ca_reason_name(i), (unsigned long) sh->reasons[i]);
    }
    ngx_http_credit_auth_family(&t, "credit_auth_report_refusals_total",
        "counter", "Refusals credit_auth report let through, per reason.");
    for (i = 1; i < CA_REASON_COUNT; i++) {
        ngx_http_credit_auth_prom(&t,
            "credit_auth_report_refusals_total{reason=\"%s\"} %lu\n",
            ca_reason_name(i), (unsigned long) sh->report_reasons[i]);
    }

    ngx_http_credit_auth_family(&t, "credit_auth_pass_header_dropped_total",
        "counter", "Platform headers credit_auth_pass_header names, not "
        "passed: their value looked personal.");
    ngx_http_credit_auth_prom(&t, "credit_auth_pass_header_dropped_total "
        "%lu\n", (unsigned long) sh->pass_dropped);

    n = sh->n_labels;
    for (i = 0; i < NGX_HTTP_CREDIT_AUTH_LABEL_KINDS; i++) {
        ngx_http_credit_auth_family(&t, kinds[i][0], "counter", kinds[i][1]);
        for (k = 0; k < n; k++) {
            if (sh->labels[k].kind != (ngx_uint_t) i) {
                continue;
            }
            ngx_http_credit_auth_prom(&t, "%s{%s=\"%s\"} %lu\n", kinds[i][0],
                label[i],
                ngx_http_credit_auth_label_value(sh->labels[k].name, v1,
                                                 sizeof(v1)),
                (unsigned long) sh->labels[k].count);
        }
    }

    ngx_http_credit_auth_family(&t, "credit_auth_audit_entries_total",
        "counter", "Audit entries, per state of their write to Redis.");
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS; k++) {
        ngx_http_credit_auth_prom(&t,
            "credit_auth_audit_entries_total{state=\"%s\"} %lu\n",
            ngx_http_credit_auth_audit_names[k], (unsigned long) sh->audit[k]);
    }

    ngx_http_credit_auth_family(&t, "credit_auth_audit_inflight", "gauge",
        "Redis commands in flight of the worker that answered (pid).");
    ngx_http_credit_auth_prom(&t, "credit_auth_audit_inflight{pid=\"%d\"} "
        "%lu\n", (int) ngx_pid,
        (unsigned long) ngx_http_credit_auth_redis_inflight());

    ngx_http_credit_auth_spool_state(sh, &bytes, &age);
    ngx_http_credit_auth_family(&t, "credit_auth_audit_spool_bytes", "gauge",
        "Bytes waiting in the spools, summed over the live workers.");
    ngx_http_credit_auth_prom(&t, "credit_auth_audit_spool_bytes %lld\n",
                              (long long) bytes);
    ngx_http_credit_auth_family(&t,
        "credit_auth_audit_spool_oldest_age_seconds", "gauge",
        "Age of the oldest spooled entry over the live workers (0: none).");
    ngx_http_credit_auth_prom(&t,
        "credit_auth_audit_spool_oldest_age_seconds %lld\n", (long long) age);

    ngx_http_credit_auth_family(&t, "credit_auth_token_cache_lookups_total",
        "counter", "Verified-token cache lookups, per result.");
    ngx_http_credit_auth_prom(&t,
        "credit_auth_token_cache_lookups_total{result=\"hit\"} %lu\n"
        "credit_auth_token_cache_lookups_total{result=\"miss\"} %lu\n",
        (unsigned long) sh->cache_hits, (unsigned long) sh->cache_misses);
    ngx_http_credit_auth_family(&t, "credit_auth_token_cache_evictions_total",
        "counter", "Tokens evicted from the full cache, oldest first.");
    ngx_http_credit_auth_prom(&t, "credit_auth_token_cache_evictions_total "
        "%lu\n", (unsigned long) sh->cache_evictions);
    ngx_http_credit_auth_family(&t, "credit_auth_token_cache_entries",
        "gauge", "Verified tokens in the shared cache.");
    ngx_http_credit_auth_prom(&t, "credit_auth_token_cache_entries %lu\n",
                              (unsigned long) sh->cache_entries);

    ngx_http_credit_auth_family(&t, "credit_auth_redis_not_durable", "gauge",
        "1 under credit_auth_redis durability=none (contract 7.1).");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_not_durable %d\n",
        ngx_strcmp(ngx_http_credit_auth_durability(), "none") == 0);

    ngx_http_credit_auth_family(&t, "credit_auth_redis_connected", "gauge",
        "1 if the worker that answered (pid) is connected to Redis.");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_connected{pid=\"%d\"} "
        "%d\n", (int) ngx_pid, (int) ngx_http_credit_auth_redis_ready());

    ngx_http_credit_auth_family(&t, "credit_auth_redis_memory_used_bytes",
        "gauge", "Redis used_memory, as last read (INFO memory, 1 s).");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_memory_used_bytes %llu"
        "\n", (unsigned long long) sh->redis_mem.used);
    ngx_http_credit_auth_family(&t, "credit_auth_redis_memory_max_bytes",
        "gauge", "Redis maxmemory (0: no limit).");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_memory_max_bytes %llu\n",
        (unsigned long long) sh->redis_mem.max);
    ngx_http_credit_auth_family(&t, "credit_auth_redis_memory_high", "gauge",
        "1 from 80 % of maxmemory (at 100 % Redis refuses every write).");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_memory_high %d\n",
        sh->redis_mem.state == NGX_HTTP_CREDIT_AUTH_MEM_HIGH
        || sh->redis_mem.state == NGX_HTTP_CREDIT_AUTH_MEM_FULL);
    ngx_http_credit_auth_family(&t, "credit_auth_redis_maxmemory_policy",
        "gauge", "Redis maxmemory-policy (1); any but noeviction is "
        "refused.");
    ngx_http_credit_auth_prom(&t, "credit_auth_redis_maxmemory_policy{"
        "policy=\"%s\",state=\"%s\"} 1\n",
        ngx_http_credit_auth_label_value(sh->redis_mem.policy, v1,
                                         sizeof(v1)),
        ngx_http_credit_auth_mem_state(&sh->redis_mem));

    ngx_http_credit_auth_redis_ship_prom(sh, ship, sizeof(ship));
    ngx_http_credit_auth_prom(&t, "%s", ship);

    ngx_http_credit_auth_family(&t, "credit_auth_events_total", "counter",
        "Conditions said once in the error log, counted while they last.");
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_EVENTS; k++) {
        ngx_http_credit_auth_prom(&t, "credit_auth_events_total{event=\"%s\"}"
            " %lu\n", ngx_http_credit_auth_event_names[k],
            (unsigned long) sh->events[k]);
    }

    ngx_http_credit_auth_histogram(&t, "credit_auth_decision_seconds",
        "From the access phase to the decision acknowledged (or spooled).",
        &sh->hist[NGX_HTTP_CREDIT_AUTH_HIST_DECISION]);
    ngx_http_credit_auth_histogram(&t, "credit_auth_upstream_seconds",
        "The platform's time of allowed requests (outcome upstream_ms).",
        &sh->hist[NGX_HTTP_CREDIT_AUTH_HIST_UPSTREAM]);

    /* a failed realloc left the text short: better no page than a lie */
    ngx_http_credit_auth_prom(&t, "# EOF\n");
    if (t.len < 6 || ngx_strcmp(t.out + t.len - 6, "# EOF\n") != 0) {
        free(t.out);
        return NULL;
    }
    t.len -= 6;
    t.out[t.len] = '\0';

    return t.out;
}


static void
ngx_http_credit_auth_free_text(void *data)
{
    free(data);
}


static ngx_int_t
ngx_http_credit_auth_status_handler(ngx_http_request_t *r)
{
    char                          *text;
    json_t                        *doc;
    ngx_int_t                      rc;
    ngx_str_t                      fmt;
    ngx_buf_t                     *b;
    ngx_chain_t                    out;
    ngx_uint_t                     prometheus;
    ngx_pool_cleanup_t            *cln;
    ngx_http_credit_auth_shctx_t  *sh;

    if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    prometheus = 0;
    if (ngx_http_arg(r, (u_char *) "format", 6, &fmt) == NGX_OK) {
        if (fmt.len == 10 && ngx_strncmp(fmt.data, "prometheus", 10) == 0) {
            prometheus = 1;
        } else if (fmt.len != 4 || ngx_strncmp(fmt.data, "json", 4) != 0) {
            /* not silently JSON: a scraper would parse the wrong text */
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    if (prometheus) {
        text = ngx_http_credit_auth_status_prometheus(sh);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");
    } else {
        doc = ngx_http_credit_auth_status_json(sh);
        text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                   : NULL;
        json_decref(doc);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }
    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    cln->handler = ngx_http_credit_auth_free_text;
    cln->data = text;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    b->pos = (u_char *) text;
    b->last = b->pos + ngx_strlen(text);
    b->memory = 1;
    b->last_buf = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


char *
ngx_http_credit_auth_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_credit_auth_status_handler;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_credit_auth_module);
    mcf->status = 1;

    return NGX_CONF_OK;
}
