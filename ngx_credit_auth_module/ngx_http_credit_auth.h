/*
 * ngx_http_credit_auth_module: nginx glue around libcreditauth.
 *
 * One request flows one way (ENGINEERING §1):
 *   access phase   identify bank, match route, verify token, check
 *                  purpose/category/mode                (…_decide.c),
 *                  write the decision entry and wait
 *                  for Redis to acknowledge it          (…_access.c)
 *   upstream       proxy_pass, without Range/If-* and
 *                  X-Accel-* controls                   (…_headers.c)
 *   header filter  hold the headers; only the gateway's
 *                  own reach the bank                   (…_filter.c)
 *   body filter    buffer, then filter or verify        (…_rewrite.c)
 *   log phase      outcome entry                        (…_audit.c)
 *
 * Calls flow one way, from the top down: a file names functions of lower
 * layers only (tests/integration/test_build_hygiene.py reads this list).
 * A lower file reaches a higher one only through a callback it was given.
 *
 *    1 module                       the wiring: names any file
 *    2 directives status variables  the other entry points, and the
 *    2 withdraw                     enterprise's withdrawal endpoint
 *    3 conf
 *    4 access filter                the request's phases
 *    5 decide rewrite response      what they decide and answer
 *    6 audit keyreg headers cache   entries, keys, headers, token cache,
 *    6 revoke                       a revocation in force, then audited
 *    7 writer keycache pass
 *    8 redis                        Redis I/O: the session's actions
 *                                  (lib/redis/session.h decides)
 *    9 redis_wait redis_mem redis_epoch  waiters, memory, epoch file,
 *    9 redis_ship                   the archive's shipper's lag
 *   11 hiredis
 *   12 ctx zone                     the request's ctx, shared memory
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
#define NGX_HTTP_CREDIT_AUTH_AUDIT_REPLAYED  3
#define NGX_HTTP_CREDIT_AUTH_AUDIT_REPLAY_FAILED  4
#define NGX_HTTP_CREDIT_AUTH_AUDIT_UNEXPECTED  5
#define NGX_HTTP_CREDIT_AUTH_AUDIT_DISCONTINUITIES  6
#define NGX_HTTP_CREDIT_AUTH_AUDIT_REFUSED   7   /* -OOM, -NOREPLICAS */
#define NGX_HTTP_CREDIT_AUTH_AUDIT_COUNTERS  8
#define NGX_HTTP_CREDIT_AUTH_WRITERS         64

/* Conditions said once in the error log, then counted (…_zone.c): the
 * status page's `events`. */
typedef enum {
    NGX_HTTP_CREDIT_AUTH_EV_REDIS_DOWN = 0,     /* an attempt failed */
    NGX_HTTP_CREDIT_AUTH_EV_REDIS_LOADING,      /* refused: loading */
    NGX_HTTP_CREDIT_AUTH_EV_REDIS_NOT_WRITABLE, /* READONLY, NOREPLICAS */
    NGX_HTTP_CREDIT_AUTH_EV_WAIT_SHORT,         /* WAIT: too few replicas */
    NGX_HTTP_CREDIT_AUTH_EV_KID_TWICE,          /* in the file and registry */
    NGX_HTTP_CREDIT_AUTH_EVENTS
} ngx_http_credit_auth_event_e;

/* Redis's memory (…_redis_mem.c) */
#define NGX_HTTP_CREDIT_AUTH_MEM_UNKNOWN   0
#define NGX_HTTP_CREDIT_AUTH_MEM_OK        1
#define NGX_HTTP_CREDIT_AUTH_MEM_HIGH      2    /* from 80 % of maxmemory */
#define NGX_HTTP_CREDIT_AUTH_MEM_FULL      3    /* writes refused (-OOM) */
#define NGX_HTTP_CREDIT_AUTH_MEM_EVICTING  4    /* a policy that evicts */

