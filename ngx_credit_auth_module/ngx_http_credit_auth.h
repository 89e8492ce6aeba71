/*
 * ngx_http_credit_auth_module: nginx glue around libcreditauth.
 *
 * One request flows one way (ENGINEERING §1):
 *   access phase   identify bank, match route, verify token, check
 *                  purpose/category/mode, write the decision entry and wait
 *                  for Redis to acknowledge it         (…_access.c)
 *   upstream       proxy_pass, without Range/If-* and
 *                  X-Accel-* controls                   (…_headers.c)
 *   header filter  hold the headers; only the gateway's
 *                  own reach the bank                   (…_filter.c)
 *   body filter    buffer, parse, filter or verify, re-serialise
 *   log phase      outcome entry                        (…_audit.c)
 */
#ifndef NGX_HTTP_CREDIT_AUTH_H
#define NGX_HTTP_CREDIT_AUTH_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <creditauth.h>

#define NGX_HTTP_CREDIT_AUTH_OFF     0
#define NGX_HTTP_CREDIT_AUTH_ON      1
#define NGX_HTTP_CREDIT_AUTH_REPORT  2


#define NGX_HTTP_CREDIT_AUTH_LABELS          512
#define NGX_HTTP_CREDIT_AUTH_AUDIT_SENT      0
#define NGX_HTTP_CREDIT_AUTH_AUDIT_ACKED     1
#define NGX_HTTP_CREDIT_AUTH_AUDIT_FAILED    2
#define NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS  3


typedef struct {
    ngx_uint_t                  kind;
    char                        name[CA_CODE_MAX + 1];
    ngx_atomic_t                count;
} ngx_http_credit_auth_label_t;


/* A verified token: keyed by the SHA-256 of its bytes. */
typedef struct {
    ngx_rbtree_node_t           node;       /* key: first bytes of sha */
    ngx_queue_t                 lru;
    u_char                      sha[32];
    uint64_t                    generation;
    ca_claims                   claims;
} ngx_http_credit_auth_cache_node_t;


/* The shared zone (credit_auth_zone): counters and the token cache. */
typedef struct {
    ngx_atomic_t                allow;
    ngx_atomic_t                deny;
    ngx_atomic_t                report;
    ngx_atomic_t                reasons[CA_REASON_COUNT];
    ngx_atomic_t                report_reasons[CA_REASON_COUNT];
    ngx_atomic_t                audit[NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS];
    ngx_atomic_t                cache_hits;
    ngx_atomic_t                cache_misses;
    ngx_atomic_t                cache_entries;
    ngx_atomic_t                cache_evictions;
    ngx_rbtree_t                cache;
    ngx_rbtree_node_t           cache_sentinel;
    ngx_queue_t                 cache_lru;
    ngx_atomic_t                n_labels;
    ngx_http_credit_auth_label_t  labels[NGX_HTTP_CREDIT_AUTH_LABELS];
} ngx_http_credit_auth_shctx_t;

typedef struct {
    ca_policy                  *policy;
    ca_keyset                  *keys;
    ca_banks                   *banks;
    ngx_str_t                   policy_file;
    ngx_str_t                   keys_file;
    ngx_str_t                   banks_file;

    /* Redis: an IP literal resolved at configuration time, or a socket */
    ngx_str_t                   redis_host;     /* "" when unset */
    ngx_int_t                   redis_port;
    ngx_str_t                   redis_unix;
    ngx_str_t                   redis_password;
    ngx_int_t                   redis_db;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  command_timeout;
    ngx_uint_t                  max_inflight;

    ngx_str_t                   stream;
    ngx_str_t                   spool_path;
    off_t                       spool_max;
    ngx_str_t                   audit_key_file;
    EVP_PKEY                   *audit_key;
    ngx_msec_t                  checkpoint_interval;
    ngx_str_t                   gateway_id;

    ngx_str_t                   hash_key_file;
    u_char                     *hash_key;
    size_t                      hash_key_len;

    ngx_shm_zone_t             *shm_zone;
    uint64_t                    generation;     /* of this configuration */
    ngx_flag_t                  used;           /* credit_auth on anywhere */
    ngx_flag_t                  status;         /* credit_auth_status used */
} ngx_http_credit_auth_main_conf_t;


/* A server where credit_auth is on somewhere: nginx's own refusals
 * (before any location) become problem+json there. */
typedef struct {
    ngx_flag_t                  on;
} ngx_http_credit_auth_srv_conf_t;


typedef struct {
    ngx_uint_t                  mode;
    size_t                      max_body;
    ngx_http_complex_value_t   *client_cert;    /* RFC 9440, off if NULL */
    ngx_array_t                *pass_headers;   /* of ngx_str_t, lowercase */
} ngx_http_credit_auth_loc_conf_t;


typedef enum {
    NGX_HTTP_CREDIT_AUTH_NEW = 0,
    NGX_HTTP_CREDIT_AUTH_READING_BODY,
    NGX_HTTP_CREDIT_AUTH_WAITING,               /* for the decision ack */
    NGX_HTTP_CREDIT_AUTH_RETRY,                 /* Redis connected: again */
    NGX_HTTP_CREDIT_AUTH_ALLOWED,
    NGX_HTTP_CREDIT_AUTH_REFUSED,
} ngx_http_credit_auth_state_e;


typedef struct ngx_http_credit_auth_pending_s  ngx_http_credit_auth_pending_t;

