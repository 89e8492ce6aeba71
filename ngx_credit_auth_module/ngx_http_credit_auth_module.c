/*
 * The module's wiring: its directive table, the handlers and filters it
 * installs, a worker's start and exit.  The configuration itself is made
 * and checked in …_conf.c and …_directives.c.
 */
#include "ngx_http_credit_auth.h"


static ngx_int_t ngx_http_credit_auth_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_credit_auth_init_process(ngx_cycle_t *cycle);
static void ngx_http_credit_auth_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_credit_auth_modes[] = {
    { ngx_string("off"), NGX_HTTP_CREDIT_AUTH_OFF },
    { ngx_string("on"), NGX_HTTP_CREDIT_AUTH_ON },
    { ngx_string("report"), NGX_HTTP_CREDIT_AUTH_REPORT },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_credit_auth_commands[] = {

    { ngx_string("credit_auth_policy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_policy,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_keys"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_keys,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_key_registry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_credit_auth_key_registry,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_banks"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_banks,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_credit_auth_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_audit_stream"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_credit_auth_main_conf_t, stream),
      NULL },

    { ngx_string("credit_auth_audit_spool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_credit_auth_spool,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_audit_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_credit_auth_audit_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_hash_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_hash_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_gateway_id"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_gateway_id,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_mode,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_auth_loc_conf_t, mode),
      &ngx_http_credit_auth_modes },

    { ngx_string("credit_auth_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_auth_loc_conf_t, max_body),
      NULL },

    { ngx_string("credit_auth_client_cert"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_credit_auth_loc_conf_t, client_cert),
      NULL },

    { ngx_string("credit_auth_pass_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_pass_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_realm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_credit_auth_realm,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("credit_auth_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_credit_auth_status,
      0,
      0,
      NULL },

    { ngx_string("credit_auth_revocation_endpoint"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_credit_auth_revocation_endpoint,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_credit_auth_module_ctx = {
    ngx_http_credit_auth_add_variables,    /* preconfiguration */
    ngx_http_credit_auth_postconfiguration, /* postconfiguration */

    ngx_http_credit_auth_create_main_conf, /* create main configuration */
    ngx_http_credit_auth_init_main_conf,   /* init main configuration */

    ngx_http_credit_auth_create_srv_conf,  /* create server configuration */
    ngx_http_credit_auth_merge_srv_conf,   /* merge server configuration */

    ngx_http_credit_auth_create_loc_conf,  /* create location configuration */
    ngx_http_credit_auth_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_credit_auth_module = {
    NGX_MODULE_V1,
    &ngx_http_credit_auth_module_ctx,      /* module context */
    ngx_http_credit_auth_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_credit_auth_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_credit_auth_exit_process,     /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_credit_auth_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_credit_auth_module);

    if (mcf->used) {
        if (mcf->policy == NULL || mcf->banks == NULL
            || (mcf->keys == NULL && !mcf->key_registry))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"credit_auth\" needs credit_auth_policy, "
                               "credit_auth_keys (or credit_auth_key_registry)"
                               " and credit_auth_banks");
            return NGX_ERROR;
        }
        if (mcf->redis_host.len == 0 && mcf->redis_unix.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"credit_auth\" needs credit_auth_redis: "
                               "no audit, no data");
            return NGX_ERROR;
        }
    }

    if (mcf->key_registry && mcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"credit_auth_key_registry\" needs "
                           "credit_auth_zone, where looked-up keys are "
                           "cached");
        return NGX_ERROR;
    }

    if (mcf->status && mcf->shm_zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"credit_auth_status\" needs credit_auth_zone, "
                           "where the counters live");
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_credit_auth_access_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_credit_auth_core_log_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_credit_auth_log_handler;

    return ngx_http_credit_auth_filter_init(cf);
}


/*
 * nginx's cache manager and cache loader run every module's init_process
 * and exit_process too, but serve no request: an audit writer there would
 * open Redis connections, chains and a spool file of its own.
 */
static ngx_uint_t
ngx_http_credit_auth_serves(ngx_http_credit_auth_main_conf_t *mcf)
{
    return mcf != NULL && mcf->used && ngx_process != NGX_PROCESS_HELPER;
}


static ngx_int_t
ngx_http_credit_auth_init_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_auth_redis_hooks_t  hooks;
    ngx_http_credit_auth_main_conf_t   *mcf;

    static const char  *scripts[3];

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_credit_auth_module);
    if (!ngx_http_credit_auth_serves(mcf)) {
        return NGX_OK;
    }

    if (ngx_http_credit_auth_writer_init_process(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_credit_auth_keyreg_init_process(cycle, mcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the connection learns here whom to tell: it never calls up itself */
    scripts[0] = ca_aw_script();
    scripts[1] = mcf->key_registry ? ca_redis_get_script() : NULL;
    scripts[2] = NULL;
    hooks.scripts = scripts;
    hooks.changed = ngx_http_credit_auth_writer_kick;
    hooks.discontinuity = ngx_http_credit_auth_writer_discontinuity;
    hooks.heads_key = ngx_http_credit_auth_writer_heads_key;
    hooks.heads = ngx_http_credit_auth_writer_heads;

    if (ngx_http_credit_auth_redis_check_init(cycle, mcf, &hooks) != NGX_OK) {
        return NGX_ERROR;
    }
    return ngx_http_credit_auth_redis_init_process(cycle, mcf, &hooks);
}


static void
ngx_http_credit_auth_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_credit_auth_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_credit_auth_module);
    if (!ngx_http_credit_auth_serves(mcf)) {
        return;
    }

    /* replies still due come back empty and go to the spool; requests
     * still waiting (only when told to stop at once) are answered before
     * the writer goes, a withdrawal once its revocation job has ended */
    ngx_http_credit_auth_keyreg_exit_process();
    ngx_http_credit_auth_redis_exit_process();
    ngx_http_credit_auth_revoke_exit();
    ngx_http_credit_auth_access_exit();
    ngx_http_credit_auth_writer_exit_process(cycle);
    ngx_http_credit_auth_decide_exit_process();
    ca_md_release();
}
