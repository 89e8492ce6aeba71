#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "core/core.h"

struct ca_spool {
    int       fd;
    uint64_t  size;         /* bytes in the file */
    uint64_t  acked;        /* bytes known to be in Redis */
    uint64_t  max;
    int       dirty;
};

static void
put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}

static uint32_t
get32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}

ca_spool *
ca_spool_open(const char *path, uint64_t max_bytes, char *err, size_t errlen)
{
    struct stat  st;
    ca_spool    *sp;

    sp = calloc(1, sizeof(ca_spool));
    if (sp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sp->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (sp->fd < 0 || fstat(sp->fd, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (sp->fd >= 0) {
            close(sp->fd);
        }
        free(sp);
        return NULL;
    }
    sp->size = (uint64_t) st.st_size;
    sp->max = max_bytes;
    return sp;
}

void
ca_spool_close(ca_spool *sp)
{
    if (sp) {
        ca_spool_sync(sp);
        close(sp->fd);
        free(sp);
    }
}

int
ca_spool_append(ca_spool *sp, int kind, const char *meta, size_t meta_len,
                int argc, const char *const *argv, const size_t *lens)
{
    size_t         body = 1 + 4 + meta_len + 4, total, off;
    unsigned char *buf, h[32];
    ssize_t        n;

    if (argc < 0 || argc > CA_SPOOL_ARGS_MAX) {
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        body += 4 + lens[i];
    }
    total = 4 + body + 4;
    if (sp->size + total > sp->max || body > UINT32_MAX) {
        return -1;
    }

    buf = malloc(total);
    if (buf == NULL) {
        return -1;
    }
    put32(buf, (uint32_t) body);
    off = 4;
    buf[off++] = (unsigned char) kind;
    put32(buf + off, (uint32_t) meta_len);
    off += 4;
    if (meta_len) {
        memcpy(buf + off, meta, meta_len);
    }
    off += meta_len;
    put32(buf + off, (uint32_t) argc);
    off += 4;
    for (int i = 0; i < argc; i++) {
        put32(buf + off, (uint32_t) lens[i]);
        off += 4;
        memcpy(buf + off, argv[i], lens[i]);
        off += lens[i];
    }
    ca_sha256(buf + 4, body, h);
    memcpy(buf + off, h, 4);

    /* One write() per record: O_APPEND keeps it contiguous, and a torn
     * tail is caught by the check bytes on replay. */
    n = write(sp->fd, buf, total);
    free(buf);
    if (n != (ssize_t) total) {
        if (n > 0) {
            /* cut the partial record off again */
            if (ftruncate(sp->fd, (off_t) sp->size) != 0) {
                return -1;
            }
        }
        return -1;
    }
    sp->size += total;
    sp->dirty = 1;
    return 0;
}

int
ca_spool_sync(ca_spool *sp)
{
    if (!sp->dirty) {
        return 0;
    }
    sp->dirty = 0;
    return fdatasync(sp->fd);
}

uint64_t
ca_spool_size(const ca_spool *sp)
{
    return sp->size;
}

uint64_t
ca_spool_acked(const ca_spool *sp)
{
    return sp->acked;
}

int
ca_spool_empty(const ca_spool *sp)
{
    return sp->acked >= sp->size;
}

void
ca_spool_record_free(ca_spool_record *rec)
{
    free(rec->buf);
    rec->buf = NULL;
}

int
ca_spool_read(ca_spool *sp, uint64_t offset, ca_spool_record *rec)
{
    unsigned char  hdr[4], h[32];
    unsigned char *b;
    uint32_t       body, argc, len;
    size_t         off;

    rec->buf = NULL;
    if (offset + 4 > sp->size) {
        return offset >= sp->size ? 0 : -1;
    }
    if (pread(sp->fd, hdr, 4, (off_t) offset) != 4) {
        return -1;
    }
    body = get32(hdr);
    if (body < 9 || offset + 4 + body + 4 > sp->size) {
        return -1;
    }
    b = malloc((size_t) body + 4);
    if (b == NULL
        || pread(sp->fd, b, (size_t) body + 4, (off_t) offset + 4)
           != (ssize_t) body + 4)
    {
        free(b);
        return -1;
    }
    ca_sha256(b, body, h);
    if (memcmp(h, b + body, 4) != 0) {
        free(b);
        return -1;
    }

    off = 0;
    rec->kind = b[off++];
    len = get32(b + off);
    off += 4;
    if (len > body - off) {
        goto corrupt;
    }
    rec->meta = (char *) b + off;
    rec->meta_len = len;
    off += len;
    if (off + 4 > body) {
        goto corrupt;
    }
    argc = get32(b + off);
    off += 4;
    if (argc > CA_SPOOL_ARGS_MAX) {
        goto corrupt;
    }
    for (uint32_t i = 0; i < argc; i++) {
        if (off + 4 > body) {
            goto corrupt;
        }
        len = get32(b + off);
        off += 4;
        if (len > body - off) {
            goto corrupt;
        }
        rec->argv[i] = (char *) b + off;
        rec->lens[i] = len;
        off += len;
    }
    if (off != body) {
        goto corrupt;
    }
    rec->argc = (int) argc;
    rec->end = offset + 4 + body + 4;
    rec->buf = (char *) b;
    return 1;

corrupt:
    free(b);
    return -1;
}

int
ca_spool_ack(ca_spool *sp, uint64_t offset)
{
    if (offset > sp->acked) {
        sp->acked = offset;
    }
    if (sp->acked >= sp->size && sp->size > 0) {
        if (ftruncate(sp->fd, 0) != 0) {
            return -1;
        }
        sp->size = 0;
        sp->acked = 0;
        sp->dirty = 1;
    }
    return 0;
}
