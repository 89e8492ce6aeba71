/*
 * credit-policy check FILE...: the validation of nginx -t, and with
 * --strict the policy guide's rules that a loadable policy may still
 * break (lib/policy/policylint.c).  A deliberate exception is accepted by
 * name, RULE:CATEGORY:PATH, so that it is written down where the check
 * runs and any new one still fails.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_tool.h"

#define ACCEPT_MAX 256

static const char usage_check[] =
    "usage: credit-policy check [--strict] [--previous FILE]\n"
    "                           [--accept RULE:CATEGORY:PATH]... FILE...\n"
    "\n"
    "Validates each policy file and prints one line per file:\n"
    "  FILE: ok (version V, sha256 H, N categories)\n"
    "or the error, naming the file, the JSON path and the reason.\n"
    "\n"
    "  --strict          also warn on the policy guide's rules a valid\n"
    "                    policy may break (docs/policy-guide.md §6):\n"
    "                    FILE: JSONPATH: warning: WHY [RULE:CATEGORY:PATH]\n"
    "  --previous FILE   the policy FILE replaces: its version must differ\n"
    "                    (implies --strict)\n"
    "  --accept RULE:CATEGORY:PATH\n"
    "                    a deliberate exception, as the warning names it\n"
    "                    in brackets; repeatable (implies --strict)\n"
    "\n"
    "Exits 1 if any file is invalid or, under --strict, has a warning not\n"
    "accepted; 2 on usage errors or an unreadable --previous.\n";

typedef struct {
    const char *file;
    char      **accept;
    size_t      n_accept;
    int        *used;
    size_t      warnings, accepted;
} strict_ctx;

static void
on_warning(void *ctx, const ca_lint *w)
{
    strict_ctx *sc = ctx;
    char        key[1024];

    if (w->category != NULL) {
        snprintf(key, sizeof(key), "%s:%s:%s", w->rule, w->category,
                 w->path);
    } else {
        snprintf(key, sizeof(key), "%s", w->rule);
    }
    for (size_t i = 0; i < sc->n_accept; i++) {
        if (strcmp(sc->accept[i], key) == 0) {
            sc->used[i] = 1;
            sc->accepted++;
            return;
        }
    }
    sc->warnings++;
    printf("%s: %s: warning: %s [%s]\n", sc->file, w->jpath, w->text, key);
}

/* RULE:CATEGORY:PATH with a known rule; the version rule stands alone. */
static int
accept_ok(const char *s)
{
    size_t n = strcspn(s, ":");

    for (const char *const *r = ca_lint_rules; *r; r++) {
        if (strlen(*r) == n && strncmp(s, *r, n) == 0) {
            if (strcmp(*r, "version-unchanged") == 0) {
                return s[n] == '\0';
            }
            return s[n] == ':' && strchr(s + n + 1, ':') != NULL
                   && s[n + 1] != ':' && s[strlen(s) - 1] != ':';
        }
    }
    return 0;
}

int
cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"strict", no_argument, NULL, 's'},
        {"previous", required_argument, NULL, 'p'},
        {"accept", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char       *accept[ACCEPT_MAX];
    int         used[ACCEPT_MAX] = {0};
    size_t      n_accept = 0;
    const char *previous = NULL;
    ca_policy  *prev = NULL;
    int         strict = 0, status = 0, ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 's': strict = 1; break;
        case 'p': previous = optarg; strict = 1; break;
        case 'a':
            if (!accept_ok(optarg)) {
                fprintf(stderr, "credit-policy: --accept %s: not RULE:"
                        "CATEGORY:PATH with a known rule (see --help and"
                        " credit-policy(1))\n", optarg);
                return EXIT_USAGE;
            }
            if (n_accept == ACCEPT_MAX) {
                fprintf(stderr, "credit-policy: more than %d --accept\n",
                        ACCEPT_MAX);
                return EXIT_USAGE;
            }
            accept[n_accept++] = optarg;
            strict = 1;
            break;
        case 'h':
            fputs(usage_check, stdout);
            return 0;
        default:
            fputs(usage_check, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "credit-policy: check needs a policy file\n\n");
        fputs(usage_check, stderr);
        return EXIT_USAGE;
    }
    if (previous != NULL) {
        ca_error err = {{0}};
        if ((prev = ca_policy_load(previous, &err)) == NULL) {
            fprintf(stderr, "credit-policy: --previous: %s\n", err.text);
            return EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++) {
        ca_error   err = {{0}};
        ca_policy *p = ca_policy_load(argv[i], &err);
        strict_ctx sc = {argv[i], accept, n_accept, used, 0, 0};

        if (p == NULL) {
            printf("%s\n", err.text);
            status = EXIT_FINDING;
            continue;
        }
        printf("%s: ok (version %s, sha256 %s, %zu categor%s)\n", argv[i],
               p->version, p->sha256, p->n_categories,
               p->n_categories == 1 ? "y" : "ies");
        if (strict) {
            ca_policy_lint(p, prev, on_warning, &sc);
            if (sc.warnings > 0 || sc.accepted > 0) {
                printf("%s: %zu warning%s under --strict, %zu accepted\n",
                       argv[i], sc.warnings, sc.warnings == 1 ? "" : "s",
                       sc.accepted);
            }
            if (sc.warnings > 0) {
                status = EXIT_FINDING;
            }
        }
        ca_policy_free(p);
    }
    for (size_t i = 0; i < n_accept; i++) {
        if (!used[i]) {
            fprintf(stderr, "credit-policy: note: --accept %s matched no"
                    " warning\n", accept[i]);
        }
    }
    ca_policy_free(prev);
    return status;
}