typedef struct {
    ngx_atomic_t                state;
    ngx_atomic_t                used;           /* used_memory */
    ngx_atomic_t                max;            /* maxmemory, 0: none */
    ngx_atomic_t                seen;           /* when, Unix seconds */
    char                        policy[32];     /* maxmemory-policy */
} ngx_http_credit_auth_redismem_t;

/* The archive's shipper as the session last read its hash
 * (…_redis_ship.c): lag_ms and age_ms as ngx_atomic_int_t, -1 unknown. */
typedef struct {
    ngx_atomic_t                state;          /* CA_RS_SHIP_* + 1; 0:
                                                   not read yet */
    ngx_atomic_t                lag_ms;
    ngx_atomic_t                age_ms;         /* when read */
    ngx_atomic_t                seen_ms;        /* read, Unix ms */
    char                        archived_id[48];
    char                        why[96];
} ngx_http_credit_auth_redisship_t;


/* Latency histograms: upper bounds in microseconds, then +Inf. */
#define NGX_HTTP_CREDIT_AUTH_BUCKET_BOUNDS                                   \
    250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,         \
    500000, 1000000, 2500000, 5000000, 10000000
#define NGX_HTTP_CREDIT_AUTH_BUCKETS         16
#define NGX_HTTP_CREDIT_AUTH_HIST_DECISION   0
#define NGX_HTTP_CREDIT_AUTH_HIST_UPSTREAM   1
#define NGX_HTTP_CREDIT_AUTH_HISTS           2


/* What a worker's audit writer reports (…_writer.c -> …_zone.c). */
typedef struct {
    uint64_t                    spool_bytes;
    int64_t                     spool_oldest_ms;    /* ts of its oldest */
    uint64_t                    sent;
    uint64_t                    acked;
    uint64_t                    failed;
    uint64_t                    replayed;
    uint64_t                    replay_failed;
    uint64_t                    unexpected;
    uint64_t                    discontinuities;
    uint64_t                    refused;
} ngx_http_credit_auth_wstate_t;

typedef struct {
    ngx_atomic_t                pid;            /* 0: free */
    ngx_http_credit_auth_wstate_t  state;
} ngx_http_credit_auth_wslot_t;


typedef struct {
    ngx_uint_t                  kind;
    char                        name[CA_CODE_MAX + 1];
    ngx_atomic_t                count;
} ngx_http_credit_auth_label_t;


/* Per bucket, not cumulative: the status page adds them up. */
typedef struct {
    ngx_atomic_t                bucket[NGX_HTTP_CREDIT_AUTH_BUCKETS];
    ngx_atomic_t                count;
    ngx_atomic_t                sum_us;
} ngx_http_credit_auth_hist_t;


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
    ngx_http_credit_auth_hist_t   hist[NGX_HTTP_CREDIT_AUTH_HISTS];
    ngx_rbtree_t                cache;
    ngx_rbtree_node_t           cache_sentinel;
    void                       *keycache;       /* …_keycache.c */
    ngx_queue_t                 cache_lru;
    ngx_atomic_t                n_labels;
    ngx_http_credit_auth_label_t  labels[NGX_HTTP_CREDIT_AUTH_LABELS];
    ngx_http_credit_auth_wslot_t  writers[NGX_HTTP_CREDIT_AUTH_WRITERS];
    /* platform headers not passed: their value looked personal */
    ngx_atomic_t                pass_dropped;
    ngx_atomic_t                events[NGX_HTTP_CREDIT_AUTH_EVENTS];
    ngx_http_credit_auth_redismem_t  redis_mem;
    ngx_http_credit_auth_redisship_t  redis_ship;
} ngx_http_credit_auth_shctx_t;

