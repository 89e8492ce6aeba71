/*
 * The shipper's side of the Merkle tree log (audit_mklog.h,
 * docs/transparency.md).
 *
 * Each archived entry is a leaf, in archive order; the shipper keeps the
 * tree's right edge (lib/merkle: at most 64 hashes) and writes every
 * complete subtree a batch completes, in that batch's transaction: the
 * log and the entries never disagree, and what a rolled-back batch
 * appended is forgotten with it.  A shipper that finds the archive moved
 * (another stream's shipper, a restart) reads the right edge back from
 * the stored nodes; an archive from before the log existed gets its
 * leaves from `raw`, once.
 *
 * Checkpoints are signed in a transaction of their own, under the same
 * lock, when one is due: every --checkpoint-every while the tree grows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "audit_mklog.h"
#include "audit_ship.h"
#include "core/core.h"

#define S ARCHIVE_SCHEMA
#define ROW_NODES 64
#define BACKFILL_PAGE 10000

typedef struct {
    uint64_t        first;
    size_t          n;
    unsigned char   h[ROW_NODES * 32];
} open_row;

struct mklog {
    mklog_opts      o;
    EVP_PKEY       *key;
    ca_mk_frontier  done;       /* as committed */
    ca_mk_frontier  cur;        /* with the batch in flight */
    int             loaded;
    open_row        row[64];    /* the batch's nodes, per level */
    sbuf            rows;       /* ... as COPY text */
    int             ckpt_known; /* the archive's last checkpoint read */
    uint64_t        ckpt_size;
    int64_t         ckpt_ms;
    uint64_t        checkpoints;
    int             published;
};

static int64_t
now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

mklog *
mklog_new(const mklog_opts *o)
{
    mklog *l = calloc(1, sizeof(*l));
    FILE  *f;

    if (l == NULL) {
        fprintf(stderr, "%s: out of memory\n", tool_name);
        return NULL;
    }
    l->o = *o;
    if (o->key_file == NULL) {
        return l;
    }
    if (o->name == NULL || !ca_note_name_ok(o->name)) {
        fprintf(stderr, "%s: --log-key needs --log-name NAME: the log's "
                "name (its checkpoints' origin and key name: printable, "
                "no space, no '+', e.g. audit.example.cn/log)\n",
                tool_name);
        free(l);
        return NULL;
    }
    if ((f = fopen(o->key_file, "r")) == NULL) {
        fprintf(stderr, "%s: --log-key %s: %s\n", tool_name, o->key_file,
                strerror(errno));
        free(l);
        return NULL;
    }
    l->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (l->key == NULL || EVP_PKEY_get_base_id(l->key) != EVP_PKEY_ED25519) {
        fprintf(stderr, "%s: --log-key %s: not an Ed25519 private key in "
                "PEM (openssl genpkey -algorithm ed25519)\n", tool_name,
                o->key_file);
        EVP_PKEY_free(l->key);
        free(l);
        return NULL;
    }
    return l;
}

void
mklog_free(mklog *l)
{
    if (l != NULL) {
        EVP_PKEY_free(l->key);
        sb_free(&l->rows);
        free(l);
    }
}

uint64_t
mklog_checkpoints(const mklog *l)
{
    return l ? l->checkpoints : 0;
}

/* ---- the batch's nodes ------------------------------------------------------ */

static void
flush_row(mklog *l, unsigned level)
{
    open_row *r = &l->row[level];

    if (r->n == 0) {
        return;
    }
    sb_copy_u64(&l->rows, level);
    sb_copy_tab(&l->rows);
    sb_copy_u64(&l->rows, r->first);
    sb_copy_tab(&l->rows);
    sb_copy_bytea(&l->rows, r->h, r->n * 32);
    sb_copy_eol(&l->rows);
    r->n = 0;
}

/* A node the append completed: into its level's row (a row never spans
 * a multiple of ROW_NODES, so the stored row with the greatest first at
 * or below an index holds it). */
static int
emit(void *ctx, unsigned level, uint64_t index, const unsigned char h[32])
{
    mklog    *l = ctx;
    open_row *r = &l->row[level];

    if (r->n > 0 && (index != r->first + r->n || index % ROW_NODES == 0)) {
        flush_row(l, level);
    }
    if (r->n == 0) {
        r->first = index;
    }
    memcpy(r->h + r->n * 32, h, 32);
    r->n++;
    return 0;
}

static void
reset_batch(mklog *l)
{
    for (unsigned i = 0; i < 64; i++) {
        l->row[i].n = 0;
    }
    l->rows.len = 0;
    l->rows.failed = 0;
}

