/*
 * credit-consent statement verify (contract §7.3, docs/enterprise.md): the
 * enterprise's own check of its access statement, on its own machine,
 * trusting only the log's public key:
 *
 *   the checkpoint is signed by the log key; every entry's bytes hash to
 *   its leaf and its inclusion proof holds against the checkpoint's root;
 *   every decision is this enterprise's, in the period; every request row
 *   and total says what its proven entries say (lib/merkle/stmtrow.h);
 *   the statement's signed summary covers exactly these entries; and with
 *   --previous, the checkpoint extends the one kept from last time (same
 *   size: the same root; else a consistency proof).
 *
 * Every failure is named on its own line; exit 0 when none, 1 otherwise.
 */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consent.h"
#include "consent_stmt.h"
#include "core/core.h"
#include "merkle/merkle.h"

static const char usage_statement[] =
    "usage: credit-consent statement verify FILE --log-key KEY\n"
    "         [--previous CHECKPOINT]\n"
    "\n"
    "Checks an access statement (the JSON of `credit-audit statement`)\n"
    "without trusting the platform: the checkpoint's signature by the log\n"
    "key, every entry's hash and inclusion proof, that every decision is\n"
    "the enterprise's and in the period, that the rows and totals say what\n"
    "the entries say, the statement's signature over its entries, and\n"
    "with --previous that the log only grew since the checkpoint kept from\n"
    "the last statement.  Prints each failure; exit 0 when all hold, 1\n"
    "when any fails, 2 on a usage error or an unreadable key.\n"
    "\n"
    "  --log-key KEY           the log's public key: its verifier key\n"
    "                          (NAME+HASH+KEY, as the platform publishes\n"
    "                          it), a file holding one, or a PEM public key\n"
    "  --previous CHECKPOINT   a checkpoint kept from before (a file)\n";



/* jansson's values of one statement come from an arena freed whole when
 * the check is done: tens of thousands of small values, each a malloc and
 * a free otherwise (a fifth of the check's time).  Only this command
 * sets it, before its only parse. */
typedef struct arena_block {
    struct arena_block *next;
    size_t              used, cap;
    max_align_t         data[];
} arena_block;

static arena_block *arena;

static void *
arena_alloc(size_t n)
{
    size_t       a = sizeof(max_align_t);
    arena_block *b = arena;

    n = (n + a - 1) / a * a;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > ((size_t) 1 << 20) ? n : (size_t) 1 << 20;

        if ((b = malloc(sizeof(*b) + cap)) == NULL) {
            return NULL;
        }
        b->next = arena;
        b->used = 0;
        b->cap = cap;
        arena = b;
    }
    b->used += n;
    return (char *) b->data + b->used - n;
}

static void
arena_free(void *p)
{
    (void) p;
}

static void
arena_release(void)
{
    while (arena != NULL) {
        arena_block *b = arena;

        arena = b->next;
        free(b);
    }
}

