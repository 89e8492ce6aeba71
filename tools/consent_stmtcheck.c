/*
 * The checks of `credit-consent statement verify` (consent_stmt.h): each
 * failure named on its own line, none stopping the others.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"
#include "consent_stmt.h"
#include "core/core.h"


static v_entry *
find(v_entry *e, size_t n, json_t *ord)
{
    for (size_t i = 0; json_is_integer(ord) && i < n; i++) {
        if (e[i].ord == (uint64_t) json_integer_value(ord)) {
            return &e[i];
        }
    }
    return NULL;
}

static int
same_value(const ca_span *s, json_t *j)
{
    const char *v = json_string_value(j);

    if (s->p == NULL) {
        return json_is_null(j);
    }
    return v != NULL && json_string_length(j) == s->len
           && memcmp(v, s->p, s->len) == 0;
}

ca_mk_hash *
read_nodes(verifier *v, json_t *st, size_t *n)
{
    json_t     *a = json_object_get(st, "nodes"), *x;
    ca_mk_hash *h = calloc(json_array_size(a) + 1, sizeof(*h));
    size_t      i;

    *n = 0;
    if (!json_is_array(a) || h == NULL) {
        fail(v, "the statement has no table of proof nodes");
        free(h);
        return NULL;
    }
    json_array_foreach(a, i, x) {
        if (hash_of(x, h[i]) != 0) {
            fail(v, "proof node %zu: not a base64 SHA-256 hash", i);
            free(h);
            return NULL;
        }
    }
    *n = json_array_size(a);
    return h;
}

/* An entry's proof: indexes into the node table. */
static int
proof_of(json_t *a, const ca_mk_hash *nodes, size_t nn, ca_mk_hash *path,
         size_t *np)
{
    size_t  i;
    json_t *x;

    if (!json_is_array(a) || json_array_size(a) > CA_MK_PATH_MAX) {
        return -1;
    }
    json_array_foreach(a, i, x) {
        json_int_t k = json_integer_value(x);

        if (!json_is_integer(x) || k < 0 || (size_t) k >= nn) {
            return -1;
        }
        memcpy(path[i], nodes[k], 32);
    }
    *np = json_array_size(a);
    return 0;
}

/* A decision's or a revocation's: the enterprise's, in the period. */
static void
check_own(verifier *v, const v_entry *y, const char *what, const char *uscc,
          int64_t since, int64_t until)
{
    ca_span ent;
    int64_t ts = ca_sr_ts(y->raw, y->len);

    if (ca_raw_field(y->raw, y->len, "enterprise", &ent) != 0
        || ent.len != strlen(uscc) || memcmp(ent.p, uscc, ent.len) != 0)
    {
        fail(v, "entry %llu: a %s of another enterprise (%.*s), not %s's",
             (unsigned long long) y->ord, what, ent.p ? (int) ent.len : 0,
             ent.p ? ent.p : "", uscc);
    }
    if (ts < since || ts >= until) {
        fail(v, "entry %llu: its time is outside the statement's period",
             (unsigned long long) y->ord);
    }
}

