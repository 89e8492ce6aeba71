/*
 * credit-audit proof (contract §7.3, docs/transparency.md): a request's
 * archived entries with their inclusion proofs against a signed
 * checkpoint, or the consistency proof of two checkpoints (RFC 9162
 * §2.1.3, §2.1.4).  Every proof is checked against the checkpoint's root
 * before it is printed: a log changed under its checkpoints is reported,
 * never handed out.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_mklog.h"

static const char usage_proof[] =
    "usage: credit-audit proof --archive CONNINFO --rid RID|-\n"
    "         [--checkpoint SIZE]\n"
    "       credit-audit proof --archive CONNINFO --consistency OLD NEW\n"
    "\n"
    "--rid: the request's archived entries, each with its inclusion proof\n"
    "against the latest signed checkpoint (or the one of tree size SIZE).\n"
    "--rid -: request ids from standard input, one a line, each answered\n"
    "on one line (JSON Lines) against the same checkpoint, over one\n"
    "connection: what a portal answering many enterprises runs.\n"
    "--consistency: the proof that checkpoint NEW extends checkpoint OLD;\n"
    "each is a tree size the archive has a checkpoint of, or a file\n"
    "holding a checkpoint (its root must be this archive's at its size).\n"
    "Prints JSON (docs/transparency.md).  Exit status: 0 proven, 1 not\n"
    "(an entry after the checkpoint, a checkpoint of another tree, a log\n"
    "that no longer matches its checkpoints), 2 usage or connection error.\n"
    "\n" COMMON_OPTS TOOL_ARCHIVE_HELP
    "  --rid RID                     the request (- : ids on stdin)\n"
    "  --checkpoint SIZE             prove against this checkpoint\n"
    "  --consistency                 OLD NEW: the consistency proof\n";

/* the gateway keeps a bank's X-Request-Id of 1-64 characters, else makes
 * one of 32 (contract §2) */
#define RID_MAX  64

enum { OPT_ARCHIVE = 300, OPT_RID, OPT_CKPT, OPT_CONSIST };

static int
parse_size(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    *v = strtoull(s, &end, 10);
    return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 ? 0
           : -1;
}

/* Inclusion proofs of n leaves against size, fetched in one query and
 * checked against root.  paths[i] gets the proof of ords[i] (np[i] < 0:
 * the entry is after the checkpoint).  0, 1 a proof does not hold, -1
 * failed. */
int
mk_prove_all(PGconn *pg, const uint64_t *ords, const unsigned char *leaves,
             size_t n, uint64_t size, const unsigned char root[32],
             ca_mk_hash (*paths)[CA_MK_PATH_MAX], int *np)
{
    mk_cache c = {pg, NULL, 0, 0, 0, 1};
    int      rc = 0;

    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < n; i++) {
            np[i] = ords[i] < size
                    ? ca_mk_inclusion(ords[i], size, mk_get, &c, paths[i])
                    : -1;
            if (ords[i] < size && np[i] < 0) {
                rc = -1;
                break;
            }
        }
        if (pass == 0 && rc == 0 && mk_fetch(&c) != 0) {
            rc = -1;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (np[i] >= 0
            && ca_mk_verify_inclusion(leaves + 32 * i, ords[i], size,
                                      paths[i], (size_t) np[i], root) != 0)
        {
            fprintf(stderr, "%s: archive: entry %llu does not prove against "
                    "the checkpoint of tree size %llu: the archive was "
                    "changed after it was signed\n", tool_name,
                    (unsigned long long) ords[i], (unsigned long long) size);
            rc = 1;
        }
    }
    mk_cache_free(&c);
    return rc;
}

/* One request's entries proven against ck; `sep` between entries ("\n"
 * for a document of its own, "" for a line of JSON Lines). */
