/*
 * credit-consent statement verify (SPEC §7.3, docs/enterprise.md): the
 * enterprise's own check of its access statement, on its own machine,
 * trusting only the log's public key:
 *
 *   the checkpoint is signed by the log key; every entry's bytes hash to
 *   its leaf and its inclusion proof holds against the checkpoint's root;
 *   every decision is this enterprise's, in the period; every request row
 *   and total says what its proven entries say (lib/merkle/stmtrow.h);
 *   the statement's signed summary covers exactly these entries; and with
 *   --previous, the checkpoint extends the one kept from last time (same
 *   size: the same root; else a consistency proof).
 *
 * Every failure is named on its own line; exit 0 when none, 1 otherwise.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "consent.h"
#include "core/util.h"
#include "merkle/merkle.h"
#include "merkle/note.h"
#include "merkle/stmtrow.h"

static const char usage_statement[] =
    "usage: credit-consent statement verify FILE --log-key KEY\n"
    "         [--previous CHECKPOINT]\n"
    "\n"
    "Checks an access statement (the JSON of `credit-audit statement`)\n"
    "without trusting the platform: the checkpoint's signature by the log\n"
    "key, every entry's hash and inclusion proof, that every decision is\n"
    "the enterprise's and in the period, that the rows and totals say what\n"
    "the entries say, the statement's signature over its entries, and\n"
    "with --previous that the log only grew since the checkpoint kept from\n"
    "the last statement.  Prints each failure; exit 0 when all hold, 1\n"
    "when any fails, 2 on a usage error or an unreadable key.\n"
    "\n"
    "  --log-key KEY           the log's public key: its verifier key\n"
    "                          (NAME+HASH+KEY, as the platform publishes\n"
    "                          it), a file holding one, or a PEM public key\n"
    "  --previous CHECKPOINT   a checkpoint kept from before (a file)\n";

typedef struct {
    char            name[CA_NOTE_NAME_MAX + 1];    /* "" from the note */
    unsigned char   pub[32];
    int             failed;
} verifier;

