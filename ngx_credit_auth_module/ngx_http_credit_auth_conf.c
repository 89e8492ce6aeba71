/*
 * The configuration: the main, server and location structures, their
 * defaults, merges and cross-file rules, and the engine files (policy,
 * keys, banks), each read and validated here, at configuration time, so
 * that `nginx -t` reports the file, the JSON path and the reason, and no
 * request ever reads a file.
 */
#include "ngx_http_credit_auth.h"


/* Engine objects live as long as the cycle that loaded them. */

static void
ngx_http_credit_auth_cleanup_conf(void *data)
{
    ngx_http_credit_auth_main_conf_t  *mcf = data;

    if (mcf->policy) {
        ca_policy_free(mcf->policy);
    }
    if (mcf->keys) {
        ca_keyset_free(mcf->keys);
    }
    if (mcf->banks) {
        ca_banks_free(mcf->banks);
    }
    if (mcf->audit_key) {
        EVP_PKEY_free(mcf->audit_key);
    }
    if (mcf->hash_key) {
        OPENSSL_cleanse(mcf->hash_key, mcf->hash_key_len);
    }
}


void *
ngx_http_credit_auth_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t                *cln;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_auth_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    mcf->redis_port = NGX_CONF_UNSET;
    mcf->redis_db = NGX_CONF_UNSET;
    mcf->connect_timeout = NGX_CONF_UNSET_MSEC;
    mcf->command_timeout = NGX_CONF_UNSET_MSEC;
    mcf->max_inflight = NGX_CONF_UNSET_UINT;
    mcf->durability = NGX_CONF_UNSET_UINT;
    mcf->wait_timeout = NGX_CONF_UNSET_MSEC;
    mcf->checkpoint_interval = NGX_CONF_UNSET_MSEC;
    mcf->spool_max = NGX_CONF_UNSET;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }
    cln->handler = ngx_http_credit_auth_cleanup_conf;
    cln->data = mcf;

    return mcf;
}


/*
 * The verified-token cache's generation (…_cache.c): a digest of what
 * verifying a token depends on, the policy (its token rules), the keys
 * as loaded and whether the registry is on.  A reload that changes none
 * of them keeps every cached token (the zone survives a reload when its
 * size does); any change verifies each token again once.
 */