/* Entries: bytes, leaves, proofs; the enterprise's, in the period. */
v_entry *
check_entries(verifier *v, json_t *st, const ca_mk_hash *nodes, size_t nn,
              uint64_t size, const unsigned char root[32], const char *uscc,
              size_t *n)
{
    json_t  *a = json_object_get(st, "entries"), *x;
    v_entry *e = calloc(json_array_size(a) + 1, sizeof(*e));
    int64_t  since = json_integer_value(json_object_get(st, "since_ms"));
    int64_t  until = json_integer_value(json_object_get(st, "until_ms"));
    size_t   i;

    *n = 0;
    if (!json_is_array(a) || e == NULL) {
        fail(v, "the statement has no list of entries");
        free(e);
        return NULL;
    }
    json_array_foreach(a, i, x) {
        const char    *raw = str(x, "raw");
        ca_mk_hash     path[CA_MK_PATH_MAX];
        size_t         np, rl = raw ? strlen(raw) : 0;
        unsigned char  leaf[32];
        v_entry       *y = &e[(*n)++];

        y->ord = (uint64_t) json_integer_value(json_object_get(x, "ord"));
        if (raw == NULL || (y->raw = malloc(rl / 4 * 3 + 3)) == NULL
            || (long) (y->len = (size_t) ca_b64std_decode(raw, rl, y->raw))
               < 0 || ca_raw_count(y->raw, y->len) < 0)
        {
            fail(v, "entry %llu: its bytes are not a base64 entry",
                 (unsigned long long) y->ord);
            continue;
        }
        if (i > 0 && y->ord <= e[*n - 2].ord) {
            fail(v, "entry %llu: entries out of archive order, or twice",
                 (unsigned long long) y->ord);
        }
        ca_mk_leaf(y->raw, y->len, y->leaf);
        if (hash_of(json_object_get(x, "leaf"), leaf) != 0
            || memcmp(leaf, y->leaf, 32) != 0)
        {
            fail(v, "entry %llu: its bytes do not hash to its leaf (the "
                 "entry was changed)", (unsigned long long) y->ord);
        }
        if (proof_of(json_object_get(x, "proof"), nodes, nn, path, &np)
            != 0)
        {
            fail(v, "entry %llu: no inclusion proof",
                 (unsigned long long) y->ord);
        } else if (ca_mk_verify_inclusion(y->leaf, y->ord, size, path, np,
                                          root) != 0)
        {
            fail(v, "entry %llu: its inclusion proof does not hold against "
                 "the checkpoint (the entry is not in the signed log as "
                 "shown)", (unsigned long long) y->ord);
        }
        if (ca_sr_is_event(y->raw, y->len, "decision")) {
            check_own(v, y, "decision", uscc, since, until);
        } else if (ca_sr_is_event(y->raw, y->len, "revocation")) {
            check_own(v, y, "revocation", uscc, since, until);
        } else if (!ca_sr_is_event(y->raw, y->len, "outcome")) {
            fail(v, "entry %llu: neither a decision, an outcome nor a "
                 "revocation", (unsigned long long) y->ord);
        }
    }
    return e;
}

static int
count_of(json_t *counts, const ca_span *key)
{
    const char *k;
    json_t     *val;

    json_object_foreach(counts, k, val) {
        if (key->p != NULL && strlen(k) == key->len
            && memcmp(k, key->p, key->len) == 0)
        {
            return (int) json_integer_value(val);
        }
    }
    return -1;
}

