/*
 * What crosses the gateway besides the filtered body (contract §2.1): the
 * request headers the platform never sees, the response headers the bank
 * gets (the gateway's own, and what credit_auth_pass_header lets through:
 * …_pass.c), and the upstream controls (X-Accel-*) that must not act.
 */
#include "ngx_http_credit_auth.h"


/*
 * What the platform never sees (contract §2.1; a trailing '*' names every
 * header beginning so; docs/configuration.md lists them):
 * - a partial or conditional answer is an oracle on the unfiltered record;
 * - the bank's credentials stay at the gateway: its consent token (as
 *   Envoy's jwt_authn drops a verified JWT), and any client certificate
 *   header, which the gateway never derives itself — a platform that
 *   trusts one from its load balancer would take it from the bank.  What
 *   the platform needs is passed from $credit_auth_* variables.
 */
static ngx_str_t  ngx_http_credit_auth_stripped[] = {
    ngx_string("Range"),
    ngx_string("If-Range"),
    ngx_string("If-Match"),
    ngx_string("If-None-Match"),
    ngx_string("If-Modified-Since"),
    ngx_string("If-Unmodified-Since"),

    ngx_string("Authorization"),
    ngx_string("Client-Cert*"),                 /* RFC 9440, -Chain */
    ngx_string("SSL-Client-*"),
    ngx_string("X-SSL-Client-*"),               /* HAProxy, nginx */
    ngx_string("X-SSL-Cert*"),
    ngx_string("X-Client-Cert*"),               /* Google Cloud LB */
    ngx_string("X-Client-Verify"),
    ngx_string("X-Forwarded-Client-Cert"),      /* Envoy */
    ngx_string("X-ARR-ClientCert"),             /* Azure, IIS */
    ngx_string("X-Amzn-Mtls-Clientcert*"),      /* AWS ALB */
    ngx_null_string
};


/* The first header of that name; with n, how many there are. */
ngx_table_elt_t *
ngx_http_credit_auth_header_n(ngx_http_request_t *r, const char *name,
    size_t len, ngx_uint_t *n)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *first;

    first = NULL;
    if (n) {
        *n = 0;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len != len
                || ngx_strncasecmp(h[i].key.data, (u_char *) name, len) != 0)
            {
                continue;
            }
            if (first == NULL) {
                first = &h[i];
            }
            if (n == NULL) {
                return first;
            }
            (*n)++;
        }
    }

    return first;
}


ngx_table_elt_t *
ngx_http_credit_auth_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    return ngx_http_credit_auth_header_n(r, name, len, NULL);
}


ngx_uint_t
ngx_http_credit_auth_header_count(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t  n;

    (void) ngx_http_credit_auth_header_n(r, name, len, &n);

    return n;
}


/*
 * The proxy sends every header of the list (a zero hash does not hide
 * one), so the list is rebuilt without them.  The elements are copied:
 * the headers_in pointers into the old list stay valid.
 */
ngx_int_t
ngx_http_credit_auth_strip_request(ngx_http_request_t *r)
{
    ngx_uint_t        i, n, drop;
    ngx_list_t        kept;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    n = 0;
    drop = 0;
    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            n++;
            drop += ngx_http_credit_auth_header_in_list(
                                         ngx_http_credit_auth_stripped,
                                         &h[i].key);
        }
    }

    r->headers_in.range = NULL;
    r->headers_in.if_range = NULL;
    r->headers_in.if_match = NULL;
    r->headers_in.if_none_match = NULL;
    r->headers_in.if_modified_since = NULL;
    r->headers_in.if_unmodified_since = NULL;
    /* nor $http_authorization for a proxy_set_header */
    r->headers_in.authorization = NULL;

    if (drop == 0) {
        return NGX_OK;
    }

    if (ngx_list_init(&kept, r->pool, n - drop ? n - drop : 1,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_credit_auth_header_in_list(
                                         ngx_http_credit_auth_stripped,
                                         &h[i].key))
            {
                continue;
            }
            nh = ngx_list_push(&kept);
            if (nh == NULL) {
                return NGX_ERROR;
            }
            *nh = h[i];
        }
    }

    r->headers_in.headers = kept;

    return NGX_OK;
}


/*
 * The upstream modules whose answers could steer nginx (X-Accel-Redirect,
 * -Limit-Rate, -Buffering, -Charset, -Expires; ENGINEERING §9).  Each one's
 * location configuration starts with its ngx_http_upstream_conf_t.
 */
static const char  *ngx_http_credit_auth_upstreams[] = {
    "ngx_http_proxy_module",
    "ngx_http_fastcgi_module",
    "ngx_http_uwsgi_module",
    "ngx_http_scgi_module",
    "ngx_http_grpc_module",
    NULL
};


