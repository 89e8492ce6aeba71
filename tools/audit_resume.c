/*
 * credit-audit verify --resume FILE: verification that starts from what
 * an earlier run verified, so that a regulator verifying every day reads
 * only what is new and memory stays bounded by that, not by the stream.
 *
 * After a run that found the stream intact, FILE records per chain an
 * anchor: the seq and hash of its last checkpoint (verified, since the
 * run found no break), and the stream id to read from next time: the
 * anchor itself when entries follow it (they are not signed yet and are
 * read again), nothing when the checkpoint ends the chain, a chain's first
 * entry when it has no checkpoint yet.  The next run reads from the
 * smallest of those ids; for an anchored chain it skips the entries
 * before the anchor and requires the first entry it feeds to be the
 * anchor (same hash) or the one after it (prev = the anchor's hash).  The
 * verifier then sees a chain that starts late; that one "deleted" finding,
 * on exactly that entry, is the expected start and not reported.
 *
 * FILE is evidence of what was verified, like the keys: keep it where
 * only the regulator writes.  It is replaced (write, fsync, rename) only
 * after a run without a break.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit_verify.h"
#include "core/core.h"

typedef struct {
    /* loaded */
    int       anchored;
    uint64_t  seq;
    char      hash[65];
    /* this run */
    char      first_id[48];     /* the first entry fed */
    int       first_ok;         /* it continues the anchor */
    char      bad[160];         /* why it does not, "" when it does */
    int       has_cp;
    char      cp_id[48];
    uint64_t  cp_seq;
    char      cp_hash[65];
} chain_state;

struct av_resume_s {
    strmap       names;         /* chain -> index (count) */
    chain_state *c;
    char       **name;
    size_t       n, cap;
    size_t       skipped, bad;
};

static chain_state *
state_of(av_resume *rs, const char *chain, size_t len, int create)
{
    map_slot *s = map_find(&rs->names, chain, len, 0);

    if (s != NULL || !create) {
        return s ? &rs->c[s->count] : NULL;
    }
    if (rs->n == rs->cap) {
        size_t       ncap = rs->cap ? rs->cap * 2 : 64;
        chain_state *nc = realloc(rs->c, ncap * sizeof(*nc));
        char       **nn;

        if (nc == NULL) {
            return NULL;
        }
        rs->c = nc;
        nn = realloc(rs->name, ncap * sizeof(*nn));
        if (nn == NULL) {
            return NULL;
        }
        rs->name = nn;
        rs->cap = ncap;
    }
    if ((rs->name[rs->n] = strndup(chain, len)) == NULL) {
        return NULL;
    }
    s = map_find(&rs->names, chain, len, 1);
    s->count = rs->n;
    memset(&rs->c[rs->n], 0, sizeof(rs->c[0]));
    return &rs->c[rs->n++];
}

