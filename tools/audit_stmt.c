/*
 * credit-audit statement (contract §7.3, docs/transparency.md): every decision
 * of an enterprise's in a month, with its outcome, each entry with its
 * inclusion proof against one signed checkpoint; totals per bank, purpose
 * and decision; the whole summed up in a note signed with the log key.
 * JSON for the enterprise's own check (credit-consent statement verify),
 * HTML for a person (audit_stmthtml.c).
 *
 * Only the archive is read: a statement proves entries against a
 * checkpoint, and only archived entries are in the log.  Decisions after
 * the checkpoint are counted as pending and said, not shown unproven.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "audit_stmt.h"
#include "core/core.h"

static const char usage_statement[] =
    "usage: credit-audit statement --archive CONNINFO --enterprise USCC\n"
    "         --month YYYY-MM --log-key FILE [--log-name NAME]\n"
    "         [--format json|html] [--checkpoint SIZE] [--previous FILE]\n"
    "         [--banks FILE] [--policy FILE] [--tz ZONE]\n"
    "\n"
    "The enterprise's access statement (查询记录对账单) for the month (cut\n"
    "in --tz): every decision under its consents, with its outcome (time,\n"
    "bank, purpose, category, mode, detail, allowed or refused and why,\n"
    "field paths disclosed and masked), each entry with its inclusion\n"
    "proof against one signed checkpoint (the latest, or --checkpoint),\n"
    "totals per bank, purpose and decision, signed with the log key.\n"
    "--previous FILE adds the proof that the checkpoint extends the one\n"
    "in FILE (the one the enterprise kept from its last statement).  The\n"
    "enterprise checks the JSON with `credit-consent statement verify`.\n"
    "No field value and no personal identifier: what the audit holds.\n"
    "\n" COMMON_OPTS TOOL_ARCHIVE_HELP NAMES_HELP
    "  --enterprise USCC             the enterprise\n"
    "  --month YYYY-MM               the month, in --tz\n"
    "  --format json|html            JSON (default) or a page to read\n"
    "  --log-key FILE                the log's Ed25519 private key (PEM):\n"
    "                                signs the statement\n"
    "  --log-name NAME               its key name (default: the\n"
    "                                checkpoint's origin)\n"
    "  --checkpoint SIZE             prove against this checkpoint\n"
    "  --previous FILE               an older checkpoint (a note) to prove\n"
    "                                consistency with\n";

enum {
    OPT_ARCHIVE = 500, OPT_LOG_KEY, OPT_LOG_NAME, OPT_CKPT, OPT_PREVIOUS
};

/* ---- proofs and the signature ---------------------------------------------- */

static int
prove(statement *st, PGconn *pg)
{
    uint64_t      *ords = calloc(st->ne + 1, sizeof(*ords));
    unsigned char *leaves = calloc(st->ne + 1, 32);
    ca_mk_hash   (*paths)[CA_MK_PATH_MAX] = calloc(st->ne + 1,
                                                    sizeof(*paths));
    int           *np = calloc(st->ne + 1, sizeof(*np));
    int            rc = -1;

    if (ords != NULL && leaves != NULL && paths != NULL && np != NULL) {
        for (size_t i = 0; i < st->ne; i++) {
            ords[i] = st->e[i].ord;
            memcpy(leaves + 32 * i, st->e[i].leaf, 32);
        }
        rc = mk_prove_all(pg, ords, leaves, st->ne, st->ck.size,
                          st->ck.root, paths, np);
        for (size_t i = 0; rc == 0 && i < st->ne; i++) {
            st->e[i].np = np[i];
            memcpy(st->e[i].path, paths[i], sizeof(paths[i]));
        }
    }
    free(ords);
    free(leaves);
    free(paths);
    free(np);
    return rc;
}

