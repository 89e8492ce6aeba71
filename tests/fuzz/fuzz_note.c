/*
 * What `credit-consent statement verify` reads from a statement it does
 * not trust (lib/merkle/): signed notes, checkpoints, verifier keys,
 * entries' canonical bytes and proofs.  The first byte picks what the
 * rest is.  Properties: a note that opens has a text that ends in a
 * newline inside it; a checkpoint that parses, with a printable origin,
 * is written back (ca_ckpt_text) as exactly its first three lines; a
 * verifier key that parses is written back as exactly itself; a raw
 * entry's fields all lie inside it; a proof of any shape is judged
 * without reading past it.
 */
#include "fuzz.h"

#include <openssl/evp.h>

#include "merkle/merkle.h"
#include "merkle/note.h"
#include "merkle/stmtrow.h"

/* Go's note_test.go key (its public half) */
static const char vkey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

static void
note(const char *s, size_t len)
{
    char           name[CA_NOTE_NAME_MAX + 1], origin[CA_NOTE_NAME_MAX + 1];
    unsigned char  pub[32], root[32];
    size_t         tl = 0;
    uint64_t       size;
    int            rc;

    FUZZ_CHECK(ca_note_vkey_parse(vkey, name, sizeof(name), pub) == 0, "%s",
               "the vector key");
    rc = ca_note_open(s, len, name, pub, &tl);
    FUZZ_CHECK(rc == 0 || rc == CA_NOTE_MALFORMED || rc == CA_NOTE_UNSIGNED
               || rc == CA_NOTE_BAD_SIG, "code %d", rc);
    ca_note_signer(s, len, name, sizeof(name));
    if (rc == 0) {
        FUZZ_CHECK(tl > 0 && tl < len && s[tl - 1] == '\n', "text %zu", tl);
    }
    tl = memchr(s, '\0', len) ? 0 : len;
    if (tl > 0 && ca_ckpt_parse(s, tl, origin, sizeof(origin), &size, root)
       == 0)
    {
        char   back[CA_NOTE_MAX];
        size_t n = ca_ckpt_text(origin, size, root, back, sizeof(back));

        if (n > 0) {
            FUZZ_CHECK(n <= tl && memcmp(back, s, n) == 0, "%s",
                       "a checkpoint written back differs");
        }
    }
}

static void
vkey_parse(const char *s)
{
    char          name[CA_NOTE_NAME_MAX + 1], back[CA_NOTE_VKEY_MAX];
    unsigned char pub[32];

    if (ca_note_vkey_parse(s, name, sizeof(name), pub) == 0) {
        FUZZ_CHECK(ca_note_vkey(name, pub, back, sizeof(back)) == 0
                   && strcmp(back, s) == 0, "%s read, %s written", s, back);
    }
}

static void
raw(const unsigned char *p, size_t len)
{
    ca_span row[CA_SR_COUNT], f;
    long    n = ca_raw_count(p, len);

    if (ca_raw_field(p, len, "rid", &f) == 0) {
        FUZZ_CHECK(n >= 0 && (const unsigned char *) f.p >= p
                   && (const unsigned char *) f.p + f.len <= p + len, "%s",
                   "a field outside the entry");
    }
    if (ca_sr_row(p, len, p, len, row) == 0) {
        for (int i = 0; i < CA_SR_COUNT; i++) {
            FUZZ_CHECK(row[i].p == NULL || ((const unsigned char *) row[i].p
                       >= p && (const unsigned char *) row[i].p + row[i].len
                       <= p + len), "column %d outside", i);
        }
    }
    ca_sr_ts(p, len);
}

static void
proof(const unsigned char *p, size_t len)
{
    uint64_t      m, n;
    unsigned char leaf[32], root[32];

    if (len < 16 + 64) {
        return;
    }
    memcpy(&m, p, 8);
    memcpy(&n, p + 8, 8);
    memcpy(leaf, p + 16, 32);
    memcpy(root, p + 48, 32);
    p += 80;
    len -= 80;
    ca_mk_verify_inclusion(leaf, m, n, (const ca_mk_hash *) p, len / 32,
                           root);
    ca_mk_verify_consistency(m, n, leaf, root, (const ca_mk_hash *) p,
                             len / 32);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1) {
        return 0;
    }
    switch (data[0] & 3) {
    case 0:
        note((const char *) data + 1, size - 1);
        break;
    case 1:
        if ((s = strndup((const char *) data + 1, size - 1)) != NULL) {
            vkey_parse(s);
            free(s);
        }
        break;
    case 2:
        raw(data + 1, size - 1);
        break;
    default:
        proof(data + 1, size - 1);
    }
    return 0;
}