static int
is_hash(const char *s)
{
    return s != NULL && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

av_resume *
av_resume_load(const char *file, const char *stream, char *from,
               size_t fromlen)
{
    av_resume   *rs = calloc(1, sizeof(*rs));
    json_error_t jerr;
    json_t      *doc, *chains, *a;
    const char  *name, *f, *st;

    if (rs == NULL) {
        return NULL;
    }
    snprintf(from, fromlen, "-");
    if (access(file, F_OK) != 0 && errno == ENOENT) {
        return rs;              /* the first run: from the start */
    }
    doc = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    chains = json_object_get(doc, "chains");
    f = json_string_value(json_object_get(doc, "resume_from"));
    st = json_string_value(json_object_get(doc, "stream"));
    if (!json_is_object(chains) || f == NULL || strlen(f) >= fromlen
        || st == NULL)
    {
        fprintf(stderr, "credit-audit: --resume %s: %s (a file written by "
                "credit-audit verify --resume; remove it to verify from "
                "the start)\n", file,
                doc ? "not a resume file" : jerr.text);
        json_decref(doc);
        av_resume_free(rs);
        return NULL;
    }
    if (strcmp(st, stream) != 0) {
        fprintf(stderr, "credit-audit: --resume %s was written for stream "
                "%s, not %s\n", file, st, stream);
        json_decref(doc);
        av_resume_free(rs);
        return NULL;
    }
    json_object_foreach(chains, name, a) {
        json_t      *seq = json_object_get(a, "seq");
        const char  *h = json_string_value(json_object_get(a, "hash"));
        chain_state *c;

        if (!json_is_integer(seq) || json_integer_value(seq) < 1
            || !is_hash(h))
        {
            fprintf(stderr, "credit-audit: --resume %s: chain %s: bad "
                    "anchor (seq and hash)\n", file, name);
            json_decref(doc);
            av_resume_free(rs);
            return NULL;
        }
        if ((c = state_of(rs, name, strlen(name), 1)) == NULL) {
            json_decref(doc);
            av_resume_free(rs);
            return NULL;
        }
        c->anchored = 1;
        c->seq = (uint64_t) json_integer_value(seq);
        memcpy(c->hash, h, 65);
    }
    snprintf(from, fromlen, "%s", f);
    json_decref(doc);
    return rs;
}

static uint64_t
seq_of(const entry *e)
{
    size_t      len;
    const char *v = get(e, CA_F_SEQ, &len);
    uint64_t    n = 0;

    for (size_t i = 0; v != NULL && i < len && i < 20; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
        n = n * 10 + (uint64_t) (v[i] - '0');
    }
    return n;
}

int
av_resume_filter(av_resume *rs, const entry *e)
{
    size_t       len, hlen;
    const char  *chain = get(e, CA_F_CHAIN, &len), *h;
    chain_state *c;
    uint64_t     seq;

    if (chain == NULL || len == 0) {
        return 0;
    }
    if ((c = state_of(rs, chain, len, 1)) == NULL) {
        return -1;
    }
    seq = seq_of(e);
    if (c->anchored && seq != 0 && seq < c->seq) {
        rs->skipped++;          /* verified before */
        return 1;
    }
    if (c->first_id[0] == '\0') {
        snprintf(c->first_id, sizeof(c->first_id), "%s", e->id);
        if (c->anchored) {
            if (seq == c->seq) {
                c->first_ok = has_value(e, CA_F_HASH, c->hash);
                if (!c->first_ok) {
                    snprintf(c->bad, sizeof(c->bad), "the anchor seq %llu "
                             "no longer has the hash verified before",
                             (unsigned long long) seq);
                }
            } else if (seq == c->seq + 1) {
                c->first_ok = has_value(e, CA_F_PREV, c->hash);
                if (!c->first_ok) {
                    snprintf(c->bad, sizeof(c->bad), "seq %llu does not "
                             "follow the anchor verified before (prev)",
                             (unsigned long long) seq);
                }
            }
            /* a later seq: the verifier reports what is missing */
            rs->bad += c->bad[0] != '\0';
        }
    }
    if (is_event(e, CA_EV_CHECKPOINT)
        && (h = get(e, CA_F_HASH, &hlen)) != NULL && hlen == 64)
    {
        c->has_cp = 1;
        c->cp_seq = seq;
        snprintf(c->cp_id, sizeof(c->cp_id), "%s", e->id);
        memcpy(c->cp_hash, h, 64);
        c->cp_hash[64] = '\0';
    }
    return 0;
}

int
av_resume_floors(const av_resume *rs, ca_av *av)
{
    unsigned char h[32];

    for (size_t i = 0; i < rs->n; i++) {
        if (rs->c[i].anchored
            && (ca_unhex(rs->c[i].hash, h, 32) != 0
                || ca_av_floor(av, rs->name[i], rs->c[i].seq, h) != 0))
        {
            return -1;
        }
    }
    return 0;
}

int
av_resume_excused(const av_resume *rs, const char *chain,
                  const ca_av_finding *f)
{
    map_slot    *s;
    chain_state *c;

    if (rs == NULL || f->kind != CA_AV_DELETED) {
        return 0;
    }
    s = map_find((strmap *) &rs->names, chain, strlen(chain), 0);
    c = s ? &rs->c[s->count] : NULL;
    return c != NULL && c->anchored && c->first_ok
           && strcmp(f->id, c->first_id) == 0;
}

size_t
av_resume_breaks(const av_resume *rs)
{
    return rs ? rs->bad : 0;
}

size_t
av_resume_skipped(const av_resume *rs)
{
    return rs ? rs->skipped : 0;
}

void
av_resume_each_break(const av_resume *rs,
                     void (*cb)(const char *chain, const char *id,
                                const char *why, void *data),
                     void *data)
{
    for (size_t i = 0; rs != NULL && i < rs->n; i++) {
        if (rs->c[i].bad[0] != '\0') {
            cb(rs->name[i], rs->c[i].first_id, rs->c[i].bad, data);
        }
    }
}

/* Stream ids compare as (ms, seq); "" is after everything. */
static int
id_before(const char *x, const char *y)
{
    unsigned long long xm = 0, xs = 0, ym = 0, ys = 0;

    if (y[0] == '\0') {
        return x[0] != '\0';
    }
    if (x[0] == '\0') {
        return 0;
    }
    sscanf(x, "%llu-%llu", &xm, &xs);
    sscanf(y, "%llu-%llu", &ym, &ys);
    return xm < ym || (xm == ym && xs < ys);
}

int
av_resume_save(const av_resume *rs, const ca_av_chain *const *chain,
               size_t nchains, const char *stream, const char *file,
               const char *prev_from, const char *last_id)
{
    json_t *chains = json_object(), *doc;
    char    from[48] = "", tmp[4096];
    FILE   *f;
    int     ok;

    for (size_t i = 0; i < nchains; i++) {
        const ca_av_chain *c = chain[i];
        map_slot          *s = map_find((strmap *) &rs->names, c->chain,
                                        strlen(c->chain), 0);
        const chain_state *st = s ? &rs->c[s->count] : NULL;
        const char        *need = "";   /* where to read from next */

        if (st == NULL || c->chain[0] == '\0') {
            continue;
        }
        if (st->has_cp) {
            /* no break: the last checkpoint seen is verified */
            json_object_set_new(chains, c->chain, json_pack(
                "{s:I,s:s}", "seq", (json_int_t) st->cp_seq,
                "hash", st->cp_hash));
            if (c->unsigned_tail > 0) {
                need = st->cp_id;
            }
        } else if (st->anchored) {
            json_object_set_new(chains, c->chain, json_pack(
                "{s:I,s:s}", "seq", (json_int_t) st->seq,
                "hash", st->hash));
            if (c->unsigned_tail > 0) {
                need = st->first_id;
            }
        } else {
            need = st->first_id;        /* never signed: all again */
        }
        if (id_before(need, from)) {
            snprintf(from, sizeof(from), "%s", need);
        }
    }
    /* chains the earlier file anchored and this run did not see */
    for (size_t i = 0; i < rs->n; i++) {
        if (rs->c[i].anchored && rs->c[i].first_id[0] == '\0') {
            json_object_set_new(chains, rs->name[i], json_pack(
                "{s:I,s:s}", "seq", (json_int_t) rs->c[i].seq,
                "hash", rs->c[i].hash));
        }
    }
    if (from[0] == '\0') {
        /* everything signed: next time, only what comes after (nothing
         * read: where this run started) */
        if (last_id[0] != '\0') {
            snprintf(from, sizeof(from), "(%s", last_id);
        } else {
            snprintf(from, sizeof(from), "%s", prev_from);
        }
    }
    doc = json_pack("{s:s,s:s,s:o}", "stream", stream, "resume_from", from,
                    "chains", chains);
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    f = fopen(tmp, "w");
    ok = f != NULL && json_dumpf(doc, f, JSON_INDENT(1) | JSON_SORT_KEYS)
                      == 0
         && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (f != NULL && fclose(f) != 0) {
        ok = 0;
    }
    json_decref(doc);
    if (!ok || rename(tmp, file) != 0) {
        fprintf(stderr, "credit-audit: --resume %s: cannot write: %s\n",
                file, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void
av_resume_free(av_resume *rs)
{
    if (rs == NULL) {
        return;
    }
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->name[i]);
    }
    free(rs->name);
    free(rs->c);
    map_free(&rs->names);
    free(rs);
}