/* Rows and totals against the entries they name. */
void
check_requests(verifier *v, json_t *st, v_entry *e, size_t n)
{
    static const struct { const char *key; int col; } by[] = {
        {"by_bank", CA_SR_BANK}, {"by_purpose", CA_SR_PURPOSE},
        {"by_decision", CA_SR_DECISION},
    };
    json_t  *rq = json_object_get(st, "requests"), *q;
    json_t  *tot = json_object_get(st, "totals");
    size_t   i, nr = json_array_size(rq);
    ca_span (*rows)[CA_SR_COUNT] = calloc(nr + 1, sizeof(*rows));

    if (!json_is_array(rq) || rows == NULL) {
        fail(v, "the statement has no list of requests");
        free(rows);
        return;
    }
    json_array_foreach(rq, i, q) {
        v_entry *d = find(e, n, json_object_get(q, "decision_ord"));
        v_entry *o = json_is_null(json_object_get(q, "outcome_ord")) ? NULL
                     : find(e, n, json_object_get(q, "outcome_ord"));

        if (d == NULL || (o == NULL && !json_is_null(json_object_get(
                q, "outcome_ord"))) || d->used || (o != NULL && o->used))
        {
            fail(v, "request %zu: names entries the statement does not "
                 "hold, or holds for another request", i + 1);
            continue;
        }
        d->used = 1;
        if (o != NULL) {
            o->used = 1;
        }
        if (ca_sr_row(d->raw, d->len, o ? o->raw : NULL, o ? o->len : 0,
                      rows[i]) != 0)
        {
            fail(v, "request %zu (entry %llu): not a decision with its "
                 "outcome (another request's, or another gateway's)", i + 1,
                 (unsigned long long) d->ord);
            continue;
        }
        for (int c = 0; c < CA_SR_COUNT; c++) {
            if (!same_value(&rows[i][c], json_object_get(q,
                                                         ca_sr_names[c])))
            {
                fail(v, "request %zu (entry %llu): its %s is not what its "
                     "entry says (%.*s)", i + 1,
                     (unsigned long long) d->ord, ca_sr_names[c],
                     rows[i][c].p ? (int) rows[i][c].len : 4,
                     rows[i][c].p ? rows[i][c].p : "none");
            }
        }
    }
    if (json_integer_value(json_object_get(tot, "requests")) != (json_int_t)
        nr)
    {
        fail(v, "totals: %lld requests, the statement lists %zu",
             (long long) json_integer_value(json_object_get(tot,
                                                           "requests")), nr);
    }
    for (size_t b = 0; b < sizeof(by) / sizeof(by[0]); b++) {
        json_t *counts = json_object_get(tot, by[b].key);
        size_t  listed = 0;

        for (i = 0; i < nr; i++) {
            int want = 0;

            for (size_t j = 0; j < nr; j++) {
                want += rows[j][by[b].col].len == rows[i][by[b].col].len
                        && rows[i][by[b].col].p && rows[j][by[b].col].p
                        && memcmp(rows[j][by[b].col].p, rows[i][by[b].col].p,
                                  rows[i][by[b].col].len) == 0;
            }
            if (rows[i][by[b].col].p != NULL
                && count_of(counts, &rows[i][by[b].col]) != want)
            {
                fail(v, "totals %s: %.*s is not counted %d times",
                     by[b].key, (int) rows[i][by[b].col].len,
                     rows[i][by[b].col].p, want);
                break;
            }
        }
        {
            const char *k;
            json_t     *val;

            json_object_foreach(counts, k, val) {
                listed += (size_t) json_integer_value(val);
            }
        }
        if (listed != nr) {
            fail(v, "totals %s: they add up to %zu, not %zu requests",
                 by[b].key, listed, nr);
        }
    }
    free(rows);
}

/* Withdrawals: each row is its proven revocation entry. */
void
check_revocations(verifier *v, json_t *st, v_entry *e, size_t n)
{
    json_t *rv = json_object_get(st, "revocations"), *q;
    size_t  i;

    if (!json_is_array(rv)) {
        fail(v, "the statement has no list of revocations");
        return;
    }
    json_array_foreach(rv, i, q) {
        v_entry *y = find(e, n, json_object_get(q, "ord"));
        ca_span  row[CA_SRV_COUNT];

        if (y == NULL || y->used) {
            fail(v, "revocation %zu: names an entry the statement does not "
                 "hold, or holds for another row", i + 1);
            continue;
        }
        y->used = 1;
        if (ca_sr_revocation(y->raw, y->len, row) != 0) {
            fail(v, "revocation %zu (entry %llu): not a revocation", i + 1,
                 (unsigned long long) y->ord);
            continue;
        }
        for (int c = 0; c < CA_SRV_COUNT; c++) {
            if (!same_value(&row[c], json_object_get(q, ca_srv_names[c]))) {
                fail(v, "revocation %zu (entry %llu): its %s is not what its "
                     "entry says (%.*s)", i + 1, (unsigned long long) y->ord,
                     ca_srv_names[c], row[c].p ? (int) row[c].len : 4,
                     row[c].p ? row[c].p : "none");
            }
        }
    }
    if (json_integer_value(json_object_get(json_object_get(st, "totals"),
                                           "revocations"))
        != (json_int_t) json_array_size(rv))
    {
        fail(v, "totals: the revocations are not the %zu listed",
             json_array_size(rv));
    }
}

void
check_unused(verifier *v, const v_entry *e, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (e[k].used || e[k].raw == NULL) {
            continue;
        }
        if (ca_sr_is_event(e[k].raw, e[k].len, "revocation")) {
            fail(v, "entry %llu: a revocation in no row of the statement",
                 (unsigned long long) e[k].ord);
        } else {
            fail(v, "entry %llu: in no request (a decision left out of the "
                 "rows, or an outcome without its decision)",
                 (unsigned long long) e[k].ord);
        }
    }
}