typedef struct {
    ca_policy                  *policy;
    ngx_str_t                   policy_field;   /* "<version> <sha256>" */
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
    /* sentinel=IP:PORT,...: the primary is asked of these (redis_host
     * then names the first, so that "is Redis configured" holds) */
    ngx_array_t                *sentinels;      /* of ..._sentinel_addr_t */
    ngx_str_t                   sentinel_master;
    ngx_msec_t                  connect_timeout;
    ngx_msec_t                  command_timeout;
    ngx_uint_t                  max_inflight;
    ngx_uint_t                  durability;     /* CA_DURABLE_* */
    ngx_uint_t                  wait_replicas;  /* durability=replicas:N */
    ngx_msec_t                  wait_timeout;

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

    /* credit_auth_key_registry (…_keyreg.c) */
    ngx_flag_t                  key_registry;
    ngx_uint_t                  keyreg_entries;
    time_t                      keyreg_ttl;
    time_t                      keyreg_negative_ttl;
    ngx_msec_t                  keyreg_poll;

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
    ngx_str_t                   realm;          /* of WWW-Authenticate */
    ngx_flag_t                  revocation_endpoint;
    ca_keyset                  *platform_keys;  /* …_withdraw.c */
} ngx_http_credit_auth_loc_conf_t;


typedef enum {
    NGX_HTTP_CREDIT_AUTH_NEW = 0,
    NGX_HTTP_CREDIT_AUTH_READING_BODY,
    NGX_HTTP_CREDIT_AUTH_WAITING,               /* for the audit writer */
    NGX_HTTP_CREDIT_AUTH_KEY_WAIT,              /* for a registry key */
    NGX_HTTP_CREDIT_AUTH_ALLOWED,
    NGX_HTTP_CREDIT_AUTH_REFUSED,
} ngx_http_credit_auth_state_e;


/* Someone waiting for an audit entry's fate (…_writer.c). */
typedef struct ngx_http_credit_auth_waiter_s  ngx_http_credit_auth_waiter_t;

struct ngx_http_credit_auth_waiter_s {
    void                      (*handler)(ngx_http_credit_auth_waiter_t *w,
                                         int outcome, ca_reason reason);
    ca_aw_job                  *job;
};

/* Someone waiting for the worker's Redis connection to be ready, or for
 * the attempt under way to fail (…_redis.c). */
typedef struct ngx_http_credit_auth_redis_waiter_s
    ngx_http_credit_auth_redis_waiter_t;

struct ngx_http_credit_auth_redis_waiter_s {
    ngx_queue_t                 queue;
    void                      (*handler)(
                                    ngx_http_credit_auth_redis_waiter_t *w);
    unsigned                    queued:1;
};

/*
 * The request's ctx: what the request is (its id, its state, its refusal),
 * and one part per lifecycle, each written only by the file that drives
 * it (the others read it, or call that file's functions;
 * tests/integration/test_layers.py checks the assignments):
 *
 *   decision   …_decide.c    who asks, for what, under which consent
 *   hold       …_ctx.c       held while waiting, woken by a posted event
 *   key        …_keyreg.c    a registry key being fetched
 *   audit      …_audit.c     the decision entry on its way, and its fate
 *   response   …_filter.c    the platform's answer, buffered and sent
 */

/* What the request alone decides (…_decide.c). */
typedef struct {
    const ca_bank              *bank;
    u_char                      cert_sha256[32];
    const ca_category          *category;
    char                        uscc[19];
    ngx_str_t                   purpose;
    /* the purpose as a C string, once, if the policy knows it; else "" */
    char                        purpose_code[CA_CODE_MAX + 1];
    ca_claims                  *claims;
    ca_checks                  *checks;         /* a verification's */
    unsigned                    has_cert:1;
    unsigned                    verify:1;       /* verification mode */
    unsigned                    want_raw:1;
    unsigned                    raw:1;          /* raw level granted */
    unsigned                    has_claims:1;
} ngx_http_credit_auth_decision_t;

/*
 * Waiting on Redis (…_ctx.c): the access handler returns NGX_DONE with
 * the request held once (`held`); whoever ends the wait posts `wake`, and
 * the access handler, run again by it (or by any event of the client's
 * connection first), releases the hold when it takes the answer.  `conn`:
 * parked until the worker's connection is ready or its attempt failed;
 * the wait it was parked for sees it no longer queued.
 */
