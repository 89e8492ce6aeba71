/*
 * credit-audit statement: what the archive holds of the enterprise's month
 * (audit_stmt.h): its decisions, each with its outcome (the same rid and
 * gateway, after it), and the withdrawals of its consents, every entry in
 * archive order with the rows pointing into their bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_stmt.h"
#include "core/core.h"

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
int
stmt_load(statement *st, PGconn *pg)
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

