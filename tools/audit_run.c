/*
 * A verifying run over a stream (audit_verify.h): one verifier per key,
 * each fed every entry, a chain reported from the key that verifies most
 * of its checkpoints; with the resume state (audit_resume.c) and the
 * anchors (audit_anchor.c) it is given.  Used by verify, anchor, report
 * and archive; it calls none of them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_tool.h"
#include "audit_verify.h"
#include "verify/verify.h"

struct av_run_s {
    const av_keys *keys;
    ca_av         *av[AV_KEYS_MAX];
    size_t         read, total;
    int            progress;
    av_entry_hook  hook;
    void          *hook_data;
    av_resume     *resume;
    av_anchor     *anchor;
    char           last_id[48];
    /* the result */
    size_t         nchains;
    const ca_av_chain **chain;
    size_t        *key;         /* which key verified chain[i] */
    size_t         breaks;
};

av_run *
av_run_new(const av_keys *ks)
{
    av_run *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->keys = ks;
    for (size_t i = 0; i < ks->n; i++) {
        if ((r->av[i] = ca_av_new(ks->key[i])) == NULL) {
            av_run_free(r);
            return NULL;
        }
    }
    return r;
}

void
av_run_hook(av_run *r, av_entry_hook hook, void *data)
{
    r->hook = hook;
    r->hook_data = data;
}

