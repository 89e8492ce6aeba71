/*
 * credit-audit anchor --out FILE, and verify --anchor FILE (contract §7.1):
 * what was verified once, kept outside Redis, so that a later run proves
 * nothing before it was dropped.
 *
 * An anchor is, per chain, the seq and hash of its last verified
 * checkpoint, written only after a run that found no break (the format of
 * verify --resume's file, which it can also seed).  verify --anchor reads
 * the whole stream and requires every anchored (chain, seq) to be there
 * with the same hash: the chain's links then vouch for everything before
 * it.  A chain deleted whole, or cut below its anchor, is a break, which
 * a run without the anchor cannot see (the shorter chain verifies).
 *
 * This file holds the anchors a run checks (audit_run.c); the anchor
 * command itself is beside verify's, in audit_verify.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit_verify.h"

typedef struct {
    char     *chain;
    uint64_t  seq;
    char      hash[65];
    int       found;
} anchor_t;

struct av_anchor_s {
    anchor_t *a;
    size_t    n;
};


av_anchor *
av_anchor_load(const char *file, const char *stream)
{
    json_error_t  jerr;
    json_t       *doc, *chains, *a;
    const char   *name, *st;
    av_anchor    *an;

    doc = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    chains = json_object_get(doc, "chains");
    st = json_string_value(json_object_get(doc, "stream"));
    if (!json_is_object(chains) || st == NULL) {
        fprintf(stderr, "credit-audit: --anchor %s: %s (a file written by "
                "credit-audit anchor --out)\n", file,
                doc ? "not an anchor file" : jerr.text);
        json_decref(doc);
        return NULL;
    }
    if (strcmp(st, stream) != 0) {
        fprintf(stderr, "credit-audit: --anchor %s was written for stream "
                "%s, not %s\n", file, st, stream);
        json_decref(doc);
        return NULL;
    }
    an = calloc(1, sizeof(*an));
    if (an == NULL || (an->a = calloc(json_object_size(chains) + 1,
                                      sizeof(anchor_t))) == NULL)
    {
        free(an);
        json_decref(doc);
        fputs("credit-audit: out of memory\n", stderr);
        return NULL;
    }
    json_object_foreach(chains, name, a) {
        json_t     *seq = json_object_get(a, "seq");
        const char *h = json_string_value(json_object_get(a, "hash"));

        if (!json_is_integer(seq) || json_integer_value(seq) < 1
            || h == NULL || strlen(h) != 64
            || strspn(h, "0123456789abcdef") != 64)
        {
            fprintf(stderr, "credit-audit: --anchor %s: chain %s: bad "
                    "anchor (seq and hash)\n", file, name);
            json_decref(doc);
            av_anchor_free(an);
            return NULL;
        }
        if ((an->a[an->n].chain = strdup(name)) == NULL) {
            json_decref(doc);
            av_anchor_free(an);
            return NULL;
        }
        an->a[an->n].seq = (uint64_t) json_integer_value(seq);
        memcpy(an->a[an->n].hash, h, 65);
        an->n++;
    }
    json_decref(doc);
    return an;
}


/* An entry read: is it an anchored (chain, seq) with its hash? */
int
av_anchor_see(const entry *e, void *data)
{
    av_anchor  *an = data;
    size_t      clen, slen, hlen;
    const char *chain = get(e, CA_F_CHAIN, &clen);
    const char *seq = get(e, CA_F_SEQ, &slen);
    const char *hash = get(e, CA_F_HASH, &hlen);
    char        num[24];

    if (chain == NULL || seq == NULL || hash == NULL || hlen != 64
        || slen == 0 || slen >= sizeof(num))
    {
        return 0;
    }
    memcpy(num, seq, slen);
    num[slen] = '\0';
    for (size_t i = 0; i < an->n; i++) {
        anchor_t *a = &an->a[i];

        if (!a->found && strlen(a->chain) == clen
            && memcmp(a->chain, chain, clen) == 0
            && strtoull(num, NULL, 10) == a->seq
            && memcmp(a->hash, hash, 64) == 0)
        {
            a->found = 1;
        }
    }
    return 0;
}


size_t
av_anchor_missing(const av_anchor *an, int json)
{
    size_t  n = 0;

    for (size_t i = 0; an != NULL && i < an->n; i++) {
        const anchor_t *a = &an->a[i];

        if (a->found) {
            continue;
        }
        n++;
        if (json) {
            continue;
        }
        printf("  anchor        %s seq %llu: missing (the chain was "
               "deleted, or cut below what was verified before)\n",
               a->chain, (unsigned long long) a->seq);
    }
    return n;
}


/* For --json: [{chain, seq, hash}] of the anchors not found. */
void *
av_anchor_missing_json(const av_anchor *an)
{
    json_t *out = json_array();

    for (size_t i = 0; an != NULL && i < an->n; i++) {
        if (!an->a[i].found) {
            json_array_append_new(out, json_pack("{s:s,s:I,s:s}",
                "chain", an->a[i].chain, "seq", (json_int_t) an->a[i].seq,
                "hash", an->a[i].hash));
        }
    }
    return out;
}


void
av_anchor_free(av_anchor *an)
{
    if (an == NULL) {
        return;
    }
    for (size_t i = 0; i < an->n; i++) {
        free(an->a[i].chain);
    }
    free(an->a);
    free(an);
}