static ngx_int_t
ngx_http_credit_auth_generation(ngx_http_credit_auth_main_conf_t *mcf)
{
    u_char        md[32];
    ngx_uint_t    i, ok;
    const char   *alg;
    EVP_MD_CTX   *c;
    ca_key       *k;

    c = EVP_MD_CTX_new();
    if (c == NULL) {
        return NGX_ERROR;
    }
    ok = EVP_DigestInit_ex(c, ca_md_sha256(), NULL) == 1
         && EVP_DigestUpdate(c, mcf->key_registry ? "registry\n" : "file\n",
                             mcf->key_registry ? 9 : 5) == 1;
    if (ok && mcf->policy) {
        ok = EVP_DigestUpdate(c, mcf->policy->sha256,
                              ngx_strlen(mcf->policy->sha256) + 1) == 1;
    }
    for (i = 0; ok && mcf->keys && i < mcf->keys->n; i++) {
        k = &mcf->keys->keys[i];
        alg = ca_alg_name(k->alg);
        ok = EVP_DigestUpdate(c, k->kid, ngx_strlen(k->kid) + 1) == 1
             && EVP_DigestUpdate(c, k->uscc, ngx_strlen(k->uscc) + 1) == 1
             && EVP_DigestUpdate(c, alg, ngx_strlen(alg) + 1) == 1
             && EVP_DigestUpdate(c, k->pem, k->pem_len) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(c, md, NULL) == 1;
    EVP_MD_CTX_free(c);
    if (!ok) {
        return NGX_ERROR;
    }
    ngx_memcpy(&mcf->generation, md, sizeof(mcf->generation));
    return NGX_OK;
}


char *
ngx_http_credit_auth_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    size_t   i, j;
    u_char   host[256];

    ngx_conf_init_msec_value(mcf->connect_timeout, 1000);
    ngx_conf_init_msec_value(mcf->command_timeout, 1000);
    ngx_conf_init_uint_value(mcf->max_inflight, 1024);
    /* fail closed: an unverified Redis takes no decision (contract §7.1) */
    ngx_conf_init_uint_value(mcf->durability, CA_DURABLE_AOF);
    ngx_conf_init_msec_value(mcf->wait_timeout, 500);
    ngx_conf_init_msec_value(mcf->checkpoint_interval, 1000);
    ngx_conf_init_value(mcf->redis_db, 0);
    if (mcf->spool_max == NGX_CONF_UNSET) {
        /* about 45 min of refusals at 300 requests/s on one worker, at
         * the 1.3 KB a refused request spools (docs/configuration.md) */
        mcf->spool_max = 1024 * 1024 * 1024;
    }

    /* tokens verified under other keys or rules are verified again */
    if (ngx_http_credit_auth_generation(mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (mcf->stream.len == 0) {
        ngx_str_set(&mcf->stream, "credit:audit");
    }

    if (mcf->gateway_id.len == 0) {
        if (gethostname((char *) host, sizeof(host) - 1) != 0) {
            ngx_cpystrn(host, (u_char *) "gateway", sizeof(host));
        }
        host[sizeof(host) - 1] = '\0';
        if (!ca_is_token_chars((char *) host,
                               NGX_HTTP_CREDIT_AUTH_GATEWAY_ID_MAX))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "the host name is not a usable gateway id "
                               "(1 to %d characters of [A-Za-z0-9._-]): "
                               "set credit_auth_gateway_id",
                               NGX_HTTP_CREDIT_AUTH_GATEWAY_ID_MAX);
            return NGX_CONF_ERROR;
        }
        /* with its NUL: audit entries take it as a C string */
        mcf->gateway_id.len = ngx_strlen(host);
        mcf->gateway_id.data = ngx_pstrdup(cf->pool, &(ngx_str_t) {
                                               mcf->gateway_id.len + 1,
                                               host });
        if (mcf->gateway_id.data == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* Cross-file rules: a bank may only narrow to purposes the policy
     * knows; a policy that hashes needs the key to hash with. */
    if (mcf->policy && mcf->banks) {
        for (i = 0; i < mcf->banks->n; i++) {
            ca_bank *b = &mcf->banks->banks[i];
            for (j = 0; j < b->n_purposes; j++) {
                if (!ca_policy_knows_purpose(mcf->policy, b->purposes[j])) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "%V: $.banks[%uz].purposes[%uz]: "
                                       "purpose \"%s\" is not in the "
                                       "policy %V", &mcf->banks_file, i, j,
                                       b->purposes[j], &mcf->policy_file);
                    return NGX_CONF_ERROR;
                }
            }
        }
    }

    if (mcf->policy && mcf->hash_key == NULL) {
        for (i = 0; i < mcf->policy->n_categories; i++) {
            ca_category *c = &mcf->policy->categories[i];
            for (j = 0; j < c->n_fields; j++) {
                if (c->fields[j].masked.kind == CA_TREAT_HASH
                    || c->fields[j].raw.kind == CA_TREAT_HASH)
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "%V: field \"%s\" of category "
                                       "\"%s\" uses \"hash\" but no "
                                       "credit_auth_hash_key is set",
                                       &mcf->policy_file, c->fields[j].path,
                                       c->name);
                    return NGX_CONF_ERROR;
                }
            }
        }
    }

    return NGX_CONF_OK;
}


void *
ngx_http_credit_auth_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_credit_auth_srv_conf_t  *scf;

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_auth_srv_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    scf->on = NGX_CONF_UNSET;

    return scf;
}


/*
 * Tokens up to 16 KB are accepted (docs/keys.md): the Authorization line
 * must fit in one of nginx's large header buffers, 8k by default.  A
 * smaller setting would turn a valid consent into nginx's 400.
 */
#define NGX_HTTP_CREDIT_AUTH_HEADER_BUFFER  (32 * 1024)

char *
ngx_http_credit_auth_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_credit_auth_srv_conf_t  *prev = parent;
    ngx_http_credit_auth_srv_conf_t  *conf = child;

    ngx_http_core_srv_conf_t  *cscf;

    ngx_conf_merge_value(conf->on, prev->on, 0);

    if (conf->on) {
        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
        if (cscf->large_client_header_buffers.size
            < NGX_HTTP_CREDIT_AUTH_HEADER_BUFFER)
        {
            cscf->large_client_header_buffers.size =
                NGX_HTTP_CREDIT_AUTH_HEADER_BUFFER;
        }
        if (cscf->large_client_header_buffers.num < 4) {
            cscf->large_client_header_buffers.num = 4;
        }
    }

    return NGX_CONF_OK;
}