static int
verify(verifier *v, const char *file, const char *previous)
{
    json_error_t   je;
    ca_error       err;
    size_t         flen;
    /* read whole, then parsed: json_load_file reads a byte at a time */
    char          *text = ca_read_file(file, (size_t) 1 << 30, &flen, &err);
    json_t        *st = text ? json_loadb(text, flen, JSON_REJECT_DUPLICATES,
                                          &je) : NULL;
    json_t        *log = json_object_get(st, "log");
    const char    *note = str(log, "checkpoint"), *uscc;
    char           origin[CA_NOTE_NAME_MAX + 1];
    unsigned char  root[32], jroot[32];
    uint64_t       size = 0;
    size_t         tl, n = 0;
    v_entry       *e = NULL;
    ca_mk_hash    *nodes = NULL;
    json_t        *ver;
    char           vs[32];
    size_t         nn = 0;

    int            unread = text == NULL;

    free(text);
    if (st == NULL) {
        if (unread) {
            fprintf(stderr, "credit-consent: %s\n", err.text);
            return EXIT_USAGE;
        }
        fail(v, "%s: not JSON: %s (line %d)", file, je.text, je.line);
        return 1;
    }
    uscc = str(st, "enterprise");
    ver = json_object_get(st, "version");
    if (json_is_object(st) && str(st, "statement") != NULL
        && (!json_is_integer(ver)
            || json_integer_value(ver) != CA_STMT_VERSION))
    {
        /* another format's members mean other things: nothing of it is
         * checked, rather than checked wrongly */
        if (json_is_integer(ver)) {
            snprintf(vs, sizeof(vs), "%lld",
                     (long long) json_integer_value(ver));
        } else {
            snprintf(vs, sizeof(vs), "%s", ver == NULL ? "1 (none given)"
                     : "not a number");
        }
        fail(v, "%s: statement format version %s: this credit-consent "
             "reads version %d (use the credit-consent of the release "
             "that made it)", file, vs, CA_STMT_VERSION);
        json_decref(st);
        return 1;
    }
    if (!json_is_object(st) || uscc == NULL || str(st, "statement") == NULL
        || strcmp(str(st, "statement"), CA_STMT_TITLE) != 0)
    {
        fail(v, "%s: not an access statement (%s)", file, CA_STMT_TITLE);
        json_decref(st);
        return 1;
    }
    if (note == NULL) {
        fail(v, "the statement has no checkpoint");
        json_decref(st);
        return 1;
    }
    if (open_note(v, "the checkpoint", note, &tl) != 0) {
        json_decref(st);
        return 1;
    }
    if (ca_ckpt_parse(note, tl, origin, sizeof(origin), &size, root) != 0) {
        fail(v, "the checkpoint is not a tlog checkpoint");
        json_decref(st);
        return 1;
    }
    if (strcmp(origin, v->signer) != 0) {
        /* the key signs one log: a checkpoint of another origin is not
         * a head of this one (C2SP tlog-checkpoint) */
        fail(v, "the checkpoint is of log %s, not %s", origin, v->signer);
    }
    if (hash_of(json_object_get(log, "root"), jroot) != 0
        || memcmp(jroot, root, 32) != 0
        || (uint64_t) json_integer_value(json_object_get(log, "tree_size"))
           != size)
    {
        fail(v, "the statement's tree size or root is not its checkpoint's");
    }
    if ((nodes = read_nodes(v, st, &nn)) != NULL) {
        e = check_entries(v, st, nodes, nn, size, root, uscc, &n);
    }
    if (e != NULL) {
        check_requests(v, st, e, n);
        check_revocations(v, st, e, n);
        check_unused(v, e, n);
        check_signed(v, st, origin, size, root, e, n);
    }
    if (previous != NULL) {
        check_previous(v, st, previous, size, root);
    }
    if (v->failed == 0) {
        printf("OK: %zu requests of %s in %s, %zu entries proven against "
               "checkpoint %s at tree size %llu%s\n",
               json_array_size(json_object_get(st, "requests")), uscc,
               str(st, "month") ? str(st, "month") : "?", n, origin,
               (unsigned long long) size, previous
               ? ", consistent with the previous checkpoint" : "");
    }
    for (size_t i = 0; i < n; i++) {
        free(e[i].raw);
    }
    free(e);
    free(nodes);
    json_decref(st);
    return v->failed ? 1 : 0;
}

int
cmd_statement(int argc, char **argv)
{
    static const struct option opts[] = {
        {"log-key", required_argument, NULL, 'k'},
        {"previous", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}
    };
    const char *key = NULL, *previous = NULL, *file = NULL;
    verifier    v;
    int         ch;

    if (argc < 2 || strcmp(argv[1], "verify") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0
                          || strcmp(argv[1], "-h") == 0))
        {
            fputs(usage_statement, stdout);
            return 0;
        }
        fputs(usage_statement, stderr);
        return EXIT_USAGE;
    }
    argc--;
    argv++;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': key = optarg; break;
        case 'p': previous = optarg; break;
        case 'h':
            fputs(usage_statement, stdout);
            return 0;
        default:
            fprintf(stderr, "credit-consent: statement verify: bad option "
                    "(see --help)\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || key == NULL) {
        fprintf(stderr, "credit-consent: statement verify needs FILE and "
                "--log-key KEY (see --help)\n");
        return EXIT_USAGE;
    }
    file = argv[optind];
    memset(&v, 0, sizeof(v));
    if (read_key(&v, key) != 0) {
        return EXIT_USAGE;
    }
    json_set_alloc_funcs(arena_alloc, arena_free);
    ch = verify(&v, file, previous);
    arena_release();
    return ch;
}
