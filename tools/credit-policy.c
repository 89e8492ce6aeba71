/*
 * credit-policy: the security officer's tool (SPEC §9).
 *
 *   check FILE...      the same validation as nginx -t
 *   explain ...        what a request would be shown, and why
 *                      (policy_explain.c)
 *   diff OLD NEW       what a policy change discloses (policy_diff.c)
 *
 * Exit status: 0 success, 1 a finding (invalid policy, refused request),
 * 2 usage or unreadable input.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_tool.h"

static const char usage_main[] =
    "usage: credit-policy check FILE...\n"
    "       credit-policy explain --policy FILE --path PATH --response FILE\n"
    "                     [--claims FILE.json | --token JWT] [--purpose P]\n"
    "                     [--raw] [--hash-key FILE] [--json]\n"
    "       credit-policy diff OLD NEW [--json]\n"
    "\n"
    "  check     validate policy files (the same rules as nginx -t)\n"
    "  explain   show what a bank would receive for a sample response\n"
    "  diff      what changes between two policies: newly disclosed,\n"
    "            newly masked, newly withheld, per category\n"
    "\n"
    "Exit status: 0 success, 1 invalid policy or refused request (diff:\n"
    "a difference), 2 usage error or unreadable input.  'credit-policy CMD\n"
    "--help' for more; --version the version.\n";

static const char usage_diff[] =
    "usage: credit-policy diff OLD NEW [--json]\n"
    "\n"
    "Compares two policy files (both validated as by check).  Per category\n"
    "and level (masked, raw) each field is withheld (drop, not listed, or\n"
    "no such category or raw level), masked (mask, hash, bucket, year) or\n"
    "disclosed (keep).  Lists, per category, the fields newly disclosed\n"
    "(their level rose), newly masked (keep became a treatment), newly\n"
    "withheld (nothing is sent any more) and treatments changed, with the\n"
    "old and the new treatment; and purposes, routes and raw detail added\n"
    "or removed.  Exit status 0 when nothing changes, 1 when something\n"
    "does, 2 when a file cannot be loaded.\n";

static const char usage_check[] =
    "usage: credit-policy check FILE...\n"
    "\n"
    "Validates each policy file and prints one line per file:\n"
    "  FILE: ok (version V, sha256 H, N categories)\n"
    "or the error, naming the file, the JSON path and the reason.\n"
    "Exits 1 if any file is invalid.\n";

/* ---- check ------------------------------------------------------------ */

static int
cmd_check(int argc, char **argv)
{
    int status = 0;

    if (argc < 2) {
        fputs(usage_check, stderr);
        return EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_check, stdout);
            return 0;
        }
    }
    for (int i = 1; i < argc; i++) {
        ca_error   err = {{0}};
        ca_policy *p = ca_policy_load(argv[i], &err);
        if (p == NULL) {
            printf("%s\n", err.text);
            status = EXIT_FINDING;
            continue;
        }
        printf("%s: ok (version %s, sha256 %s, %zu categor%s)\n", argv[i],
               p->version, p->sha256, p->n_categories,
               p->n_categories == 1 ? "y" : "ies");
        ca_policy_free(p);
    }
    return status;
}

static int
cmd_diff(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int as_json = 0, ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j': as_json = 1; break;
        case 'h':
            fputs(usage_diff, stdout);
            return 0;
        default:
            fputs(usage_diff, stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr, "credit-policy: diff needs two files, OLD and NEW "
                "(got %d)\n\n", argc - optind);
        fputs(usage_diff, stderr);
        return EXIT_USAGE;
    }
    return policy_diff(argv[optind], argv[optind + 1], as_json);
}

const char *tool_name = "credit-policy";

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (tool_version(argc, argv)) {
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(argv[1], "check") == 0) {
        return cmd_check(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "explain") == 0) {
        return cmd_explain(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "diff") == 0) {
        return cmd_diff(argc - 1, argv + 1);
    }
    fprintf(stderr, "credit-policy: unknown command \"%s\"\n\n", argv[1]);
    fputs(usage_main, stderr);
    return EXIT_USAGE;
}
