/*
 * The platform's headers the bank may see (contract §2.1): only those
 * credit_auth_pass_header names, never one of the gateway's own nor one
 * that describes the unfiltered record, and only with a value that does
 * not look personal.
 */
#include "ngx_http_credit_auth.h"


/* Headers the gateway writes itself, or that describe its own body or
 * connection, or that steer nginx: never the platform's (contract §2.1). */
static ngx_str_t  ngx_http_credit_auth_gateway_headers[] = {
    ngx_string("content-type"),
    ngx_string("content-length"),
    ngx_string("content-encoding"),
    ngx_string("transfer-encoding"),
    ngx_string("connection"),
    ngx_string("keep-alive"),
    ngx_string("date"),
    ngx_string("server"),
    ngx_string("x-request-id"),
    ngx_string("x-credit-disclosure"),
    ngx_string("cache-control"),
    ngx_string("www-authenticate"),
    ngx_string("x-accel-*"),
    ngx_null_string
};


/* What describes the platform's answer, i.e. the unfiltered record: its
 * validators, ranges and digests would be an oracle on what the filter
 * withholds (contract §2.1), as conditional requests would be. */
static ngx_str_t  ngx_http_credit_auth_oracle_headers[] = {
    ngx_string("etag"),
    ngx_string("last-modified"),
    ngx_string("content-range"),
    ngx_string("accept-ranges"),
    ngx_string("content-md5"),
    ngx_string("digest"),
    ngx_string("content-digest"),
    ngx_string("repr-digest"),
    ngx_null_string
};


static struct {
    ngx_str_t          *names;
    const char         *why;
} ngx_http_credit_auth_never_passed[] = {
    { ngx_http_credit_auth_oracle_headers,
      "describes the platform's unfiltered record (a validator, range or "
      "digest of it): passed to the bank it would be an oracle on what the "
      "filter withholds" },
    { ngx_http_credit_auth_gateway_headers,
      "is one of the gateway's own headers and never comes from the "
      "platform" },
    { NULL, NULL }
};


/* Whether name is on the list (case-insensitively); an entry ending in
 * '*' takes every name it begins. */
ngx_uint_t
ngx_http_credit_auth_header_in_list(ngx_str_t *list, ngx_str_t *name)
{
    size_t  len;

    for ( /* void */ ; list->len; list++) {
        len = list->len;
        if (list->data[len - 1] == '*') {
            len--;
            if (name->len >= len
                && ngx_strncasecmp(name->data, list->data, len) == 0)
            {
                return 1;
            }

        } else if (name->len == len
                   && ngx_strncasecmp(name->data, list->data, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* credit_auth_pass_header NAME: one platform header the bank may see. */
char *
ngx_http_credit_auth_pass_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_credit_auth_loc_conf_t  *lcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 0; i < value[1].len || i == 0; i++) {
        /* an RFC 9110 token */
        if (value[1].len == 0) {
            return "needs a header name";
        }
        if (value[1].data[i] <= ' ' || value[1].data[i] >= 0x7f
            || ngx_strchr("\"(),/:;<=>?@[\\]{}", value[1].data[i]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_pass_header: \"%V\" is not a "
                               "header name", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    for (i = 0; ngx_http_credit_auth_never_passed[i].names; i++) {
        if (ngx_http_credit_auth_header_in_list(
                ngx_http_credit_auth_never_passed[i].names, &value[1]))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "credit_auth_pass_header: \"%V\" %s",
                               &value[1],
                               ngx_http_credit_auth_never_passed[i].why);
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->pass_headers == NGX_CONF_UNSET_PTR) {
        lcf->pass_headers = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (lcf->pass_headers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    name = ngx_array_push(lcf->pass_headers);
    if (name == NULL) {
        return NGX_CONF_ERROR;
    }
    name->len = value[1].len;
    name->data = ngx_pnalloc(cf->pool, name->len);
    if (name->data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_strlow(name->data, value[1].data, name->len);

    return NGX_CONF_OK;
}


/*
 * Whether the platform's header h reaches the bank: credit_auth_pass_header
 * names it, and its value meets the audit's check for personal
 * identifiers (contract §2.1: the same one list, lib/core/pii.h).  One that
 * holds any is not passed, and is counted and logged by name and form,
 * never with its value.
 */
ngx_uint_t
ngx_http_credit_auth_pass_header_ok(ngx_http_request_t *r,
    ngx_http_credit_auth_loc_conf_t *lcf, ngx_table_elt_t *h, ngx_str_t *rid)
{
    ngx_str_t   *name;
    ngx_uint_t   i;
    const char  *form;

    if (lcf == NULL || lcf->pass_headers == NULL) {
        return 0;
    }

    name = lcf->pass_headers->elts;
    for (i = 0; i < lcf->pass_headers->nelts; i++) {
        if (name[i].len == h->key.len
            && ngx_strncasecmp(name[i].data, h->key.data, h->key.len) == 0)
        {
            break;
        }
    }
    if (i == lcf->pass_headers->nelts) {
        return 0;
    }

    form = ca_pii_find((char *) h->value.data, h->value.len);
    if (form == NULL) {
        return 1;
    }

    ngx_http_credit_auth_count_pass_dropped();
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "credit_auth: platform header \"%V\" not passed to the "
                  "bank: its value looks personal (%s), request %V",
                  &h->key, form, rid);

    return 0;
}
