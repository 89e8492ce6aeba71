/*
 * The step verifier's chains in memory (auditstep_int.h): per chain the
 * state the archive keeps, the hashes of its last entries and last
 * checkpoints (what a v2 checkpoint lists is nearly always among them),
 * and what the open batch accepted (not yet in the archive the callbacks
 * read); an open-addressing table by name.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "auditstep_int.h"
#include "core/core.h"

int
ca_as_key_id(EVP_PKEY *key, unsigned char out[32])
{
    unsigned char *der = NULL;
    int            n = i2d_PUBKEY(key, &der);

    if (n <= 0) {
        return -1;
    }
    ca_sha256(der, (size_t) n, out);
    OPENSSL_free(der);
    return 0;
}

ca_as *
ca_as_new(EVP_PKEY *const *keys, size_t nkeys, const ca_as_io *io)
{
    ca_as *v;

    if (nkeys > AS_KEYS_MAX || (v = calloc(1, sizeof(*v))) == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < nkeys; i++) {
        v->keys[i] = keys[i];
        if (ca_as_key_id(keys[i], v->key_id[i]) != 0) {
            free(v);
            return NULL;
        }
    }
    v->nkeys = nkeys;
    v->io = *io;
    v->nslots = 256;
    if ((v->slots = calloc(v->nslots, sizeof(size_t))) == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

void
ca_as_free(ca_as *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        free(v->chains[i]->name);
        free(v->chains[i]->pend);
        free(v->chains[i]);
    }
    free(v->chains);
    free(v->slots);
    free(v->found);
    free(v);
}

/* ---- chains ------------------------------------------------------------ */

static int
grow_slots(ca_as *v)
{
    size_t  n = v->nslots * 2;
    size_t *s = calloc(n, sizeof(size_t));

    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < v->nchains; i++) {
        size_t j = ca_fnv1a(v->chains[i]->name, v->chains[i]->len) & (n - 1);

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

static int
key_index(const ca_as *v, const unsigned char id[32])
{
    for (size_t i = 0; i < v->nkeys; i++) {
        if (memcmp(v->key_id[i], id, 32) == 0) {
            return (int) i;
        }
    }
    return -1;
}

/* The chain of that name, from memory or the archive (a chain the
 * archive does not know starts empty); NULL on an error. */
as_chain *
as_chain_get(ca_as *v, const char *name, size_t len)
{
    size_t    j = ca_fnv1a(name, len) & (v->nslots - 1);
    as_chain *c;
    int       rc;

    while (v->slots[j]) {
        c = v->chains[v->slots[j] - 1];
        if (c->len == len && memcmp(c->name, name, len) == 0) {
            return c;
        }
        j = (j + 1) & (v->nslots - 1);
    }
    if (v->nchains == v->ccap) {
        size_t     ncap = v->ccap ? v->ccap * 2 : 64;
        as_chain **nc = realloc(v->chains, ncap * sizeof(*nc));

        if (nc == NULL) {
            return NULL;
        }
        v->chains = nc;
        v->ccap = ncap;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL
        || (c->name = malloc(len + 1)) == NULL)
    {
        free(c);
        return NULL;
    }
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->len = len;
    rc = v->io.load(v->io.data, name, len, &c->st);
    if (rc < 0) {
        free(c->name);
        free(c);
        return NULL;
    }
    if (rc > 0) {
        memset(&c->st, 0, sizeof(c->st));
    }
    c->key = c->st.has_key ? key_index(v, c->st.key_id) : -1;
    v->slots[j] = v->nchains + 1;
    v->chains[v->nchains++] = c;
    if (v->nchains * 2 > v->nslots && grow_slots(v) != 0) {
        return NULL;
    }
    return c;
}

void
as_remember(ca_as_mark *ring, size_t *n, size_t cap, const ca_as_mark *m)
{
    ring[*n % cap] = *m;
    (*n)++;
}

/* An entry that now holds its seq: findable before and after commit. */
int
as_accept(as_chain *c, const ca_as_mark *m)
{
    if (c->npend == c->pcap) {
        size_t      ncap = c->pcap ? c->pcap * 2 : 16;
        ca_as_mark *np = realloc(c->pend, ncap * sizeof(*np));

        if (np == NULL) {
            return -1;
        }
        c->pend = np;
        c->pcap = ncap;
    }
    c->pend[c->npend++] = *m;
    as_remember(c->recent, &c->nrecent, AS_RECENT, m);
    return 0;
}

/* The entry holding (c, seq): 0, 1 none, -1 error. */
int
as_find_mark(ca_as *v, const as_chain *c, uint64_t seq, ca_as_mark *m)
{
    if (seq == 0 || seq > c->st.last_seq) {
        return 1;
    }
    if (seq == c->st.last_seq) {
        m->seq = seq;
        m->ord = c->st.last_ord;
        memcpy(m->hash, c->st.last_hash, 32);
        return 0;
    }
    for (size_t i = 0; i < AS_RECENT && i < c->nrecent; i++) {
        if (c->recent[i].seq == seq) {
            *m = c->recent[i];
            return 0;
        }
    }
    for (size_t i = 0; i < AS_CKPTS && i < c->nckpt; i++) {
        if (c->ckpt[i].seq == seq) {
            *m = c->ckpt[i];
            return 0;
        }
    }
    for (size_t i = c->npend; i-- > 0; ) {
        if (c->pend[i].seq == seq) {
            *m = c->pend[i];
            return 0;
        }
    }
    return v->io.lookup(v->io.data, c->name, c->len, seq, m);
}

int
ca_as_touched(const ca_as *v, size_t *cursor, const char **name, size_t *len,
              const ca_as_state **st)
{
    while (*cursor < v->nchains) {
        const as_chain *c = v->chains[(*cursor)++];

        if (c->touched) {
            *name = c->name;
            *len = c->len;
            *st = &c->st;
            return 1;
        }
    }
    return 0;
}

void
ca_as_commit(ca_as *v)
{
    for (size_t i = 0; i < v->nchains; i++) {
        v->chains[i]->touched = 0;
        v->chains[i]->npend = 0;
    }
}
size_t
ca_as_nchains(const ca_as *v)
{
    return v->nchains;
}
