/*
 * credit-audit archive --month M --out FILE --archive CONNINFO: a month
 * of the PostgreSQL archive as a verified export (contract §7.2: "a month
 * leaves the database only as a verified export"; docs/archive.md,
 * "Exporting a month").
 *
 * The month's entries (entry_time in the month, cut in --tz) are read in
 * archive order and, as they are written to FILE.tmp:
 *   - verified again from their verbatim copies exactly as `ship` did
 *     (lib/verify/auditstep.h), each chain continuing from its archived
 *     state just before the entry (so a chain begun the month before is
 *     not a gap), and every break found must be one the archive recorded
 *     as a finding on that entry, and every recorded one found again;
 *   - checked against their typed columns and month: what a query reads
 *     must be what the verbatim copy says.
 * Only then FILE appears (link(2): never over an existing file) with
 * FILE.manifest.json beside it: period, counts, archive orders, the
 * file's SHA-256, the month's findings.  A mismatch writes nothing and
 * exits 1: the archive was changed after shipping.
 *
 * (Before the archive, `archive --before` exported whole chains from
 * Redis to a file and deleted them from the stream; `ship` does that
 * job now, into PostgreSQL, and the old mode is refused with a pointer.)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit_pg.h"
#include "audit_verify.h"
#include "core/core.h"
#include "verify/verify.h"

static const char usage_archive[] =
    "usage: credit-audit archive --month YYYY-MM --out FILE --archive "
    "CONNINFO\n"
    "         (--pubkey FILE ... | --keyring FILE) [common options]\n"
    "\n"
    "Exports a month of the PostgreSQL archive (entries whose time falls in\n"
    "the month, cut in --tz) as JSON Lines, in archive order, after\n"
    "verifying it: every entry is verified again from its verbatim copy as\n"
    "`ship` verified it, every break must be a finding the archive\n"
    "recorded (and every recorded one found again), and the typed columns\n"
    "must say what the verbatim copy says.  FILE (never replaced) and\n"
    "FILE.manifest.json (period, counts, SHA-256 of FILE, the findings)\n"
    "appear only when all of that holds.  Exit status 0 exported, 1 the\n"
    "archive does not verify (nothing written), 2 usage or connection\n"
    "error.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS TOOL_ARCHIVE_HELP
    "  --month YYYY-MM               the month to export\n"
    "  --out FILE                    the export (never replaced)\n"
    "  --pubkey FILE, --keyring FILE the gateways' audit public keys\n";

enum { OPT_ARCHIVE = 300 };

typedef struct {
    uint64_t    ord;
    char        kind[24];
} found;

typedef struct {
    PGconn         *scan, *look;    /* the scan's, and the callbacks' */
    const char     *stream;
    ca_as          *ver;
    uint64_t        cur;            /* the entry being verified */
    FILE           *out;
    EVP_MD_CTX     *sha;
    size_t          entries, bytes, bad_columns;
    uint64_t        ord_first, ord_last;
    strmap          chains;
    found          *replay;
    size_t          nreplay, rcap;
    int             oom;
} month_ctx;

/* ---- the verifier over the archive, as it stood before each entry ------- */

static int
cb_load(void *data, const char *chain, size_t len, ca_as_state *st)
{
    month_ctx  *m = data;
    char        ord[24], *name = strndup(chain, len);
    const char *p[3] = {m->stream, name, ord};
    PGresult   *r;
    int         rc = 1;

    snprintf(ord, sizeof(ord), "%llu", (unsigned long long) m->cur);
    r = name ? pg_query(m->look, "SELECT seq, hash, ord FROM " ARCHIVE_SCHEMA
                        ".entries WHERE chain = $2 AND copy_of IS NULL AND "
                        "stream = $1 AND ord < $3 ORDER BY seq DESC LIMIT 1",
                        3, p)
             : NULL;
    free(name);
    if (r == NULL) {
        return -1;
    }
    if (PQntuples(r) == 1) {
        memset(st, 0, sizeof(*st));
        st->last_seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        st->last_ord = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        rc = ca_unhex(PQgetvalue(r, 0, 1), st->last_hash, 32) == 0 ? 0 : -1;
    }
    PQclear(r);
    return rc;
}

