/*
 * credit-audit ship: a batch's verification (docs/archive.md, "The
 * shipping protocol"): the step verifier (lib/verify/auditstep.h) over
 * the archive's chain states, each new entry given its archive order,
 * its findings and the chains' new states as COPY rows, the months the
 * batch's rows fall in.  audit_shipbatch.c runs it inside the batch's
 * transaction, before the COPY (the verifier may query the archive).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_ship.h"
#include "audit/audit.h"
#include "core/core.h"

/* ---- the verifier's view of the archive ---------------------------------- */

/* The verifier's look-ups go over a connection of their own: they run
 * while the batch's COPY holds the shipper's (verification overlaps the
 * server's insertion, audit_shipbatch.c).  It sees what the batch's
 * transaction would: the archive as committed, which nobody else moves
 * while this shipper holds the log's row; the batch's own entries the
 * verifier knows without asking. */
/* A lock the look-ups would wait for behind this shipper's own open
 * transaction (an operator's DDL on the entries queued behind the
 * batch's COPY) is a wait PostgreSQL cannot see as a deadlock: the
 * look-up gives up after lock_timeout, the batch rolls back, and the
 * next round redoes it. */
static PGconn *
look(ship *s)
{
    if (s->look == NULL
        && (s->look = pg_open(s->archive, "credit-audit ship (verifier)"))
           != NULL
        && pg_exec(s->look, "SET lock_timeout = '5s'") != 0)
    {
        shipverify_close(s);
    }
    return s->look;
}

void
shipverify_close(ship *s)
{
    if (s->look != NULL) {
        PQfinish(s->look);
        s->look = NULL;
    }
}

/* A look-up that failed: the next one connects again. */
static int
look_failed(ship *s)
{
    shipverify_close(s);
    return -1;
}

static int
unhex_bytea(const char *s, unsigned char *out, size_t len)
{
    return strncmp(s, "\\x", 2) == 0 && strlen(s) == 2 + 2 * len
           ? ca_unhex(s + 2, out, len) : -1;
}

static int
cb_load(void *data, const char *chain, size_t len, ca_as_state *st)
{
    ship       *s = data;
    char       *name = strndup(chain, len);
    const char *p[2] = {s->co.stream, name};
    PGresult   *r;
    int         rc = 1;

    if (name == NULL || look(s) == NULL) {
        free(name);
        return -1;
    }
    r = pg_query(s->look, "SELECT last_seq, last_hash, last_ord, signed_seq, "
                 "key_id, entries FROM " ARCHIVE_SCHEMA ".chains WHERE "
                 "stream = $1 AND chain = $2", 2, p);
    free(name);
    if (r == NULL) {
        return look_failed(s);
    }
    if (PQntuples(r) == 1) {
        memset(st, 0, sizeof(*st));
        st->last_seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        st->last_ord = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
        st->signed_seq = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
        st->entries = strtoull(PQgetvalue(r, 0, 5), NULL, 10);
        st->has_key = !PQgetisnull(r, 0, 4);
        rc = unhex_bytea(PQgetvalue(r, 0, 1), st->last_hash, 32) != 0
             || (st->has_key
                 && unhex_bytea(PQgetvalue(r, 0, 4), st->key_id, 32) != 0)
             ? -1 : 0;
    }
    PQclear(r);
    return rc;
}

static int
cb_lookup(void *data, const char *chain, size_t len, uint64_t seq,
          ca_as_mark *m)
{
    ship *s = data;
    int   rc;

    if (look(s) == NULL) {
        return -1;
    }
    rc = archive_holder(s->look, s->co.stream, chain, len, seq, UINT64_MAX,
                        m);
    return rc < 0 ? look_failed(s) : rc;
}

int
shipverify_open(ship *s)
{
    ca_as_io io = {cb_load, cb_lookup, s};

    if (s->ver == NULL) {
        s->ver = ca_as_new(s->keys.key, s->keys.n, &io);
    }
    return s->ver != NULL ? 0 : -1;
}

void
shipdb_reset(ship *s)
{
    ca_as_free(s->ver);
    s->ver = NULL;
}

int
shipdb_load(ship *s)
{
    const char *p[1] = {s->co.stream};
    PGresult   *r;

    shipdb_reset(s);
    if (!s->staged) {
        /* per session; emptied by every commit */
        if (pg_exec(s->pg, "CREATE TEMP TABLE ship_chains (LIKE "
                    ARCHIVE_SCHEMA ".chains) ON COMMIT DELETE ROWS") != 0)
        {
            return -1;
        }
        s->staged = 1;
    }
    r = pg_query(s->pg, "SELECT last_id, entries FROM " ARCHIVE_SCHEMA
                 ".streams WHERE stream = $1", 1, p);
    if (r == NULL) {
        return -1;
    }
    snprintf(s->last_id, sizeof(s->last_id), "%s",
             PQntuples(r) ? PQgetvalue(r, 0, 0) : "0-0");
    s->stream_entries = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 1), NULL,
                                                10) : 0;
    PQclear(r);
    return 0;
}

