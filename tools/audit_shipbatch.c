/*
 * credit-audit ship: one batch into the archive, in one transaction
 * (docs/archive.md, "The shipping protocol").
 *
 *   BEGIN; lock the archive's log row (FOR UPDATE: shippers commit one
 *   at a time, archive orders stay contiguous) and the stream's row;
 *   if the stream moved since this shipper's last commit, someone else
 *   shipped: roll back, reload, redo (the redone batch skips what is now
 *   archived);
 *   verify each entry not yet archived with the archive order it gets
 *   (audit_shipverify.c; the verifier may query the archive: before the
 *   COPY starts);
 *   COPY the rows into the entries, in the binary format, streamed as
 *   they are encoded (audit_shipcopy.c: the typed columns, the verbatim
 *   copy), and while the server inserts the last ones read the next
 *   batch (the caller's `meanwhile`); a row a unique key refuses means
 *   the state was stale after all, and the batch rolls back whole (never
 *   a row skipped: that would leave a gap in the archive orders, or drop
 *   evidence; docs/archive.md says why not ON CONFLICT DO NOTHING);
 *   COPY the findings; upsert the chains' states; move the log and the
 *   stream; COMMIT.
 *
 * Only after COMMIT does the caller acknowledge and trim in Redis.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "audit_ship.h"
#include "audit/audit.h"
#include "core/core.h"

#define SHIP_CHAINS_MAX 4096

/* ---- the transaction -------------------------------------------------------- */

/* Locks the log and the stream; 0 when the stream is where this shipper
 * left it (s->next_ord then the locked value), 1 when not, -1 failed. */
static int
lock_state(ship *s)
{
    const char *p[1] = {s->co.stream};
    PGresult   *r;
    int         rc;

    r = pg_query(s->pg, "SELECT next_ord FROM " ARCHIVE_SCHEMA ".log FOR "
                 "UPDATE", 0, NULL);
    if (r == NULL) {
        return -1;
    }
    s->next_ord = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    r = pg_query(s->pg, "SELECT last_id FROM " ARCHIVE_SCHEMA ".streams "
                 "WHERE stream = $1 FOR UPDATE", 1, p);
    if (r == NULL) {
        return -1;
    }
    rc = strcmp(PQntuples(r) ? PQgetvalue(r, 0, 0) : "0-0", s->last_id) != 0;
    PQclear(r);
    return rc;
}

/* 1 when every month is one this shipper saw committed. */
static int
months_known(const ship *s, const char (*months)[8], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t j;

        for (j = 0; j < s->nmonths
                    && memcmp(s->months[j], months[i], 8) != 0; j++) {
        }
        if (j == s->nmonths) {
            return 0;
        }
    }
    return 1;
}

static int
ensure_months(ship *s, const char (*months)[8], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t known = 0;
        char   t[32];
        const char *p[1] = {t};
        PGresult   *r;

        for (size_t j = 0; j < s->nmonths && !known; j++) {
            known = memcmp(s->months[j], months[i], 8) == 0;
        }
        if (known) {
            continue;
        }
        snprintf(t, sizeof(t), "%.4s-%.2s-01 00:00:00+00", months[i],
                 months[i] + 4);
        r = pg_query(s->pg, "SELECT " ARCHIVE_SCHEMA ".ensure_month($1)", 1,
                     p);
        if (r == NULL) {
            return -1;
        }
        PQclear(r);
    }
    return 0;
}

/* After COMMIT: the months are there for good. */
static void
note_months(ship *s, const char (*months)[8], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t j;

        for (j = 0; j < s->nmonths; j++) {
            if (memcmp(s->months[j], months[i], 8) == 0) {
                break;
            }
        }
        if (j == s->nmonths) {
            if (s->nmonths == sizeof(s->months) / sizeof(s->months[0])) {
                s->nmonths = 0;     /* forget them all: asked again */
            }
            memcpy(s->months[s->nmonths++], months[i], 8);
        }
    }
}

