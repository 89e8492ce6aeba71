/*
 * The Redis epoch's state file, <spool>/redis-epoch (no spool, no file).
 * The session (lib/redis/sessioncheck.c) compares the epoch key
 * `<stream>:epoch` with the one seen before to notice a Redis that lost
 * everything; this file lets "before" survive a restart of the gateway:
 * worker 0 reads it when it starts and writes it when the epoch it sees
 * is another (rare), so that a Redis that lost everything while the
 * gateway was down too is noticed.  A write that fails (a full or
 * read-only disk) is tried again at the next connection's check (the
 * session asks again, ca_rs_epoch_saved()).  Only worker 0 keeps it: a sibling
 * that reads what worker 0 has just written must not take the epoch
 * worker 0 set for a lost one.
 */
#include "ngx_http_credit_auth.h"


#define NGX_HTTP_CREDIT_AUTH_EPOCH_LEN  40


typedef struct {
    ngx_http_credit_auth_main_conf_t  *mcf;
    ngx_log_t                         *log;
    u_char                            *state;     /* file; NULL: none */
    char                               epoch[NGX_HTTP_CREDIT_AUTH_EPOCH_LEN];
} ngx_http_credit_auth_epoch_t;


static ngx_http_credit_auth_epoch_t  ngx_http_credit_auth_epoch;


/* "<epoch>\n<stream>\n": an epoch of another stream is not ours. */
static void
ngx_http_credit_auth_epoch_read(void)
{
    u_char                         buf[512], *nl;
    ssize_t                        n;
    ngx_fd_t                       fd;
    ngx_http_credit_auth_epoch_t  *ep = &ngx_http_credit_auth_epoch;

    fd = ngx_open_file(ep->state, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return;                 /* the first start: nothing seen yet */
    }
    n = read(fd, buf, sizeof(buf) - 1);
    ngx_close_file(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    nl = (u_char *) ngx_strchr(buf, '\n');
    if (nl == NULL || nl == buf || nl - buf >= NGX_HTTP_CREDIT_AUTH_EPOCH_LEN
        || (size_t) (buf + n - (nl + 1)) != ep->mcf->stream.len + 1
        || ngx_strncmp(nl + 1, ep->mcf->stream.data, ep->mcf->stream.len)
           != 0)
    {
        ngx_log_error(NGX_LOG_WARN, ep->log, 0, "credit_auth: \"%s\" is "
                      "not the epoch of stream \"%V\": ignored", ep->state,
                      &ep->mcf->stream);
        return;
    }
    ngx_memcpy(ep->epoch, buf, nl - buf);
    ep->epoch[nl - buf] = '\0';
}


/*
 * Written once per epoch, so rarely that a few blocking syscalls on the
 * event loop cost nothing; renamed into place so that a crash leaves the
 * old file or the new one, never half of one.  NGX_ERROR: not kept.
 */
ngx_int_t
ngx_http_credit_auth_redis_epoch_save(const char *epoch)
{
    u_char                         tmp[NGX_MAX_PATH], line[512], *p;
    ngx_fd_t                       fd;
    ngx_err_t                      err;
    ngx_http_credit_auth_epoch_t  *ep = &ngx_http_credit_auth_epoch;

    if (ep->state == NULL) {
        return NGX_OK;
    }
    p = ngx_snprintf(line, sizeof(line), "%s\n%V\n", epoch,
                     &ep->mcf->stream);
    ngx_snprintf(tmp, sizeof(tmp) - 1, "%s.%P%Z", ep->state, ngx_pid);

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE, 0600);
    if (fd == NGX_INVALID_FILE
        || write(fd, line, p - line) != p - line || fsync(fd) != 0)
    {
        err = ngx_errno;
        if (fd != NGX_INVALID_FILE) {
            ngx_close_file(fd);
        }
        (void) ngx_delete_file(tmp);
        ngx_log_error(NGX_LOG_ERR, ep->log, err, "credit_auth: cannot write "
                      "\"%s\": a loss of Redis while the gateway is down "
                      "will not be noticed (tried again on the next "
                      "connection)", tmp);
        return NGX_ERROR;
    }
    ngx_close_file(fd);
    if (ngx_rename_file(tmp, ep->state) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ep->log, ngx_errno, "credit_auth: "
                      "cannot rename \"%s\" to \"%s\" (tried again on the "
                      "next connection)", tmp, ep->state);
        (void) ngx_delete_file(tmp);
        return NGX_ERROR;
    }
    return NGX_OK;
}


/* The epoch seen before ("" when none yet), or NULL when this worker
 * keeps no state file. */
const char *
ngx_http_credit_auth_redis_epoch_init(ngx_cycle_t *cycle,
    ngx_http_credit_auth_main_conf_t *mcf)
{
    size_t                         len;
    ngx_http_credit_auth_epoch_t  *ep = &ngx_http_credit_auth_epoch;

    ngx_memzero(ep, sizeof(ngx_http_credit_auth_epoch_t));
    ep->mcf = mcf;
    ep->log = cycle->log;

    if (ngx_worker != 0 || mcf->spool_path.len == 0) {
        return NULL;
    }
    len = mcf->spool_path.len + sizeof("/redis-epoch");
    ep->state = ngx_pnalloc(cycle->pool, len);
    if (ep->state == NULL) {
        return NULL;
    }
    ngx_snprintf(ep->state, len, "%V/redis-epoch%Z", &mcf->spool_path);
    ngx_http_credit_auth_epoch_read();

    return ep->epoch;
}
