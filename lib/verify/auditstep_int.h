/*
 * Internal to the step verifier: auditstepchain.c keeps the chains in
 * memory (state, recent hashes, what the open batch accepted),
 * auditstep.c judges each entry.
 */
#ifndef CA_AUDITSTEP_INT_H
#define CA_AUDITSTEP_INT_H

#include "auditstep.h"

#define AS_RECENT   64          /* last entries' hashes per chain */
#define AS_CKPTS    8           /* last checkpoints' hashes per chain */
#define AS_KEYS_MAX 16

typedef struct {
    char           *name;
    size_t          len;
    ca_as_state     st;
    ca_as_mark      recent[AS_RECENT];
    size_t          nrecent;
    ca_as_mark      ckpt[AS_CKPTS];
    size_t          nckpt;
    ca_as_mark     *pend;       /* accepted since ca_as_commit(): not yet
                                   in the archive the callbacks read */
    size_t          npend, pcap;
    int             key;        /* index of st.key_id among the keys, -1 */
    unsigned        touched:1;
} as_chain;

struct ca_as_s {
    EVP_PKEY       *keys[AS_KEYS_MAX];
    unsigned char   key_id[AS_KEYS_MAX][32];
    size_t          nkeys;
    ca_as_io        io;
    as_chain      **chains;
    size_t          nchains, ccap;
    size_t         *slots;      /* open addressing: index + 1 */
    size_t          nslots;
    ca_as_finding  *found;
    size_t          nfound, fcap;
};

/* The chain of that name, from memory or the archive (a chain the
 * archive does not know starts empty); NULL on an error. */
as_chain *as_chain_get(ca_as *v, const char *name, size_t len);
/* The entry holding (c, seq): 0, 1 none, -1 error. */
int as_find_mark(ca_as *v, const as_chain *c, uint64_t seq, ca_as_mark *m);
/* An entry that now holds its seq: findable before and after commit. */
int as_accept(as_chain *c, const ca_as_mark *m);
void as_remember(ca_as_mark *ring, size_t *n, size_t cap,
                 const ca_as_mark *m);

#endif
