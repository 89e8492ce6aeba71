/*
 * Audit entries and their verification (lib/audit/audit.c, lib/verify/auditverify.c,
 * and the shipper's one entry at a time, lib/verify/auditstep.c).
 * Input: lines, one per stream entry, fields "name=value" separated by
 * tabs.  The first character of a line says what the writer does:
 *   '+'  seals the fields into the chain (lib/audit/audit.c) and stores it;
 *   '!'  stores a signed checkpoint over the chain's head;
 *   '='  stores the last sealed entry again (a retried XADD);
 *   '-'  seals an entry but loses it (a deleted entry);
 *   else stores the fields as they are (anyone who can XADD).
 * The verifier (what the regulator runs) classifies the stream.  A stream
 * the writer made alone ('+', '!', '=' with ordinary field names) must
 * verify intact; every sealed entry's hash is the digest of its fields.
 * The step verifier, fed the same entries with nothing archived before,
 * finds a break exactly when the batch verifier does, but for a chain id
 * that is not text (invalid UTF-8, a NUL), which it refuses outright: the
 * archive's columns could not hold it.
 */
#include "fuzz.h"
#include "audit/audit.h"
#include "audit/auditckpt.h"
#include "audit/auditschema.h"
#include "verify/auditstep.h"
#include "verify/auditverify.h"

#define LINES_MAX 512
#define CHAIN     "gw-fuzz/1/1700000000000"

static EVP_PKEY *key;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);

    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0
        || EVP_PKEY_keygen(ctx, &key) <= 0)
    {
        abort();
    }
    EVP_PKEY_CTX_free(ctx);
    return 0;
}

/* Names the writer adds itself: a line that sets them is not the
 * writer's own entry. */
