/*
 * The stored Merkle tree read back (audit_mklog.h): nodes fetched in bulk
 * (one query answers every node a set of proofs needs: one index probe
 * per node, O(log n) per proof), and the signed checkpoints.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_mklog.h"
#include "core/core.h"

#define S ARCHIVE_SCHEMA

/* ---- the node cache ------------------------------------------------------ */

static size_t
slot_of(const mk_cache *c, unsigned level, uint64_t index)
{
    uint64_t h = (index * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t) level << 58);
    size_t   i = (size_t) (h ^ (h >> 29)) & (c->cap - 1);

    while (c->slot[i].state != 0
           && (c->slot[i].level != level || c->slot[i].index != index)) {
        i = (i + 1) & (c->cap - 1);
    }
    return i;
}

static int
grow(mk_cache *c)
{
    mk_cache  old = *c;
    size_t    cap = c->cap ? c->cap * 2 : 1024;

    if ((c->slot = calloc(cap, sizeof(*c->slot))) == NULL) {
        c->slot = old.slot;
        return -1;
    }
    c->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slot[i].state != 0) {
            c->slot[slot_of(c, old.slot[i].level, old.slot[i].index)] =
                old.slot[i];
        }
    }
    free(old.slot);
    return 0;
}

int
mk_get(void *ctx, unsigned level, uint64_t index, unsigned char out[32])
{
    mk_cache *c = ctx;
    size_t    i;

    if ((c->n + 1) * 2 > c->cap && grow(c) != 0) {
        return -1;
    }
    i = slot_of(c, level, index);
    if (c->slot[i].state == 2) {
        memcpy(out, c->slot[i].h, 32);
        return 0;
    }
    if (!c->recording) {
        return -1;
    }
    if (c->slot[i].state == 0) {
        c->slot[i].state = 1;
        c->slot[i].level = level;
        c->slot[i].index = index;
        c->n++;
        c->wanted++;
    }
    memset(out, 0, 32);
    return 0;
}

static void
append_num(sbuf *b, uint64_t v, int *first)
{
    sb_printf(b, "%s%llu", *first ? "" : ",", (unsigned long long) v);
    *first = 0;
}

int
mk_fetch(mk_cache *c)
{
    static const char sql[] =
        "SELECT q.l, q.i, encode(substring(m.hashes FROM (q.i - m.first)::int"
        " * 32 + 1 FOR 32), 'hex') FROM unnest($1::int[], $2::bigint[]) AS "
        "q(l, i) CROSS JOIN LATERAL (SELECT first, hashes FROM " S ".merkle "
        "m WHERE m.level = q.l AND m.first <= q.i ORDER BY m.first DESC "
        "LIMIT 1) m WHERE q.i < m.first + length(m.hashes) / 32";
    sbuf        ls = {0}, is = {0};
    int         f1 = 1, f2 = 1, rc = 0;
    size_t      got = 0;
    PGresult   *r;
    const char *p[2];

    c->recording = 0;
    if (c->wanted == 0) {
        return 0;
    }
    sb_puts(&ls, "{");
    sb_puts(&is, "{");
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slot[i].state == 1) {
            append_num(&ls, c->slot[i].level, &f1);
            append_num(&is, c->slot[i].index, &f2);
        }
    }
    sb_puts(&ls, "}");
    sb_puts(&is, "}");
    if (ls.failed || is.failed) {
        sb_free(&ls);
        sb_free(&is);
        return -1;
    }
    p[0] = ls.p;
    p[1] = is.p;
    r = pg_query(c->pg, sql, 2, p);
    sb_free(&ls);
    sb_free(&is);
    if (r == NULL) {
        return -1;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        unsigned  level = (unsigned) atoi(PQgetvalue(r, i, 0));
        uint64_t  index = strtoull(PQgetvalue(r, i, 1), NULL, 10);
        size_t    s = slot_of(c, level, index);

        if (c->slot[s].state != 1
            || ca_unhex(PQgetvalue(r, i, 2), c->slot[s].h, 32) != 0)
        {
            rc = -1;
            break;
        }
        c->slot[s].state = 2;
        got++;
    }
    PQclear(r);
    if (rc == 0 && got != c->wanted) {
        fprintf(stderr, "%s: archive: the Merkle log lacks %zu of the "
                "nodes asked for: it is incomplete or was changed\n",
                tool_name, c->wanted - got);
        rc = -1;
    }
    c->wanted = 0;
    return rc;
}

void
mk_cache_free(mk_cache *c)
{
    free(c->slot);
    c->slot = NULL;
    c->cap = c->n = c->wanted = 0;
}