static void
log_findings(ship *s, uint64_t from, uint64_t to)
{
    char        a[24], b[24];
    const char *p[3] = {s->co.stream, a, b};
    PGresult   *r;

    snprintf(a, sizeof(a), "%llu", (unsigned long long) from);
    snprintf(b, sizeof(b), "%llu", (unsigned long long) to);
    r = pg_query(s->pg, "SELECT id, kind, chain, coalesce(seq::text, ''), "
                 "stream_id, detail FROM " ARCHIVE_SCHEMA ".findings WHERE "
                 "stream = $1 AND ord >= $2 AND ord < $3 ORDER BY id", 3, p);
    for (int i = 0; r != NULL && i < PQntuples(r); i++) {
        ship_log("FINDING %s: %s, chain %s seq %s, stream id %s: %s "
                 "(the chain stays in Redis until `credit-audit findings "
                 "--acknowledge %s`)", PQgetvalue(r, i, 0),
                 PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                 PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
                 PQgetvalue(r, i, 5), PQgetvalue(r, i, 0));
    }
    PQclear(r);
}

#define COPY_ENTRIES "COPY " ARCHIVE_SCHEMA ".entries FROM STDIN (FORMAT " \
                     "binary)"

/* The batch's new entries verified and their rows streamed: the server
 * inserts the first ones while the next are verified and encoded (the
 * verifier's look-ups go over its own connection).  0, or -1 with the
 * COPY ended as failed (*verified 0 when the verifier failed). */
static int
send_rows(ship *s, ship_batch *b, int verify, sbuf *found, size_t *nfound,
          int *verified)
{
    sbuf   rows = {0};
    size_t raw;
    int    rc = 0;

    *verified = 1;
    if (pg_copy_begin(s->pg, COPY_ENTRIES) != 0) {
        return -1;
    }
    shipcopy_header(&rows);
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        if (!b->items[i].fresh) {
            continue;
        }
        if (verify && shipverify_entry(s, &b->items[i], found, nfound) != 0)
        {
            *verified = 0;
            rc = -1;
            break;
        }
        ship_clock(s, SP_VERIFY);
        raw = shipcopy_entry(&rows, s->co.stream, &b->items[i]);
        /* the Merkle log's leaf, in ord order, from the verbatim copy
         * just encoded (dropped with the batch if it rolls back) */
        if (!rows.failed
            && mklog_leaf(s->log, (const unsigned char *) rows.p + rows.len
                          - raw, raw) != 0)
        {
            rc = -1;
            break;
        }
        if (rows.len >= (64u << 10) || rows.failed) {
            rc = pg_copy_put(s->pg, &rows);
        }
        ship_clock(s, SP_ENCODE);
    }
    shipcopy_trailer(&rows);
    if (rc == 0) {
        rc = pg_copy_put(s->pg, &rows);
    }
    if (rows.failed) {
        fputs("credit-audit: out of memory\n", stderr);
    }
    sb_free(&rows);
    return pg_copy_send_end(s->pg, rc == 0) == 0 ? 0 : -1;
}