static int
cb_lookup(void *data, const char *chain, size_t len, uint64_t seq,
          ca_as_mark *mk)
{
    month_ctx *m = data;

    return archive_holder(m->look, m->stream, chain, len, seq, m->cur, mk);
}

/* ---- one entry ------------------------------------------------------------ */

static void
emit(month_ctx *m, const char *s, size_t len)
{
    fwrite(s, 1, len, m->out);
    EVP_DigestUpdate(m->sha, s, len);
    m->bytes += len;
}

/* The line, into a memory stream first so that it is hashed as written. */
static int
write_line(month_ctx *m, const entry *e, const archive_row *row)
{
    char   *buf = NULL;
    size_t  blen = 0;
    FILE   *f = open_memstream(&buf, &blen);
    int     exact = 1;

    if (f == NULL) {
        return -1;
    }
    fprintf(f, "{\"ord\":%llu,\"stream\":", (unsigned long long) row->ord);
    json_str(f, row->stream, strlen(row->stream));
    fputs(",\"id\":", f);
    json_str(f, e->id, strlen(e->id));
    if (row->is_copy) {
        fprintf(f, ",\"copy_of\":%llu", (unsigned long long) row->copy_of);
    }
    fputs(",\"fields\":{", f);
    for (size_t i = 0; i < e->n; i++) {
        exact &= ca_audit_column_fits(CA_F_RID, e->name[i], e->nlen[i])
                 && ca_audit_column_fits(CA_F_RID, e->value[i], e->vlen[i]);
        for (size_t j = 0; j < i && exact; j++) {
            exact = !(e->nlen[j] == e->nlen[i]
                      && memcmp(e->name[j], e->name[i], e->nlen[i]) == 0);
        }
        fputs(i ? "," : "", f);
        json_str(f, e->name[i], e->nlen[i]);
        fputc(':', f);
        json_str(f, e->value[i], e->vlen[i]);
    }
    fputc('}', f);
    if (!exact) {
        /* what JSON strings cannot carry (invalid UTF-8, a NUL in a name,
         * a name twice): the verbatim copy itself */
        sbuf    raw = {0};
        char   *b64;

        raw_encode(&raw, e);
        b64 = malloc(4 * (raw.len + 2) / 3 + 2);
        if (b64 == NULL || raw.failed) {
            free(b64);
            sb_free(&raw);
            fclose(f);
            free(buf);
            return -1;
        }
        ca_b64url_encode((const unsigned char *) raw.p, raw.len, b64);
        fprintf(f, ",\"raw\":\"%s\"", b64);
        free(b64);
        sb_free(&raw);
    }
    fputs("}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return -1;
    }
    emit(m, buf, blen);
    free(buf);
    return 0;
}