void
ngx_http_credit_auth_ignore_xaccel(ngx_conf_t *cf)
{
    ngx_uint_t                 i, j;
    ngx_module_t              *m;
    ngx_http_conf_ctx_t       *ctx;
    ngx_http_upstream_conf_t  *ucf;

    ctx = cf->ctx;

    for (i = 0; cf->cycle->modules[i]; i++) {
        m = cf->cycle->modules[i];
        if (m->type != NGX_HTTP_MODULE || m->name == NULL) {
            continue;
        }
        for (j = 0; ngx_http_credit_auth_upstreams[j]; j++) {
            if (ngx_strcmp(m->name, ngx_http_credit_auth_upstreams[j]) == 0) {
                break;
            }
        }
        if (ngx_http_credit_auth_upstreams[j] == NULL) {
            continue;
        }
        ucf = ctx->loc_conf[m->ctx_index];
        if (ucf != NULL) {
            ucf->ignore_headers |= NGX_HTTP_UPSTREAM_IGN_XA_REDIRECT
                                   |NGX_HTTP_UPSTREAM_IGN_XA_EXPIRES
                                   |NGX_HTTP_UPSTREAM_IGN_XA_LIMIT_RATE
                                   |NGX_HTTP_UPSTREAM_IGN_XA_BUFFERING
                                   |NGX_HTTP_UPSTREAM_IGN_XA_CHARSET;
        }
    }
}


static ngx_str_t  ngx_http_credit_auth_no_store = ngx_string("no-store");


ngx_table_elt_t *
ngx_http_credit_auth_add_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return h;
}


/*
 * RFC 6750 §3: the realm always; an error code only when Bearer
 * credentials were sent (§3.1: none when the request lacks them, or tried
 * another scheme).  The description is the reason's fixed title: never a
 * byte of the token.
 */
static ngx_int_t
ngx_http_credit_auth_www_authenticate(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, ngx_str_t *value)
{
    size_t                            len;
    u_char                           *p;
    ca_reason                         reason;
    const char                       *title;
    ngx_table_elt_t                  *h;
    ngx_http_credit_auth_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);
    reason = ctx->filter_reason != CA_OK ? ctx->filter_reason : ctx->reason;
    title = ca_reason_title(reason);

    len = sizeof("Bearer realm=\"\"") - 1 + lcf->realm.len
          + sizeof(", error=\"invalid_token\", error_description=\"\"") - 1
          + ngx_strlen(title);
    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }
    value->data = p;
    p = ngx_sprintf(p, "Bearer realm=\"%V\"", &lcf->realm);

    h = r->headers_in.authorization;
    if (reason != CA_TOKEN_MISSING
        || (h != NULL && h->value.len >= 6
            && ngx_strncasecmp(h->value.data, (u_char *) "Bearer", 6) == 0))
    {
        /* titles are plain text without quotes (lib/core/reason.c) */
        p = ngx_sprintf(p, ", error=\"invalid_token\", "
                        "error_description=\"%s\"", title);
    }
    value->len = p - value->data;

    return NGX_OK;
}


/*
 * The bank gets the gateway's headers only (contract §2.1): the list is
 * rebuilt rather than trusting the proxy's hide list, which hides almost
 * nothing.  What the configuration names with credit_auth_pass_header
 * stays, unless its value looks personal; nginx adds Date, Server and the
 * length or chunking itself.
 */
ngx_int_t
ngx_http_credit_auth_own_headers(ngx_http_request_t *r,
    ngx_http_credit_auth_ctx_t *ctx, const char *disclosure)
{
    ngx_str_t                         v;
    ngx_uint_t                        i;
    ngx_list_part_t                  *part;
    ngx_table_elt_t                  *h;
    ngx_http_credit_auth_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_credit_auth_module);

    part = &r->headers_out.headers.part;
    h = part->elts;
    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }
            part = part->next;
            h = part->elts;
            i = 0;
        }
        /* a refusal carries nothing of the platform's (contract §4) */
        if (h[i].hash
            && (disclosure == NULL
                || !ngx_http_credit_auth_pass_header_ok(r, lcf, &h[i],
                                                        &ctx->rid)))
        {
            h[i].hash = 0;
        }
    }

    r->headers_out.server = NULL;
    r->headers_out.date = NULL;
    r->headers_out.content_length = NULL;
    r->headers_out.content_encoding = NULL;
    r->headers_out.location = NULL;
    r->headers_out.refresh = NULL;
    r->headers_out.last_modified = NULL;
    r->headers_out.last_modified_time = -1;
    r->headers_out.content_range = NULL;
    r->headers_out.accept_ranges = NULL;
    r->headers_out.www_authenticate = NULL;
    r->headers_out.expires = NULL;
    r->headers_out.etag = NULL;
    r->headers_out.cache_control.nelts = 0;
    r->headers_out.link.nelts = 0;
    r->headers_out.charset.len = 0;
    r->headers_out.content_type_lowcase = NULL;
    r->allow_ranges = 0;

    if (ngx_http_credit_auth_add_header(r, "X-Request-Id", &ctx->rid)
        == NULL)
    {
        return NGX_ERROR;
    }

    if (disclosure) {
        v.data = (u_char *) disclosure;
        v.len = ngx_strlen(disclosure);
        if (ngx_http_credit_auth_add_header(r, "X-Credit-Disclosure", &v)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_credit_auth_add_header(r, "Cache-Control",
                                        &ngx_http_credit_auth_no_store)
        == NULL)
    {
        return NGX_ERROR;
    }

    if (r->headers_out.status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_http_credit_auth_www_authenticate(r, ctx, &v) != NGX_OK) {
            return NGX_ERROR;
        }
        h = ngx_http_credit_auth_add_header(r, "WWW-Authenticate", &v);
        if (h == NULL) {
            return NGX_ERROR;
        }
        r->headers_out.www_authenticate = h;
    }

    return NGX_OK;
}


void
ngx_http_credit_auth_drop_header(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    for (part = &r->headers_out.headers.part; part; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == len
                && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
            {
                h[i].hash = 0;
            }
        }
    }
}
