/*
 * Verified-token cache (issue 3): a token whose signature and static claims
 * were verified once is remembered, by the SHA-256 of its bytes, in the
 * shared zone until it expires, so a repeated token costs no signature
 * check in any worker.  The checks that depend on the request (time,
 * audience, purpose, path subject, revocation) still run every time.
 *
 * Entries carry the configuration generation that verified them (a digest
 * of the policy and the keys, …_conf.c): a reload that changes either
 * verifies every token again once; one that changes neither keeps them.
 * Bounded by the zone: when the slab allocator is full, the least recently
 * used entries go.
 */
#include "ngx_http_credit_auth.h"




static ngx_http_credit_auth_cache_node_t *
ngx_http_credit_auth_cache_lookup(ngx_http_credit_auth_shctx_t *sh,
    const u_char sha[32])
{
    ngx_int_t                           rc;
    ngx_rbtree_key_t                    key;
    ngx_rbtree_node_t                  *node, *sentinel;
    ngx_http_credit_auth_cache_node_t  *cn;

    key = ngx_http_credit_auth_cache_key(sha);
    node = sh->cache.root;
    sentinel = sh->cache.sentinel;

    while (node != sentinel) {
        if (key < node->key) {
            node = node->left;
            continue;
        }
        if (key > node->key) {
            node = node->right;
            continue;
        }

        cn = (ngx_http_credit_auth_cache_node_t *) node;
        rc = ngx_memcmp(sha, cn->sha, 32);
        if (rc == 0) {
            return cn;
        }
        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* Expired, or verified under another configuration (keys, policy). */
static ngx_uint_t
ngx_http_credit_auth_cache_stale(ngx_http_credit_auth_cache_node_t *cn,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    return cn->generation != mcf->generation
           || cn->claims.exp < ngx_time() - mcf->policy->token.leeway;
}


static void
ngx_http_credit_auth_cache_remove(ngx_http_credit_auth_shctx_t *sh,
    ngx_slab_pool_t *shpool, ngx_http_credit_auth_cache_node_t *cn)
{
    ngx_rbtree_delete(&sh->cache, &cn->node);
    ngx_queue_remove(&cn->lru);
    ngx_slab_free_locked(shpool, cn);
    (void) ngx_atomic_fetch_add(&sh->cache_entries, -1);
}


ngx_int_t
ngx_http_credit_auth_cache_get(const u_char sha[32], ca_claims *claims)
{
    ngx_int_t                           rc;
    ngx_slab_pool_t                    *shpool;
    ngx_http_credit_auth_shctx_t       *sh;
    ngx_http_credit_auth_cache_node_t  *cn;
    ngx_http_credit_auth_main_conf_t   *mcf;

    sh = ngx_http_credit_auth_shared(&shpool);
    if (sh == NULL) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&shpool->mutex);

    cn = ngx_http_credit_auth_cache_lookup(sh, sha);
    if (cn != NULL) {
        if (ngx_http_credit_auth_cache_stale(cn, mcf)) {
            ngx_http_credit_auth_cache_remove(sh, shpool, cn);

        } else {
            ngx_memcpy(claims, &cn->claims, sizeof(ca_claims));
            ngx_queue_remove(&cn->lru);
            ngx_queue_insert_head(&sh->cache_lru, &cn->lru);
            rc = NGX_OK;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_atomic_fetch_add(rc == NGX_OK ? &sh->cache_hits
                                             : &sh->cache_misses, 1);
    return rc;
}


void
ngx_http_credit_auth_cache_put(const u_char sha[32], const ca_claims *claims)
{
    ngx_uint_t                          tries;
    ngx_queue_t                        *q;
    ngx_slab_pool_t                    *shpool;
    ngx_http_credit_auth_shctx_t       *sh;
    ngx_http_credit_auth_cache_node_t  *cn;
    ngx_http_credit_auth_main_conf_t   *mcf;

    sh = ngx_http_credit_auth_shared(&shpool);
    if (sh == NULL) {
        return;
    }

    mcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                              ngx_http_credit_auth_module);

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_credit_auth_cache_lookup(sh, sha) != NULL) {
        /* another worker verified the same token meanwhile */
        ngx_shmtx_unlock(&shpool->mutex);
        return;
    }

    /* Expired entries at the LRU tail go first, then the oldest. */
    for (tries = 0; tries < 2 && !ngx_queue_empty(&sh->cache_lru); tries++) {
        q = ngx_queue_last(&sh->cache_lru);
        cn = ngx_queue_data(q, ngx_http_credit_auth_cache_node_t, lru);
        if (!ngx_http_credit_auth_cache_stale(cn, mcf)) {
            break;
        }
        ngx_http_credit_auth_cache_remove(sh, shpool, cn);
    }

    cn = ngx_slab_alloc_locked(shpool,
                               sizeof(ngx_http_credit_auth_cache_node_t));
    for (tries = 0; cn == NULL && tries < 8
                    && !ngx_queue_empty(&sh->cache_lru); tries++)
    {
        q = ngx_queue_last(&sh->cache_lru);
        ngx_http_credit_auth_cache_remove(sh, shpool,
            ngx_queue_data(q, ngx_http_credit_auth_cache_node_t, lru));
        (void) ngx_atomic_fetch_add(&sh->cache_evictions, 1);
        cn = ngx_slab_alloc_locked(shpool,
                                   sizeof(ngx_http_credit_auth_cache_node_t));
    }

    if (cn != NULL) {
        ngx_memcpy(cn->sha, sha, 32);
        cn->node.key = ngx_http_credit_auth_cache_key(sha);
        cn->generation = mcf->generation;
        ngx_memcpy(&cn->claims, claims, sizeof(ca_claims));
        ngx_rbtree_insert(&sh->cache, &cn->node);
        ngx_queue_insert_head(&sh->cache_lru, &cn->lru);
        (void) ngx_atomic_fetch_add(&sh->cache_entries, 1);
    }

    ngx_shmtx_unlock(&shpool->mutex);
}
