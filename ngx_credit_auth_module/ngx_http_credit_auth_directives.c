/*
 * The directives of the audit trail and its Redis, of the hashing key and
 * of the shared zone: each value is checked here, at configuration time,
 * so that `nginx -t` names what is wrong.
 */
#include "ngx_http_credit_auth.h"


/*
 * credit_auth_redis 127.0.0.1:6379 | host:port | unix:/path
 *                   | sentinel=IP:PORT[,IP:PORT...] master=NAME
 *                   [password=S] [db=N] [connect_timeout=T]
 *                   [command_timeout=T] [max_inflight=N]
 *                   [durability=aof|replicas:N[,timeout=T]|none];
 *
 * Names are resolved here, once: hiredis would resolve with a blocking
 * getaddrinfo() on the event loop (ENGINEERING §4).
 */
/*
 * durability=aof: the primary must run appendonly yes + appendfsync always
 * (checked on every connect); replicas:N[,timeout=T]: WAIT N T after every
 * batch; none: Redis may lose what it acknowledged, said loudly.
 */
static ngx_int_t
ngx_http_credit_auth_durability(ngx_conf_t *cf,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_str_t *word)
{
    u_char     *p, *last, *comma;
    ngx_int_t   n;
    ngx_str_t   s;

    p = word->data + 11;
    last = word->data + word->len;

    if ((size_t) (last - p) == 3 && ngx_strncmp(p, "aof", 3) == 0) {
        mcf->durability = CA_DURABLE_AOF;
        return NGX_OK;
    }

    if ((size_t) (last - p) == 4 && ngx_strncmp(p, "none", 4) == 0) {
        mcf->durability = CA_DURABLE_NONE;
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "credit_auth_redis: durability=none: decisions "
                           "are acknowledged by a Redis that can lose them");
        return NGX_OK;
    }

    if (last - p < 10 || ngx_strncmp(p, "replicas:", 9) != 0) {
        return NGX_ERROR;
    }
    p += 9;
    comma = ngx_strlchr(p, last, ',');
    n = ngx_atoi(p, (comma ? comma : last) - p);
    if (n == NGX_ERROR || n == 0) {
        return NGX_ERROR;
    }
    mcf->durability = CA_DURABLE_REPLICAS;
    mcf->wait_replicas = n;

    if (comma) {
        p = comma + 1;
        if (last - p < 9 || ngx_strncmp(p, "timeout=", 8) != 0) {
            return NGX_ERROR;
        }
        s.data = p + 8;
        s.len = last - s.data;
        mcf->wait_timeout = ngx_parse_time(&s, 0);
        if (mcf->wait_timeout == (ngx_msec_t) NGX_ERROR
            || mcf->wait_timeout == 0)
        {
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}


/*
 * sentinel=IP:PORT[,IP:PORT...]: IP literals only, since a name would be
 * resolved again at every discovery, on the event loop.
 */
static ngx_int_t
ngx_http_credit_auth_sentinels(ngx_conf_t *cf,
    ngx_http_credit_auth_main_conf_t *mcf, ngx_str_t *word)
{
    u_char                                *p, *last, *comma, *colon;
    ngx_int_t                              port;
    ngx_http_credit_auth_sentinel_addr_t  *sa;

    mcf->sentinels = ngx_array_create(cf->pool, 3,
                                 sizeof(ngx_http_credit_auth_sentinel_addr_t));
    if (mcf->sentinels == NULL) {
        return NGX_ERROR;
    }

    p = word->data + 9;
    last = word->data + word->len;
    while (p < last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }
        colon = ngx_strlchr(p, comma, ':');
        port = colon ? ngx_atoi(colon + 1, comma - colon - 1) : NGX_ERROR;
        if (colon == NULL || port < 1 || port > 65535
            || (size_t) (colon - p) > NGX_INET_ADDRSTRLEN
            || ngx_inet_addr(p, colon - p) == INADDR_NONE)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_redis: sentinel \"%*s\" is not "
                               "IPv4-address:port", comma - p, p);
            return NGX_ERROR;
        }
        sa = ngx_array_push(mcf->sentinels);
        if (sa == NULL) {
            return NGX_ERROR;
        }
        ngx_cpystrn(sa->host, p, colon - p + 1);
        sa->port = port;
        p = comma + 1;
    }
    if (mcf->sentinels->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credit_auth_redis: empty sentinel list");
        return NGX_ERROR;
    }

    sa = mcf->sentinels->elts;
    mcf->redis_host.data = sa->host;
    mcf->redis_host.len = ngx_strlen(sa->host);
    mcf->redis_port = sa->port;
    return NGX_OK;
}