static int
leaf(mklog *l, const unsigned char *raw, size_t len)
{
    unsigned char h[32];

    ca_mk_leaf(raw, len, h);
    return ca_mk_append(&l->cur, h, emit, l);
}

int
mklog_leaf(mklog *l, const unsigned char *raw, size_t len)
{
    return leaf(l, raw, len);
}

int
mklog_entry(mklog *l, const entry *e)
{
    sbuf raw = {0};
    int  rc;

    raw_encode(&raw, e);
    rc = raw.failed ? -1 : leaf(l, (const unsigned char *) raw.p, raw.len);
    sb_free(&raw);
    return rc;
}

/* The right edge of the stored tree of n leaves. */
static int
load_frontier(PGconn *pg, uint64_t n, ca_mk_frontier *f)
{
    mk_cache c = {pg, NULL, 0, 0, 0, 1};
    int      rc;

    rc = ca_mk_frontier_load(f, n, mk_get, &c) != 0 || mk_fetch(&c) != 0
         || ca_mk_frontier_load(f, n, mk_get, &c) != 0 ? -1 : 0;
    mk_cache_free(&c);
    return rc;
}

/* Leaves [from, to) from the entries' verbatim copies. */
static int
backfill(mklog *l, PGconn *pg, uint64_t from, uint64_t to)
{
    char        a[24], b[24];
    const char *p[2] = {a, b};

    ship_log("the Merkle log holds %llu of the archive's %llu entries (an "
             "archive from before it): adding the rest from raw",
             (unsigned long long) from, (unsigned long long) to);
    while (from < to) {
        PGresult *r;
        int       n;

        snprintf(a, sizeof(a), "%llu", (unsigned long long) from);
        snprintf(b, sizeof(b), "%llu", (unsigned long long) to);
        /* binary: raw as it is; whether each ord is the next one */
        r = PQexecParams(pg, "SELECT ord = $1::bigint + row_number() OVER "
                         "(ORDER BY ord) - 1, raw FROM " S ".entries WHERE "
                         "ord >= $1 AND ord < $2 ORDER BY ord LIMIT 10000",
                         2, NULL, p, NULL, NULL, 1);
        if (pg_check(pg, r, "SELECT raw") != 0) {
            PQclear(r);
            return -1;
        }
        n = PQntuples(r);
        for (int i = 0; i < n; i++) {
            if (PQgetlength(r, i, 0) != 1 || PQgetvalue(r, i, 0)[0] != 1) {
                fprintf(stderr, "%s: archive: entry %llu is missing: the "
                        "archive orders have a gap\n", tool_name,
                        (unsigned long long) from);
                PQclear(r);
                return -1;
            }
            if (leaf(l, (const unsigned char *) PQgetvalue(r, i, 1),
                     (size_t) PQgetlength(r, i, 1)) != 0)
            {
                PQclear(r);
                return -1;
            }
            from++;
        }
        PQclear(r);
        if (n == 0) {
            fprintf(stderr, "%s: archive: entry %llu is missing\n",
                    tool_name, (unsigned long long) from);
            return -1;
        }
    }
    return 0;
}

int
mklog_begin(mklog *l, PGconn *pg, uint64_t next_ord)
{
    int64_t stored;

    reset_batch(l);
    if (l->loaded && l->done.size == next_ord) {
        l->cur = l->done;
        return 0;
    }
    l->loaded = 0;
    if ((stored = mk_stored_leaves(pg)) < 0) {
        return -1;
    }
    if ((uint64_t) stored > next_ord) {
        fprintf(stderr, "%s: archive: the Merkle log has %lld leaves but "
                "the archive %llu entries: it was changed outside the "
                "shipper\n", tool_name, (long long) stored,
                (unsigned long long) next_ord);
        return -1;
    }
    if (load_frontier(pg, (uint64_t) stored, &l->done) != 0) {
        return -1;
    }
    l->cur = l->done;
    if ((uint64_t) stored < next_ord
        && backfill(l, pg, (uint64_t) stored, next_ord) != 0)
    {
        l->cur = l->done;
        reset_batch(l);
        return -1;
    }
    l->loaded = 1;
    return 0;
}

int
mklog_write(mklog *l, PGconn *pg)
{
    for (unsigned i = 0; i < 64; i++) {
        flush_row(l, i);
    }
    if (l->rows.failed) {
        fprintf(stderr, "%s: out of memory\n", tool_name);
        return -1;
    }
    if (l->rows.len == 0) {
        return 0;
    }
    return pg_copy_in(pg, "COPY " S ".merkle (level, first, hashes) FROM "
                      "STDIN", &l->rows);
}

void
mklog_commit(mklog *l)
{
    l->done = l->cur;
    reset_batch(l);
}

