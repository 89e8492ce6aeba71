/*
 * Registry keys cached (contract §5, docs/keys.md): the record text of every
 * kid looked up lately, in the shared zone so that one Redis round trip
 * serves every worker, and each key parsed into an EVP_PKEY once per
 * worker (a pointer cannot live in shared memory).
 *
 * An entry is good until its TTL, and only for the registry version
 * ("epoch") it was fetched under: when the poller (…_keyreg.c) sees the
 * version move, every entry is stale at once, so that a revocation reaches
 * the keys and, through them, the verified-token cache.  Unknown kids are
 * cached too (found = 0), for the short negative TTL, in their own LRU
 * and at most a quarter of the entries.  Bounded by the directive's cache=
 * and by the zone: the least recently used go first, unknown kids before
 * keys.
 */
#include "ngx_http_credit_auth.h"


#define NGX_HTTP_CREDIT_AUTH_KEY_SLOTS  1024    /* parsed keys per worker */


typedef struct {
    ngx_rbtree_node_t           node;           /* key: crc32 of kid */
    ngx_queue_t                 lru;
    time_t                      expires;
    uint64_t                    epoch;
    ngx_uint_t                  found;
    ngx_uint_t                  malformed;
    ca_keyreg_meta              meta;
    uint32_t                    crc;            /* of the record text */
    char                        kid[CA_KID_MAX + 1];
    size_t                      len;
    u_char                      record[1];
} ngx_http_credit_auth_key_node_t;


typedef struct {
    ngx_rbtree_t                tree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 lru;            /* keys found */
    ngx_queue_t                 neg_lru;        /* unknown, malformed */
    ngx_uint_t                  entries;
    ngx_uint_t                  negatives;
    uint64_t                    epoch;          /* registry version seen */
} ngx_http_credit_auth_keycache_t;


/* One parsed key per slot, replaced when another record comes (kid,
 * version and text: a kid deleted and registered again by hand is another
 * key). */
typedef struct {
    char                        kid[CA_KID_MAX + 1];
    int64_t                     version;
    uint32_t                    crc;
    ca_key                      key;
} ngx_http_credit_auth_key_slot_t;


static ngx_http_credit_auth_key_slot_t  *ngx_http_credit_auth_key_slots;


