/*
 * credit-audit statement (contract §7.3, docs/transparency.md): every decision
 * of an enterprise's in a month, with its outcome, each entry with its
 * inclusion proof against one signed checkpoint; totals per bank, purpose
 * and decision; the whole summed up in a note signed with the log key.
 * JSON for the enterprise's own check (credit-consent statement verify),
 * HTML for a person (audit_stmthtml.c).
 *
 * Only the archive is read: a statement proves entries against a
 * checkpoint, and only archived entries are in the log.  Decisions after
 * the checkpoint are counted as pending and said, not shown unproven.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "audit_stmt.h"
#include "core/core.h"

static const char usage_statement[] =
    "usage: credit-audit statement --archive CONNINFO --enterprise USCC\n"
    "         --month YYYY-MM --log-key FILE [--log-name NAME]\n"
    "         [--format json|html] [--checkpoint SIZE] [--previous FILE]\n"
    "         [--banks FILE] [--policy FILE] [--tz ZONE]\n"
    "\n"
    "The enterprise's access statement (查询记录对账单) for the month (cut\n"
    "in --tz): every decision under its consents, with its outcome (time,\n"
    "bank, purpose, category, mode, detail, allowed or refused and why,\n"
    "field paths disclosed and masked), each entry with its inclusion\n"
    "proof against one signed checkpoint (the latest, or --checkpoint),\n"
    "totals per bank, purpose and decision, signed with the log key.\n"
    "--previous FILE adds the proof that the checkpoint extends the one\n"
    "in FILE (the one the enterprise kept from its last statement).  The\n"
    "enterprise checks the JSON with `credit-consent statement verify`.\n"
    "No field value and no personal identifier: what the audit holds.\n"
    "\n" COMMON_OPTS TOOL_ARCHIVE_HELP NAMES_HELP
    "  --enterprise USCC             the enterprise\n"
    "  --month YYYY-MM               the month, in --tz\n"
    "  --format json|html            JSON (default) or a page to read\n"
    "  --log-key FILE                the log's Ed25519 private key (PEM):\n"
    "                                signs the statement\n"
    "  --log-name NAME               its key name (default: the\n"
    "                                checkpoint's origin)\n"
    "  --checkpoint SIZE             prove against this checkpoint\n"
    "  --previous FILE               an older checkpoint (a note) to prove\n"
    "                                consistency with\n";

enum {
    OPT_ARCHIVE = 500, OPT_LOG_KEY, OPT_LOG_NAME, OPT_CKPT, OPT_PREVIOUS
};

/* ---- what the archive holds ---------------------------------------------- */

static int
add_entry(statement *st, PGresult *r, int i)
{
    st_entry      *e;
    size_t         len;
    unsigned char *b = PQunescapeBytea(
        (const unsigned char *) PQgetvalue(r, i, 1), &len);
    size_t         cap = st->ecap ? st->ecap : 64;
    st_entry      *ne = st->e;

    if (st->ne == st->ecap) {
        cap = st->ecap ? st->ecap * 2 : 64;
        ne = realloc(st->e, cap * sizeof(*ne));
    }
    if (b == NULL || ne == NULL) {
        PQfreemem(b);
        return -1;
    }
    st->e = ne;
    st->ecap = cap;
    e = &st->e[st->ne++];
    memset(e, 0, sizeof(*e));
    e->ord = strtoull(PQgetvalue(r, i, 0), NULL, 10);
    if ((e->raw = malloc(len ? len : 1)) == NULL) {
        PQfreemem(b);
        st->ne--;
        return -1;
    }
    memcpy(e->raw, b, len);
    e->len = len;
    PQfreemem(b);
    ca_mk_leaf(e->raw, e->len, e->leaf);
    return 0;
}

