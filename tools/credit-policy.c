/*
 * credit-policy: the security officer's tool (contract §9).
 *
 *   check FILE...      the same validation as nginx -t, and with --strict
 *                      the policy guide's rules (policy_check.c)
 *   explain ...        what a request would be shown, and why
 *                      (policy_explain.c, policy_verify.c)
 *   diff OLD NEW       what a policy change widens or narrows
 *                      (policy_diff*.c)
 *
 * Exit status: 0 success, 1 a finding (invalid policy, --strict warning,
 * refused request, a widening), 2 usage or unreadable input.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_tool.h"

static const char usage_main[] =
    "usage: credit-policy check [--strict] [--previous FILE]\n"
    "                           [--accept RULE:CATEGORY:PATH]... FILE...\n"
    "       credit-policy explain --policy FILE --path PATH --response FILE\n"
    "                     [--claims FILE.json | --token JWT] [--purpose P]\n"
    "                     [--raw] [--check 'FIELD OP VALUE']...\n"
    "                     [--hash-key FILE] [--json]\n"
    "       credit-policy diff OLD NEW [--json]\n"
    "\n"
    "  check     validate policy files (the same rules as nginx -t; with\n"
    "            --strict also the policy guide's)\n"
    "  explain   show what a bank would receive for a sample response, or\n"
    "            what its verification checks would answer\n"
    "  diff      what changes between two policies, each change marked\n"
    "            wider or narrower: disclosure, verification, token rules\n"
    "\n"
    "Exit status: 0 success, 1 a finding (an invalid policy or a --strict\n"
    "warning, a refused request, a diff that widens), 2 usage error or\n"
    "unreadable input.  'credit-policy CMD --help' for more; --version the\n"
    "version.\n";

static const char usage_diff[] =
    "usage: credit-policy diff OLD NEW [--json]\n"
    "\n"
    "Compares two policy files (both validated as by check) and lists every\n"
    "change, marked wider (a bank can receive or learn more) or narrower:\n"
    "per category the fields newly disclosed, newly sent masked, newly\n"
    "masked, newly withheld and whose treatment changed (old and new\n"
    "treatment, as written); routes, purposes and raw detail; verify\n"
    "fields, their operators and the budget; and the token rules (algs,\n"
    "max_lifetime, leeway, require_cnf).  An added category shows its\n"
    "routes, purposes, raw setting and verify rules.\n"
    "\n"
    "Exit status: 0 when nothing widens (no change, or only narrowing\n"
    "changes and notes), 1 when anything widens, 2 when a file cannot be\n"
    "loaded.\n";

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