static int
prove_rid(PGconn *pg, const char *rid, const mk_ckpt *ckp, const char *sep)
{
    const char  *p[1] = {rid};
    PGresult    *r;
    mk_ckpt      ck = *ckp;
    int          rc, n, proven = 0;
    uint64_t    *ords = NULL;
    unsigned char *leaves = NULL;
    ca_mk_hash  (*paths)[CA_MK_PATH_MAX] = NULL;
    int         *np = NULL;

    /* binary results: raw as it is (ord as text: its binary form is text) */
    /* ordered by the column, not by the text of the output column of
     * the same name (which puts 10 before 9) */
    r = PQexecParams(pg, "SELECT e.ord::text, e.raw FROM " ARCHIVE_SCHEMA
                     ".entries e WHERE e.rid = $1 ORDER BY e.ord", 1, NULL,
                     p, NULL, NULL, 1);
    if (pg_check(pg, r, "SELECT entries") != 0) {
        PQclear(r);
        return EXIT_USAGE;
    }
    n = PQntuples(r);
    if (n == 0) {
        fprintf(stderr, "%s: no archived entry of request %s\n", tool_name,
                rid);
        if (*sep == '\0') {
            /* a line for every line asked: the answers stay in step */
            printf("{\"rid\":");
            json_str(stdout, rid, strlen(rid));
            printf(",\"entries\":[],\"unproven\":0,\"error\":"
                   "\"no archived entry\"}\n");
        }
        PQclear(r);
        return EXIT_FINDING;
    }
    ords = calloc((size_t) n, sizeof(*ords));
    leaves = calloc((size_t) n, 32);
    paths = calloc((size_t) n, sizeof(*paths));
    np = calloc((size_t) n, sizeof(*np));
    rc = EXIT_USAGE;
    if (ords == NULL || leaves == NULL || paths == NULL || np == NULL) {
        goto done;
    }
    for (int i = 0; i < n; i++) {
        ords[i] = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        ca_mk_leaf(PQgetvalue(r, i, 1), (size_t) PQgetlength(r, i, 1),
                   leaves + 32 * i);
    }
    switch (mk_prove_all(pg, ords, leaves, (size_t) n, ck.size, ck.root,
                         paths, np)) {
    case 0:
        break;
    case 1:
        rc = EXIT_FINDING;
        goto done;
    default:
        goto done;
    }
    printf("{\"rid\":");
    json_str(stdout, rid, strlen(rid));
    printf(",\"log\":");
    mk_ckpt_json(stdout, &ck);
    printf(",\"entries\":[");
    for (int i = 0; i < n; i++) {
        if (i) {
            fputc(',', stdout);
        }
        fputs(sep, stdout);
        mk_entry_json(stdout, ords[i],
                      (const unsigned char *) PQgetvalue(r, i, 1),
                      (size_t) PQgetlength(r, i, 1), paths[i], np[i]);
        proven += np[i] >= 0;
    }
    printf("],\"unproven\":%d}\n", n - proven);
    if (proven < n) {
        fprintf(stderr, "%s: %d of the request's entries are after the "
                "checkpoint of tree size %llu: ask again after the next "
                "one\n", tool_name, n - proven,
                (unsigned long long) ck.size);
    }
    rc = proven < n ? EXIT_FINDING : 0;
done:
    free(ords);
    free(leaves);
    free(paths);
    free(np);
    PQclear(r);
    return rc;
}

/* Request ids from standard input, one a line: every one answered, the
 * worst exit status kept. */
static int
prove_rids(PGconn *pg, const mk_ckpt *ck)
{
    char    line[RID_MAX + 2];
    size_t  len;
    int     rc = 0, one, c;

    while (fgets(line, sizeof(line), stdin) != NULL) {
        len = strlen(line);
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        } else if (!feof(stdin)) {
            while ((c = getchar()) != EOF && c != '\n') {
                /* the rest of an over-long line */
            }
            fprintf(stderr, "%s: a request id on standard input is longer "
                    "than %d bytes\n", tool_name, RID_MAX);
            return EXIT_USAGE;
        }
        if (len > 0 && line[len - 1] == '\r') {
            line[--len] = '\0';
        }
        if (len == 0) {
            continue;
        }
        one = prove_rid(pg, line, ck, "");
        if (one == EXIT_USAGE) {
            return one;
        }
        rc = one > rc ? one : rc;
        fflush(stdout);
    }
    return rc;
}

static int
prove_request(PGconn *pg, const char *rid, uint64_t at)
{
    mk_ckpt  ck;
    int      rc;

    if ((rc = mk_ckpt_get(pg, at, &ck)) != 0) {
        if (rc > 0) {
            fprintf(stderr, "%s: the archive has no checkpoint%s yet: run "
                    "ship with --log-key\n", tool_name,
                    at ? " of that size" : "");
        }
        return EXIT_USAGE;
    }
    rc = strcmp(rid, "-") == 0 ? prove_rids(pg, &ck)
                               : prove_rid(pg, rid, &ck, "\n");
    mk_ckpt_free(&ck);
    return rc;
}

/* A checkpoint named by tree size or by a file: its size, root, note. */
static int
named_ckpt(PGconn *pg, const char *arg, mk_ckpt *c)
{
    uint64_t size;
    int      rc;

    if (parse_size(arg, &size) == 0) {
        if ((rc = mk_ckpt_get(pg, size, c)) == 1 || size == 0) {
            fprintf(stderr, "%s: the archive has no checkpoint of tree size "
                    "%s\n", tool_name, arg);
            return -1;
        }
        return rc;
    }
    return mk_ckpt_file(arg, c);
}