static int
by_ord(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;

    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int
load_requests(statement *st, PGconn *pg, PGresult **first)
{
    char        a[24], b[24], c[24], n[24];
    const char *p[5] = {st->enterprise, a, b, n, NULL};
    PGresult   *r, *rv;
    sbuf        rids = {0};
    size_t      ndec;

    snprintf(a, sizeof(a), "%lld", (long long) st->since_ms);
    snprintf(b, sizeof(b), "%lld", (long long) st->until_ms);
    snprintf(n, sizeof(n), "%llu", (unsigned long long) st->ck.size);
    /* the decisions, and the withdrawals of its consents (kept aside in
     * rv until the outcomes are paired) */
    rv = pg_query(pg, "SELECT ord, raw, ord >= $4::bigint, event = "
                  "'revocation' FROM " ARCHIVE_SCHEMA ".entries WHERE "
                  "enterprise = $1 AND event IN ('decision', 'revocation') "
                  "AND copy_of IS NULL AND entry_time >= "
                  "to_timestamp($2::bigint / 1000.0) AND entry_time < "
                  "to_timestamp($3::bigint / 1000.0) ORDER BY ord", 4, p);
    if ((*first = rv) == NULL) {
        return -1;
    }
    sb_puts(&rids, "{");
    for (int i = 0; i < PQntuples(rv); i++) {
        if (PQgetvalue(rv, i, 3)[0] == 't') {
            continue;
        }
        if (PQgetvalue(rv, i, 2)[0] == 't') {
            st->pending++;
            continue;
        }
        if (add_entry(st, rv, i) != 0) {
            sb_free(&rids);
            return -1;
        }
    }
    ndec = st->ne;
    if ((st->rq = calloc(ndec + 1, sizeof(*st->rq))) == NULL) {
        sb_free(&rids);
        return -1;
    }
    for (size_t i = 0; i < ndec; i++) {
        ca_span s;

        ca_raw_field(st->e[i].raw, st->e[i].len, "rid", &s);
        st->rq[i].row[CA_SR_RID] = s;      /* to pair outcomes by */
        sb_puts(&rids, i ? "," : "");
        sb_puts(&rids, "\"");
        for (size_t k = 0; s.p != NULL && k < s.len; k++) {
            if (s.p[k] == '"' || s.p[k] == '\\') {
                sb_puts(&rids, "\\");
            }
            sb_put(&rids, s.p + k, 1);
        }
        sb_puts(&rids, "\"");
        st->rq[i].dec = i;
        st->rq[i].out = SIZE_MAX;
    }
    sb_puts(&rids, "}");
    st->nr = ndec;
    if (rids.failed) {
        sb_free(&rids);
        return -1;
    }
    /* their outcomes: the same rid and gateway, after the decision (a
     * bank may choose its request id: another enterprise's request with
     * the same rid does not pair, and is not shown) */
    snprintf(c, sizeof(c), "%lld", (long long) st->until_ms + 86400000LL);
    p[0] = rids.p;
    p[2] = c;
    r = ndec == 0 ? NULL
        : pg_query(pg, "SELECT ord, raw FROM " ARCHIVE_SCHEMA ".entries "
                   "WHERE rid = ANY($1::text[]) AND event = 'outcome' AND "
                   "copy_of IS NULL AND ord < $4::bigint AND entry_time >= "
                   "to_timestamp($2::bigint / 1000.0) AND entry_time < "
                   "to_timestamp($3::bigint / 1000.0) ORDER BY ord", 4, p);
    sb_free(&rids);
    if (ndec > 0 && r == NULL) {
        return -1;
    }
    for (int i = 0; r != NULL && i < PQntuples(r); i++) {
        ca_span orid;

        if (add_entry(st, r, i) != 0) {
            PQclear(r);
            return -1;
        }
        ca_raw_field(st->e[st->ne - 1].raw, st->e[st->ne - 1].len, "rid",
                     &orid);
        for (size_t d = 0; d < ndec && orid.p != NULL; d++) {
            const st_entry *o = &st->e[st->ne - 1], *e = &st->e[d];

            if (st->rq[d].out == SIZE_MAX && e->ord < o->ord
                && st->rq[d].row[CA_SR_RID].p != NULL
                && st->rq[d].row[CA_SR_RID].len == orid.len
                && memcmp(st->rq[d].row[CA_SR_RID].p, orid.p, orid.len) == 0
                && ca_sr_pairs(e->raw, e->len, o->raw, o->len))
            {
                st->rq[d].out = st->ne - 1;
                break;
            }
        }
    }
    PQclear(r);
    /* the entries in archive order; requests point at them by ord */
    {
        uint64_t *dord = calloc(ndec + 1, sizeof(*dord));
        uint64_t *oord = calloc(ndec + 1, sizeof(*oord));
        size_t    keep = ndec;

        if (dord == NULL || oord == NULL) {
            free(dord);
            free(oord);
            return -1;
        }
        for (size_t d = 0; d < ndec; d++) {
            dord[d] = st->e[d].ord;
            oord[d] = st->rq[d].out == SIZE_MAX ? UINT64_MAX
                      : st->e[st->rq[d].out].ord;
        }
        /* unpaired outcomes go */
        for (size_t i = ndec; i < st->ne; i++) {
            int used = 0;

            for (size_t d = 0; d < ndec && !used; d++) {
                used = oord[d] == st->e[i].ord;
            }
            if (used) {
                st->e[keep++] = st->e[i];
            } else {
                free(st->e[i].raw);
            }
        }
        st->ne = keep;
        qsort(st->e, st->ne, sizeof(*st->e), by_ord);
        for (size_t d = 0; d < ndec; d++) {
            for (size_t i = 0; i < st->ne; i++) {
                if (st->e[i].ord == dord[d]) {
                    st->rq[d].dec = i;
                }
                if (st->e[i].ord == oord[d]) {
                    st->rq[d].out = i;
                }
            }
            if (oord[d] == UINT64_MAX) {
                st->rq[d].out = SIZE_MAX;
            }
        }
        free(dord);
        free(oord);
    }
    for (size_t d = 0; d < st->nr; d++) {
        const st_entry *e = &st->e[st->rq[d].dec];
        const st_entry *o = st->rq[d].out == SIZE_MAX ? NULL
                            : &st->e[st->rq[d].out];

        if (ca_sr_row(e->raw, e->len, o ? o->raw : NULL, o ? o->len : 0,
                      st->rq[d].row) != 0)
        {
            fprintf(stderr, "%s: archive: entry %llu is not a well-formed "
                    "decision\n", tool_name, (unsigned long long) e->ord);
            return -1;
        }
    }
    return 0;
}

static size_t
index_of(const statement *st, uint64_t ord)
{
    size_t lo = 0, hi = st->ne;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (st->e[mid].ord < ord) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The requests, then the withdrawals of the enterprise's consents in the
 * month (shown, and proven, like its decisions), every entry in archive
 * order. */
static int
load(statement *st, PGconn *pg)
{
    PGresult *r = NULL;
    uint64_t *ords = NULL;
    size_t    n = 0, k = 0;
    int       rc = -1;

    if (load_requests(st, pg, &r) != 0) {
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetvalue(r, i, 3)[0] == 't') {
            n += PQgetvalue(r, i, 2)[0] != 't';
            st->pending += PQgetvalue(r, i, 2)[0] == 't';
        }
    }
    if ((st->rv = calloc(n + 1, sizeof(*st->rv))) == NULL
        || (ords = calloc(2 * st->nr + n + 1, sizeof(*ords))) == NULL)
    {
        goto done;
    }
    for (size_t d = 0; d < st->nr; d++) {
        ords[2 * d] = st->e[st->rq[d].dec].ord;
        ords[2 * d + 1] = st->rq[d].out == SIZE_MAX ? UINT64_MAX
                          : st->e[st->rq[d].out].ord;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetvalue(r, i, 3)[0] != 't' || PQgetvalue(r, i, 2)[0] == 't') {
            continue;
        }
        if (add_entry(st, r, i) != 0) {
            goto done;
        }
        ords[2 * st->nr + k++] = st->e[st->ne - 1].ord;
    }
    qsort(st->e, st->ne, sizeof(*st->e), by_ord);
    for (size_t d = 0; d < st->nr; d++) {
        st->rq[d].dec = index_of(st, ords[2 * d]);
        st->rq[d].out = ords[2 * d + 1] == UINT64_MAX ? SIZE_MAX
                        : index_of(st, ords[2 * d + 1]);
    }
    for (size_t i = 0; i < k; i++) {
        st_revocation *v = &st->rv[st->nrv];
        const st_entry *e;

        v->ent = index_of(st, ords[2 * st->nr + i]);
        e = &st->e[v->ent];
        if (ca_sr_revocation(e->raw, e->len, v->row) != 0) {
            fprintf(stderr, "%s: archive: entry %llu is not a well-formed "
                    "revocation\n", tool_name, (unsigned long long) e->ord);
            goto done;
        }
        st->nrv++;
    }
    /* the rows point into the entries' bytes, which moved only as
     * pointers: the spans stay valid */
    rc = 0;
done:
    PQclear(r);
    free(ords);
    return rc;
}