typedef struct {
    ngx_http_credit_auth_state_e  state;
    ca_reason                   reason;
    char                        detail[256];

    ngx_str_t                   rid;
    ngx_str_t                   method;         /* as the bank sent it */
    const ca_bank              *bank;
    u_char                      cert_sha256[32];
    unsigned                    has_cert:1;
    unsigned                    report:1;       /* credit_auth report */
    unsigned                    raw:1;          /* raw level granted */
    unsigned                    want_raw:1;
    unsigned                    verify:1;       /* verification mode */
    unsigned                    has_claims:1;
    unsigned                    in_access:1;
    unsigned                    decided:1;      /* decision entry written */
    unsigned                    acked_ok:1;
    ngx_event_t                 resume;         /* after the Redis reply */
    ngx_queue_t                 parked;         /* waiting for a connection */
    unsigned                    is_parked:1;
    unsigned                    waited_for_redis:1;
    unsigned                    gone_handler:1;
    unsigned                    core:1;         /* refused by nginx itself */
    unsigned                    redirected:1;   /* internally, after us */

    const ca_category          *category;
    char                        uscc[19];
    ngx_str_t                   purpose;
    ca_claims                  *claims;
    ca_checks                  *checks;

    ngx_http_credit_auth_pending_t  *pending;

    /* response filter */
    unsigned                    filtering:1;    /* headers held */
    unsigned                    done:1;         /* our last buffer sent */
    ca_reason                   filter_reason;
    const char                 *cause;          /* why upstream_invalid */
    void                      (*upstream_finalize)(ngx_http_request_t *r,
                                                   ngx_int_t rc);
    ngx_chain_t                *body;
    ngx_chain_t               **body_last;
    size_t                      body_len;
    off_t                       bytes_out;
    char                       *disclosed;
    char                       *masked;
    size_t                      withheld;
} ngx_http_credit_auth_ctx_t;


extern ngx_module_t  ngx_http_credit_auth_module;

/* …_access.c */
ngx_int_t ngx_http_credit_auth_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_credit_auth_send_problem(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason);
ngx_buf_t *ngx_http_credit_auth_problem_body(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason);
ngx_table_elt_t *ngx_http_credit_auth_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);
ngx_int_t ngx_http_credit_auth_set_request_id(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);

ngx_http_credit_auth_ctx_t *ngx_http_credit_auth_get_ctx(
    ngx_http_request_t *r);
ngx_int_t ngx_http_credit_auth_keep_ctx(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);

/* …_headers.c: what crosses besides the body (SPEC §2.1) */
ngx_table_elt_t *ngx_http_credit_auth_header(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_uint_t ngx_http_credit_auth_header_count(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_int_t ngx_http_credit_auth_strip_request(ngx_http_request_t *r);
ngx_int_t ngx_http_credit_auth_own_headers(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *disclosure);
void ngx_http_credit_auth_drop_header(ngx_http_request_t *r,
    const char *name, size_t len);
char *ngx_http_credit_auth_pass_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_credit_auth_ignore_xaccel(ngx_conf_t *cf);

/* …_filter.c */
ngx_int_t ngx_http_credit_auth_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_credit_auth_core_log_handler(ngx_http_request_t *r);

/* …_redis.c: one async connection per worker */
typedef void (*ngx_http_credit_auth_reply_pt)(void *data, void *reply);

ngx_int_t ngx_http_credit_auth_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
void ngx_http_credit_auth_redis_exit_process(void);
ngx_int_t ngx_http_credit_auth_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler,
    void *data);
ngx_uint_t ngx_http_credit_auth_redis_ready(void);
ngx_uint_t ngx_http_credit_auth_redis_connecting(void);
ngx_uint_t ngx_http_credit_auth_redis_inflight(void);

/* …_audit.c */
ngx_int_t ngx_http_credit_auth_audit_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
void ngx_http_credit_auth_audit_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
ngx_int_t ngx_http_credit_auth_log_handler(ngx_http_request_t *r);
const char *ngx_http_credit_auth_audit_script(ngx_uint_t i);
void ngx_http_credit_auth_audit_redis_changed(void);
void ngx_http_credit_auth_decision_acked(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_int_t ok);

/* …_status.c: counters in the shared zone */
typedef enum {
    NGX_HTTP_CREDIT_AUTH_LABEL_BANK = 0,
    NGX_HTTP_CREDIT_AUTH_LABEL_CATEGORY,
    NGX_HTTP_CREDIT_AUTH_LABEL_PURPOSE,
    NGX_HTTP_CREDIT_AUTH_LABEL_KINDS
} ngx_http_credit_auth_label_e;

ngx_int_t ngx_http_credit_auth_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_http_credit_auth_shctx_t *ngx_http_credit_auth_shared(
    ngx_slab_pool_t **shpool);

/* …_cache.c: verified-token cache */
void ngx_http_credit_auth_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
ngx_int_t ngx_http_credit_auth_cache_get(const u_char sha[32],
    ca_claims *claims);
void ngx_http_credit_auth_cache_put(const u_char sha[32],
    const ca_claims *claims);
void ngx_http_credit_auth_count_decision(ngx_http_credit_auth_ctx_t *ctx);
void ngx_http_credit_auth_count_audit(ngx_uint_t what);
void ngx_http_credit_auth_count_reason(ca_reason reason);
char *ngx_http_credit_auth_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

#endif /* NGX_HTTP_CREDIT_AUTH_H */