static int
reserved(const char *name)
{
    static const char *const names[] = {"v", "event", "ts", "gw", "chain",
                                        "seq", "prev", "hash", "covers",
                                        "head", "sig", NULL};

    for (size_t i = 0; names[i]; i++) {
        if (strcmp(name, names[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Splits line (NUL-terminated, modified) into fields of e; 1 if a name is
 * reserved or holds a NUL. */
static int
fields(ca_entry *e, char *line, size_t len)
{
    char *p = line, *end = line + len;
    int   odd = 0;

    while (p < end) {
        char *tab = memchr(p, '\t', (size_t) (end - p));
        char *stop = tab ? tab : end, *eq;

        *stop = '\0';
        eq = memchr(p, '=', (size_t) (stop - p));
        if (eq != NULL) {
            *eq = '\0';
            odd |= reserved(p) || strlen(p) != (size_t) (eq - p);
            (void) ca_entry_add(e, p, eq + 1, (size_t) (stop - eq - 1));
        }
        p = stop + 1;
    }
    return odd;
}

/* Nothing is archived before the input: every chain starts empty. */
static int
none_load(void *data, const char *chain, size_t len, ca_as_state *st)
{
    return 1;
}

static int
none_lookup(void *data, const char *chain, size_t len, uint64_t seq,
            ca_as_mark *m)
{
    return 1;
}

static int odd_chain;

static void
store(ca_av *v, ca_as *step, size_t *step_breaks, const ca_entry *e,
      unsigned *id)
{
    char          sid[48];
    size_t        nl[CA_ENTRY_FIELDS], len;
    ca_as_verdict vd;
    const char   *chain = ca_entry_get(e, "chain", &len);

    for (size_t i = 0; i < e->n; i++) {
        nl[i] = strlen(e->name[i]);
    }
    if (chain != NULL && !ca_audit_column_fits(CA_F_CHAIN, chain, len)) {
        odd_chain = 1;
    }
    snprintf(sid, sizeof(sid), "1700000000000-%u", *id);
    FUZZ_CHECK(ca_av_add(v, sid, e->n, e->name, nl, e->value, e->len) == 0,
               "ca_av_add");
    FUZZ_CHECK(ca_as_add(step, sid, *id, e->n, e->name, nl, e->value,
                         e->len, &vd) == 0, "ca_as_add");
    *step_breaks += vd.nfindings;
    (*id)++;
}

/* Sealing appends the hash: the digest of every field before it. */
static void
check_sealed(const ca_entry *e)
{
    unsigned char h[32];
    char          hex[65];
    const char   *stored = e->value[e->n - 1];

    FUZZ_CHECK(strcmp(e->name[e->n - 1], "hash") == 0
               && e->len[e->n - 1] == 64, "sealed without a hash last");
    ca_entry_digest(e->name, e->value, e->len, e->n - 1, h);
    ca_hex(h, 32, hex);
    FUZZ_CHECK(memcmp(hex, stored, 64) == 0, "hash is not the digest");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char      *text = fuzz_strdup(data, size), *line = text, *nl;
    ca_av     *v = ca_av_new(key);
    ca_as_io   io = {none_load, none_lookup, NULL};
    ca_as     *step = ca_as_new(&key, 1, &io);
    size_t     step_breaks = 0;

    odd_chain = 0;
    ca_chain   ch;
    ca_entry  *ents = malloc(2 * sizeof(ca_entry)), *e, *last = NULL;
    unsigned   id = 0, n = 0;
    int        clean = 1, i = 0;
    size_t     len;

    FUZZ_CHECK(v != NULL && step != NULL && ents != NULL, "memory");
    ca_chain_init(&ch, CHAIN);
    for (; line != NULL && n < LINES_MAX; line = nl ? nl + 1 : NULL, n++) {
        nl = memchr(line, '\n', size - (size_t) (line - text));
        len = nl ? (size_t) (nl - line) : size - (size_t) (line - text);
        e = &ents[i];
        if (len > 0 && (line[0] == '+' || line[0] == '-')) {
            ca_entry_init(e, "decision", 1700000000000LL + n, "gw-fuzz");
            clean &= !fields(e, line + 1, len - 1);
            if (ca_chain_seal(&ch, e) != 0) {
                clean = 0;          /* too big: the writer would not */
                continue;
            }
            check_sealed(e);
            if (line[0] == '-') {
                clean = 0;
                continue;
            }
            store(v, step, &step_breaks, e, &id);
            last = e;
            i ^= 1;
        } else if (len > 0 && line[0] == '!') {
            FUZZ_CHECK(ca_checkpoint_build(&ch, e, 1700000000000LL + n,
                                           "gw-fuzz", key, NULL) == 0,
                       "checkpoint");
            check_sealed(e);
            store(v, step, &step_breaks, e, &id);
            last = e;
            i ^= 1;
        } else if (len > 0 && line[0] == '=') {
            if (last != NULL) {
                store(v, step, &step_breaks, last, &id);
            }
        } else {
            e->n = 0;
            e->used = 0;
            (void) fields(e, line, len);
            if (e->n <= CA_ENTRY_FIELDS) {
                store(v, step, &step_breaks, e, &id);
            }
            clean = 0;
        }
    }
    FUZZ_CHECK(ca_av_finish(v) == 0, "ca_av_finish");
    FUZZ_CHECK(ca_av_entries(v) <= id, "more entries than stored");
    if (clean && id > 0) {
        if (ca_av_breaks(v) != 0) {
            const ca_av_chain *c = ca_av_chain_at(v, 0);

            FUZZ_CHECK(0, "the writer's own chain does not verify: %s: %s",
                       ca_av_kind_name(c->findings[0].kind),
                       c->findings[0].detail);
        }
    }
    FUZZ_CHECK(odd_chain || (ca_av_breaks(v) == 0) == (step_breaks == 0),
               "the verifiers disagree: %zu breaks in the stream, %zu one "
               "entry at a time", ca_av_breaks(v), step_breaks);
    ca_av_free(v);
    ca_as_free(step);
    free(ents);
    free(text);
    return 0;
}
