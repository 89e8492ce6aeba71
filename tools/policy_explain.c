/*
 * credit-policy explain: what a bank would receive for a sample response
 * under a policy, and why (the rule met at every path, the refusal the
 * policy and the consent alone would give).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "policy/policy.h"
#include "policy_explain.h"
#include "policy_tool.h"
#include "core/core.h"
#include "jws/jws.h"

#define HASH_KEY_MAX 4096

static const char usage_explain[] =
    "usage: credit-policy explain --policy FILE --path PATH --response FILE\n"
    "                     [--claims FILE.json | --token JWT] [--purpose P]\n"
    "                     [--raw] [--check 'FIELD OP VALUE']...\n"
    "                     [--hash-key FILE] [--json]\n"
    "\n"
    "  --policy FILE     the policy file\n"
    "  --path PATH       request path, e.g. /api/v1/enterprises/<uscc>/tax\n"
    "  --response FILE   a sample upstream JSON response\n"
    "  --claims FILE     consent token claims as JSON\n"
    "  --token JWT       a compact consent token; its payload is decoded\n"
    "                    WITHOUT verifying the signature\n"
    "  --purpose P       the X-Credit-Purpose the bank would send\n"
    "  --raw             the bank asks X-Credit-Detail: raw\n"
    "  --check 'FIELD OP VALUE'\n"
    "                    a verification check (repeatable, at most 32):\n"
    "                    'annual[year=2023].tax_paid ge 100000'; VALUE is\n"
    "                    JSON when it reads as JSON (100, true, \"A\"),\n"
    "                    else the text as written.  explain then answers\n"
    "                    the verification (POST) instead of the query\n"
    "  --hash-key FILE   HMAC key for the hash treatment (the file's bytes)\n"
    "  --json            machine-readable output\n"
    "\n"
    "The claims go through the gateway's own claim checks (claims.c: the\n"
    "form of every claim, lifetime against the policy's max_lifetime, exp\n"
    "and nbf against now) before the policy's.\n"
    "Prints the refusal reason if the request would be refused on policy\n"
    "grounds; otherwise the disclosed document, the rule applied to every\n"
    "path met in the response, and the number of values withheld.\n"
    "With --check: the checks' results against the sample (match, no\n"
    "match, absent) or the gateway's refusal (a field not verifiable, an op\n"
    "not allowed, a selector on a member not disclosed as it is, the mode\n"
    "or the budget).\n"
    "Exits 0 when the request would be answered, 1 when refused.\n";

typedef struct {
    json_t *trace;          /* [{path, rule, ...}] */
    int     raw;
} trace_ctx;

static const char *
what_text(ca_trace_what what, const ca_field *f)
{
    switch (what) {
    case CA_TRACE_SENT:     return "sent";
    case CA_TRACE_DROPPED:  return "withheld: drop";
    case CA_TRACE_UNLISTED: return "withheld: not in allowlist";
    case CA_TRACE_UNFIT:
        return f ? "withheld: value cannot take the treatment"
                 : "withheld: not the object or array the allowlist expects";
    }
    return "?";
}

static void
on_trace(void *ctx, const char *path, const ca_field *f,
         const ca_treatment *t, ca_trace_what what)
{
    trace_ctx *tc = ctx;
    json_t    *e = json_pack("{s:s, s:s}", "path", path,
                             "rule", what_text(what, f));
    char       tr[64];

    if (e == NULL) {
        return;
    }
    if (f != NULL && t != NULL) {
        ca_treatment_format(t, tr, sizeof(tr));
        json_object_set_new(e, "field", json_string(f->path));
        json_object_set_new(e, "treatment", json_string(tr));
        json_object_set_new(e, "class", json_string(ca_class_name(f->cls)));
        json_object_set_new(e, "level", json_string(tc->raw ? "raw"
                                                            : "masked"));
    }
    json_array_append_new(tc->trace, e);
}