typedef struct {
    ngx_event_t                 wake;
    ngx_http_credit_auth_redis_waiter_t  conn;
    ngx_queue_t                 queue;          /* …_ctx.c's list */
    unsigned                    held:1;
} ngx_http_credit_auth_hold_t;

/* A registry key being fetched (…_keyreg.c). */
typedef struct {
    ngx_queue_t                 queue;          /* in its fetch's waiters */
    unsigned                    fetching:1;     /* in that queue */
    unsigned                    parked:1;       /* for the connection, once */
    unsigned                    fetched:1;      /* asked: no second GET */
    unsigned                    cleanup:1;
} ngx_http_credit_auth_key_wait_t;

/* The decision entry on its way, and its fate (…_audit.c). */
typedef struct {
    ngx_http_credit_auth_waiter_t  waiter;
    ca_reason                   reason;         /* the script's refusal */
    unsigned                    outcome:3;      /* CA_AW_*, once settled */
    unsigned                    settled:1;      /* the writer answered */
    unsigned                    parked:1;       /* for the connection */
    unsigned                    waited:1;       /* parked once already */
    unsigned                    cleanup:1;
    unsigned                    decided:1;      /* an outcome entry follows */
} ngx_http_credit_auth_audit_wait_t;

/* The platform's answer, held and sent (…_filter.c); what it disclosed
 * (…_rewrite.c makes it, the filter keeps it). */
typedef struct {
    unsigned                    filtering:1;    /* headers held */
    unsigned                    last_sent:1;    /* our last buffer is out */
    void                      (*upstream_finalize)(ngx_http_request_t *r,
                                                   ngx_int_t rc);
    u_char                     *body;           /* the platform's body, */
    size_t                      body_len;       /* held in one piece */
    size_t                      body_cap;
    size_t                      body_hint;      /* its Content-Length */
    off_t                       bytes_out;
    char                       *disclosed;
    char                       *masked;
    size_t                      withheld;
    ca_checks_tally             tally;          /* the checks' answers */
    const char                 *disclosure;     /* X-Credit-Disclosure */
} ngx_http_credit_auth_response_t;

typedef struct {
    ngx_http_credit_auth_state_e  state;
    ngx_str_t                   rid;
    ngx_str_t                   method;         /* as the bank sent it */
    uint64_t                    start_us;       /* access phase, monotonic */

    /* the refusal, written by whichever step refuses: of the request
     * (reason, detail), or of the platform's answer after an allow
     * (filter_reason, cause: why upstream_invalid) */
    ca_reason                   reason;
    char                        detail[256];
    ca_reason                   filter_reason;
    const char                 *cause;

    unsigned                    report:1;       /* credit_auth report */
    unsigned                    in_access:1;
    unsigned                    core:1;         /* refused by nginx itself */
    unsigned                    redirected:1;   /* internally, after us */
    unsigned                    logged:1;       /* its refusal */

    ngx_http_credit_auth_decision_t    decision;
    ngx_http_credit_auth_hold_t        hold;
    ngx_http_credit_auth_key_wait_t    key;
    ngx_http_credit_auth_audit_wait_t  audit;
    ngx_http_credit_auth_response_t    response;
} ngx_http_credit_auth_ctx_t;


extern ngx_module_t  ngx_http_credit_auth_module;

/* …_access.c: the access phase */
ngx_int_t ngx_http_credit_auth_access_handler(ngx_http_request_t *r);
void ngx_http_credit_auth_access_exit(void);

/* …_decide.c: the decision, from the request alone */
void ngx_http_credit_auth_decide_exit_process(void);
ca_reason ngx_http_credit_auth_decide(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_http_credit_auth_ctx_t *ctx);
ca_reason ngx_http_credit_auth_decide_consent(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx);
ca_reason ngx_http_credit_auth_decide_checks(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, u_char *p, size_t len);
ca_reason ngx_http_credit_auth_verify_jws(ngx_http_request_t *r,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_http_credit_auth_ctx_t *ctx,
    ngx_str_t *token, ca_jws_verify_pt verify, ca_claims *claims);