int
shipdb_commit(ship *s, ship_batch *b, ship_meanwhile meanwhile, void *data)
{
    sbuf          found = {0}, chains = {0};
    char          (*months)[8] = NULL, num[3][24], last[48];
    size_t        nmonths = 0, n = 0, nfound = 0;
    const char   *p[4];
    PGresult     *r;
    const char   *q[1] = {num[0]};
    int           rc, sent, verified, later;

    ship_clock(s, -1);
    if (pg_exec(s->pg, "BEGIN") != 0) {
        return -1;
    }
    if ((rc = lock_state(s)) != 0) {
        goto rollback;
    }
    ship_clock(s, SP_LOCK);
    if (shipverify_open(s) != 0) {
        rc = -1;
        goto rollback;
    }
    rc = -1;
    if (mklog_begin(s->log, s->pg, s->next_ord) != 0) {
        goto rollback;
    }
    months = calloc(b->n ? b->n : 1, sizeof(*months));
    if (months == NULL) {
        goto rollback;
    }
    shipverify_plan(s, b, months, &nmonths, &n, last, sizeof(last));
    /* A month this batch creates is locked (ACCESS EXCLUSIVE on the
     * entries) by this transaction until it commits: the verifier's
     * look-ups on their own connection would wait for it.  Such a batch
     * (one a month, and the first after a start) is verified before
     * anything is created. */
    later = months_known(s, (const char (*)[8]) months, nmonths);
    for (size_t i = 0; !later && i < b->n; i++) {
        if (b->items[i].fresh
            && shipverify_entry(s, &b->items[i], &found, &nfound) != 0)
        {
            goto rollback;
        }
    }
    ship_clock(s, SP_VERIFY);
    if (n == 0) {
        rc = 0;
        goto rollback;          /* nothing new: nothing to write */
    }
    if (ensure_months(s, (const char (*)[8]) months, nmonths) != 0) {
        goto rollback;
    }
    ship_clock(s, SP_STATE);
    sent = send_rows(s, b, later, &found, &nfound, &verified) == 0;
    ship_clock(s, SP_ENCODE);
    /* while the server inserts the tail of the rows: the next batch from
     * Redis (it is only delivered: acknowledged after its own commit) */
    if (sent && meanwhile != NULL) {
        meanwhile(s, data);
        ship_clock(s, SP_READ);
    }
    if (pg_copy_result(s->pg, COPY_ENTRIES) != 0 || !sent || found.failed) {
        /* a row the unique keys refuse (the server may say so while the
         * rows are still being sent): the state was stale after all (the
         * batch is redone from what is archived); anything else is a
         * failure */
        if (found.failed) {
            fputs("credit-audit: out of memory\n", stderr);
        } else if (verified && strcmp(pg_sqlstate(), "23505") == 0) {
            ship_log("the archive already holds some of this batch: "
                     "reloading");
            rc = 1;
        }
        goto rollback;
    }
    ship_clock(s, SP_COPY);
    /* The batch's rows are in, ords [s->next_ord, s->next_ord + n), and
     * the Merkle log's leaves computed as they went: what else the
     * batch's transaction must hold goes here, before the shipper's
     * state moves. */
    shipverify_chain_rows(s, &chains);
    snprintf(num[0], sizeof(num[0]), "%llu",
             (unsigned long long) (s->next_ord + n));
    snprintf(num[1], sizeof(num[1]), "%zu", n);
    p[0] = s->co.stream;
    p[1] = last;
    p[2] = num[1];
    p[3] = s->consumer;
    if ((nfound > 0
         && pg_copy_in(s->pg, "COPY " ARCHIVE_SCHEMA ".findings (stream, "
                       "stream_id, ord, chain, seq, kind, detail, shipper) "
                       "FROM STDIN", &found) != 0)
        || pg_copy_in(s->pg, "COPY ship_chains FROM STDIN", &chains) != 0
        || pg_exec(s->pg, "INSERT INTO " ARCHIVE_SCHEMA ".chains SELECT * "
                   "FROM ship_chains ON CONFLICT (stream, chain) DO UPDATE "
                   "SET last_seq = EXCLUDED.last_seq, last_hash = "
                   "EXCLUDED.last_hash, last_ord = EXCLUDED.last_ord, "
                   "signed_seq = EXCLUDED.signed_seq, key_id = "
                   "EXCLUDED.key_id, entries = EXCLUDED.entries, "
                   "updated_at = EXCLUDED.updated_at") != 0
        || (r = pg_query(s->pg, "UPDATE " ARCHIVE_SCHEMA ".log SET next_ord "
                         "= $1", 1, q)) == NULL)
    {
        goto rollback;
    }
    PQclear(r);
    if ((r = pg_query(s->pg, "INSERT INTO " ARCHIVE_SCHEMA ".streams "
                      "(stream, last_id, entries, updated_at, shipper) "
                      "VALUES ($1, $2, $3, now(), $4) ON CONFLICT (stream) "
                      "DO UPDATE SET last_id = EXCLUDED.last_id, entries = "
                      ARCHIVE_SCHEMA ".streams.entries + EXCLUDED.entries, "
                      "updated_at = EXCLUDED.updated_at, shipper = "
                      "EXCLUDED.shipper", 4, p)) == NULL)
    {
        goto rollback;
    }
    PQclear(r);
    if (mklog_write(s->log, s->pg) != 0) {
        goto rollback;
    }
    ship_clock(s, SP_STATE);
    if (pg_exec(s->pg, "COMMIT") != 0) {
        /* COMMIT's answer lost: the next batch's lock_state says whether
         * it happened (the stream moved or not) */
        shipdb_reset(s);
        mklog_rollback(s->log);
        rc = -1;
        goto done;
    }
    mklog_commit(s->log);
    ship_clock(s, SP_COMMIT);
    ca_as_commit(s->ver);
    if (ca_as_nchains(s->ver) > SHIP_CHAINS_MAX) {
        /* every reload of a gateway starts new chains: memory stays
         * bounded by starting afresh now and then (the states are in the
         * archive, the live chains load again, one query each) */
        shipdb_reset(s);
    }
    note_months(s, (const char (*)[8]) months, nmonths);
    if (nfound > 0) {
        log_findings(s, s->next_ord, s->next_ord + n);
        s->new_findings += nfound;
    }
    s->next_ord += n;
    s->stream_entries += n;
    snprintf(s->last_id, sizeof(s->last_id), "%s", last);
    s->st.entries += n;
    s->st.batches++;
    s->st.archived_total = s->next_ord;
    {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        s->st.last_commit = (double) tv.tv_sec + tv.tv_usec / 1e6;
    }
    rc = 0;
    goto done;

rollback:
    PQclear(PQexec(s->pg, "ROLLBACK"));
    mklog_rollback(s->log);
    if (rc > 0) {
        /* another shipper moved the stream: start from what it left */
        s->st.stale++;
        if (shipdb_load(s) != 0) {
            rc = -1;
        }
    }
    if (rc < 0) {
        shipdb_reset(s);
    }
done:
    free(months);
    sb_free(&found);
    sb_free(&chains);
    return rc;
}