int64_t
mk_stored_leaves(PGconn *pg)
{
    PGresult *r = pg_query(pg, "SELECT coalesce((SELECT first + length("
                           "hashes) / 32 FROM " S ".merkle WHERE level = 0 "
                           "ORDER BY first DESC LIMIT 1), 0)", 0, NULL);
    int64_t   n;

    if (r == NULL) {
        return -1;
    }
    n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* ---- checkpoints ------------------------------------------------------------ */

static int
ckpt_row(PGresult *r, mk_ckpt *out)
{
    if (r == NULL) {
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 1;
    }
    memset(out, 0, sizeof(*out));
    out->size = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    snprintf(out->origin, sizeof(out->origin), "%s", PQgetvalue(r, 0, 2));
    snprintf(out->made_at, sizeof(out->made_at), "%s", PQgetvalue(r, 0, 4));
    if (ca_unhex(PQgetvalue(r, 0, 1), out->root, 32) != 0
        || (out->note = strdup(PQgetvalue(r, 0, 3))) == NULL)
    {
        PQclear(r);
        return -1;
    }
    PQclear(r);
    return 0;
}

#define CKPT_COLS "size, encode(root, 'hex'), origin, note, " \
    "to_char(made_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

int
mk_ckpt_get(PGconn *pg, uint64_t size, mk_ckpt *out)
{
    char        n[24];
    const char *p[1] = {n};

    if (size == 0) {
        return ckpt_row(pg_query(pg, "SELECT " CKPT_COLS " FROM " S
                                 ".checkpoints ORDER BY size DESC LIMIT 1",
                                 0, NULL), out);
    }
    snprintf(n, sizeof(n), "%llu", (unsigned long long) size);
    return ckpt_row(pg_query(pg, "SELECT " CKPT_COLS " FROM " S
                             ".checkpoints WHERE size = $1", 1, p), out);
}

int
mk_ckpt_before(PGconn *pg, int64_t ms, mk_ckpt *out)
{
    char        n[24];
    const char *p[1] = {n};

    snprintf(n, sizeof(n), "%lld", (long long) ms);
    return ckpt_row(pg_query(pg, "SELECT " CKPT_COLS " FROM " S
                             ".checkpoints WHERE made_at <= to_timestamp($1"
                             "::bigint / 1000.0) ORDER BY made_at DESC, size "
                             "DESC LIMIT 1", 1, p), out);
}

void
mk_ckpt_free(mk_ckpt *c)
{
    free(c->note);
    c->note = NULL;
}

void
mk_json_hashes(FILE *out, const ca_mk_hash *h, size_t n)
{
    char b64[48];

    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        ca_b64std_encode(h[i], 32, b64);
        fprintf(out, "%s\"%s\"", i ? "," : "", b64);
    }
    fputc(']', out);
}

int
mk_ckpt_file(const char *file, mk_ckpt *c)
{
    ca_error e;
    size_t   len, tl;
    char    *note = ca_read_file(file, CA_NOTE_MAX, &len, &e);

    memset(c, 0, sizeof(*c));
    if (note == NULL) {
        fprintf(stderr, "%s: %s\n", tool_name, e.text);
        return -1;
    }
    /* the text is the note's up to its blank line */
    for (tl = 1; tl < len && !(note[tl - 1] == '\n' && note[tl] == '\n');
         tl++) {
    }
    if (ca_ckpt_parse(note, tl < len ? tl : len, c->origin,
                      sizeof(c->origin), &c->size, c->root) != 0)
    {
        fprintf(stderr, "%s: %s: not a checkpoint\n", tool_name, file);
        free(note);
        return -1;
    }
    c->note = note;
    return 0;
}

/* ---- shared by proof and statement ------------------------------------------ */

PGconn *
mk_open_archive(const char *archive, const char *app)
{
    PGconn *c = pg_open(archive, app);

    if (c != NULL && pgschema_check(c) != 0) {
        PQfinish(c);
        c = NULL;
    }
    return c;
}

void
mk_json_b64(FILE *out, const unsigned char *p, size_t len)
{
    char *b = malloc(4 * ((len + 2) / 3) + 1);

    if (b == NULL) {
        fputs("null", out);
        return;
    }
    ca_b64std_encode(p, len, b);
    fprintf(out, "\"%s\"", b);
    free(b);
}

void
mk_entry_json(FILE *out, uint64_t ord, const unsigned char *raw, size_t len,
              const ca_mk_hash *path, int np)
{
    unsigned char leaf[32];
    entry         e = {0};
    size_t        cap = 0;

    ca_mk_leaf(raw, len, leaf);
    fprintf(out, "{\"ord\":%llu,\"leaf\":", (unsigned long long) ord);
    mk_json_b64(out, leaf, 32);
    fputs(",\"raw\":", out);
    mk_json_b64(out, raw, len);
    /* the fields, to read; the raw bytes are what is proven */
    fputs(",\"fields\":{", out);
    if (raw_decode(raw, len, &e, &cap) == 0) {
        for (size_t i = 0; i < e.n; i++) {
            fputs(i ? "," : "", out);
            json_str(out, e.name[i], e.nlen[i]);
            fputc(':', out);
            json_str(out, e.value[i], e.vlen[i]);
        }
    }
    free(e.name);
    free(e.nlen);
    free(e.value);
    free(e.vlen);
    fputs("},\"proof\":", out);
    if (np < 0) {
        fputs("null", out);
    } else {
        mk_json_hashes(out, path, (size_t) np);
    }
    fputc('}', out);
}

void
mk_ckpt_json(FILE *out, const mk_ckpt *c)
{
    fprintf(out, "{\"origin\":");
    json_str(out, c->origin, strlen(c->origin));
    fprintf(out, ",\"tree_size\":%llu,\"root\":",
            (unsigned long long) c->size);
    mk_json_b64(out, c->root, 32);
    fprintf(out, ",\"made_at\":\"%s\",\"checkpoint\":", c->made_at);
    json_str(out, c->note, strlen(c->note));
    fputc('}', out);
}
