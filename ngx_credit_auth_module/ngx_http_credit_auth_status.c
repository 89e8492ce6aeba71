/*
 * Counters shared by all workers (credit_auth_zone) and the
 * credit_auth_status endpoint: JSON, or Prometheus text with
 * ?format=prometheus.
 */
#include "ngx_http_credit_auth.h"


static const char  *ngx_http_credit_auth_label_kinds[] = {
    "banks", "categories", "purposes"
};

static const char  *ngx_http_credit_auth_audit_names[] = {
    "sent", "acked", "failed"
};


ngx_http_credit_auth_shctx_t *
ngx_http_credit_auth_shared(ngx_slab_pool_t **shpool)
{
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);
    if (mcf == NULL || mcf->shm_zone == NULL) {
        return NULL;
    }

    if (shpool) {
        *shpool = (ngx_slab_pool_t *) mcf->shm_zone->shm.addr;
    }

    /* set by ngx_http_credit_auth_init_zone() before workers start */
    return mcf->shm_zone->data;
}


ngx_int_t
ngx_http_credit_auth_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                   *shpool;
    ngx_http_credit_auth_shctx_t      *sh;

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* reload: keep the counters and the cache; the module may have
         * been loaded at another address, so renew the code pointer */
        sh = data;
        sh->cache.insert = ngx_http_credit_auth_cache_insert;
        shm_zone->data = data;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_credit_auth_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }
    ngx_rbtree_init(&sh->cache, &sh->cache_sentinel,
                    ngx_http_credit_auth_cache_insert);
    ngx_queue_init(&sh->cache_lru);
    shpool->data = sh;
    shm_zone->data = sh;

    /* the slab allocator logs every failed allocation otherwise: a full
     * cache evicts, which is not an error */
    shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_credit_auth_count_label(ngx_http_credit_auth_shctx_t *sh,
    ngx_uint_t kind, const char *name)
{
    size_t                         len;
    ngx_uint_t                     i, n;
    ngx_slab_pool_t               *shpool;
    ngx_http_credit_auth_label_t  *l;

    if (name == NULL || name[0] == '\0') {
        return;
    }
    len = ngx_strlen(name);

    n = sh->n_labels;
    for (i = 0; i < n; i++) {
        l = &sh->labels[i];
        if (l->kind == kind && ngx_strcmp(l->name, name) == 0) {
            (void) ngx_atomic_fetch_add(&l->count, 1);
            return;
        }
    }

    (void) ngx_http_credit_auth_shared(&shpool);

    ngx_shmtx_lock(&shpool->mutex);

    /* another worker may have added it meanwhile */
    for (i = n; i < sh->n_labels; i++) {
        l = &sh->labels[i];
        if (l->kind == kind && ngx_strcmp(l->name, name) == 0) {
            break;
        }
    }

    if (i == sh->n_labels && i < NGX_HTTP_CREDIT_AUTH_LABELS
        && len <= CA_CODE_MAX)
    {
        l = &sh->labels[i];
        l->kind = kind;
        ngx_memcpy(l->name, name, len + 1);
        l->count = 0;
        ngx_memory_barrier();
        sh->n_labels = i + 1;
    }

    if (i < sh->n_labels) {
        (void) ngx_atomic_fetch_add(&sh->labels[i].count, 1);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


void
ngx_http_credit_auth_count_decision(ngx_http_credit_auth_ctx_t *ctx)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh == NULL) {
        return;
    }

    if (ctx->report) {
        (void) ngx_atomic_fetch_add(&sh->report, 1);
        (void) ngx_atomic_fetch_add(&sh->report_reasons[ctx->reason], 1);

    } else if (ctx->reason == CA_OK) {
        (void) ngx_atomic_fetch_add(&sh->allow, 1);

    } else {
        (void) ngx_atomic_fetch_add(&sh->deny, 1);
        (void) ngx_atomic_fetch_add(&sh->reasons[ctx->reason], 1);
    }

    /* only registry names: never free text from the request */
    if (ctx->bank) {
        ngx_http_credit_auth_count_label(sh, NGX_HTTP_CREDIT_AUTH_LABEL_BANK,
                                         ctx->bank->code);
    }
    if (ctx->category) {
        ngx_http_credit_auth_count_label(sh,
                                         NGX_HTTP_CREDIT_AUTH_LABEL_CATEGORY,
                                         ctx->category->name);
    }
    if (ctx->has_claims && ctx->purpose.len && ctx->purpose.len <= CA_CODE_MAX)
    {
        char  purpose[CA_CODE_MAX + 1];
        ngx_http_credit_auth_main_conf_t  *mcf;

        mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                  ngx_http_credit_auth_module);
        ngx_memcpy(purpose, ctx->purpose.data, ctx->purpose.len);
        purpose[ctx->purpose.len] = '\0';
        if (ca_policy_knows_purpose(mcf->policy, purpose)) {
            ngx_http_credit_auth_count_label(sh,
                                         NGX_HTTP_CREDIT_AUTH_LABEL_PURPOSE,
                                         purpose);
        }
    }
}


void
ngx_http_credit_auth_count_audit(ngx_uint_t what)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh != NULL && what < NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS) {
        (void) ngx_atomic_fetch_add(&sh->audit[what], 1);
    }
}


/* A refusal of the answer (404, 502): the decision allowed it, the reason
 * counts the refusal the bank got. */
void
ngx_http_credit_auth_count_reason(ca_reason reason)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh != NULL && reason > CA_OK && reason < CA_REASON_COUNT) {
        (void) ngx_atomic_fetch_add(&sh->reasons[reason], 1);
    }
}


static json_t *
ngx_http_credit_auth_status_json(ngx_http_credit_auth_shctx_t *sh)
{
    int          i;
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
