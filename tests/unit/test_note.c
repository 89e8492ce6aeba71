/* Signed notes and checkpoints (lib/merkle/note.h) against Go's own
 * vector (golang.org/x/mod/sumdb/note, note_test.go: the PeterNeumann key
 * and note): the same key hash, verifier key and signature bytes, then
 * everything a verifier must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "core/util.h"
#include "merkle/note.h"

static const char vkey[] =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char seed_b64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char text[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
static const char signed_note[] =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
    "\n"
    "\xe2\x80\x94 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuG"
    "UgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

static EVP_PKEY *
peter(void)
{
    unsigned char k[33];

    assert_int_equal(ca_b64std_decode(seed_b64, strlen(seed_b64), k), 33);
    assert_int_equal(k[0], 0x01);
    return EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k + 1, 32);
}

static void
test_go_vector(void **state)
{
    EVP_PKEY      *key = peter();
    unsigned char  pub[32], pub2[32];
    char           out[CA_NOTE_MAX], vk[CA_NOTE_VKEY_MAX], name[64];
    size_t         n, tlen;

    assert_non_null(key);
    assert_int_equal(ca_note_pubkey(key, pub), 0);
    assert_int_equal(ca_note_vkey("PeterNeumann", pub, vk, sizeof(vk)), 0);
    assert_string_equal(vk, vkey);
    assert_int_equal(ca_note_vkey_parse(vkey, name, sizeof(name), pub2), 0);
    assert_string_equal(name, "PeterNeumann");
    assert_memory_equal(pub, pub2, 32);
    n = ca_note_sign(text, strlen(text), "PeterNeumann", key, out,
                     sizeof(out));
    assert_int_equal(n, strlen(signed_note));
    assert_memory_equal(out, signed_note, n);
    assert_int_equal(ca_note_open(signed_note, strlen(signed_note),
                                  "PeterNeumann", pub, &tlen), 0);
    assert_int_equal(tlen, strlen(text));
    assert_int_equal(ca_note_signer(signed_note, strlen(signed_note), name,
                                    sizeof(name)), 0);
    assert_string_equal(name, "PeterNeumann");
    EVP_PKEY_free(key);
    (void) state;
}

static void
test_refusals(void **state)
{
    EVP_PKEY      *key = peter();
    unsigned char  pub[32], other[32];
    char           note[sizeof(signed_note)], name[64];
    size_t         tlen, len = strlen(signed_note);

    assert_int_equal(ca_note_pubkey(key, pub), 0);
    /* one byte of the text changed: the signature is wrong */
    memcpy(note, signed_note, sizeof(note));
    note[3] ^= 1;
    assert_int_equal(ca_note_open(note, len, "PeterNeumann", pub, &tlen),
                     CA_NOTE_BAD_SIG);
    /* the signature changed */
    memcpy(note, signed_note, sizeof(note));
    note[len - 10] = note[len - 10] == 'A' ? 'B' : 'A';
    assert_int_equal(ca_note_open(note, len, "PeterNeumann", pub, &tlen),
                     CA_NOTE_BAD_SIG);
    /* another key, or another name: not signed by it */
    memcpy(other, pub, 32);
    other[0] ^= 1;
    assert_int_equal(ca_note_open(signed_note, len, "PeterNeumann", other,
                                  &tlen), CA_NOTE_UNSIGNED);
    assert_int_equal(ca_note_open(signed_note, len, "Peter", pub, &tlen),
                     CA_NOTE_UNSIGNED);
    /* no blank line, no final newline, a NUL, a bad signature line */
    assert_int_equal(ca_note_open(text, strlen(text), "PeterNeumann", pub,
                                  &tlen), CA_NOTE_MALFORMED);
    assert_int_equal(ca_note_open(signed_note, len - 1, "PeterNeumann", pub,
                                  &tlen), CA_NOTE_MALFORMED);
    memcpy(note, signed_note, sizeof(note));
    note[5] = '\0';
    assert_int_equal(ca_note_open(note, len, "PeterNeumann", pub, &tlen),
                     CA_NOTE_MALFORMED);
    assert_int_equal(ca_note_open("a\n\n- PeterNeumann AAAA\n", 23,
                                  "PeterNeumann", pub, &tlen),
                     CA_NOTE_MALFORMED);
    /* verifier keys with a wrong hash, name or length */
    assert_int_equal(ca_note_vkey_parse(
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        name, sizeof(name), other), -1);
    assert_int_equal(ca_note_vkey_parse(
        "PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        name, sizeof(name), other), -1);
    assert_int_equal(ca_note_vkey_parse("PeterNeumann+c74f20a3+ARpc2Q",
                                        name, sizeof(name), other), -1);
    /* a name with a space or a '+' is not signed with */
    assert_int_equal(ca_note_sign(text, strlen(text), "Peter Neumann", key,
                                  note, sizeof(note)), 0);
    assert_int_equal(ca_note_sign("a\n\nb\n", 5, "Peter", key, note,
                                  sizeof(note)), 0);
    EVP_PKEY_free(key);
    (void) state;
}

static void
test_checkpoint(void **state)
{
    unsigned char root[32], back[32];
    char          t[256], origin[128];
    uint64_t      size;
    size_t        n;

    for (int i = 0; i < 32; i++) {
        root[i] = (unsigned char) (i * 7);
    }
    n = ca_ckpt_text("audit.example.cn/log", 1234, root, t, sizeof(t));
    assert_string_equal(t, "audit.example.cn/log\n1234\n"
                        "AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=\n");
    assert_int_equal(ca_ckpt_parse(t, n, origin, sizeof(origin), &size,
                                   back), 0);
    assert_string_equal(origin, "audit.example.cn/log");
    assert_int_equal(size, 1234);
    assert_memory_equal(root, back, 32);
    /* extension lines are allowed after the root */
    assert_int_equal(ca_ckpt_parse("o\n5\nAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK"
                                   "+2vcTL0tk=\nx\n", 53, origin,
                                   sizeof(origin), &size, back), 0);
    /* a leading zero, a sign, a short root, a missing line */
    assert_int_equal(ca_ckpt_parse("o\n05\nAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5q"
                                   "hqK+2vcTL0tk=\n", 50, origin,
                                   sizeof(origin), &size, back), -1);
    assert_int_equal(ca_ckpt_parse("o\n+5\nAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5q"
                                   "hqK+2vcTL0tk=\n", 50, origin,
                                   sizeof(origin), &size, back), -1);
    assert_int_equal(ca_ckpt_parse("o\n5\nAAcOFRwj\n", 13, origin,
                                   sizeof(origin), &size, back), -1);
    assert_int_equal(ca_ckpt_parse("o\n5\n", 4, origin, sizeof(origin),
                                   &size, back), -1);
    assert_int_equal(ca_ckpt_text("two\nlines", 1, root, t, sizeof(t)), 0);
    (void) state;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_go_vector),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_checkpoint),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