static int
previous(statement *st, PGconn *pg, const char *file)
{
    mk_ckpt        pc;
    mk_cache       c = {pg, NULL, 0, 0, 0, 1};
    unsigned char  have[32];
    int            rc = -1;

    if (mk_ckpt_file(file, &pc) != 0) {
        return -1;
    }
    st->prev_size = pc.size;
    memcpy(st->prev_root, pc.root, 32);
    mk_ckpt_free(&pc);
    if (st->prev_size == 0 || st->prev_size > st->ck.size) {
        fprintf(stderr, "%s: --previous %s: not a checkpoint of a tree no "
                "larger than the statement's (%llu)\n", tool_name, file,
                (unsigned long long) st->ck.size);
        return -1;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (ca_mk_root(st->prev_size, mk_get, &c, have) != 0
            || (st->prev_np = ca_mk_consistency(st->prev_size, st->ck.size,
                                                mk_get, &c, st->prev_proof))
               < 0
            || (pass == 0 && mk_fetch(&c) != 0))
        {
            goto done;
        }
    }
    if (memcmp(have, st->prev_root, 32) != 0) {
        fprintf(stderr, "%s: --previous %s: its root is not the archive's "
                "at tree size %llu: a checkpoint of another log (a fork)\n",
                tool_name, file, (unsigned long long) st->prev_size);
        rc = 1;
        goto done;
    }
    st->has_prev = 1;
    rc = 0;
done:
    mk_cache_free(&c);
    return rc;
}

static int
sign(statement *st, const char *key_file, const char *name)
{
    ca_stmt_head   h;
    uint64_t      *ords = calloc(st->ne + 1, sizeof(*ords));
    unsigned char *leaves = calloc(st->ne + 1, 32);
    char           text[2048];
    size_t         tl;
    EVP_PKEY      *key = NULL;
    FILE          *f;
    int            rc = -1;

    if (ords == NULL || leaves == NULL) {
        goto done;
    }
    if ((f = fopen(key_file, "r")) != NULL) {
        key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        fprintf(stderr, "%s: --log-key %s: not an Ed25519 private key in "
                "PEM\n", tool_name, key_file);
        goto done;
    }
    for (size_t i = 0; i < st->ne; i++) {
        ords[i] = st->e[i].ord;
        memcpy(leaves + 32 * i, st->e[i].leaf, 32);
    }
    memset(&h, 0, sizeof(h));
    h.origin = st->ck.origin;
    h.enterprise = st->enterprise;
    h.month = st->month;
    h.tz = st->tz;
    h.since_ms = st->since_ms;
    h.until_ms = st->until_ms;
    h.size = st->ck.size;
    h.count = st->ne;
    memcpy(h.root, st->ck.root, 32);
    ca_stmt_digest(ords, leaves, st->ne, h.digest);
    tl = ca_stmt_text(&h, text, sizeof(text));
    if (tl == 0 || (st->signed_note = malloc(CA_NOTE_MAX)) == NULL
        || ca_note_sign(text, tl, name, key, st->signed_note, CA_NOTE_MAX)
           == 0)
    {
        fprintf(stderr, "%s: signing the statement failed\n", tool_name);
        goto done;
    }
    rc = 0;
done:
    EVP_PKEY_free(key);
    free(ords);
    free(leaves);
    return rc;
}

/* ---- the command ----------------------------------------------------------- */

static void
stmt_free(statement *st)
{
    for (size_t i = 0; i < st->ne; i++) {
        free(st->e[i].raw);
    }
    free(st->e);
    free(st->rq);
    free(st->rv);
    free(st->signed_note);
    mk_ckpt_free(&st->ck);
    names_free(&st->nm);
}