/* ---- what stays in Redis ------------------------------------------------------ */

int
shipdb_holds(ship *s)
{
    const char *p[1] = {s->co.stream};
    PGresult   *r = pg_query(s->pg, "SELECT chain, stream_id FROM "
                             ARCHIVE_SCHEMA ".findings WHERE stream = $1 AND "
                             "acknowledged_at IS NULL", 1, p);
    ship_hold  *h;
    size_t      n = 0;

    if (r == NULL) {
        return -1;
    }
    h = calloc((size_t) PQntuples(r) + 1, sizeof(*h));
    for (int i = 0; h != NULL && i < PQntuples(r); i++) {
        const char *chain = PQgetvalue(r, i, 0), *id = PQgetvalue(r, i, 1);
        size_t      j;

        for (j = 0; j < n && strcmp(h[j].chain, chain) != 0; j++) {
        }
        if (j == n) {
            if ((h[n].chain = strdup(chain)) == NULL) {
                break;
            }
            snprintf(h[n++].from, sizeof(h[0].from), "%s", id);
        } else if (sid_cmp(id, h[j].from) < 0) {
            snprintf(h[j].from, sizeof(h[0].from), "%s", id);
        }
    }
    s->st.open_findings = PQntuples(r);
    PQclear(r);
    for (size_t i = 0; i < s->nholds; i++) {
        free(s->holds[i].chain);
    }
    free(s->holds);
    s->holds = h;
    s->nholds = n;
    return h == NULL ? -1 : 0;
}