int
av_run_add(av_run *r, const entry *e)
{
    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_add(r->av[i], e->id, e->n, e->name, e->nlen, e->value,
                      e->vlen) != 0)
        {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int
av_run_resume(av_run *r, av_resume *rs)
{
    r->resume = rs;
    for (size_t i = 0; rs != NULL && i < r->keys->n; i++) {
        if (av_resume_floors(rs, r->av[i]) != 0) {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static int
cb_verify(const entry *e, void *data)
{
    av_run *r = data;
    int     rc;

    snprintf(r->last_id, sizeof(r->last_id), "%s", e->id);
    if (r->resume != NULL) {
        rc = av_resume_filter(r->resume, e);
        if (rc != 0) {
            return rc < 0 ? EXIT_USAGE : 0;
        }
    }
    rc = av_run_add(r, e);
    if (rc == 0 && r->hook != NULL) {
        rc = r->hook(e, r->hook_data);
    }
    if (r->progress && ++r->read % PAGE == 0) {
        fprintf(stderr, "\rcredit-audit: %zu of %zu entries read", r->read,
                r->total);
    }
    return rc;
}

/* Per chain, the key's report that verified most checkpoints, then the
 * most findings: with as many signatures verified, a finding only one
 * key's verifier makes comes from a head that key's checkpoint listed
 * (the chain's own key may vouch for nothing of a chain cut before its
 * first checkpoint).  Lookups by chain name through a map. */
int
av_run_finish(av_run *r)
{
    strmap names;
    size_t n0 = 0;

    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_finish(r->av[i]) != 0) {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    /* a chain only a listed head names exists in the verifiers whose key
     * verified the listing: every key's chains, once each */
    for (size_t k = 0; k < r->keys->n; k++) {
        n0 += ca_av_nchains(r->av[k]);
    }
    r->chain = calloc(n0 ? n0 : 1, sizeof(*r->chain));
    r->key = calloc(n0 ? n0 : 1, sizeof(*r->key));
    if (r->chain == NULL || r->key == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    memset(&names, 0, sizeof(names));
    n0 = 0;
    for (size_t k = 0; k < r->keys->n; k++) {
        for (size_t i = 0; i < ca_av_nchains(r->av[k]); i++) {
            const ca_av_chain *c = ca_av_chain_at(r->av[k], i), *b;
            map_slot          *s = map_find(&names, c->chain,
                                            strlen(c->chain), 1);

            if (s->count == 0) {
                s->count = ++n0;        /* index + 1 */
                r->chain[n0 - 1] = c;
                r->key[n0 - 1] = k;
                continue;
            }
            b = r->chain[s->count - 1];
            if (c->checkpoints_verified > b->checkpoints_verified
                || (c->checkpoints_verified == b->checkpoints_verified
                    && c->nfindings > b->nfindings))
            {
                r->chain[s->count - 1] = c;
                r->key[s->count - 1] = k;
            }
        }
    }
    map_free(&names);
    r->nchains = n0;
    r->breaks = av_resume_breaks(r->resume);
    for (size_t i = 0; i < n0; i++) {
        r->breaks += av_run_chain_breaks(r, r->chain[i]);
    }
    return 0;
}

int
av_run_excused(const av_run *r, const ca_av_chain *c, const ca_av_finding *f)
{
    return av_resume_excused(r->resume, c->chain, f);
}

size_t
av_run_chain_breaks(const av_run *r, const ca_av_chain *c)
{
    size_t n = 0;

    for (size_t j = 0; j < c->nfindings; j++) {
        n += !av_run_excused(r, c, &c->findings[j]);
    }
    return n;
}

const char *
av_run_last_id(const av_run *r)
{
    return r->last_id;
}

int
av_run_stream(av_run *r, trail *t, redisContext *rc, const char *stream,
              const char *from, size_t *count)
{
    redisReply *x;
    int         rv;

    r->progress = isatty(STDERR_FILENO);
    if (r->progress) {
        x = redisCommand(rc, "XLEN %s", stream);
        r->total = x != NULL && x->type == REDIS_REPLY_INTEGER
                   ? (size_t) x->integer : 0;
        freeReplyObject(x);
    }
    rv = trail_scan_from(t, rc, stream, from, cb_verify, r, count);
    if (r->progress) {
        fprintf(stderr, "\rcredit-audit: %zu of %zu entries read\n", r->read,
                r->total);
    }
    return rv != 0 ? rv : av_run_finish(r);
}

size_t
av_run_nchains(const av_run *r)
{
    return r->nchains;
}

const ca_av_chain *const *
av_run_chains(const av_run *r)
{
    return r->chain;
}

const ca_av_chain *
av_run_chain(const av_run *r, size_t i, const char **keyname)
{
    if (keyname != NULL) {
        *keyname = r->keys->name[r->key[i]];
    }
    return r->chain[i];
}

size_t
av_run_breaks(const av_run *r)
{
    return r->breaks + av_anchor_missing(r->anchor, 1);
}

void
av_run_anchor(av_run *r, av_anchor *an)
{
    r->anchor = an;
    av_run_hook(r, av_anchor_see, an);
}

const av_anchor *
av_run_anchors(const av_run *r)
{
    return r->anchor;
}

/* Listed heads checked and missing, from the key that checked most. */
void
av_run_heads(const av_run *r, size_t *checked, size_t *missing)
{
    *checked = *missing = 0;
    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_heads_checked(r->av[i]) > *checked) {
            *checked = ca_av_heads_checked(r->av[i]);
            *missing = ca_av_heads_missing(r->av[i]);
        }
    }
}

size_t
av_run_entries(const av_run *r)
{
    return ca_av_entries(r->av[0]);
}

void
av_run_free(av_run *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < AV_KEYS_MAX; i++) {
        ca_av_free(r->av[i]);
    }
    free(r->chain);
    free(r->key);
    free(r);
}


/*
 * What verify and anchor both do: the keys of co (into ks: the caller
 * frees it with av_keys_free() after the run), Redis (and with t, the
 * archive: verify --archive), and a run over co->stream from `from` with
 * the resume state and anchors given (either NULL).  *out: the run (NULL
 * when none was made), for the caller to read and free.  0, or an exit
 * status after an error message.
 */
int
av_run_verify(common_opts *co, trail *t, av_keys *ks, av_resume *rs,
              av_anchor *an, const char *from, size_t *count, av_run **out)
{
    redisContext *rc;
    av_run       *v;
    int           rv;

    *out = NULL;
    if (av_keys_load(co, ks) != 0) {
        return EXIT_USAGE;
    }
    rc = t != NULL ? trail_open(t, &co->redis) : tool_redis_open(&co->redis);
    if (rc == NULL) {
        return EXIT_USAGE;
    }
    v = av_run_new(ks);
    if (v == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        rv = EXIT_USAGE;
    } else {
        if (an != NULL) {
            av_run_anchor(v, an);
        }
        rv = av_run_resume(v, rs);
        if (rv == 0) {
            rv = av_run_stream(v, t, rc, co->stream, from, count);
        }
    }
    redisFree(rc);
    if (t != NULL) {
        trail_close(t);
    }
    *out = v;
    return rv;
}
