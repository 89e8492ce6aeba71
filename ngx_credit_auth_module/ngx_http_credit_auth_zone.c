/*
 * The shared zone (credit_auth_zone): its layout and initialisation, the
 * order of the token cache's tree (…_cache.c uses it), and the counters
 * every worker adds to and the status page (…_status.c) reads.
 */
#include <signal.h>
#include <time.h>

#include "ngx_http_credit_auth.h"


ngx_rbtree_key_t
ngx_http_credit_auth_cache_key(const u_char sha[32])
{
    ngx_rbtree_key_t  key;

    ngx_memcpy(&key, sha, sizeof(key));
    return key;
}


void
ngx_http_credit_auth_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                  **p;
    ngx_http_credit_auth_cache_node_t   *cn, *cnt;

    for ( ;; ) {
        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            cn = (ngx_http_credit_auth_cache_node_t *) node;
            cnt = (ngx_http_credit_auth_cache_node_t *) temp;
            p = (ngx_memcmp(cn->sha, cnt->sha, 32) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }
        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


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

    if (ctx->start_us) {
        ngx_http_credit_auth_observe(NGX_HTTP_CREDIT_AUTH_HIST_DECISION,
                                     ngx_http_credit_auth_now_us()
                                     - ctx->start_us);
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
    if (ctx->decision.bank) {
        ngx_http_credit_auth_count_label(sh, NGX_HTTP_CREDIT_AUTH_LABEL_BANK,
                                         ctx->decision.bank->code);
    }
    if (ctx->decision.category) {
        ngx_http_credit_auth_count_label(sh,
                                         NGX_HTTP_CREDIT_AUTH_LABEL_CATEGORY,
                                         ctx->decision.category->name);
    }
    if (ctx->decision.has_claims && ctx->decision.purpose_code[0]) {
        ngx_http_credit_auth_count_label(sh,
                                         NGX_HTTP_CREDIT_AUTH_LABEL_PURPOSE,
                                         ctx->decision.purpose_code);
    }
}


/* Not nginx's cached time: a decision takes well under its millisecond. */
uint64_t
ngx_http_credit_auth_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


/* One observation, lock-free: each field is added to atomically, so a
 * scrape may see the count one ahead of a bucket, never a lost one. */
void
ngx_http_credit_auth_observe(ngx_uint_t hist, uint64_t us)
{
    ngx_uint_t                     i;
    ngx_http_credit_auth_hist_t   *h;
    ngx_http_credit_auth_shctx_t  *sh;

    static const uint64_t  bounds[] = { NGX_HTTP_CREDIT_AUTH_BUCKET_BOUNDS };

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh == NULL || hist >= NGX_HTTP_CREDIT_AUTH_HISTS) {
        return;
    }

    h = &sh->hist[hist];
    for (i = 0; i < NGX_HTTP_CREDIT_AUTH_BUCKETS - 1; i++) {
        if (us <= bounds[i]) {
            break;
        }
    }
    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, (ngx_atomic_int_t) us);
    (void) ngx_atomic_fetch_add(&h->count, 1);
}


void
ngx_http_credit_auth_count_event(ngx_uint_t event)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh != NULL && event < NGX_HTTP_CREDIT_AUTH_EVENTS) {
        (void) ngx_atomic_fetch_add(&sh->events[event], 1);
    }
}


/*
 * Conditions that last (Redis away, loading, refusing writes) were one
 * error line per attempt or per batch: a client could fill the log.  Now
 * one line when the condition changes, a counter while it stays.
 */
void
ngx_http_credit_auth_note(ngx_http_credit_auth_note_t *n, ngx_log_t *log,
    ngx_uint_t level, ngx_uint_t event, const char *fmt, ...)
{
    u_char   text[sizeof(n->said)], *p;
    va_list  args;

    ngx_http_credit_auth_count_event(event);

    va_start(args, fmt);
    p = ngx_vslprintf(text, text + sizeof(text) - 1, fmt, args);
    va_end(args);
    *p = '\0';

    if (ngx_strcmp(text, n->said) == 0) {
        n->times++;
        return;
    }
    ngx_memcpy(n->said, text, p - text + 1);
    n->times = 1;
    ngx_log_error(level, log, 0, "credit_auth: %s (said once while it "
                  "lasts: see events on the status page)", text);
}


void
ngx_http_credit_auth_note_over(ngx_http_credit_auth_note_t *n,
    ngx_log_t *log, const char *what)
{
    if (n->said[0] == '\0') {
        return;
    }
    ngx_log_error(NGX_LOG_NOTICE, log, 0, "credit_auth: %s again, after: %s"
                  " (%ui times)", what, n->said, n->times);
    n->said[0] = '\0';
    n->times = 0;
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


void
ngx_http_credit_auth_count_pass_dropped(void)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh != NULL) {
        (void) ngx_atomic_fetch_add(&sh->pass_dropped, 1);
    }
}


/*
 * A worker's audit writer: its counters are added to the zone's totals
 * (they outlive the worker), its spool is shown in a slot of its own
 * while it lives.  NULL: the worker leaves, the slot is freed.
 */
void
ngx_http_credit_auth_zone_writer(const ngx_http_credit_auth_wstate_t *ws)
{
    ngx_uint_t                      i;
    ngx_pid_t                       pid;
    ngx_http_credit_auth_shctx_t   *sh;
    ngx_http_credit_auth_wslot_t   *slot;

    static ngx_http_credit_auth_wstate_t   last;
    static ngx_http_credit_auth_wslot_t   *mine;

    sh = ngx_http_credit_auth_shared(NULL);
    if (sh == NULL) {
        return;
    }

    if (ws == NULL) {
        if (mine) {
            mine->state.spool_bytes = 0;
            mine->state.spool_oldest_ms = 0;
            ngx_memory_barrier();
            mine->pid = 0;
            mine = NULL;
        }
        return;
    }

#define ADD(k, f)                                                            \
    (void) ngx_atomic_fetch_add(&sh->audit[k], ws->f - last.f)
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_SENT, sent);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_ACKED, acked);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_FAILED, failed);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_REPLAYED, replayed);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_REPLAY_FAILED, replay_failed);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_UNEXPECTED, unexpected);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_DISCONTINUITIES, discontinuities);
    ADD(NGX_HTTP_CREDIT_AUTH_AUDIT_REFUSED, refused);
#undef ADD
    last = *ws;

    /* a free slot, or one of a worker that died without freeing it */
    for (i = 0; mine == NULL && i < NGX_HTTP_CREDIT_AUTH_WRITERS; i++) {
        slot = &sh->writers[i];
        pid = (ngx_pid_t) slot->pid;
        if ((pid == 0 || (kill(pid, 0) != 0 && ngx_errno == NGX_ESRCH))
            && ngx_atomic_cmp_set(&slot->pid, pid, ngx_pid))
        {
            mine = slot;
        }
    }
    if (mine) {
        mine->state = *ws;
    }
}