static int
prove(statement *st, PGconn *pg)
{
    uint64_t      *ords = calloc(st->ne + 1, sizeof(*ords));
    unsigned char *leaves = calloc(st->ne + 1, 32);
    ca_mk_hash   (*paths)[CA_MK_PATH_MAX] = calloc(st->ne + 1,
                                                    sizeof(*paths));
    int           *np = calloc(st->ne + 1, sizeof(*np));
    int            rc = -1;

    if (ords != NULL && leaves != NULL && paths != NULL && np != NULL) {
        for (size_t i = 0; i < st->ne; i++) {
            ords[i] = st->e[i].ord;
            memcpy(leaves + 32 * i, st->e[i].leaf, 32);
        }
        rc = mk_prove_all(pg, ords, leaves, st->ne, st->ck.size,
                          st->ck.root, paths, np);
        for (size_t i = 0; rc == 0 && i < st->ne; i++) {
            st->e[i].np = np[i];
            memcpy(st->e[i].path, paths[i], sizeof(paths[i]));
        }
    }
    free(ords);
    free(leaves);
    free(paths);
    free(np);
    return rc;
}

static int
previous(statement *st, PGconn *pg, const char *file)
{
    mk_ckpt        pc;
    mk_cache       c = {pg, NULL, 0, 0, 0, 1};
    unsigned char  have[32];
    int            rc = -1;

    if (mk_ckpt_file(file, &pc) != 0) {
        return -1;
    }
    st->prev_size = pc.size;
    memcpy(st->prev_root, pc.root, 32);
    mk_ckpt_free(&pc);
    if (st->prev_size == 0 || st->prev_size > st->ck.size) {
        fprintf(stderr, "%s: --previous %s: not a checkpoint of a tree no "
                "larger than the statement's (%llu)\n", tool_name, file,
                (unsigned long long) st->ck.size);
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (ca_mk_root(st->prev_size, mk_get, &c, have) != 0
            || (st->prev_np = ca_mk_consistency(st->prev_size, st->ck.size,
                                                mk_get, &c, st->prev_proof))
               < 0
            || (pass == 0 && mk_fetch(&c) != 0))
        {
            goto done;
        }
    }
    if (memcmp(have, st->prev_root, 32) != 0) {
        fprintf(stderr, "%s: --previous %s: its root is not the archive's "
                "at tree size %llu: a checkpoint of another log (a fork)\n",
                tool_name, file, (unsigned long long) st->prev_size);
        rc = 1;
        goto done;
    }
    st->has_prev = 1;
    rc = 0;
done:
    mk_cache_free(&c);
    return rc;
}

