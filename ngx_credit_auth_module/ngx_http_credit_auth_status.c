/*
 * The credit_auth_status endpoint: the shared zone's counters
 * (…_zone.c) as JSON, or Prometheus text with ?format=prometheus.
 */
#include "ngx_http_credit_auth.h"


static const char  *ngx_http_credit_auth_label_kinds[] = {
    "banks", "categories", "purposes"
};

static const char  *ngx_http_credit_auth_audit_names[] = {
    "sent", "acked", "failed", "replays_ok", "replays_failed",
    "unexpected_replies"
};


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


static json_t *
ngx_http_credit_auth_status_json(ngx_http_credit_auth_shctx_t *sh)
{
    int          i;
    json_int_t   bytes, age;
    json_t      *doc, *reasons, *report, *audit, *cache, *labels[3];
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

    doc = json_pack("{s:{s:I, s:I, s:I}, s:o, s:o, s:o, s:o, s:o, s:o,"
                    " s:o, s:{s:b}}",
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
                    "redis",
                        "connected",
                        (int) ngx_http_credit_auth_redis_ready());
    return doc;
}


static char *
ngx_http_credit_auth_status_prometheus(ngx_http_credit_auth_shctx_t *sh)
{
    int          i;
    json_int_t   bytes, age;
    char        *out, *p;
    size_t       size;
    ngx_uint_t   k, n;

    size = 4096 + CA_REASON_COUNT * 256 + NGX_HTTP_CREDIT_AUTH_LABELS * 160;
    out = malloc(size);
    if (out == NULL) {
        return NULL;
    }
    p = out;

#define PROM(...) p += snprintf(p, size - (p - out), __VA_ARGS__)

    PROM("# TYPE credit_auth_decisions_total counter\n");
    PROM("credit_auth_decisions_total{decision=\"allow\"} %lu\n",
         (unsigned long) sh->allow);
    PROM("credit_auth_decisions_total{decision=\"deny\"} %lu\n",
         (unsigned long) sh->deny);
    PROM("credit_auth_decisions_total{decision=\"report\"} %lu\n",
         (unsigned long) sh->report);
    PROM("# TYPE credit_auth_refusals_total counter\n");
    for (i = 1; i < CA_REASON_COUNT; i++) {
        PROM("credit_auth_refusals_total{reason=\"%s\"} %lu\n",
             ca_reason_name(i), (unsigned long) sh->reasons[i]);
    }
    PROM("# TYPE credit_auth_report_refusals_total counter\n");
    for (i = 1; i < CA_REASON_COUNT; i++) {
        PROM("credit_auth_report_refusals_total{reason=\"%s\"} %lu\n",
             ca_reason_name(i), (unsigned long) sh->report_reasons[i]);
    }
    PROM("# TYPE credit_auth_requests_total counter\n");
    n = sh->n_labels;
    for (k = 0; k < n; k++) {
        PROM("credit_auth_requests_total{%s=\"%s\"} %lu\n",
             ngx_http_credit_auth_label_kinds[sh->labels[k].kind],
             sh->labels[k].name, (unsigned long) sh->labels[k].count);
    }
    PROM("# TYPE credit_auth_audit_entries_total counter\n");
    for (k = 0; k < NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS; k++) {
        PROM("credit_auth_audit_entries_total{state=\"%s\"} %lu\n",
             ngx_http_credit_auth_audit_names[k], (unsigned long) sh->audit[k]);
    }
    PROM("# TYPE credit_auth_audit_inflight gauge\n");
    PROM("credit_auth_audit_inflight %lu\n",
         (unsigned long) ngx_http_credit_auth_redis_inflight());
    ngx_http_credit_auth_spool_state(sh, &bytes, &age);
    PROM("# TYPE credit_auth_audit_spool_bytes gauge\n");
    PROM("credit_auth_audit_spool_bytes %lld\n", (long long) bytes);
    PROM("# TYPE credit_auth_audit_spool_oldest_age_seconds gauge\n");
    PROM("credit_auth_audit_spool_oldest_age_seconds %lld\n",
         (long long) age);
    PROM("# TYPE credit_auth_token_cache_total counter\n");
    PROM("credit_auth_token_cache_total{result=\"hit\"} %lu\n",
         (unsigned long) sh->cache_hits);
    PROM("credit_auth_token_cache_total{result=\"miss\"} %lu\n",
         (unsigned long) sh->cache_misses);
    PROM("credit_auth_token_cache_total{result=\"eviction\"} %lu\n",
         (unsigned long) sh->cache_evictions);
    PROM("# TYPE credit_auth_token_cache_entries gauge\n");
    PROM("credit_auth_token_cache_entries %lu\n",
         (unsigned long) sh->cache_entries);
    PROM("# TYPE credit_auth_redis_connected gauge\n");
    PROM("credit_auth_redis_connected %d\n",
         (int) ngx_http_credit_auth_redis_ready());

#undef PROM

    return out;
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

    prometheus = (ngx_http_arg(r, (u_char *) "format", 6, &fmt) == NGX_OK
                  && fmt.len == 10
                  && ngx_strncmp(fmt.data, "prometheus", 10) == 0);

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
