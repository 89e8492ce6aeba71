/*
 * hiredis on nginx's event loop: the one adapter of the Redis session
 * (lib/redis/session.h).  It lets hiredis contexts read and write
 * through nginx's events, opens, writes to and closes the session's
 * connections as …_redis.c asks, and tells it what hiredis says of them.
 * See …_redis.c for the traps this avoids (level-triggered reads, the fd
 * closed once, by hiredis).
 */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_http_credit_auth.h"


/* --- the adapter: hiredis asks, nginx's event loop does ---------------- */

static void
ngx_http_credit_auth_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


static void
ngx_http_credit_auth_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleWrite(c->data);
}


static void
ngx_http_credit_auth_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active) {
        c->read->handler = ngx_http_credit_auth_redis_read_handler;
        c->read->log = c->log;
        if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit_auth: redis: cannot add read event");
        }
    }
}


static void
ngx_http_credit_auth_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_credit_auth_redis_add_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->write->active) {
        c->write->handler = ngx_http_credit_auth_redis_write_handler;
        c->write->log = c->log;
        if (ngx_add_event(c->write, NGX_WRITE_EVENT, NGX_LEVEL_EVENT)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "credit_auth: redis: cannot add write event");
        }
    }
}


static void
ngx_http_credit_auth_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_credit_auth_redis_cleanup(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c == NULL) {
        return;
    }

    /* hiredis closes the fd itself: only release nginx's bookkeeping */
    if (c->read->active || c->read->disabled) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->write->active || c->write->disabled) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }
    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


ngx_connection_t *
ngx_http_credit_auth_redis_attach(void *ctx, ngx_log_t *log)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac = ctx;

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NULL;
    }

    c->data = ac;
    c->log = log;
    c->read->log = log;
    c->write->log = log;

    /* adapter first: hiredis adds a write event as the connect callback
     * is installed */
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_credit_auth_redis_add_read;
    ac->ev.delRead = ngx_http_credit_auth_redis_del_read;
    ac->ev.addWrite = ngx_http_credit_auth_redis_add_write;
    ac->ev.delWrite = ngx_http_credit_auth_redis_del_write;
    ac->ev.cleanup = ngx_http_credit_auth_redis_cleanup;

    return c;
}


/* --- the session's connections ------------------------------------------ */

/*
 * The Redis session's connections (CA_RS_PRIMARY, _SENTINEL, _WATCH),
 * each a hiredis context while it stands, and the identity the session
 * gave it: whatever hiredis says of a context is told to the session
 * with that identity (…_redis.c feeds it), and nothing of a context that
 * was forgotten.  A context is forgotten before it is freed, so that the
 * callbacks hiredis runs then (NULL replies, the disconnect) are ignored.
 */
typedef struct {
    redisAsyncContext                       *ac;
    int                                      conn;
    uint64_t                                 id;
} ngx_http_credit_auth_hiredis_conn_t;


static ngx_http_credit_auth_hiredis_conn_t   ngx_http_credit_auth_hiredis_conns[
                                                 CA_RS_CONNS];
static ngx_http_credit_auth_hiredis_events_t ngx_http_credit_auth_hiredis_ev;
static ngx_log_t                            *ngx_http_credit_auth_hiredis_log;


static void
ngx_http_credit_auth_hiredis_on_connect(const redisAsyncContext *cac,
    int status)
{
    redisAsyncContext                    *ac = (redisAsyncContext *) cac;
    ngx_http_credit_auth_hiredis_conn_t  *hc = ac->data;

    if (hc == NULL || hc->ac != ac) {
        return;
    }
    if (status == REDIS_OK) {
        ngx_http_credit_auth_hiredis_ev.connected(hc->conn, hc->id);
        return;
    }
    hc->ac = NULL;              /* hiredis frees it after this callback */
    ngx_http_credit_auth_hiredis_ev.closed(hc->conn, hc->id, ac->errstr);
}


static void
ngx_http_credit_auth_hiredis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_credit_auth_hiredis_conn_t  *hc = ac->data;

    if (hc == NULL || hc->ac != ac) {
        return;
    }
    hc->ac = NULL;
    ngx_http_credit_auth_hiredis_ev.closed(hc->conn, hc->id,
                        status != REDIS_OK && ac->errstr[0] ? ac->errstr
                                                            : NULL);
}