static int
sign(statement *st, const char *key_file, const char *name)
{
    ca_stmt_head   h;
    uint64_t      *ords = calloc(st->ne + 1, sizeof(*ords));
    unsigned char *leaves = calloc(st->ne + 1, 32);
    char           text[2048];
    size_t         tl;
    EVP_PKEY      *key = NULL;
    FILE          *f;
    int            rc = -1;

    if (ords == NULL || leaves == NULL) {
        goto done;
    }
    if ((f = fopen(key_file, "r")) != NULL) {
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        fprintf(stderr, "%s: --log-key %s: not an Ed25519 private key in "
                "PEM\n", tool_name, key_file);
        goto done;
    }
    for (size_t i = 0; i < st->ne; i++) {
        ords[i] = st->e[i].ord;
        memcpy(leaves + 32 * i, st->e[i].leaf, 32);
    }
    memset(&h, 0, sizeof(h));
    h.origin = st->ck.origin;
    h.enterprise = st->enterprise;
    h.month = st->month;
    h.tz = st->tz;
    h.since_ms = st->since_ms;
    h.until_ms = st->until_ms;
    h.size = st->ck.size;
    h.count = st->ne;
    memcpy(h.root, st->ck.root, 32);
    ca_stmt_digest(ords, leaves, st->ne, h.digest);
    tl = ca_stmt_text(&h, text, sizeof(text));
    if (tl == 0 || (st->signed_note = malloc(CA_NOTE_MAX)) == NULL
        || ca_note_sign(text, tl, name, key, st->signed_note, CA_NOTE_MAX)
           == 0)
    {
        fprintf(stderr, "%s: signing the statement failed\n", tool_name);
        goto done;
    }
    rc = 0;
done:
    EVP_PKEY_free(key);
    free(ords);
    free(leaves);
    return rc;
}

/* ---- the command ----------------------------------------------------------- */

static void
stmt_free(statement *st)
{
    for (size_t i = 0; i < st->ne; i++) {
        free(st->e[i].raw);
    }
    free(st->e);
    free(st->rq);
    free(st->rv);
    free(st->signed_note);
    mk_ckpt_free(&st->ck);
    names_free(&st->nm);
}