/* ---- rows ------------------------------------------------------------------ */

static void
finding_rows(ship *s, sbuf *b, const entry *e, uint64_t ord,
             const ca_as_verdict *v)
{
    size_t      clen = 0;
    const char *chain = get(e, CA_F_CHAIN, &clen);

    if (chain == NULL || !ca_audit_column_fits(CA_F_CHAIN, chain, clen)) {
        chain = "";
        clen = 0;
    }
    for (size_t i = 0; i < v->nfindings; i++) {
        const ca_as_finding *f = &v->findings[i];

        sb_copy_text(b, s->co.stream, strlen(s->co.stream));
        sb_copy_tab(b);
        sb_copy_text(b, e->id, strlen(e->id));
        sb_copy_tab(b);
        sb_copy_u64(b, ord);
        sb_copy_tab(b);
        sb_copy_text(b, chain, clen);
        sb_copy_tab(b);
        if (f->seq > 0) {
            sb_copy_u64(b, f->seq);
        } else {
            sb_copy_null(b);
        }
        sb_copy_tab(b);
        sb_puts(b, ca_av_kind_name(f->kind));
        sb_copy_tab(b);
        sb_copy_text(b, f->detail, strlen(f->detail));
        sb_copy_tab(b);
        sb_copy_text(b, s->consumer, strlen(s->consumer));
        sb_copy_eol(b);
        s->st.findings[f->kind]++;
    }
}

void
shipverify_chain_rows(ship *s, sbuf *b)
{
    size_t             cur = 0, len;
    const char        *name;
    const ca_as_state *st;

    while (ca_as_touched(s->ver, &cur, &name, &len, &st)) {
        sb_copy_text(b, s->co.stream, strlen(s->co.stream));
        sb_copy_tab(b);
        sb_copy_text(b, name, len);
        sb_copy_tab(b);
        sb_copy_u64(b, st->last_seq);
        sb_copy_tab(b);
        sb_copy_bytea(b, st->last_hash, 32);
        sb_copy_tab(b);
        sb_copy_u64(b, st->last_ord);
        sb_copy_tab(b);
        sb_copy_u64(b, st->signed_seq);
        sb_copy_tab(b);
        if (st->has_key) {
            sb_copy_bytea(b, st->key_id, 32);
        } else {
            sb_copy_null(b);
        }
        sb_copy_tab(b);
        sb_copy_u64(b, st->entries);
        sb_puts(b, "\tnow\n");
    }
}

static void
month_of(int64_t ms, char out[8])
{
    time_t    t = (time_t) (ms / 1000);
    struct tm tm;
    char      ym[32];

    memset(&tm, 0, sizeof(tm));
    gmtime_r(&t, &tm);
    snprintf(ym, sizeof(ym), "%04d%02d", tm.tm_year + 1900, tm.tm_mon + 1);
    memcpy(out, ym, 6);
    out[6] = out[7] = '\0';
}

/* Which entries of the batch are new (after the archive's last_id: they
 * get rows, with ords from s->next_ord), before any is verified: 0 with
 * *n the rows to write, months[] theirs and last the last new entry's
 * id. */
void
shipverify_plan(ship *s, ship_batch *b, char (*months)[8], size_t *nmonths,
                size_t *n, char *last, size_t lastlen)
{
    *n = *nmonths = 0;
    snprintf(last, lastlen, "%s", s->last_id);
    for (size_t i = 0; i < b->n; i++) {
        ship_entry  *x = &b->items[i];
        const entry *e = &x->e;
        char         m[8];
        size_t       j;

        x->fresh = 0;
        if (x->gone || sid_cmp(e->id, s->last_id) <= 0) {
            s->st.redelivered += !x->gone;
            continue;
        }
        x->fresh = 1;
        x->ord = s->next_ord + (*n)++;
        x->ms = archive_entry_ms(e);
        month_of(x->ms, m);
        for (j = 0; j < *nmonths && memcmp(months[j], m, 8) != 0; j++) {
        }
        if (j == *nmonths) {
            memcpy(months[(*nmonths)++], m, 8);
        }
        snprintf(last, lastlen, "%s", e->id);
    }
}

int
shipverify_entry(ship *s, ship_entry *x, sbuf *found, size_t *nfound)
{
    const entry  *e = &x->e;
    ca_as_verdict v;

    if (ca_as_add(s->ver, e->id, x->ord, e->n, e->name, e->nlen, e->value,
                  e->vlen, &v) != 0)
    {
        return -1;
    }
    x->copy = v.copy;
    x->copy_of = v.copy_of;
    finding_rows(s, found, e, x->ord, &v);
    *nfound += v.nfindings;
    s->st.copies += v.copy;
    s->st.duplicates += v.duplicate;
    return 0;
}