/* Why, for the problem+json body and the log: ctx->detail, printf-like. */
#define ngx_http_credit_auth_detail(ctx, ...)                                \
    ngx_snprintf((u_char *) (ctx)->detail, sizeof((ctx)->detail) - 1,        \
                 __VA_ARGS__)[0] = '\0'

/* …_ctx.c: the request's ctx, kept across internal redirects */
ngx_http_credit_auth_ctx_t *ngx_http_credit_auth_get_ctx(
    ngx_http_request_t *r);
ngx_int_t ngx_http_credit_auth_keep_ctx(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
ngx_http_credit_auth_ctx_t *ngx_http_credit_auth_find_ctx(
    ngx_http_request_t *r);
/* The wait of a request held by the access handler is over: it runs
 * again (from a posted event, never inside a Redis callback). */
void ngx_http_credit_auth_wake(ngx_http_credit_auth_ctx_t *ctx);
/* Woken, it runs handler instead of the phases. */
void ngx_http_credit_auth_on_wake(ngx_http_credit_auth_ctx_t *ctx,
    ngx_event_handler_pt handler);
ngx_int_t ngx_http_credit_auth_hold(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
void ngx_http_credit_auth_release(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
/* Released where its answer is taken (Connection: close if exiting). */
void ngx_http_credit_auth_resume(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
ngx_http_credit_auth_ctx_t *ngx_http_credit_auth_first_held(void);

/* …_response.c: what the gateway answers of its own */
ngx_int_t ngx_http_credit_auth_send_problem(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason);
ngx_buf_t *ngx_http_credit_auth_problem_body(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ca_reason reason);
ngx_int_t ngx_http_credit_auth_set_request_id(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
char *ngx_http_credit_auth_realm(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* …_headers.c: what crosses besides the body (contract §2.1) */
ngx_table_elt_t *ngx_http_credit_auth_header(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_uint_t ngx_http_credit_auth_header_count(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_table_elt_t *ngx_http_credit_auth_header_n(ngx_http_request_t *r,
    const char *name, size_t len, ngx_uint_t *n);
ngx_int_t ngx_http_credit_auth_strip_request(ngx_http_request_t *r);
ngx_table_elt_t *ngx_http_credit_auth_add_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);
ngx_int_t ngx_http_credit_auth_own_headers(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *disclosure);
void ngx_http_credit_auth_drop_header(ngx_http_request_t *r,
    const char *name, size_t len);
void ngx_http_credit_auth_ignore_xaccel(ngx_conf_t *cf);

/* …_pass.c: the platform's headers the bank may see (contract §2.1) */
char *ngx_http_credit_auth_pass_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_credit_auth_pass_header_ok(ngx_http_request_t *r,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_table_elt_t *h,
    ngx_str_t *rid);
/* Whether name is on the list (case-insensitively); an entry ending in
 * '*' takes every name it begins. */
ngx_uint_t ngx_http_credit_auth_header_in_list(ngx_str_t *list,
    ngx_str_t *name);

/* …_conf.c: the configuration structures and the engine files (used by
 * …_module.c's module context and command table) */
void *ngx_http_credit_auth_create_main_conf(ngx_conf_t *cf);
char *ngx_http_credit_auth_init_main_conf(ngx_conf_t *cf, void *conf);
void *ngx_http_credit_auth_create_srv_conf(ngx_conf_t *cf);
char *ngx_http_credit_auth_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
void *ngx_http_credit_auth_create_loc_conf(ngx_conf_t *cf);
char *ngx_http_credit_auth_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
char *ngx_http_credit_auth_mode(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_file_arg(ngx_conf_t *cf, ngx_str_t *file);
char *ngx_http_credit_auth_policy(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_banks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* …_directives.c (used by …_module.c's command table) */
char *ngx_http_credit_auth_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_spool(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_audit_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_hash_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
/* [A-Za-z0-9._-]{1,64} (docs/configuration.md) */
#define NGX_HTTP_CREDIT_AUTH_GATEWAY_ID_MAX  64
char *ngx_http_credit_auth_gateway_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_credit_auth_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* …_filter.c: the response filters */
ngx_int_t ngx_http_credit_auth_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_credit_auth_core_log_handler(ngx_http_request_t *r);

/* …_rewrite.c: the buffered answer, filtered or verified */
typedef struct {
    ngx_buf_t                  *answer;         /* what the bank receives */
    ca_reason                   refusal;        /* else, why not */
    char                       *disclosed;
    char                       *masked;
    size_t                      withheld;
    ca_checks_tally             tally;
} ngx_http_credit_auth_rewritten_t;

ngx_int_t ngx_http_credit_auth_rewrite(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_http_credit_auth_rewritten_t *rw);

typedef struct {
    u_char                      host[NGX_INET_ADDRSTRLEN + 1];
    ngx_int_t                   port;
} ngx_http_credit_auth_sentinel_addr_t;

/* …_redis.c: one async connection per worker */
typedef void (*ngx_http_credit_auth_reply_pt)(void *data, void *reply);

typedef struct {
    const char                 *const *scripts; /* SCRIPT LOAD on connect */
    void                      (*changed)(void); /* up, or an attempt failed */
    /* Redis came back without what it had acknowledged (contract §7.1) */
    void                      (*discontinuity)(const char *missing,
                                               const char *expected,
                                               const char *found);
    /* the key of this worker's chain heads, and HGETALL's answer (a
     * redisReply) held against what Redis acknowledged: the number of
     * chains behind, listed in expected and found (len bytes each) */
    const char               *(*heads_key)(void);
    ngx_int_t                 (*heads)(void *reply, char *expected,
                                       char *found, size_t len);
} ngx_http_credit_auth_redis_hooks_t;

/* …_redis_epoch.c: the epoch seen before, kept by worker 0 in the
 * spool ("" none yet; NULL: no file here), and written when it moves */
const char *ngx_http_credit_auth_redis_epoch_init(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
ngx_int_t ngx_http_credit_auth_redis_epoch_save(const char *epoch);

ngx_int_t ngx_http_credit_auth_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf,
    const ngx_http_credit_auth_redis_hooks_t *hooks);
void ngx_http_credit_auth_redis_exit_process(void);
ngx_int_t ngx_http_credit_auth_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_credit_auth_reply_pt handler,
    void *data);
ngx_uint_t ngx_http_credit_auth_redis_ready(void);
/*
 * Waits for the connection: NGX_OK, ready now; NGX_AGAIN, an attempt is
 * under way (started now if only the backoff stood in the way) and
 * w->handler runs when it ends, ready or not, within connect_timeout
 * (and the Sentinel lookup); NGX_DECLINED, no attempt to wait for.
 */
ngx_int_t ngx_http_credit_auth_redis_wait(
    ngx_http_credit_auth_redis_waiter_t *w);

/* …_redis_ship.c: the archive's shipper's hash, in the zone, shown. */
char *ngx_http_credit_auth_redis_ship_key(ngx_pool_t *pool,
    ngx_str_t *stream);
void ngx_http_credit_auth_redis_ship_seen(const ca_rs_shipper *sh,
    ngx_log_t *log);
json_t *ngx_http_credit_auth_redis_ship_json(
    ngx_http_credit_auth_shctx_t *sh);
size_t ngx_http_credit_auth_redis_ship_prom(
    ngx_http_credit_auth_shctx_t *sh, char *buf, size_t size);

/* …_redis_mem.c: Redis's memory and maxmemory-policy, in the zone. */
void ngx_http_credit_auth_redis_mem_seen(const ca_redisinfo *ri,
    ngx_log_t *log);

/* …_redis_wait.c: those waiting for the connection */
void ngx_http_credit_auth_redis_waiters_init(void);
void ngx_http_credit_auth_redis_waiters_add(
    ngx_http_credit_auth_redis_waiter_t *w);
void ngx_http_credit_auth_redis_unwait(
    ngx_http_credit_auth_redis_waiter_t *w);
ngx_uint_t ngx_http_credit_auth_redis_waiting(void);
void ngx_http_credit_auth_redis_waiters_wake(void);
ngx_uint_t ngx_http_credit_auth_redis_inflight(void);
/* Why this worker's connection is not ready, or a warning ("": none). */
const char *ngx_http_credit_auth_redis_why(void);
/* Drives a hiredis context from nginx's event loop: its connection, or
 * NULL (the context is freed then). */
ngx_connection_t *ngx_http_credit_auth_redis_attach(void *ac,
    ngx_log_t *log);

/* …_hiredis.c: the Redis session's connections (conn: CA_RS_*, id: the
 * session's), and what hiredis says of them (reply: the session's view,
 * and the redisReply) */
typedef struct {
    void                      (*connected)(int conn, uint64_t id);
    void                      (*closed)(int conn, uint64_t id,
                                        const char *why);
    void                      (*reply)(int conn, uint64_t id,
                                       const ca_rs_reply *r, void *raw);
} ngx_http_credit_auth_hiredis_events_t;

void ngx_http_credit_auth_hiredis_init(
    const ngx_http_credit_auth_hiredis_events_t *ev, ngx_log_t *log);
void ngx_http_credit_auth_hiredis_open(int conn, uint64_t id,
    const char *host, int port, const char *unix_path);
void ngx_http_credit_auth_hiredis_send(int conn, uint64_t id,
    const char *data, size_t len);
void ngx_http_credit_auth_hiredis_close(int conn, uint64_t id,
    ngx_uint_t graceful);

/* …_audit.c: the entries of a request */
ngx_int_t ngx_http_credit_auth_audit_decision(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx);
ngx_uint_t ngx_http_credit_auth_audit_waiting(ngx_http_credit_auth_ctx_t *ctx);
void ngx_http_credit_auth_audit_abandon(ngx_http_credit_auth_ctx_t *ctx);
ngx_int_t ngx_http_credit_auth_log_handler(ngx_http_request_t *r);

/* …_writer.c: the worker's audit writer.  NGX_AGAIN: the waiter is told;
 * NGX_OK: spooled now; NGX_ERROR: neither. */
ngx_int_t ngx_http_credit_auth_writer_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
void ngx_http_credit_auth_writer_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_credit_auth_writer_final(ca_entry *e,
    ngx_http_credit_auth_waiter_t *w);
ngx_int_t ngx_http_credit_auth_writer_decide(ca_entry *e,
    const char *refusal, const ca_aw_check *checks, size_t n,
    ngx_http_credit_auth_waiter_t *w);
ngx_int_t ngx_http_credit_auth_writer_revocation(const char *enterprise,
    const char *jti, const char *by, ngx_http_credit_auth_waiter_t *w);
void ngx_http_credit_auth_writer_detach(ngx_http_credit_auth_waiter_t *w);
ngx_int_t ngx_http_credit_auth_writer_sync(void);
void ngx_http_credit_auth_writer_kick(void);
void ngx_http_credit_auth_writer_discontinuity(const char *missing,
    const char *expected, const char *found);
const char *ngx_http_credit_auth_writer_heads_key(void);
ngx_int_t ngx_http_credit_auth_writer_heads(void *reply, char *expected,
    char *found, size_t len);

/* …_zone.c: the shared zone and its counters */
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
ngx_rbtree_key_t ngx_http_credit_auth_cache_key(const u_char sha[32]);
void ngx_http_credit_auth_cache_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_http_credit_auth_count_decision(ngx_http_credit_auth_ctx_t *ctx);
void ngx_http_credit_auth_count_reason(ca_reason reason);
void ngx_http_credit_auth_count_pass_dropped(void);
void ngx_http_credit_auth_zone_writer(
    const ngx_http_credit_auth_wstate_t *ws);
uint64_t ngx_http_credit_auth_now_us(void);
void ngx_http_credit_auth_observe(ngx_uint_t hist, uint64_t us);

/* A condition of this worker, said once: logged at `level` when it is not
 * the one it said last, counted in the zone's `events` every time. */
typedef struct {
    u_char                      said[256];      /* "": nothing said */
    ngx_uint_t                  times;          /* since it was said */
} ngx_http_credit_auth_note_t;

void ngx_http_credit_auth_note(ngx_http_credit_auth_note_t *n,
    ngx_log_t *log, ngx_uint_t level, ngx_uint_t event,
    const char *fmt, ...);
/* It is over: said once (notice), if anything was said. */
void ngx_http_credit_auth_note_over(ngx_http_credit_auth_note_t *n,
    ngx_log_t *log, const char *what);
void ngx_http_credit_auth_count_event(ngx_uint_t event);

/* …_cache.c: verified-token cache */
ngx_int_t ngx_http_credit_auth_cache_get(const u_char sha[32],
    ca_claims *claims);
void ngx_http_credit_auth_cache_put(const u_char sha[32],
    const ca_claims *claims);

/* …_keycache.c: registry keys in the shared zone, parsed per worker */
typedef struct {
    ngx_uint_t                  found;          /* 0: cached as unknown */
    ngx_uint_t                  malformed;
    ca_keyreg_meta              meta;
    uint32_t                    crc;            /* of the record text */
} ngx_http_credit_auth_keyinfo_t;

ngx_int_t ngx_http_credit_auth_keycache_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
ngx_int_t ngx_http_credit_auth_keycache_get(const char *kid,
    ngx_uint_t allow_stale, ngx_http_credit_auth_keyinfo_t *info);
const ca_key *ngx_http_credit_auth_keycache_key(const char *kid,
    int64_t version, uint32_t crc, ngx_log_t *log);
void ngx_http_credit_auth_keycache_put(const char *kid, uint64_t epoch,
    const ca_keyreg_meta *meta, ngx_uint_t malformed, const char *rec,
    size_t len, ca_key *parsed);
uint64_t ngx_http_credit_auth_keycache_epoch(void);
void ngx_http_credit_auth_keycache_set_epoch(uint64_t epoch, ngx_log_t *log);

/* …_keyreg.c: credit_auth_key_registry, the lookup, the change poller */
char *ngx_http_credit_auth_key_registry(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_credit_auth_keyreg_init_process(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf);
void ngx_http_credit_auth_keyreg_exit_process(void);
void ngx_http_credit_auth_key_abandon(ngx_http_credit_auth_ctx_t *ctx);
ngx_uint_t ngx_http_credit_auth_key_waiting(ngx_http_credit_auth_ctx_t *ctx);
ngx_int_t ngx_http_credit_auth_key_find(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *kid, size_t len,
    const ca_key **key, ca_reason *reason);

/* …_variables.c */
ngx_int_t ngx_http_credit_auth_add_variables(ngx_conf_t *cf);

/* …_withdraw.c: credit_auth_revocation_endpoint (contract §3) */
char *ngx_http_credit_auth_revocation_endpoint(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_credit_auth_withdraw_handler(ngx_http_request_t *r);

/* …_revoke.c: a revocation by the gateway itself, in force and then
 * audited (contract §3): `done` hears CA_OK, CA_REVOCATION_UNAVAILABLE or
 * CA_AUDIT_UNAVAILABLE from a posted event.  NGX_AGAIN: sent; NGX_ERROR:
 * nothing written. */
typedef void (*ngx_http_credit_auth_revoked_pt)(void *data,
    ca_reason reason);

ngx_int_t ngx_http_credit_auth_revoke(const char *enterprise,
    const char *jti, const char *by, time_t until,
    ngx_http_credit_auth_revoked_pt done, void *data, void **handle);
void ngx_http_credit_auth_revoke_detach(void *handle);
/* The worker stops at once, its Redis connection gone: each caller still
 * waiting hears its end now (from here, not a posted event). */
void ngx_http_credit_auth_revoke_exit(void);

/* …_status.c */
char *ngx_http_credit_auth_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

#endif /* NGX_HTTP_CREDIT_AUTH_H */