static int
cb_entry(const entry *e, const archive_row *row, void *data)
{
    month_ctx     *m = data;
    ca_as_verdict  v;
    const char    *val[CA_F_COUNT];
    size_t         len[CA_F_COUNT], clen;
    const char    *chain = get(e, CA_F_CHAIN, &clen);

    m->cur = row->ord;
    if (ca_as_add(m->ver, e->id, row->ord, e->n, e->name, e->nlen, e->value,
                  e->vlen, &v) != 0)
    {
        fputs("credit-audit: archive: verification failed (connection or "
              "memory)\n", stderr);
        return EXIT_USAGE;
    }
    ca_as_commit(m->ver);
    for (size_t i = 0; i < v.nfindings; i++) {
        if (m->nreplay == m->rcap) {
            size_t  ncap = m->rcap ? m->rcap * 2 : 16;
            found  *nf = realloc(m->replay, ncap * sizeof(*nf));

            if (nf == NULL) {
                return EXIT_USAGE;
            }
            m->replay = nf;
            m->rcap = ncap;
        }
        m->replay[m->nreplay].ord = row->ord;
        snprintf(m->replay[m->nreplay++].kind, sizeof(m->replay[0].kind),
                 "%s", ca_av_kind_name(v.findings[i].kind));
    }
    /* what a query reads is what the entry says */
    archive_columns(e, val, len);
    for (int f = 0; f < CA_F_COUNT; f++) {
        if ((val[f] == NULL) != (row->col[f] == NULL)
            || (val[f] != NULL
                && (len[f] != row->col_len[f]
                    || memcmp(val[f], row->col[f], len[f]) != 0)))
        {
            if (m->bad_columns++ < 5) {
                fprintf(stderr, "credit-audit: archive entry %llu: column "
                        "%s is not what its verbatim copy says\n",
                        (unsigned long long) row->ord,
                        ca_audit_schema[f].column);
            }
            break;
        }
    }
    if (archive_entry_ms(e) != row->entry_ms && m->bad_columns++ < 5) {
        fprintf(stderr, "credit-audit: archive entry %llu: filed under "
                "another time than its own\n", (unsigned long long) row->ord);
    }
    if (chain != NULL) {
        map_find(&m->chains, chain, clen, 1);
    }
    if (m->entries++ == 0) {
        m->ord_first = row->ord;
    }
    m->ord_last = row->ord;
    return write_line(m, e, row) == 0 ? 0 : EXIT_USAGE;
}

/* ---- the month ------------------------------------------------------------ */

static int
found_cmp(const void *a, const void *b)
{
    const found *x = a, *y = b;

    if (x->ord != y->ord) {
        return x->ord < y->ord ? -1 : 1;
    }
    return strcmp(x->kind, y->kind);
}

/* The recorded findings of the month's entries (ords below bound), as
 * (ord, kind) sorted, and the manifest's JSON array of them. */
static PGresult *
recorded(month_ctx *m, const period *per, const char *bound)
{
    char        a[24], b[24];
    const char *p[4] = {m->stream, a, b, bound};

    snprintf(a, sizeof(a), "%lld", (long long) per->since);
    snprintf(b, sizeof(b), "%lld", (long long) per->until);
    return pg_query(m->look, "SELECT f.ord, f.kind, f.id, f.stream_id, "
                    "f.chain, coalesce(f.seq::text, ''), f.detail, "
                    "f.acknowledged_at IS NOT NULL FROM " ARCHIVE_SCHEMA
                    ".findings f JOIN " ARCHIVE_SCHEMA ".entries e ON e.ord = "
                    "f.ord AND e.stream = f.stream WHERE f.stream = $1 AND "
                    "e.entry_time >= to_timestamp($2::bigint / 1000.0) AND "
                    "e.entry_time < to_timestamp($3::bigint / 1000.0) AND "
                    "f.ord < $4 ORDER BY f.ord, f.kind", 4, p);
}

/* 0 when the replay found exactly the recorded findings. */
static int
compare(month_ctx *m, PGresult *rec)
{
    size_t n = (size_t) PQntuples(rec), diff = 0;

    if (m->nreplay > 1) {
        qsort(m->replay, m->nreplay, sizeof(found), found_cmp);
    }
    for (size_t i = 0; i < n || i < m->nreplay; i++) {
        found r = {0};

        if (i < n) {
            r.ord = strtoull(PQgetvalue(rec, (int) i, 0), NULL, 10);
            snprintf(r.kind, sizeof(r.kind), "%s",
                     PQgetvalue(rec, (int) i, 1));
        }
        if (i >= n || i >= m->nreplay || found_cmp(&r, &m->replay[i]) != 0) {
            if (diff++ < 5) {
                fprintf(stderr, "credit-audit: archive entry %llu: %s\n",
                        (unsigned long long) (i < m->nreplay
                                              ? m->replay[i].ord : r.ord),
                        i < m->nreplay
                        ? "a break the archive did not record (or recorded "
                          "otherwise)"
                        : "a recorded finding not found again");
            }
        }
    }
    return diff == 0 ? 0 : -1;
}