static void
fail(verifier *v, const char *fmt, ...)
{
    va_list ap;

    printf("FAIL: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    v->failed++;
}

/* --log-key: a verifier key, a file with one, or a PEM public key. */
static int
read_key(verifier *v, const char *arg)
{
    char     *text, line[CA_NOTE_VKEY_MAX + 2];
    size_t    len;
    ca_error  err;
    FILE     *f;
    EVP_PKEY *k;

    if (ca_note_vkey_parse(arg, v->name, sizeof(v->name), v->pub) == 0) {
        return 0;
    }
    if ((text = ca_read_file(arg, 65536, &len, &err)) == NULL) {
        fprintf(stderr, "credit-consent: --log-key: not a verifier key, "
                "and %s\n", err.text);
        return -1;
    }
    snprintf(line, sizeof(line), "%.*s", (int) strcspn(text, "\r\n"), text);
    free(text);
    if (ca_note_vkey_parse(line, v->name, sizeof(v->name), v->pub) == 0) {
        return 0;
    }
    v->name[0] = '\0';
    if ((f = fopen(arg, "r")) != NULL) {
        k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
        fclose(f);
        if (k != NULL && ca_note_pubkey(k, v->pub) == 0) {
            EVP_PKEY_free(k);
            return 0;
        }
        EVP_PKEY_free(k);
    }
    fprintf(stderr, "credit-consent: --log-key %s: neither a verifier key "
            "(NAME+HASH+KEY) nor an Ed25519 public key in PEM\n", arg);
    return -1;
}

/* The note's text if signed by the key (the name from the note when the
 * key came as PEM: its key hash binds it); NULL after a failure. */
static int
open_note(verifier *v, const char *what, const char *note, size_t *tlen)
{
    char name[CA_NOTE_NAME_MAX + 1];
    int  rc;

    if (v->name[0] == '\0') {
        if (ca_note_signer(note, strlen(note), name, sizeof(name)) != 0) {
            fail(v, "%s: not a signed note", what);
            return -1;
        }
    } else {
        snprintf(name, sizeof(name), "%s", v->name);
    }
    rc = ca_note_open(note, strlen(note), name, v->pub, tlen);
    if (rc != 0) {
        fail(v, "%s: %s", what, rc == CA_NOTE_UNSIGNED
             ? "not signed by the log key" : rc == CA_NOTE_BAD_SIG
             ? "its signature by the log key is wrong (changed after "
               "signing, or forged)" : "not a signed note");
        return -1;
    }
    return 0;
}

static const char *
str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int
hash_of(json_t *v, unsigned char out[32])
{
    const char   *s = json_string_value(v);
    unsigned char b[33];

    return s != NULL && strlen(s) == 44 && ca_b64std_decode(s, 44, b) == 32
           ? (memcpy(out, b, 32), 0) : -1;
}

static int
hashes_of(json_t *a, ca_mk_hash *out, size_t max, size_t *n)
{
    size_t i;
    json_t *h;

    if (!json_is_array(a) || json_array_size(a) > max) {
        return -1;
    }
    json_array_foreach(a, i, h) {
        if (hash_of(h, out[i]) != 0) {
            return -1;
        }
    }
    *n = json_array_size(a);
    return 0;
}

typedef struct {
    uint64_t        ord;
    unsigned char  *raw;
    size_t          len;
    unsigned char   leaf[32];
    int             used;           /* by a request */
} v_entry;

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

/* Entries: bytes, leaves, proofs; the enterprise's, in the period. */
static v_entry *
check_entries(verifier *v, json_t *st, uint64_t size,
              const unsigned char root[32], const char *uscc, size_t *n)
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
        ca_span        ent;
        int64_t        ts;

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
        if (hashes_of(json_object_get(x, "proof"), path, CA_MK_PATH_MAX,
                      &np) != 0)
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
            ts = ca_sr_ts(y->raw, y->len);
            if (ca_raw_field(y->raw, y->len, "enterprise", &ent) != 0
                || ent.len != strlen(uscc)
                || memcmp(ent.p, uscc, ent.len) != 0)
            {
                fail(v, "entry %llu: a decision of another enterprise "
                     "(%.*s), not %s's", (unsigned long long) y->ord,
                     ent.p ? (int) ent.len : 0, ent.p ? ent.p : "", uscc);
            }
            if (ts < since || ts >= until) {
                fail(v, "entry %llu: its time is outside the statement's "
                     "period", (unsigned long long) y->ord);
            }
        } else if (!ca_sr_is_event(y->raw, y->len, "outcome")) {
            fail(v, "entry %llu: neither a decision nor an outcome",
                 (unsigned long long) y->ord);
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
static void
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
    for (size_t k = 0; k < n; k++) {
        if (!e[k].used && e[k].raw != NULL) {
            fail(v, "entry %llu: in no request (a decision left out of the "
                 "rows, or an outcome without its decision)",
                 (unsigned long long) e[k].ord);
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

/* The signed summary covers exactly these entries, this checkpoint. */
static void
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
static void
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

static int
verify(verifier *v, const char *file, const char *previous)
{
    json_error_t   je;
    ca_error       err;
    size_t         flen;
    /* read whole, then parsed: json_load_file reads a byte at a time */
    char          *text = ca_read_file(file, (size_t) 1 << 30, &flen, &err);
    json_t        *st = text ? json_loadb(text, flen, JSON_REJECT_DUPLICATES,
                                          &je) : NULL;
    json_t        *log = json_object_get(st, "log");
    const char    *note = str(log, "checkpoint"), *uscc;
    char           origin[CA_NOTE_NAME_MAX + 1];
    unsigned char  root[32], jroot[32];
    uint64_t       size = 0;
    size_t         tl, n = 0;
    v_entry       *e = NULL;

    int            unread = text == NULL;

    free(text);
    if (st == NULL) {
        if (unread) {
            fprintf(stderr, "credit-consent: %s\n", err.text);
            return EXIT_USAGE;
        }
        fail(v, "%s: not JSON: %s (line %d)", file, je.text, je.line);
        return 1;
    }
    uscc = str(st, "enterprise");
    if (!json_is_object(st) || uscc == NULL || str(st, "statement") == NULL
        || strcmp(str(st, "statement"), CA_STMT_TITLE) != 0)
    {
        fail(v, "%s: not an access statement (%s)", file, CA_STMT_TITLE);
        json_decref(st);
        return 1;
    }
    if (note == NULL) {
        fail(v, "the statement has no checkpoint");
        json_decref(st);
        return 1;
    }
    if (open_note(v, "the checkpoint", note, &tl) != 0) {
        json_decref(st);
        return 1;
    }
    if (ca_ckpt_parse(note, tl, origin, sizeof(origin), &size, root) != 0) {
        fail(v, "the checkpoint is not a tlog checkpoint");
        json_decref(st);
        return 1;
    }
    if (hash_of(json_object_get(log, "root"), jroot) != 0
        || memcmp(jroot, root, 32) != 0
        || (uint64_t) json_integer_value(json_object_get(log, "tree_size"))
           != size)
    {
        fail(v, "the statement's tree size or root is not its checkpoint's");
    }
    e = check_entries(v, st, size, root, uscc, &n);
    if (e != NULL) {
        check_requests(v, st, e, n);
        check_signed(v, st, origin, size, root, e, n);
    }
    if (previous != NULL) {
        check_previous(v, st, previous, size, root);
    }
    if (v->failed == 0) {
        printf("OK: %zu requests of %s in %s, %zu entries proven against "
               "checkpoint %s at tree size %llu%s\n",
               json_array_size(json_object_get(st, "requests")), uscc,
               str(st, "month") ? str(st, "month") : "?", n, origin,
               (unsigned long long) size, previous
               ? ", consistent with the previous checkpoint" : "");
    }
    for (size_t i = 0; i < n; i++) {
        free(e[i].raw);
    }
    free(e);
    json_decref(st);
    return v->failed ? 1 : 0;
}

int
cmd_statement(int argc, char **argv)
{
    static const struct option opts[] = {
        {"log-key", required_argument, NULL, 'k'},
        {"previous", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}
    };
    const char *key = NULL, *previous = NULL, *file = NULL;
    verifier    v;
    int         ch;

    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0
                          || strcmp(argv[1], "-h") == 0))
        {
            fputs(usage_statement, stdout);
            return 0;
        }
        fputs(usage_statement, stderr);
        return EXIT_USAGE;
    }
    argc--;
    argv++;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': key = optarg; break;
        case 'p': previous = optarg; break;
        case 'h':
            fputs(usage_statement, stdout);
            return 0;
        default:
            fprintf(stderr, "credit-consent: statement verify: bad option "
                    "(see --help)\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || key == NULL) {
        fprintf(stderr, "credit-consent: statement verify needs FILE and "
                "--log-key KEY (see --help)\n");
        return EXIT_USAGE;
    }
    file = argv[optind];
    memset(&v, 0, sizeof(v));
    if (read_key(&v, key) != 0) {
        return EXIT_USAGE;
    }
    return verify(&v, file, previous);
}