void *
ngx_http_credit_auth_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_credit_auth_loc_conf_t  *lcf;

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_credit_auth_loc_conf_t));
    if (lcf == NULL) {
        return NULL;
    }

    lcf->mode = NGX_CONF_UNSET_UINT;
    lcf->max_body = NGX_CONF_UNSET_SIZE;
    lcf->client_cert = NGX_CONF_UNSET_PTR;
    lcf->pass_headers = NGX_CONF_UNSET_PTR;

    return lcf;
}


char *
ngx_http_credit_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_credit_auth_loc_conf_t  *prev = parent;
    ngx_http_credit_auth_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_uint_value(conf->mode, prev->mode,
                              NGX_HTTP_CREDIT_AUTH_OFF);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body,
                              1024 * 1024);
    ngx_conf_merge_ptr_value(conf->client_cert, prev->client_cert, NULL);
    ngx_conf_merge_ptr_value(conf->pass_headers, prev->pass_headers, NULL);
    ngx_conf_merge_str_value(conf->realm, prev->realm, "credit-auth");

    /*
     * A verification body is read into memory in the access phase; nginx's
     * default buffer (8k on x86-64) would send a larger one to a temporary
     * file, which the module does not read (no file I/O per request).
     * The core module's settings are merged before ours.
     */
    if (conf->revocation_endpoint) {
        /* a withdrawal (a JWS of up to CA_TOKEN_MAX bytes) too */
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        if (clcf->client_body_buffer_size < CA_TOKEN_MAX + 1024) {
            clcf->client_body_buffer_size = CA_TOKEN_MAX + 1024;
        }
    }

    if (conf->mode != NGX_HTTP_CREDIT_AUTH_OFF) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        if (clcf->client_body_buffer_size < CA_CHECKS_BODY_MAX) {
            clcf->client_body_buffer_size = CA_CHECKS_BODY_MAX;
        }

        /* the upstream modules merged theirs before ours (module order) */
        ngx_http_credit_auth_ignore_xaccel(cf);
    }

    return NGX_CONF_OK;
}


char *
ngx_http_credit_auth_mode(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                              *rv;
    ngx_http_credit_auth_loc_conf_t   *lcf = conf;
    ngx_http_credit_auth_srv_conf_t   *scf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    rv = ngx_conf_set_enum_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (lcf->mode != NGX_HTTP_CREDIT_AUTH_OFF) {
        mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_credit_auth_module);
        mcf->used = 1;
        scf = ngx_http_conf_get_module_srv_conf(cf,
                                                ngx_http_credit_auth_module);
        scf->on = 1;
    }

    return NGX_CONF_OK;
}


/* Loads one engine file now, so that nginx -t names what is wrong. */
char *
ngx_http_credit_auth_file_arg(ngx_conf_t *cf, ngx_str_t *file)
{
    ngx_str_t  *value = cf->args->elts;

    if (file->len) {
        return "is duplicate";
    }

    *file = value[1];
    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_credit_auth_policy(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    char      *rv;
    ca_error   err;

    rv = ngx_http_credit_auth_file_arg(cf, &mcf->policy_file);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mcf->policy = ca_policy_load((char *) mcf->policy_file.data, &err);
    if (mcf->policy == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid policy: %s",
                           err.text);
        return NGX_CONF_ERROR;
    }

    /* the audit's `policy` field, the same in every decision */
    mcf->policy_field.len = ngx_strlen(mcf->policy->version) + 1
                            + ngx_strlen(mcf->policy->sha256);
    mcf->policy_field.data = ngx_pnalloc(cf->pool, mcf->policy_field.len);
    if (mcf->policy_field.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_sprintf(mcf->policy_field.data, "%s %s", mcf->policy->version,
                mcf->policy->sha256);

    return NGX_CONF_OK;
}


char *
ngx_http_credit_auth_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    char      *rv;
    ca_error   err;

    rv = ngx_http_credit_auth_file_arg(cf, &mcf->keys_file);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mcf->keys = ca_keyset_load((char *) mcf->keys_file.data, &err);
    if (mcf->keys == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid keys: %s",
                           err.text);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_credit_auth_banks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    char      *rv;
    ca_error   err;

    rv = ngx_http_credit_auth_file_arg(cf, &mcf->banks_file);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    mcf->banks = ca_banks_load((char *) mcf->banks_file.data, &err);
    if (mcf->banks == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid banks: %s",
                           err.text);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
