/*
 * Audit chain and checkpoint verification (see auditverify.h and
 * docs/audit-format.md for the classification rules).
 *
 * The evidence available to a regulator is:
 *   - each entry's own hash over its fields (catches edits that were not
 *     re-hashed);
 *   - each entry's prev = its predecessor's hash (catches re-hashed edits
 *     that were not propagated, deletions and insertions in the middle);
 *   - signed checkpoints (chain, covers, head): the only thing a forger who
 *     re-hashes everything cannot redo without the gateway's private key.
 * Every check below is one of these three, applied per chain; v2
 * checkpoints add a fourth across chains: the heads a checkpoint lists
 * must be in the stream (auditheads.c).
 *
 * This file reads entries into small records (into the chains of
 * auditchains.c); auditclassify.c classifies each chain.  It reads only the fields of chaining and signing (by their
 * names in lib/audit/auditschema.h) and hashes every field as stored, so
 * entries of every schema version (`v` 1 before verifications listed their
 * checks, 2 since) verify alike, side by side in one stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "audit/audit.h"
#include "auditfields.h"
#include "auditverify_int.h"
#include "core/core.h"

const char *
ca_av_kind_name(ca_av_kind k)
{
    static const char *const names[CA_AV_KINDS] = {
        "modified", "inserted", "deleted", "reordered", "truncated",
        "bad_signature", "discontinuity"
    };

    return (unsigned) k < CA_AV_KINDS ? names[k] : "unknown";
}

ca_av *
ca_av_new(EVP_PKEY *pub)
{
    ca_av *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        return NULL;
    }
    v->key = pub;
    v->nslots = 64;
    v->slots = calloc(v->nslots, sizeof(size_t));
    if (v->slots == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

/* A name with a NUL inside is not one the gateway writes (its names are
 * C strings): such an entry is not intact.  `hash` is sealed last;
 * anything after it is not covered. */
static void
digest_ok(size_t nfields, const char *const *names, const size_t *name_lens,
          const char *const *values, const size_t *value_lens,
          size_t hash_at, int *ok)
{
    unsigned char   digest[32];
    char            hex[65];

    for (size_t i = 0; i < nfields; i++) {
        if (memchr(names[i], '\0', name_lens[i]) != NULL) {
            *ok = 0;
            return;
        }
    }
    ca_entry_digest_bin(names, name_lens, values, value_lens, nfields,
                        digest);
    ca_hex(digest, 32, hex);
    *ok = hash_at == nfields - 1 && memcmp(hex, values[hash_at], 64) == 0;
}

/* A v2 checkpoint's heads, parsed at the end of c->heads; counted in
 * only once its signature verifies.  -1: no memory; 0 and r->nheads
 * unset when malformed. */
static int
parse_heads(av_chain *c, av_rec *r, const char *s, size_t len, int *ok)
{
    size_t  lines = 0;
    long    n;

    for (size_t i = 0; i < len; i++) {
        lines += s[i] == '\n';
    }
    /* a line the gateway writes has at least 69 bytes: newlines alone
     * must not make the verifier allocate more than the entry's size */
    if (lines > len / 69) {
        lines = len / 69;
    }
    if (c->nheads + lines > c->hcap) {
        size_t        ncap = (c->nheads + lines) * 2;
        ca_ckpt_head *nh = realloc(c->heads, ncap * sizeof(*nh));

        if (nh == NULL) {
            return -1;
        }
        c->heads = nh;
        c->hcap = ncap;
    }
    n = ca_ckpt_heads_parse(s, len, c->heads ? c->heads + c->nheads : NULL,
                            lines);
    *ok = n >= 0;
    if (n > 0) {
        r->heads_at = c->nheads;
        r->nheads = (uint32_t) n;
    }
    return 0;
}

static int
read_checkpoint(const ca_av *v, av_chain *c, av_rec *r, const ca_vfields *f)
{
    char    hex[65];
    int     heads_ok = 1;

    if (!(r->well_formed && HAS(f, F_COVERS) && HAS(f, F_HEAD)
          && HAS(f, F_SIG)
          && ca_u64_parse(VAL(f, F_COVERS), &r->covers) == 0
          && ca_ckpt_parse_hash(VAL(f, F_HEAD), r->head) == 0))
    {
        return 0;
    }
    if (HAS(f, F_HEADS) && parse_heads(c, r, VAL(f, F_HEADS), &heads_ok)
                           != 0)
    {
        return -1;
    }
    if (!heads_ok) {
        return 0;
    }
    r->cp_fields = 1;
    ca_hex(r->head, 32, hex);
    r->sig_ok = ca_checkpoint_verify(v->key, c->pub.chain, r->covers, hex,
                                     HAS(f, F_HEADS)
                                     ? f->values[f->at[F_HEADS]] : NULL,
                                     HAS(f, F_HEADS)
                                     ? f->lens[f->at[F_HEADS]] : 0,
                                     VAL(f, F_SIG));
    if (r->sig_ok) {
        c->nheads += r->nheads;
    } else {
        r->nheads = 0;
    }
    return 0;
}