/* Decodes a compact JWS payload; the signature is not looked at. */
static json_t *
token_payload(const char *tok)
{
    const char    *d1 = strchr(tok, '.'), *d2;
    unsigned char *buf;
    long           n;
    json_t        *j;

    if (d1 == NULL || (d2 = strchr(d1 + 1, '.')) == NULL) {
        return NULL;
    }
    buf = malloc(3 * (size_t) (d2 - d1) / 4 + 4);
    if (buf == NULL) {
        return NULL;
    }
    n = ca_b64url_decode(d1 + 1, (size_t) (d2 - d1 - 1), buf);
    j = n < 0 ? NULL : json_loadb((char *) buf, (size_t) n,
                                  JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    return json_is_object(j) ? j : (json_decref(j), NULL);
}

static void
print_text(const explain_args *a, const ca_policy *p, const ca_category *c,
           json_t *out, json_t *trace, const ca_filter_report *rep,
           json_t *notes)
{
    size_t  i, width = 0;
    json_t *e, *n;

    explain_print_descriptions(p, c);
    json_array_foreach(notes, i, n) {
        printf("note: %s\n", json_string_value(n));
    }
    printf("allowed: category %s, purpose %s, level %s\n", c->name,
           a->purpose ? a->purpose : "(not given)", a->raw ? "raw" : "masked");
    printf("\ndisclosed document:\n");
    json_dumpf(out, stdout, JSON_INDENT(2));
    printf("\n\nrules:\n");
    json_array_foreach(trace, i, e) {
        size_t l = strlen(json_string_value(json_object_get(e, "path")));
        width = l > width ? l : width;
    }
    if (width > 40) {
        width = 40;
    }
    json_array_foreach(trace, i, e) {
        const char *rule = json_string_value(json_object_get(e, "rule"));
        json_t     *tr = json_object_get(e, "treatment");
        printf("  %-*s  ", (int) width,
               json_string_value(json_object_get(e, "path")));
        if (tr && strcmp(rule, "sent") == 0) {
            printf("%s (%s, %s level; field %s)\n", json_string_value(tr),
                   json_string_value(json_object_get(e, "class")),
                   json_string_value(json_object_get(e, "level")),
                   json_string_value(json_object_get(e, "field")));
        } else if (tr) {
            printf("%s (%s; %s, %s level; field %s)\n", rule,
                   json_string_value(tr),
                   json_string_value(json_object_get(e, "class")),
                   json_string_value(json_object_get(e, "level")),
                   json_string_value(json_object_get(e, "field")));
        } else {
            printf("%s\n", rule);
        }
    }
    printf("\nwithheld: %zu\n", rep->withheld);
}

/*
 * What a verification on this category may do (contract §2.1): the fields and
 * ops, the budget per field per consent, and which members may select an
 * element (those disclosed as they are at the masked level).
 */
static json_t *
verify_summary(const ca_category *c)
{
    json_t *fields = json_object(), *sel = json_array(), *ops;

    for (size_t i = 0; i < c->n_verify; i++) {
        ops = json_array();
        for (unsigned o = CA_OP_EQ; o <= CA_OP_LE; o <<= 1) {
            if (c->verify[i].ops & o) {
                json_array_append_new(ops, json_string(ca_op_name(o)));
            }
        }
        json_object_set_new(fields, c->verify[i].path, ops);
    }
    for (size_t i = 0; i < c->n_fields; i++) {
        if (strstr(c->fields[i].path, "[].") != NULL
            && c->fields[i].masked.kind == CA_TREAT_KEEP) {
            json_array_append_new(sel, json_string(c->fields[i].path));
        }
    }
    return json_pack("{s:o, s:I, s:o}", "fields", fields, "budget",
                     (json_int_t) c->verify_budget, "selectors", sel);
}

static void
print_verify(json_t *v)
{
    const char *k;
    json_t     *ops, *op;
    size_t      i;

    printf("\nverification (POST): %" JSON_INTEGER_FORMAT " checks per"
           " field per consent\n",
           json_integer_value(json_object_get(v, "budget")));
    json_object_foreach(json_object_get(v, "fields"), k, ops) {
        printf("  %s:", k);
        json_array_foreach(ops, i, op) {
            printf(" %s", json_string_value(op));
        }
        putchar('\n');
    }
    printf("  selectors [k=v] may use:");
    json_array_foreach(json_object_get(v, "selectors"), i, op) {
        printf(" %s", json_string_value(op));
    }
    printf("%s\n", json_array_size(json_object_get(v, "selectors"))
                    ? "" : " (none)");
}

static int
explain(const explain_args *a)
{
    ca_error           err = {{0}};
    ca_policy         *p;
    const ca_category *c = NULL;
    json_t            *claims = NULL, *resp = NULL, *out = NULL;
    json_t            *notes = json_array();
    char               uscc[19], detail[256];
    unsigned char     *key = NULL;
    size_t             key_len = 0, plen;
    ca_route_result    rr;
    ca_reason          r;
    ca_filter_report   rep = {0};
    trace_ctx          tc = {json_array(), a->raw};
    ca_filter_opts     opts;
    int                status = EXIT_USAGE;

    if ((p = ca_policy_load(a->policy, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        return EXIT_FINDING;
    }
    if (a->claims && (claims = ca_json_load_file(a->claims, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        goto done;
    }
    if (a->token) {
        if ((claims = token_payload(a->token)) == NULL) {
            fprintf(stderr, "credit-policy: --token: not a compact JWS with"
                    " a JSON payload\n");
            goto done;
        }
        json_array_append_new(notes, json_string("the token's signature was"
                              " NOT verified; only its payload was read"));
    }
    if (claims && !json_is_object(claims)) {
        fprintf(stderr, "credit-policy: claims must be a JSON object\n");
        goto done;
    }
    if (claims != NULL) {
        /* the gateway's claim checks, the same code: what it would
         * refuse as token_malformed must not read as allowed here */
        ca_claims cl;

        r = ca_claims_parse(claims, NULL, &p->token, &cl, detail,
                            sizeof(detail));
        if (r == CA_OK) {
            r = ca_claims_check_time(&cl, (int64_t) time(NULL),
                                     p->token.leeway, detail,
                                     sizeof(detail));
        }
        if (r != CA_OK) {
            status = explain_report_refusal(a, r, detail, notes);
            goto done;
        }
    }
    if ((resp = ca_json_load_file(a->response, &err)) == NULL) {
        fprintf(stderr, "%s\n", err.text);
        goto done;
    }
    if (a->hash_key) {
        key = (unsigned char *) ca_read_file(a->hash_key, HASH_KEY_MAX,
                                             &key_len, &err);
        if (key == NULL) {
            fprintf(stderr, "%s\n", err.text);
            goto done;
        }
    }
    if (a->purpose == NULL) {
        json_array_append_new(notes, json_string("no --purpose: purpose"
                              " rules not checked"));
    }
    if (claims == NULL) {
        json_array_append_new(notes, json_string("no claims: consent rules"
                              " not checked"));
    }

    plen = strcspn(a->path, "?");
    rr = ca_policy_match_route(p, a->path, plen, &c, uscc);
    if (rr == CA_ROUTE_NONE) {
        status = explain_report_refusal(a, CA_ROUTE_NOT_IN_POLICY, "no route"
                                        " template matches the path", notes);
        goto done;
    }
    if (rr == CA_ROUTE_BAD_USCC) {
        status = explain_report_refusal(a, CA_REQUEST_INVALID, "the path's"
                                        " {uscc} segment is not a valid USCC",
                                        notes);
        goto done;
    }
    if (a->n_checks > 0) {
        status = explain_verify(a, p, c, uscc, claims, resp, notes);
        goto done;
    }
    r = explain_policy_refusal(p, c, claims, uscc, a, 0, detail,
                               sizeof(detail));
    if (r != CA_OK) {
        status = explain_report_refusal(a, r, detail, notes);
        goto done;
    }

    memset(&opts, 0, sizeof(opts));
    opts.hash_key = key;
    opts.hash_key_len = key_len;
    opts.raw = a->raw;
    opts.trace = on_trace;
    opts.trace_ctx = &tc;
    if (ca_filter_report_init(&rep, c) != 0) {
        goto done;
    }
    out = ca_filter_apply(c, resp, &opts, &rep);
    if (out == NULL) {
        status = explain_report_refusal(a, CA_UPSTREAM_INVALID, "the response"
                                        " is not a JSON object, or nests"
                                        " deeper than the filter's limit",
                                        notes);
        goto done;
    }
    explain_note_whole_values(c, a->raw, resp, notes);
    if (a->json) {
        char  *dp = ca_filter_report_paths(&rep, c, 0);
        char  *mp = ca_filter_report_paths(&rep, c, 1);
        json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:O, s:O, s:s?,"
                              " s:s?, s:I, s:O, s:o}",
                              "decision", "allow", "category", c->name,
                              "enterprise", uscc, "purpose", a->purpose,
                              "level", a->raw ? "raw" : "masked",
                              "document", out, "rules", tc.trace,
                              "disclosed", dp, "masked", mp,
                              "withheld", (json_int_t) rep.withheld,
                              "notes", notes,
                              "verify", verify_summary(c));
        json_object_set_new(o, "policy_description",
                            p->description ? json_string(p->description)
                                           : json_null());
        json_object_set_new(o, "category_description",
                            c->description ? json_string(c->description)
                                           : json_null());
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
        free(dp);
        free(mp);
    } else {
        json_t *v = verify_summary(c);
        print_text(a, p, c, out, tc.trace, &rep, notes);
        print_verify(v);
        json_decref(v);
    }
    status = 0;

done:
    ca_filter_report_free(&rep);
    json_decref(out);
    json_decref(resp);
    json_decref(claims);
    json_decref(notes);
    json_decref(tc.trace);
    free(key);
    ca_policy_free(p);
    return status;
}

int
cmd_explain(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'u'},
        {"response", required_argument, NULL, 'r'},
        {"claims", required_argument, NULL, 'c'},
        {"token", required_argument, NULL, 't'},
        {"purpose", required_argument, NULL, 'P'},
        {"hash-key", required_argument, NULL, 'k'},
        {"raw", no_argument, NULL, 'R'},
        {"check", required_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    explain_args a = {0};
    int          ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'p': a.policy = optarg; break;
        case 'u': a.path = optarg; break;
        case 'r': a.response = optarg; break;
        case 'c': a.claims = optarg; break;
        case 't': a.token = optarg; break;
        case 'P': a.purpose = optarg; break;
        case 'k': a.hash_key = optarg; break;
        case 'R': a.raw = 1; break;
        case 'C':
            if (a.n_checks == CA_CHECKS_MAX) {
                fprintf(stderr, "credit-policy: at most %d --check (the"
                        " gateway's limit per request)\n", CA_CHECKS_MAX);
                return EXIT_USAGE;
            }
            a.checks[a.n_checks++] = optarg;
            break;
        case 'j': a.json = 1; break;
        case 'h':
            fputs(usage_explain, stdout);
            return 0;
        default:
            fputs(usage_explain, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc || !a.policy || !a.path || !a.response
        || (a.claims && a.token)) {
        fputs(usage_explain, stderr);
        return EXIT_USAGE;
    }
    return explain(&a);
}