int
cmd_statement(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS, NAMES_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"enterprise", required_argument, NULL, OPT_ENTERPRISE},
        {"month", required_argument, NULL, OPT_MONTH},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"log-key", required_argument, NULL, OPT_LOG_KEY},
        {"log-name", required_argument, NULL, OPT_LOG_NAME},
        {"checkpoint", required_argument, NULL, OPT_CKPT},
        {"previous", required_argument, NULL, OPT_PREVIOUS},
        {NULL, 0, NULL, 0}
    };
    common_opts  co;
    statement    st;
    period       per;
    const char  *archive = NULL, *format = "json", *key = NULL;
    const char  *name = NULL, *prev = NULL;
    uint64_t     at = 0;
    int          ch, rc = EXIT_USAGE;
    char        *end;
    PGconn      *pg = NULL;
    time_t       now = time(NULL);

    memset(&st, 0, sizeof(st));
    memset(&per, 0, sizeof(per));
    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (names_opt(&st.nm, ch, optarg)) {
            continue;
        }
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE:    archive = optarg; break;
        case OPT_ENTERPRISE: st.enterprise = optarg; break;
        case OPT_FORMAT:     format = optarg; break;
        case OPT_LOG_KEY:    key = optarg; break;
        case OPT_LOG_NAME:   name = optarg; break;
        case OPT_PREVIOUS:   prev = optarg; break;
        case OPT_MONTH:
            st.month = optarg;
            period_opt(&per, ch, optarg);
            break;
        case OPT_CKPT:
            errno = 0;
            at = strtoull(optarg, &end, 10);
            if (errno || *end || at == 0 || optarg[0] < '0'
                || optarg[0] > '9')
            {
                return usage_error(usage_statement, "bad --checkpoint %s "
                                   "(a tree size)", optarg);
            }
            break;
        case 'h':
            fputs(usage_statement, stdout);
            return 0;
        default:
            return usage_error(usage_statement, NULL, NULL);
        }
    }
    if (args_done(usage_statement, argc, argv, &per) != 0) {
        return EXIT_USAGE;
    }
    if (archive == NULL || st.enterprise == NULL || st.month == NULL
        || key == NULL)
    {
        return usage_error(usage_statement, "%s", "statement needs "
                           "--archive, --enterprise, --month and --log-key");
    }
    if (strlen(st.month) != 7 || st.month[4] != '-'
        || strspn(st.month, "0123456789-") != 7)
    {
        return usage_error(usage_statement, "bad --month %s (YYYY-MM)",
                           st.month);
    }
    if (!ca_uscc_valid(st.enterprise, strlen(st.enterprise))) {
        return usage_error(usage_statement, "bad --enterprise %s (a USCC)",
                           st.enterprise);
    }
    if (strcmp(format, "json") != 0 && strcmp(format, "html") != 0) {
        return usage_error(usage_statement, "bad --format %s (json, html)",
                           format);
    }
    st.since_ms = per.since;
    st.until_ms = per.until;
    st.tz = tool_tz_name();
    strftime(st.made_at, sizeof(st.made_at), "%Y-%m-%dT%H:%M:%SZ",
             gmtime(&now));
    if (names_load(&st.nm) != 0
        || (pg = mk_open_archive(archive, "credit-audit statement")) == NULL)
    {
        goto done;
    }
    switch (mk_ckpt_get(pg, at, &st.ck)) {
    case 0:
        break;
    case 1:
        fprintf(stderr, "%s: the archive has no checkpoint%s: run ship with "
                "--log-key\n", tool_name, at ? " of that size" : " yet");
        /* fall through */
    default:
        goto done;
    }
    if (stmt_load(&st, pg) != 0) {
        goto done;
    }
    if ((rc = prove(&st, pg)) != 0
        || (prev != NULL && (rc = previous(&st, pg, prev)) != 0))
    {
        rc = rc > 0 ? EXIT_FINDING : EXIT_USAGE;
        goto done;
    }
    rc = EXIT_USAGE;
    if (sign(&st, key, name ? name : st.ck.origin) != 0) {
        goto done;
    }
    if (strcmp(format, "html") == 0) {
        stmt_html(stdout, &st);
    } else if (stmt_json(stdout, &st) != 0) {
        fprintf(stderr, "%s: out of memory\n", tool_name);
        goto done;
    }
    if (st.pending > 0) {
        fprintf(stderr, "%s: %zu decisions of the month are after the "
                "checkpoint of tree size %llu and not in this statement: "
                "make it again after the next checkpoint\n", tool_name,
                st.pending, (unsigned long long) st.ck.size);
    }
    rc = fflush(stdout) == 0 ? 0 : EXIT_USAGE;
done:
    stmt_free(&st);
    if (pg != NULL) {
        PQfinish(pg);
    }
    return rc;
}