static int
write_manifest(const char *file, const month_ctx *m, const char *month,
               const period *per, const unsigned char sha[32], PGresult *rec)
{
    char    path[4096], hex[65], t0[48], t1[48];
    int     fd;
    FILE   *f;

    snprintf(path, sizeof(path), "%s.manifest.json", file);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    ca_hex(sha, 32, hex);
    ca_time_format(per->since, t0, sizeof(t0));
    ca_time_format(per->until, t1, sizeof(t1));
    fputs("{\"format\":\"credit-audit archive export 1\",\"stream\":", f);
    json_str(f, m->stream, strlen(m->stream));
    fprintf(f, ",\"month\":\"%s\",\"tz\":", month);
    json_str(f, tool_tz_name(), strlen(tool_tz_name()));
    fprintf(f, ",\"since\":\"%s\",\"until\":\"%s\",\"file\":", t0, t1);
    json_str(f, file, strlen(file));
    fprintf(f, ",\"sha256\":\"%s\",\"bytes\":%zu,\"entries\":%zu,"
            "\"chains\":%zu,\"ord_first\":", hex, m->bytes, m->entries,
            m->chains.n);
    if (m->entries) {
        fprintf(f, "%llu,\"ord_last\":%llu",
                (unsigned long long) m->ord_first,
                (unsigned long long) m->ord_last);
    } else {
        fputs("null,\"ord_last\":null", f);
    }
    fputs(",\"verified\":true,\"findings\":[", f);
    for (int i = 0; i < PQntuples(rec); i++) {
        fprintf(f, "%s{\"id\":%s,\"ord\":%s,\"kind\":\"%s\",\"stream_id\":",
                i ? "," : "", PQgetvalue(rec, i, 2), PQgetvalue(rec, i, 0),
                PQgetvalue(rec, i, 1));
        json_str(f, PQgetvalue(rec, i, 3), strlen(PQgetvalue(rec, i, 3)));
        fputs(",\"chain\":", f);
        json_str(f, PQgetvalue(rec, i, 4), strlen(PQgetvalue(rec, i, 4)));
        fprintf(f, ",\"seq\":%s,\"detail\":",
                PQgetvalue(rec, i, 5)[0] ? PQgetvalue(rec, i, 5) : "null");
        json_str(f, PQgetvalue(rec, i, 6), strlen(PQgetvalue(rec, i, 6)));
        fprintf(f, ",\"acknowledged\":%s}",
                PQgetvalue(rec, i, 7)[0] == 't' ? "true" : "false");
    }
    fputs("]}\n", f);
    if (fflush(f) != 0 || fsync(fd) != 0 || ferror(f)) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int
export_month(month_ctx *m, const char *file, const char *month,
             const period *per)
{
    char            tmp[4096], bound[24];
    int             fd, rv;
    size_t          count;
    unsigned char   sha[32];
    archive_filter  f = {0};
    PGresult       *r, *rec = NULL;

    if ((r = pg_query(m->look, "SELECT next_ord FROM " ARCHIVE_SCHEMA ".log",
                      0, NULL)) == NULL)
    {
        return EXIT_USAGE;
    }
    snprintf(bound, sizeof(bound), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if ((rec = recorded(m, per, bound)) == NULL) {
        return EXIT_USAGE;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0 || (m->out = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", tmp, strerror(errno));
        PQclear(rec);
        return EXIT_USAGE;
    }
    f.stream = m->stream;
    f.has_since = f.has_until = f.has_ord = f.columns = 1;
    f.since_ms = per->since;
    f.until_ms = per->until;
    f.ord_to = strtoull(bound, NULL, 10);
    rv = archive_scan(m->scan, &f, cb_entry, m, &count);
    EVP_DigestFinal_ex(m->sha, sha, NULL);
    if (fflush(m->out) != 0 || fsync(fd) != 0 || ferror(m->out)) {
        fprintf(stderr, "credit-audit: %s: write error\n", tmp);
        rv = EXIT_USAGE;
    }
    fclose(m->out);
    if (rv == 0 && (compare(m, rec) != 0 || m->bad_columns > 0)) {
        fprintf(stderr, "credit-audit: the archive's %s does not verify: "
                "nothing exported\n", month);
        rv = EXIT_FINDING;
    }
    if (rv == 0 && link(tmp, file) != 0) {
        fprintf(stderr, "credit-audit: --out %s: %s (an export is never "
                "written over: choose a new file)\n", file, strerror(errno));
        rv = EXIT_USAGE;
    }
    unlink(tmp);
    if (rv == 0 && write_manifest(file, m, month, per, sha, rec) != 0) {
        rv = EXIT_USAGE;
    }
    if (rv == 0) {
        printf("%s: %zu entries of %s (archive entries %llu..%llu), %zu "
               "chains, %d findings: verified, exported to %s\n", m->stream,
               m->entries, month, (unsigned long long) m->ord_first,
               (unsigned long long) m->ord_last, m->chains.n,
               PQntuples(rec), file);
    }
    PQclear(rec);
    return rv;
}

int
cmd_archive(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"month", required_argument, NULL, OPT_MONTH},
        {"out", required_argument, NULL, OPT_OUT},
        {"before", required_argument, NULL, OPT_BEFORE},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    month_ctx     m;
    av_keys       ks = {0};
    ca_as_io      io = {cb_load, cb_lookup, &m};
    period        per = {0};
    const char   *archive = NULL, *out = NULL, *month = NULL;
    int           ch, rv = EXIT_USAGE;

    common_init(&co);
    memset(&m, 0, sizeof(m));
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE: archive = optarg; break;
        case OPT_OUT:     out = optarg; break;
        case OPT_MONTH:
            month = optarg;
            period_opt(&per, ch, optarg);
            break;
        case OPT_BEFORE:
            fputs("credit-audit: archive --before (whole chains from Redis "
                  "to a file) is gone: `credit-audit ship --archive "
                  "CONNINFO` moves the stream into the PostgreSQL archive "
                  "and trims it; `credit-audit archive --month YYYY-MM --out "
                  "FILE --archive CONNINFO` exports a verified month from "
                  "there (docs/archive.md)\n", stderr);
            return EXIT_USAGE;
        case 'h':
            fputs(usage_archive, stdout);
            return 0;
        default:
            return usage_error(usage_archive, NULL, NULL);
        }
    }
    if (args_done(usage_archive, argc, argv, &per) != 0) {
        return EXIT_USAGE;
    }
    if (month == NULL || out == NULL || archive == NULL) {
        return usage_error(usage_archive, "%s", "archive needs --month "
                           "YYYY-MM, --out FILE and --archive CONNINFO");
    }
    if (pg_conninfo_check(archive) != 0) {
        return EXIT_USAGE;
    }
    if (co.npubkeys == 0 && co.keyring == NULL) {
        return usage_error(usage_archive, "%s", "archive verifies before it "
                           "exports: give --pubkey FILE or --keyring FILE");
    }
    if (av_keys_load(&co, &ks) != 0) {
        return EXIT_USAGE;
    }
    m.stream = co.stream;
    if ((m.scan = pg_open(archive, "credit-audit archive")) != NULL
        && pgschema_check(m.scan) == 0
        && (m.look = pg_open(archive, "credit-audit archive")) != NULL
        && (m.ver = ca_as_new(ks.key, ks.n, &io)) != NULL
        && (m.sha = EVP_MD_CTX_new()) != NULL
        && EVP_DigestInit_ex(m.sha, EVP_sha256(), NULL) == 1)
    {
        rv = export_month(&m, out, month, &per);
    }
    EVP_MD_CTX_free(m.sha);
    ca_as_free(m.ver);
    PQfinish(m.scan);
    PQfinish(m.look);
    map_free(&m.chains);
    free(m.replay);
    av_keys_free(&ks);
    return rv;
}