int
cmd_statement(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS, NAMES_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"enterprise", required_argument, NULL, OPT_ENTERPRISE},
        {"month", required_argument, NULL, OPT_MONTH},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"log-key", required_argument, NULL, OPT_LOG_KEY},
        {"log-name", required_argument, NULL, OPT_LOG_NAME},
        {"checkpoint", required_argument, NULL, OPT_CKPT},
        {"previous", required_argument, NULL, OPT_PREVIOUS},
        {NULL, 0, NULL, 0}
    };
    common_opts  co;
    statement    st;
    period       per;
    const char  *archive = NULL, *format = "json", *key = NULL;
    const char  *name = NULL, *prev = NULL;
    uint64_t     at = 0;
    int          ch, rc = EXIT_USAGE;
    char        *end;
    PGconn      *pg = NULL;
    time_t       now = time(NULL);

    memset(&st, 0, sizeof(st));
    memset(&per, 0, sizeof(per));
    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (names_opt(&st.nm, ch, optarg)) {
            continue;
        }
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE:    archive = optarg; break;
        case OPT_ENTERPRISE: st.enterprise = optarg; break;
        case OPT_FORMAT:     format = optarg; break;
        case OPT_LOG_KEY:    key = optarg; break;
        case OPT_LOG_NAME:   name = optarg; break;
        case OPT_PREVIOUS:   prev = optarg; break;
        case OPT_MONTH:
            st.month = optarg;
            period_opt(&per, ch, optarg);
            break;
        case OPT_CKPT:
            errno = 0;
            at = strtoull(optarg, &end, 10);
            if (errno || *end || at == 0 || optarg[0] < '0'
                || optarg[0] > '9')
            {
                return usage_error(usage_statement, "bad --checkpoint %s "
                                   "(a tree size)", optarg);
            }
            break;
        case 'h':
            fputs(usage_statement, stdout);
            return 0;
        default:
            return usage_error(usage_statement, NULL, NULL);
        }
    }
    if (args_done(usage_statement, argc, argv, &per) != 0) {
        return EXIT_USAGE;
    }
    if (archive == NULL || st.enterprise == NULL || st.month == NULL
        || key == NULL)
    {
        return usage_error(usage_statement, "%s", "statement needs "
                           "--archive, --enterprise, --month and --log-key");
    }
    if (strlen(st.month) != 7 || st.month[4] != '-'
        || strspn(st.month, "0123456789-") != 7)
    {
        return usage_error(usage_statement, "bad --month %s (YYYY-MM)",
                           st.month);
    }
    if (!ca_uscc_valid(st.enterprise, strlen(st.enterprise))) {
        return usage_error(usage_statement, "bad --enterprise %s (a USCC)",
                           st.enterprise);
    }
    if (strcmp(format, "json") != 0 && strcmp(format, "html") != 0) {
        return usage_error(usage_statement, "bad --format %s (json, html)",
                           format);
    }
    st.since_ms = per.since;
    st.until_ms = per.until;
    st.tz = tool_tz_name();
    strftime(st.made_at, sizeof(st.made_at), "%Y-%m-%dT%H:%M:%SZ",
             gmtime(&now));
    if (names_load(&st.nm) != 0
        || (pg = mk_open_archive(archive, "credit-audit statement")) == NULL)
    {
        goto done;
    }
    switch (mk_ckpt_get(pg, at, &st.ck)) {
    case 0:
        break;
    case 1:
        fprintf(stderr, "%s: the archive has no checkpoint%s: run ship with "
                "--log-key\n", tool_name, at ? " of that size" : " yet");
        /* fall through */
    default:
        goto done;
    }
    if (load(&st, pg) != 0) {
        goto done;
    }
    if ((rc = prove(&st, pg)) != 0
        || (prev != NULL && (rc = previous(&st, pg, prev)) != 0))
    {
        rc = rc > 0 ? EXIT_FINDING : EXIT_USAGE;
        goto done;
    }
    rc = EXIT_USAGE;
    if (sign(&st, key, name ? name : st.ck.origin) != 0) {
        goto done;
    }
    if (strcmp(format, "html") == 0) {
        stmt_html(stdout, &st);
    } else if (stmt_json(stdout, &st) != 0) {
        fprintf(stderr, "%s: out of memory\n", tool_name);
        goto done;
    }
    if (st.pending > 0) {
        fprintf(stderr, "%s: %zu decisions of the month are after the "
                "checkpoint of tree size %llu and not in this statement: "
                "make it again after the next checkpoint\n", tool_name,
                st.pending, (unsigned long long) st.ck.size);
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_USAGE;
done:
    stmt_free(&st);
    if (pg != NULL) {
        PQfinish(pg);
    }
    return rc;
}