static void
ngx_http_credit_auth_hiredis_convert(ca_rs_reply *to, redisReply *r)
{
    ngx_memzero(to, sizeof(ca_rs_reply));
    to->type = r->type == REDIS_REPLY_STATUS ? CA_RS_STATUS
               : r->type == REDIS_REPLY_ERROR ? CA_RS_ERROR
               : r->type == REDIS_REPLY_INTEGER ? CA_RS_INTEGER
               : r->type == REDIS_REPLY_ARRAY ? CA_RS_ARRAY
               : r->type == REDIS_REPLY_NIL ? CA_RS_NIL : CA_RS_STRING;
    to->str = r->str;
    to->len = r->str ? r->len : 0;
    to->integer = r->integer;
}


/* A reply, in the session's terms (one level of an array is what it
 * reads) and as hiredis gave it (what callers of commands read). */
static void
ngx_http_credit_auth_hiredis_on_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    size_t                                i;
    ca_rs_reply                           top, few[8], *el;
    redisReply                           *reply = r;
    ngx_http_credit_auth_hiredis_conn_t  *hc = privdata;

    if (reply == NULL || hc->ac != ac) {
        return;                 /* forgotten: the session knows */
    }
    ngx_http_credit_auth_hiredis_convert(&top, reply);
    el = few;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0) {
        if (reply->elements > 8) {
            el = ngx_alloc(reply->elements * sizeof(ca_rs_reply),
                           ngx_http_credit_auth_hiredis_log);
        }
        if (el == NULL) {
            el = few;           /* then read as an empty array */
        } else {
            for (i = 0; i < reply->elements; i++) {
                ngx_http_credit_auth_hiredis_convert(&el[i],
                                                     reply->element[i]);
            }
            top.elements = reply->elements;
            top.element = el;
        }
    }

    ngx_http_credit_auth_hiredis_ev.reply(hc->conn, hc->id, &top, reply);

    if (el != few) {
        ngx_free(el);
    }
}


void
ngx_http_credit_auth_hiredis_init(
    const ngx_http_credit_auth_hiredis_events_t *ev, ngx_log_t *log)
{
    int  i;

    ngx_http_credit_auth_hiredis_ev = *ev;
    ngx_http_credit_auth_hiredis_log = log;
    for (i = 0; i < CA_RS_CONNS; i++) {
        ngx_http_credit_auth_hiredis_conns[i].ac = NULL;
        ngx_http_credit_auth_hiredis_conns[i].conn = i;
        ngx_http_credit_auth_hiredis_conns[i].id = 0;
    }
}


/* A connection that fails at once is told as closed, now. */
void
ngx_http_credit_auth_hiredis_open(int conn, uint64_t id, const char *host,
    int port, const char *unix_path)
{
    redisAsyncContext                    *ac;
    ngx_http_credit_auth_hiredis_conn_t  *hc;

    hc = &ngx_http_credit_auth_hiredis_conns[conn];
    hc->id = id;
    hc->ac = NULL;

    ac = unix_path ? redisAsyncConnectUnix(unix_path)
                   : redisAsyncConnect(host, port);
    if (ac == NULL || ac->err) {
        ngx_http_credit_auth_hiredis_ev.closed(conn, id,
                                               ac ? ac->errstr : "no memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        return;
    }
    if (ngx_http_credit_auth_redis_attach(ac, ngx_http_credit_auth_hiredis_log)
        == NULL)
    {
        ngx_http_credit_auth_hiredis_ev.closed(conn, id,
                                               "no free connection");
        return;
    }
    ac->data = hc;
    hc->ac = ac;
    redisAsyncSetConnectCallback(ac, ngx_http_credit_auth_hiredis_on_connect);
    redisAsyncSetDisconnectCallback(ac,
                                   ngx_http_credit_auth_hiredis_on_disconnect);
}


void
ngx_http_credit_auth_hiredis_send(int conn, uint64_t id, const char *data,
    size_t len)
{
    ngx_http_credit_auth_hiredis_conn_t  *hc;

    hc = &ngx_http_credit_auth_hiredis_conns[conn];
    if (hc->ac && hc->id == id) {
        (void) redisAsyncFormattedCommand(hc->ac,
                                          ngx_http_credit_auth_hiredis_on_reply,
                                          hc, data, len);
    }
}


/* graceful: the replies on the wire still come, then the disconnect.
 * Otherwise freed now (inside one of its reply callbacks, hiredis defers
 * it). */
void
ngx_http_credit_auth_hiredis_close(int conn, uint64_t id,
    ngx_uint_t graceful)
{
    redisAsyncContext                    *ac;
    ngx_http_credit_auth_hiredis_conn_t  *hc;

    hc = &ngx_http_credit_auth_hiredis_conns[conn];
    ac = hc->ac;
    if (ac == NULL || hc->id != id) {
        return;
    }
    if (graceful) {
        redisAsyncDisconnect(ac);
        return;
    }
    hc->ac = NULL;
    redisAsyncFree(ac);
}