int
ca_av_add(ca_av *v, const char *id, size_t nfields,
          const char *const *names, const size_t *name_lens,
          const char *const *values, const size_t *value_lens)
{
    av_rec      r;
    av_chain   *c;
    ca_vfields  f;
    size_t      nhash, hash_at;
    int         ok = 0;

    memset(&r, 0, sizeof(r));
    r.pos = v->pos++;
    snprintf(r.id, sizeof(r.id), "%s", id);

    ca_vf_scan(&f, nfields, names, name_lens, values, value_lens);
    nhash = f.nhash;
    hash_at = f.hash_at;

    c = HAS(&f, F_CHAIN) ? ca_av_chain_get(v, VAL(&f, F_CHAIN), 1)
                         : ca_av_chain_get(v, "", 0, 1);
    if (c == NULL) {
        return -1;
    }

    r.well_formed = HAS(&f, F_CHAIN) && f.lens[f.at[F_CHAIN]] > 0
        && HAS(&f, F_SEQ)
        && ca_u64_parse(VAL(&f, F_SEQ), &r.seq) == 0
        && r.seq > 0
        && HAS(&f, F_PREV)
        && ca_ckpt_parse_hash(VAL(&f, F_PREV), r.prev) == 0
        && nhash == 1
        && ca_ckpt_parse_hash(values[hash_at], value_lens[hash_at], r.hash)
           == 0;

    if (r.well_formed) {
        digest_ok(nfields, names, name_lens, values, value_lens, hash_at,
                  &ok);
    }
    r.digest_ok = ok;

    r.discontinuity = HAS(&f, F_EVENT)
                      && ca_vf_is(VAL(&f, F_EVENT), ca_audit_event_name(
                                                    CA_EV_DISCONTINUITY));
    if (HAS(&f, F_EVENT)
        && ca_vf_is(VAL(&f, F_EVENT),
                    ca_audit_event_name(CA_EV_CHECKPOINT)))
    {
        r.checkpoint = 1;
        if (read_checkpoint(v, c, &r, &f) != 0) {
            return -1;
        }
    }

    if (c->nrecs == c->cap) {
        size_t  ncap = c->cap ? c->cap * 2 : 64;
        av_rec *nr = realloc(c->recs, ncap * sizeof(*nr));

        if (nr == NULL) {
            return -1;
        }
        c->recs = nr;
        c->cap = ncap;
    }
    c->recs[c->nrecs++] = r;
    return 0;
}

int
ca_av_floor(ca_av *v, const char *chain, uint64_t seq,
            const unsigned char hash[32])
{
    av_floor *nf = realloc(v->floors, (v->nfloors + 1) * sizeof(*nf));

    if (nf == NULL) {
        return -1;
    }
    v->floors = nf;
    nf = &v->floors[v->nfloors];
    if ((nf->chain = strdup(chain)) == NULL) {
        return -1;
    }
    nf->seq = seq;
    memcpy(nf->hash, hash, 32);
    v->nfloors++;
    return 0;
}

int
ca_av_finish(ca_av *v)
{
    if (v->finished) {
        return 0;
    }
    v->finished = 1;
    for (size_t i = 0; i < v->nchains; i++) {
        if (ca_av_check_chain(v, v->chains[i]) != 0) {
            return -1;
        }
    }
    return ca_av_check_heads(v);
}

size_t
ca_av_nchains(const ca_av *v)
{
    return v->nchains;
}

const ca_av_chain *
ca_av_chain_at(const ca_av *v, size_t i)
{
    return i < v->nchains ? &v->chains[i]->pub : NULL;
}

size_t
ca_av_breaks(const ca_av *v)
{
    size_t n = 0;

    for (size_t i = 0; i < v->nchains; i++) {
        n += v->chains[i]->pub.nfindings;
    }
    return n;
}

size_t
ca_av_entries(const ca_av *v)
{
    size_t n = 0;

    for (size_t i = 0; i < v->nchains; i++) {
        n += v->chains[i]->pub.entries;
    }
    return n;
}

size_t
ca_av_heads_checked(const ca_av *v)
{
    return v->heads_checked;
}

size_t
ca_av_heads_missing(const ca_av *v)
{
    return v->heads_missing;
}

void
ca_av_free(ca_av *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        free(v->chains[i]->pub.chain);
        free(v->chains[i]->pub.findings);
        free(v->chains[i]->recs);
        free(v->chains[i]->signed_heads);
        free(v->chains[i]->heads);
        free(v->chains[i]->prim);
        free(v->chains[i]);
    }
    for (size_t i = 0; i < v->nfloors; i++) {
        free(v->floors[i].chain);
    }
    free(v->floors);
    free(v->chains);
    free(v->slots);
    free(v);
}