void
mklog_rollback(mklog *l)
{
    l->cur = l->done;
    reset_batch(l);
}

/* ---- checkpoints ------------------------------------------------------------ */

/* FILE.tmp, fsync'd, renamed over FILE: a reader sees the old note or
 * the new one, whole. */
static int
publish(const char *file, const char *note)
{
    char    tmp[4096];
    int     fd;
    size_t  len = strlen(note);
    ssize_t w;

    if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= sizeof(tmp)) {
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        ship_log("--publish %s: %s", tmp, strerror(errno));
        return -1;
    }
    w = write(fd, note, len);
    if (w != (ssize_t) len || fsync(fd) != 0 || close(fd) != 0) {
        ship_log("--publish %s: %s", tmp, strerror(errno));
        if (w != (ssize_t) len) {
            close(fd);
        }
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, file) != 0) {
        ship_log("--publish %s: %s", file, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The archive's last checkpoint: its size, age and name (the first
 * checkpoint names the log for good). */
static int
read_last(mklog *l, PGconn *pg)
{
    mk_ckpt c;
    int     rc = mk_ckpt_get(pg, 0, &c);

    if (rc < 0) {
        return -1;
    }
    l->ckpt_known = 1;
    if (rc == 1) {
        l->ckpt_size = 0;
        l->ckpt_ms = 0;
        return 0;
    }
    if (strcmp(c.origin, l->o.name) != 0) {
        fprintf(stderr, "%s: the archive's log is named %s; --log-name "
                "says %s (a log keeps its name: its checkpoints are "
                "verified under it)\n", tool_name, c.origin, l->o.name);
        mk_ckpt_free(&c);
        return -2;
    }
    l->ckpt_size = c.size;
    l->ckpt_ms = now_ms();      /* its age: counted from now, at worst */
    if (l->o.publish != NULL && !l->published) {
        l->published = publish(l->o.publish, c.note) == 0;
    }
    mk_ckpt_free(&c);
    return 0;
}

int
mklog_checkpoint(mklog *l, PGconn *pg, int force)
{
    char            text[CA_NOTE_MAX], note[CA_NOTE_MAX], n[24];
    char            hex[65];
    const char     *p[4] = {n, hex, l->o.name, note};
    unsigned char   root[32];
    PGresult       *r;
    uint64_t        size;
    size_t          tl;
    int             rc;

    if (l->key == NULL) {
        return 0;
    }
    if (!l->ckpt_known && (rc = read_last(l, pg)) != 0) {
        return rc == -2 ? -2 : -1;
    }
    if (l->loaded && l->done.size <= l->ckpt_size) {
        return 0;                   /* nothing new seen by this process */
    }
    if (!force && now_ms() - l->ckpt_ms < l->o.every_ms) {
        return 0;
    }
    if (pg_exec(pg, "BEGIN") != 0) {
        return -1;
    }
    r = pg_query(pg, "SELECT next_ord, (SELECT coalesce(max(size), 0) FROM "
                 S ".checkpoints) FROM " S ".log FOR UPDATE", 0, NULL);
    if (r == NULL) {
        goto fail;
    }
    size = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    l->ckpt_size = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (size <= l->ckpt_size) {
        PQclear(PQexec(pg, "ROLLBACK"));
        return 0;
    }
    /* the tree brought to the archive's size (another stream's shipper
     * moved it; an archive from before the log) in this transaction */
    if (mklog_begin(l, pg, size) != 0 || mklog_write(l, pg) != 0) {
        goto fail;
    }
    ca_mk_frontier_root(&l->cur, root);
    tl = ca_ckpt_text(l->o.name, size, root, text, sizeof(text));
    if (tl == 0 || ca_note_sign(text, tl, l->o.name, l->key, note,
                                sizeof(note)) == 0)
    {
        fprintf(stderr, "%s: signing the checkpoint failed\n", tool_name);
        goto fail;
    }
    snprintf(n, sizeof(n), "%llu", (unsigned long long) size);
    ca_hex(root, 32, hex);
    r = pg_query(pg, "INSERT INTO " S ".checkpoints (size, root, origin, "
                 "note) VALUES ($1, decode($2, 'hex'), $3, $4)", 4, p);
    if (r == NULL) {
        goto fail;
    }
    PQclear(r);
    if (pg_exec(pg, "COMMIT") != 0) {
        mklog_rollback(l);
        return -1;
    }
    mklog_commit(l);
    l->ckpt_size = size;
    l->ckpt_ms = now_ms();
    l->checkpoints++;
    if (l->o.publish != NULL) {
        publish(l->o.publish, note);
    }
    return 0;

fail:
    PQclear(PQexec(pg, "ROLLBACK"));
    mklog_rollback(l);
    return -1;
}