static void
ngx_http_credit_auth_key_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                **p;
    ngx_http_credit_auth_key_node_t   *kn, *knt;

    for ( ;; ) {
        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            kn = (ngx_http_credit_auth_key_node_t *) node;
            knt = (ngx_http_credit_auth_key_node_t *) temp;
            p = (ngx_strcmp(kn->kid, knt->kid) < 0) ? &temp->left
                                                    : &temp->right;
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


static ngx_http_credit_auth_keycache_t *
ngx_http_credit_auth_keycache(ngx_slab_pool_t **shpool)
{
    ngx_http_credit_auth_shctx_t  *sh;

    sh = ngx_http_credit_auth_shared(shpool);
    return sh ? sh->keycache : NULL;
}


ngx_int_t
ngx_http_credit_auth_keycache_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    ngx_slab_pool_t                  *shpool;
    ngx_http_credit_auth_shctx_t     *sh;
    ngx_http_credit_auth_keycache_t  *kc;

    sh = ngx_http_credit_auth_shared(&shpool);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_http_credit_auth_key_slots = ngx_calloc(
        NGX_HTTP_CREDIT_AUTH_KEY_SLOTS
        * sizeof(ngx_http_credit_auth_key_slot_t), cycle->log);
    if (ngx_http_credit_auth_key_slots == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&shpool->mutex);

    kc = sh->keycache;
    if (kc == NULL) {
        /* the first worker of the zone's life */
        kc = ngx_slab_calloc_locked(shpool,
                                    sizeof(ngx_http_credit_auth_keycache_t));
        if (kc != NULL) {
            ngx_rbtree_init(&kc->tree, &kc->sentinel,
                            ngx_http_credit_auth_key_insert);
            ngx_queue_init(&kc->lru);
            ngx_queue_init(&kc->neg_lru);
            sh->keycache = kc;
        }

    } else {
        /* after a reload the module may sit at another address */
        kc->tree.insert = ngx_http_credit_auth_key_insert;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return kc ? NGX_OK : NGX_ERROR;
}


static ngx_http_credit_auth_key_node_t *
ngx_http_credit_auth_key_lookup(ngx_http_credit_auth_keycache_t *kc,
    const char *kid)
{
    ngx_int_t                         rc;
    ngx_rbtree_key_t                  key;
    ngx_rbtree_node_t                *node, *sentinel;
    ngx_http_credit_auth_key_node_t  *kn;

    key = ngx_crc32_short((u_char *) kid, ngx_strlen(kid));
    node = kc->tree.root;
    sentinel = kc->tree.sentinel;

    while (node != sentinel) {
        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }
        kn = (ngx_http_credit_auth_key_node_t *) node;
        rc = ngx_strcmp(kid, kn->kid);
        if (rc == 0) {
            return kn;
        }
        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_credit_auth_key_remove(ngx_http_credit_auth_keycache_t *kc,
    ngx_slab_pool_t *shpool, ngx_http_credit_auth_key_node_t *kn)
{
    ngx_rbtree_delete(&kc->tree, &kn->node);
    ngx_queue_remove(&kn->lru);
    kc->entries--;
    kc->negatives -= !kn->found;
    ngx_slab_free_locked(shpool, kn);
}


/* The least recently used entry of q; unknown kids go before keys. */
static ngx_uint_t
ngx_http_credit_auth_key_evict(ngx_http_credit_auth_keycache_t *kc,
    ngx_slab_pool_t *shpool, ngx_queue_t *q)
{
    if (ngx_queue_empty(q)) {
        return 0;
    }
    ngx_http_credit_auth_key_remove(kc, shpool,
        ngx_queue_data(ngx_queue_last(q), ngx_http_credit_auth_key_node_t,
                       lru));
    return 1;
}


/*
 * NGX_OK: *info is the cached answer; NGX_DECLINED: ask Redis.  A stale
 * epoch is accepted only by a request that has just fetched (its answer
 * may have crossed a version change; it is not older than the request).
 */
ngx_int_t
ngx_http_credit_auth_keycache_get(const char *kid, ngx_uint_t allow_stale,
    ngx_http_credit_auth_keyinfo_t *info)
{
    ngx_int_t                         rc;
    ngx_slab_pool_t                  *shpool;
    ngx_http_credit_auth_keycache_t  *kc;
    ngx_http_credit_auth_key_node_t  *kn;

    kc = ngx_http_credit_auth_keycache(&shpool);
    if (kc == NULL) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&shpool->mutex);

    kn = ngx_http_credit_auth_key_lookup(kc, kid);
    if (kn != NULL) {
        if (kn->expires <= ngx_time()) {
            ngx_http_credit_auth_key_remove(kc, shpool, kn);

        } else if (kn->epoch == kc->epoch || allow_stale) {
            info->found = kn->found;
            info->malformed = kn->malformed;
            info->meta = kn->meta;
            info->crc = kn->crc;
            ngx_queue_remove(&kn->lru);
            ngx_queue_insert_head(kn->found ? &kc->lru : &kc->neg_lru,
                                  &kn->lru);
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* The parsed key of a cached record of that version: this worker's copy,
 * or parsed now from the zone's text. */
const ca_key *
ngx_http_credit_auth_keycache_key(const char *kid, int64_t version,
    uint32_t crc, ngx_log_t *log)
{
    size_t                            len;
    ca_error                          err;
    ca_keyreg_meta                    meta;
    ngx_slab_pool_t                  *shpool;
    ngx_http_credit_auth_keycache_t  *kc;
    ngx_http_credit_auth_key_node_t  *kn;
    ngx_http_credit_auth_key_slot_t  *slot;
    ca_key                            key;
    u_char                            rec[CA_KEYREG_RECORD_MAX];

    kc = ngx_http_credit_auth_keycache(&shpool);
    if (kc == NULL || ngx_http_credit_auth_key_slots == NULL) {
        return NULL;
    }

    slot = &ngx_http_credit_auth_key_slots[
        ngx_crc32_short((u_char *) kid, ngx_strlen(kid))
        % NGX_HTTP_CREDIT_AUTH_KEY_SLOTS];

    /* the common case: no lock, no copy */
    if (slot->key.pkey != NULL && slot->version == version
        && slot->crc == crc && ngx_strcmp(slot->kid, kid) == 0)
    {
        return &slot->key;
    }

    len = 0;

    ngx_shmtx_lock(&shpool->mutex);
    kn = ngx_http_credit_auth_key_lookup(kc, kid);
    if (kn != NULL && kn->found && kn->meta.version == version
        && kn->crc == crc)
    {
        len = kn->len;
        ngx_memcpy(rec, kn->record, len);
    }
    ngx_shmtx_unlock(&shpool->mutex);

    if (len == 0) {
        return NULL;
    }

    /* validated by the worker that fetched it; parsed again here because
     * an EVP_PKEY cannot be shared */
    if (ca_keyreg_parse((char *) rec, len, kid, &meta, &key, &err) != 0) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "credit_auth: key registry record refused: %s",
                      err.text);
        return NULL;
    }

    ca_key_clear(&slot->key);
    slot->key = key;
    slot->version = meta.version;
    slot->crc = crc;
    ngx_cpystrn((u_char *) slot->kid, (u_char *) kid, sizeof(slot->kid));

    return &slot->key;
}


/*
 * Caches the answer for kid fetched under epoch: a record (meta, rec) or,
 * with meta NULL, an unknown or malformed kid.  parsed, when given, is
 * the fetching worker's key: it goes to this worker's slots.
 */
void
ngx_http_credit_auth_keycache_put(const char *kid, uint64_t epoch,
    const ca_keyreg_meta *meta, ngx_uint_t malformed, const char *rec,
    size_t len, ca_key *parsed)
{
    size_t                             size;
    ngx_uint_t                         tries;
    ngx_slab_pool_t                   *shpool;
    ngx_http_credit_auth_keycache_t   *kc;
    ngx_http_credit_auth_key_node_t   *kn;
    ngx_http_credit_auth_key_slot_t   *slot;
    ngx_http_credit_auth_main_conf_t  *mcf;

    kc = ngx_http_credit_auth_keycache(&shpool);
    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);

    if (parsed != NULL) {
        if (ngx_http_credit_auth_key_slots == NULL) {
            ca_key_clear(parsed);

        } else {
            slot = &ngx_http_credit_auth_key_slots[
                ngx_crc32_short((u_char *) kid, ngx_strlen(kid))
                % NGX_HTTP_CREDIT_AUTH_KEY_SLOTS];
            ca_key_clear(&slot->key);
            slot->key = *parsed;
            slot->version = meta->version;
            slot->crc = ngx_crc32_long((u_char *) rec, len);
            ngx_cpystrn((u_char *) slot->kid, (u_char *) kid,
                        sizeof(slot->kid));
        }
    }

    if (kc == NULL) {
        return;
    }

    if (meta == NULL) {
        len = 0;
    }
    size = offsetof(ngx_http_credit_auth_key_node_t, record) + len;

    ngx_shmtx_lock(&shpool->mutex);

    kn = ngx_http_credit_auth_key_lookup(kc, kid);
    if (kn != NULL) {
        ngx_http_credit_auth_key_remove(kc, shpool, kn);
    }

    /* A flood of made-up kids fills at most a quarter of the cache: it
     * can never push the keys in use out. */
    while (meta == NULL
           && kc->negatives >= ngx_max(mcf->keyreg_entries / 4, 1)
           && ngx_http_credit_auth_key_evict(kc, shpool, &kc->neg_lru))
    { /* void */ }

    while (kc->entries >= mcf->keyreg_entries
           && (ngx_http_credit_auth_key_evict(kc, shpool, &kc->neg_lru)
               || ngx_http_credit_auth_key_evict(kc, shpool, &kc->lru)))
    { /* void */ }

    kn = ngx_slab_alloc_locked(shpool, size);
    for (tries = 0; kn == NULL && tries < 8; tries++) {
        if (!ngx_http_credit_auth_key_evict(kc, shpool, &kc->neg_lru)
            && !ngx_http_credit_auth_key_evict(kc, shpool, &kc->lru))
        {
            break;
        }
        kn = ngx_slab_alloc_locked(shpool, size);
    }

    if (kn != NULL) {
        ngx_memzero(kn, offsetof(ngx_http_credit_auth_key_node_t, record));
        ngx_cpystrn((u_char *) kn->kid, (u_char *) kid, sizeof(kn->kid));
        kn->node.key = ngx_crc32_short((u_char *) kid, ngx_strlen(kid));
        kn->epoch = epoch;
        kn->found = (meta != NULL);
        kn->malformed = malformed;
        kn->expires = ngx_time() + (meta ? mcf->keyreg_ttl
                                         : mcf->keyreg_negative_ttl);
        if (meta != NULL) {
            kn->meta = *meta;
            kn->crc = ngx_crc32_long((u_char *) rec, len);
            kn->len = len;
            ngx_memcpy(kn->record, rec, len);
        }
        ngx_rbtree_insert(&kc->tree, &kn->node);
        ngx_queue_insert_head(meta ? &kc->lru : &kc->neg_lru, &kn->lru);
        kc->entries++;
        kc->negatives += (meta == NULL);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


uint64_t
ngx_http_credit_auth_keycache_epoch(void)
{
    uint64_t                          epoch;
    ngx_slab_pool_t                  *shpool;
    ngx_http_credit_auth_keycache_t  *kc;

    kc = ngx_http_credit_auth_keycache(&shpool);
    if (kc == NULL) {
        return 0;
    }

    ngx_shmtx_lock(&shpool->mutex);
    epoch = kc->epoch;
    ngx_shmtx_unlock(&shpool->mutex);

    return epoch;
}


/* The registry's version as polled: a new one makes every entry stale. */
void
ngx_http_credit_auth_keycache_set_epoch(uint64_t epoch, ngx_log_t *log)
{
    uint64_t                          old;
    ngx_slab_pool_t                  *shpool;
    ngx_http_credit_auth_keycache_t  *kc;

    kc = ngx_http_credit_auth_keycache(&shpool);
    if (kc == NULL) {
        return;
    }

    ngx_shmtx_lock(&shpool->mutex);
    old = kc->epoch;
    kc->epoch = epoch;
    ngx_shmtx_unlock(&shpool->mutex);

    if (old != epoch) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "credit_auth: key registry version %uL (was %uL): "
                      "cached keys are looked up again", epoch, old);
    }
}