char *
ngx_http_credit_auth_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    u_char     *p;
    ngx_url_t   u;
    ngx_str_t  *value, s;
    ngx_int_t   n;
    ngx_uint_t  i;

    if (mcf->redis_host.len || mcf->redis_unix.len) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0) {
        if (ngx_http_credit_auth_sentinels(cf, mcf, &value[1]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        mcf->redis_unix.len = value[1].len - 5;
        mcf->redis_unix.data = ngx_pnalloc(cf->pool, mcf->redis_unix.len + 1);
        if (mcf->redis_unix.data == NULL) {
            return NGX_CONF_ERROR;
        }
        p = ngx_cpymem(mcf->redis_unix.data, value[1].data + 5,
                       mcf->redis_unix.len);
        *p = '\0';
        if (mcf->redis_unix.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_redis: empty unix socket path");
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[1];
        u.default_port = 6379;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_redis: %s in \"%V\"",
                               u.err ? u.err : "host not found", &u.url);
            return NGX_CONF_ERROR;
        }

        mcf->redis_host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (mcf->redis_host.data == NULL) {
            return NGX_CONF_ERROR;
        }
        mcf->redis_host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                            u.addrs[0].socklen,
                                            mcf->redis_host.data,
                                            NGX_SOCKADDR_STRLEN, 0);
        mcf->redis_host.data[mcf->redis_host.len] = '\0';
        mcf->redis_port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            mcf->redis_password.len = value[i].len - 9;
            mcf->redis_password.data = value[i].data + 9;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }
            mcf->redis_db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.len = value[i].len - 16;
            s.data = value[i].data + 16;
            mcf->connect_timeout = ngx_parse_time(&s, 0);
            if (mcf->connect_timeout == (ngx_msec_t) NGX_ERROR
                || mcf->connect_timeout == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "command_timeout=", 16) == 0) {
            s.len = value[i].len - 16;
            s.data = value[i].data + 16;
            mcf->command_timeout = ngx_parse_time(&s, 0);
            if (mcf->command_timeout == (ngx_msec_t) NGX_ERROR
                || mcf->command_timeout == 0)
            {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_inflight=", 13) == 0) {
            n = ngx_atoi(value[i].data + 13, value[i].len - 13);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }
            mcf->max_inflight = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "master=", 7) == 0
            && value[i].len > 7 && mcf->sentinels)
        {
            mcf->sentinel_master.len = value[i].len - 7;
            mcf->sentinel_master.data = value[i].data + 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "durability=", 11) == 0) {
            if (ngx_http_credit_auth_durability(cf, mcf, &value[i])
                != NGX_OK)
            {
                goto invalid;
            }
            continue;
        }

        goto invalid;
    }

    if (mcf->sentinels && mcf->sentinel_master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credit_auth_redis: sentinel= needs master=NAME");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "credit_auth_redis: invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


char *
ngx_http_credit_auth_spool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    ngx_str_t  *value, s;

    if (mcf->spool_path.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    mcf->spool_path = value[1];
    if (ngx_conf_full_name(cf->cycle, &mcf->spool_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the directory must exist: workers create their files in it */
    if (access((char *) mcf->spool_path.data, W_OK | X_OK) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "credit_auth_audit_spool: \"%V\" is not a "
                           "writable directory", &mcf->spool_path);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "max_size=", 9) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
        s.len = value[2].len - 9;
        s.data = value[2].data + 9;
        mcf->spool_max = ngx_parse_offset(&s);
        if (mcf->spool_max <= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid max_size \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* credit_auth_audit_key FILE [interval=1s]: Ed25519 key for checkpoints. */
char *
ngx_http_credit_auth_audit_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    char        err[512];
    char       *rv;
    ngx_str_t  *value, s;

    rv = ngx_http_credit_auth_file_arg(cf, &mcf->audit_key_file);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "interval=", 9) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
        s.len = value[2].len - 9;
        s.data = value[2].data + 9;
        mcf->checkpoint_interval = ngx_parse_time(&s, 0);
        if (mcf->checkpoint_interval == (ngx_msec_t) NGX_ERROR
            || mcf->checkpoint_interval == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid interval \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    mcf->audit_key = ca_audit_key_load((char *) mcf->audit_key_file.data, 1,
                                       err, sizeof(err));
    if (mcf->audit_key == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid audit key: %s",
                           err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * credit_auth_gateway_id ID: written as `gw` into every entry and the
 * first part of every chain id (<gw>/<pid>/<start ms>/<lane>): a '/' would
 * make chain ids ambiguous between writers, a newline or a tab would
 * reach the tools' text and CSV output.  Hence a safe set.
 */
char *
ngx_http_credit_auth_gateway_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    u_char      shown[4 * 64 + 4], *p;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (mcf->gateway_id.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    if (value[1].len == ngx_strlen(value[1].data)
        && ca_is_token_chars((char *) value[1].data,
                             NGX_HTTP_CREDIT_AUTH_GATEWAY_ID_MAX))
    {
        mcf->gateway_id = value[1];
        return NGX_CONF_OK;
    }

    /* the value as it can be read in a log line */
    p = shown;
    for (i = 0; i < value[1].len && i < 64; i++) {
        if (value[1].data[i] > 0x20 && value[1].data[i] < 0x7f) {
            *p++ = value[1].data[i];
        } else {
            p = ngx_sprintf(p, "\\x%02xd", value[1].data[i]);
        }
    }
    if (i < value[1].len) {
        p = ngx_cpymem(p, "...", 3);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "credit_auth_gateway_id \"%*s\": a gateway id is 1 to "
                       "%d characters of [A-Za-z0-9._-] (it is written into "
                       "every audit entry and names the gateway's chains, "
                       "<id>/<pid>/<start>/<lane>)", p - shown, shown,
                       NGX_HTTP_CREDIT_AUTH_GATEWAY_ID_MAX);
    return NGX_CONF_ERROR;
}


/* credit_auth_hash_key FILE: the secret behind the `hash` treatment. */
char *
ngx_http_credit_auth_hash_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    char      *rv, *buf;
    size_t     len;
    ca_error   err;

    rv = ngx_http_credit_auth_file_arg(cf, &mcf->hash_key_file);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    buf = ca_read_file((char *) mcf->hash_key_file.data, 4096, &len, &err);
    if (buf == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid hash key: %s",
                           err.text);
        return NGX_CONF_ERROR;
    }

    /* A short key makes pseudonyms of small value spaces (ID numbers)
     * guessable by brute force. */
    if (len < 32) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid hash key: %V: "
                           "must hold at least 32 bytes",
                           &mcf->hash_key_file);
        return NGX_CONF_ERROR;
    }

    mcf->hash_key = ngx_pnalloc(cf->pool, len);
    if (mcf->hash_key == NULL) {
        free(buf);
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(mcf->hash_key, buf, len);
    mcf->hash_key_len = len;
    OPENSSL_cleanse(buf, len);
    free(buf);

    return NGX_CONF_OK;
}


/* credit_auth_zone NAME:SIZE: token cache and status counters. */
char *
ngx_http_credit_auth_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_credit_auth_main_conf_t  *mcf = conf;

    u_char     *p;
    ssize_t     size;
    ngx_str_t  *value, name, s;

    if (mcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;
    p = (u_char *) ngx_strchr(value[1].data, ':');
    if (p == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected NAME:SIZE",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;
    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);
    if (name.len == 0 || size == NGX_ERROR || size < (ssize_t) (64 * 1024)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\" (size at least 64k)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_credit_auth_module);
    if (mcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone->init = ngx_http_credit_auth_init_zone;
    mcf->shm_zone->data = mcf;

    return NGX_CONF_OK;
}