/* The signed summary covers exactly these entries, this checkpoint. */
void
check_signed(verifier *v, json_t *st, const char *origin, uint64_t size,
             const unsigned char root[32], v_entry *e, size_t n)
{
    const char    *note = str(st, "signed");
    ca_stmt_head   h;
    uint64_t      *ords = calloc(n + 1, sizeof(*ords));
    unsigned char *leaves = calloc(n + 1, 32);
    char           text[2048];
    size_t         tl, want;

    if (note == NULL || ords == NULL || leaves == NULL) {
        fail(v, "the statement is not signed");
        goto done;
    }
    if (open_note(v, "the statement's signature", note, &tl) != 0) {
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ords[i] = e[i].ord;
        memcpy(leaves + 32 * i, e[i].leaf, 32);
    }
    memset(&h, 0, sizeof(h));
    h.origin = origin;
    h.enterprise = str(st, "enterprise");
    h.month = str(st, "month");
    h.tz = str(st, "tz");
    h.since_ms = json_integer_value(json_object_get(st, "since_ms"));
    h.until_ms = json_integer_value(json_object_get(st, "until_ms"));
    h.size = size;
    h.count = n;
    memcpy(h.root, root, 32);
    ca_stmt_digest(ords, leaves, n, h.digest);
    want = ca_stmt_text(&h, text, sizeof(text));
    if (want == 0 || want != tl || memcmp(text, note, tl) != 0) {
        fail(v, "the statement's signature does not cover what it shows "
             "(an entry removed, added or changed, or another period or "
             "enterprise, after it was signed)");
    }
done:
    free(ords);
    free(leaves);
}

/* The log only grew since the checkpoint kept from last time. */
void
check_previous(verifier *v, json_t *st, const char *file, uint64_t size,
               const unsigned char root[32])
{
    char          *note, origin[CA_NOTE_NAME_MAX + 1];
    size_t         len, tl, np, i;
    ca_error       err;
    uint64_t       m;
    unsigned char  r1[32], r2[32];
    ca_mk_hash     proof[CA_MK_CONSIST_MAX];
    json_t        *c;
    int            found = 0;

    if ((note = ca_read_file(file, CA_NOTE_MAX, &len, &err)) == NULL) {
        fail(v, "--previous: %s", err.text);
        return;
    }
    if (open_note(v, "--previous checkpoint", note, &tl) != 0) {
        free(note);
        return;
    }
    if (ca_ckpt_parse(note, tl, origin, sizeof(origin), &m, r1) != 0) {
        fail(v, "--previous: not a checkpoint");
        free(note);
        return;
    }
    free(note);
    if (m > size) {
        fail(v, "the statement's checkpoint (tree size %llu) is older than "
             "the previous one (%llu): the log was rolled back",
             (unsigned long long) size, (unsigned long long) m);
        return;
    }
    if (m == size) {
        if (memcmp(r1, root, 32) != 0) {
            fail(v, "the statement's checkpoint and the previous one have "
                 "the same tree size (%llu) and different roots: the log "
                 "forked", (unsigned long long) m);
        }
        return;
    }
    json_array_foreach(json_object_get(st, "consistency"), i, c) {
        if ((uint64_t) json_integer_value(json_object_get(c, "tree_size"))
            != m)
        {
            continue;
        }
        found = 1;
        if (hash_of(json_object_get(c, "root"), r2) != 0
            || memcmp(r1, r2, 32) != 0
            || hashes_of(json_object_get(c, "proof"), proof,
                         CA_MK_CONSIST_MAX, &np) != 0
            || ca_mk_verify_consistency(m, size, r1, root, proof, np) != 0)
        {
            fail(v, "the statement's checkpoint does not extend the "
                 "previous one (tree size %llu): the log forked or was "
                 "rewritten", (unsigned long long) m);
        }
    }
    if (!found) {
        fail(v, "the statement carries no consistency proof from the "
             "previous checkpoint (tree size %llu): ask the platform for "
             "one made with --previous", (unsigned long long) m);
    }
}

