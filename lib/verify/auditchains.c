/*
 * The verifier's chains, found by name as entries arrive, and the
 * findings reported against them: what every part of the verifier
 * (auditverify.c reading entries, auditclassify.c, auditheads.c) records
 * into, and so the lowest of them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditverify_int.h"
#include "core/core.h"

static int
rehash(ca_av *v)
{
    size_t  n = v->nslots * 2;
    size_t *s = calloc(n, sizeof(size_t));

    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        const char *name = v->chains[i]->pub.chain;
        size_t      j = ca_fnv1a(name, strlen(name)) & (n - 1);

        while (s[j]) {
            j = (j + 1) & (n - 1);
        }
        s[j] = i + 1;
    }
    free(v->slots);
    v->slots = s;
    v->nslots = n;
    return 0;
}

/* Chain names come from the stream and may hold any byte; a NUL would end
 * the name early, so such a name is a chain of its own that no gateway
 * writes ("" plus the NUL-free prefix is never ambiguous with a real id,
 * whose entries then fail their checks). */
av_chain *
ca_av_chain_get(ca_av *v, const char *name, size_t len, int create)
{
    size_t    j;
    av_chain *c;

    if (len != strnlen(name, len)) {
        len = strnlen(name, len);
    }
    j = ca_fnv1a(name, len) & (v->nslots - 1);
    while (v->slots[j]) {
        c = v->chains[v->slots[j] - 1];
        if (strlen(c->pub.chain) == len
            && memcmp(c->pub.chain, name, len) == 0)
        {
            return c;
        }
        j = (j + 1) & (v->nslots - 1);
    }
    if (!create) {
        return NULL;
    }

    if (v->nchains == v->ccap) {
        size_t     ncap = v->ccap ? v->ccap * 2 : 8;
        av_chain **nc = realloc(v->chains, ncap * sizeof(*nc));

        if (nc == NULL) {
            return NULL;
        }
        v->chains = nc;
        v->ccap = ncap;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->pub.chain = malloc(len + 1)) == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->pub.chain, name, len);
    c->pub.chain[len] = '\0';
    v->slots[j] = v->nchains + 1;
    v->chains[v->nchains++] = c;
    if (v->nchains * 2 > v->nslots && rehash(v) != 0) {
        return NULL;
    }
    return c;
}

int
ca_av_report(av_chain *c, ca_av_kind kind, const char *id, uint64_t seq,
              const char *fmt, ...)
{
    va_list        ap;
    ca_av_finding *f;

    if (c->pub.nfindings == c->fcap) {
        size_t         ncap = c->fcap ? c->fcap * 2 : 8;
        ca_av_finding *nf = realloc(c->pub.findings, ncap * sizeof(*nf));

        if (nf == NULL) {
            return -1;
        }
        c->pub.findings = nf;
        c->fcap = ncap;
    }
    f = &c->pub.findings[c->pub.nfindings++];
    f->kind = kind;
    snprintf(f->id, sizeof(f->id), "%s", id);
    f->seq = seq;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
    return 0;
}
