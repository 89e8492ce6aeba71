/*
 * credit-consent codes: the codes a consent is written with, and what they
 * mean — the banks (--aud) from the banks registry, the purposes and
 * categories from the policy, each with its Chinese and English names.
 * An enterprise cannot consent to a bank it cannot name.  The same lists
 * are what `sign` shows when a code is not known.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"

static const char usage_codes[] =
    "usage: credit-consent codes [--policy FILE] [--banks FILE] [--json]\n"
    "\n"
    "Lists the codes a consent token is written with: the banks of the\n"
    "banks registry (--aud: code, name, and whether suspended), and the\n"
    "purposes and categories of the policy (--purposes, --categories:\n"
    "code, Chinese name, English name when the policy gives them).  At\n"
    "least one of --policy and --banks.  The platform publishes both\n"
    "files; they are the gateway's own (credit_auth_policy,\n"
    "credit_auth_banks).\n";

static const char *
or_empty(const char *s)
{
    return s ? s : "";
}

/* The codes of one kind, as JSON: [{code, name_zh, name}] or, for a
 * bank, [{code, name, status}]. */
json_t *
codes_list(const ca_policy *p, const ca_banks *b, char kind)
{
    json_t *out = json_array();
    size_t  i;

    if (kind == 'b') {
        for (i = 0; b && i < b->n; i++) {
            json_array_append_new(out, json_pack(
                "{s:s,s:s,s:s}", "code", b->banks[i].code,
                "name", or_empty(b->banks[i].name),
                "status", b->banks[i].suspended ? "suspended" : "active"));
        }
        return out;
    }
    for (i = 0; p && i < (kind == 'p' ? p->n_purposes : p->n_categories);
         i++)
    {
        const char *code = kind == 'p' ? p->purposes[i]
                                       : p->categories[i].name;
        const char *zh = kind == 'p' ? ca_policy_purpose_name(p, code, 1)
                                     : ca_policy_category_name(p, code, 1);
        const char *en = kind == 'p' ? ca_policy_purpose_name(p, code, 0)
                                     : ca_policy_category_name(p, code, 0);

        json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "code", code,
                                             "name_zh", or_empty(zh),
                                             "name", or_empty(en)));
    }
    return out;
}

/* One line per code: "  code   中文名  English name". */
void
codes_print(FILE *f, json_t *list)
{
    size_t      i, width = 8;
    json_t     *e;
    const char *k, *a, *b;

    json_array_foreach(list, i, e) {
        k = json_string_value(json_object_get(e, "code"));
        width = strlen(k) > width ? strlen(k) : width;
    }
    json_array_foreach(list, i, e) {
        k = json_string_value(json_object_get(e, "code"));
        a = json_string_value(json_object_get(e, "name_zh"));
        b = json_string_value(json_object_get(e, "name"));
        if (a == NULL) {        /* a bank: its name, then its status */
            a = b;
            b = strcmp(json_string_value(json_object_get(e, "status")),
                       "active") ? "(suspended)" : "";
        }
        fprintf(f, "  %-*s  %s%s%s\n", (int) width, k, a,
                a[0] && b[0] ? "  " : "", b);
    }
}

/*
 * Every code of `given` (a JSON array of strings) among the known ones,
 * else an error naming the unknown one and listing the known: -1.
 */
int
codes_check(const ca_policy *p, const ca_banks *b, char kind,
            const char *file, json_t *given)
{
    static const char *const what[] = {"purpose", "category", "bank"};
    size_t      i, k;
    json_t     *known = codes_list(p, b, kind), *v, *e;
    const char *noun = what[kind == 'p' ? 0 : kind == 'c' ? 1 : 2];
    int         rc = 0;

    json_array_foreach(given, i, v) {
        int found = 0;

        json_array_foreach(known, k, e) {
            found |= json_equal(json_object_get(e, "code"), v);
        }
        if (!found) {
            fprintf(stderr, "credit-consent: %s %s is not in %s; the known "
                    "codes:\n", noun, json_string_value(v), file);
            codes_print(stderr, known);
            rc = -1;
            break;
        }
    }
    json_decref(known);
    return rc;
}

int
cmd_codes(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"banks", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *policy = NULL, *banks = NULL;
    int         as_json = 0, c, rc = EXIT_USAGE;
    ca_policy  *p = NULL;
    ca_banks   *b = NULL;
    ca_error    err;
    json_t     *doc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p': policy = optarg; break;
        case 'b': banks = optarg; break;
        case 'J': as_json = 1; break;
        case 'h': fputs(usage_codes, stdout); return 0;
        default: return usage_option(usage_codes, argv);
        }
    }
    if (optind != argc) {
        return usage_error(usage_codes, "codes: unexpected argument %s",
                           argv[optind]);
    }
    if (policy == NULL && banks == NULL) {
        return usage_error(usage_codes, "%s", "codes: give --policy FILE, "
                           "--banks FILE or both");
    }
    if (policy && (p = ca_policy_load(policy, &err)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
        goto done;
    }
    if (banks && (b = ca_banks_load(banks, &err)) == NULL) {
        fprintf(stderr, "credit-consent: %s\n", err.text);
        goto done;
    }

    doc = json_object();
    if (b) {
        json_object_set_new(doc, "banks", codes_list(p, b, 'b'));
    }
    if (p) {
        json_object_set_new(doc, "purposes", codes_list(p, b, 'p'));
        json_object_set_new(doc, "categories", codes_list(p, b, 'c'));
    }
    if (as_json) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    } else {
        if (b) {
            printf("banks (--aud), from %s:\n", banks);
            codes_print(stdout, json_object_get(doc, "banks"));
        }
        if (p) {
            printf("%spurposes (--purposes), from %s:\n", b ? "\n" : "",
                   policy);
            codes_print(stdout, json_object_get(doc, "purposes"));
            printf("\ncategories (--categories):\n");
            codes_print(stdout, json_object_get(doc, "categories"));
        }
    }
    json_decref(doc);
    rc = 0;

done:
    ca_policy_free(p);
    ca_banks_free(b);
    return rc;
}