static int
prove_consistency(PGconn *pg, const char *a, const char *b)
{
    mk_ckpt        o, n;
    mk_cache       c = {pg, NULL, 0, 0, 0, 1};
    ca_mk_hash     proof[CA_MK_CONSIST_MAX];
    unsigned char  have[2][32];
    int            np = -1, rc = EXIT_USAGE;

    memset(&n, 0, sizeof(n));
    if (named_ckpt(pg, a, &o) != 0) {
        return EXIT_USAGE;
    }
    if (named_ckpt(pg, b, &n) != 0) {
        goto done;
    }
    if (o.size == 0 || o.size > n.size) {
        fprintf(stderr, "%s: OLD (tree size %llu) must be a non-empty tree "
                "no larger than NEW (%llu)\n", tool_name,
                (unsigned long long) o.size, (unsigned long long) n.size);
        goto done;
    }
    if ((uint64_t) mk_stored_leaves(pg) < n.size) {
        fprintf(stderr, "%s: the archive's log has fewer than %llu leaves: "
                "NEW is not a checkpoint of this archive\n", tool_name,
                (unsigned long long) n.size);
        rc = EXIT_FINDING;
        goto done;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (ca_mk_root(o.size, mk_get, &c, have[0]) != 0
            || ca_mk_root(n.size, mk_get, &c, have[1]) != 0
            || (np = ca_mk_consistency(o.size, n.size, mk_get, &c, proof))
               < 0
            || (pass == 0 && mk_fetch(&c) != 0))
        {
            goto done;
        }
    }
    /* a checkpoint of this size whose root is not the archive's is
     * another tree: a fork, or a changed archive */
    for (int i = 0; i < 2; i++) {
        const mk_ckpt *k = i ? &n : &o;

        if (memcmp(k->root, have[i], 32) != 0) {
            fprintf(stderr, "%s: %s (tree size %llu) has another root than "
                    "the archive's tree of that size: not a checkpoint of "
                    "this log (a fork), or the archive was changed\n",
                    tool_name, i ? b : a, (unsigned long long) k->size);
            rc = EXIT_FINDING;
            goto done;
        }
    }
    if (ca_mk_verify_consistency(o.size, n.size, o.root, n.root, proof,
                                 (size_t) np) != 0)
    {
        fprintf(stderr, "%s: the consistency proof does not hold: the "
                "archive's log is damaged\n", tool_name);
        rc = EXIT_FINDING;
        goto done;
    }
    printf("{\"old\":{\"tree_size\":%llu,\"root\":",
           (unsigned long long) o.size);
    mk_json_b64(stdout, o.root, 32);
    printf("},\"new\":{\"tree_size\":%llu,\"root\":",
           (unsigned long long) n.size);
    mk_json_b64(stdout, n.root, 32);
    printf(",\"checkpoint\":");
    json_str(stdout, n.note, strlen(n.note));
    printf("},\"proof\":");
    mk_json_hashes(stdout, proof, (size_t) np);
    printf("}\n");
    rc = 0;
done:
    mk_cache_free(&c);
    mk_ckpt_free(&o);
    mk_ckpt_free(&n);
    return rc;
}

int
cmd_proof(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"rid", required_argument, NULL, OPT_RID},
        {"checkpoint", required_argument, NULL, OPT_CKPT},
        {"consistency", no_argument, NULL, OPT_CONSIST},
        {NULL, 0, NULL, 0}
    };
    common_opts  co;
    const char  *archive = NULL, *rid = NULL;
    uint64_t     at = 0;
    int          ch, consistency = 0, rc;
    PGconn      *pg;

    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE: archive = optarg; break;
        case OPT_RID:     rid = optarg; break;
        case OPT_CONSIST: consistency = 1; break;
        case OPT_CKPT:
            if (parse_size(optarg, &at) != 0 || at == 0) {
                return usage_error(usage_proof, "bad --checkpoint %s (a "
                                   "tree size)", optarg);
            }
            break;
        case 'h':
            fputs(usage_proof, stdout);
            return 0;
        default:
            return usage_error(usage_proof, NULL, NULL);
        }
    }
    if (consistency == (rid != NULL)) {
        return usage_error(usage_proof, "%s", "proof needs --rid RID or "
                           "--consistency OLD NEW");
    }
    if (consistency ? argc - optind != 2
                    : args_done(usage_proof, argc, argv, NULL) != 0)
    {
        return consistency ? usage_error(usage_proof, "%s", "--consistency "
                                         "takes OLD and NEW") : EXIT_USAGE;
    }
    if (archive == NULL) {
        return usage_error(usage_proof, "%s", "proof needs --archive "
                           "CONNINFO");
    }
    if ((pg = mk_open_archive(archive, "credit-audit proof")) == NULL) {
        return EXIT_USAGE;
    }
    rc = consistency ? prove_consistency(pg, argv[optind], argv[optind + 1])
                     : prove_request(pg, rid, at);
    PQfinish(pg);
    return rc;
}
