/*
 * credit-audit report: the period's work report (工作通报, contract §9) from
 * the audit stream.  One pass over the stream counts the figures (and,
 * with keys, verifies the chains); the figures become one JSON model
 * (audit_model.c), which each format renders: text (the original table),
 * json, md, csv, html (audit_render.c).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit_archread.h"
#include "audit_report.h"
#include "audit_tool.h"
#include "audit_verify.h"
#include "json/json.h"

static const char usage_report[] =
    "usage: credit-audit report [--month YYYY-MM | --since T --until T]\n"
    "         [--format text|md|csv|json|html] [--out FILE] [--excel]\n"
    "         [--issuer NAME] [--banks FILE] [--policy FILE]\n"
    "         [--pubkey FILE ... | --keyring FILE] [common options]\n"
    "\n"
    "The period's work report (工作通报): banks admitted (from --banks, the\n"
    "gateway's banks file) and banks served, enterprises served, queries\n"
    "and verifications per category, raw-detail disclosures, refusals by\n"
    "bank and reason, the policy versions in force, and the integrity of\n"
    "the audit trail (every chain verified with --pubkey/--keyring; without\n"
    "keys the report says it was not checked).  Counts are of decision\n"
    "entries: an allow with mode query is a query, with mode verify a\n"
    "verification, with detail raw a raw-detail disclosure; a deny is a\n"
    "refusal; report is what report-only mode would have refused.  The\n"
    "checks of allowed verifications are counted per category, and their\n"
    "answers (matched, not matched, absent) from the outcomes; revocation\n"
    "entries (consents withdrawn) per who withdrew them.\n"
    "\n"
    "Formats: text (default: the counts per bank, category, purpose,\n"
    "decision and reason), json (--json: those and every figure above),\n"
    "md (Markdown, headings in Chinese and English), csv (section, item,\n"
    "detail, count), html (one self-contained file with inline SVG charts,\n"
    "no network).  Times are shown in --tz.\n"
    "\n"
    "Every format names the issuer (--issuer, the organisation handing the\n"
    "report in) and when the report was made, and labels banks (--banks),\n"
    "categories and purposes (--policy: their name_zh) and reasons (built\n"
    "in) in Chinese with the codes beside them.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS
    "  --issuer NAME                 the issuing organisation (one line)\n"
    "  --banks FILE                  the gateway's banks file: the banks\n"
    "                                admitted, and bank names\n"
    "  --policy FILE                 the policy: names of categories and\n"
    "                                purposes (name_zh, name)\n"
    "  --out FILE                    write there instead of stdout\n"
    "  --excel                       CSV with a UTF-8 byte order mark\n"
    ARCHIVE_READ_HELP
    "                                (with keys the whole trail is read and\n"
    "                                verified; without, only the period)\n";

/* ---- counting -------------------------------------------------------- */

static void
count2(strmap *m, const char *a, size_t alen, const char *b, size_t blen,
       size_t w)
{
    char key[512];
    int  n = snprintf(key, sizeof(key), "%.*s" SEP "%.*s",
                      (int) (a ? alen : 0), a ? a : "",
                      (int) (b ? blen : 0), b ? b : "");

    if (n > 0 && (size_t) n < sizeof(key)) {
        map_find(m, key, (size_t) n, 1)->count += w;
    }
}

static void
see_policy(report_ctx *rp, const char *v, size_t len, int64_t ts, size_t w)
{
    policy_seen *p = NULL;

    for (size_t i = 0; i < rp->npolicies; i++) {
        if (strlen(rp->policy[i].policy) == len
            && memcmp(rp->policy[i].policy, v, len) == 0)
        {
            p = &rp->policy[i];
            break;
        }
    }
    if (p == NULL) {
        if (rp->npolicies == POLICIES_MAX
            || (rp->policy[rp->npolicies].policy = strndup(v, len)) == NULL)
        {
            rp->policies_dropped += w;
            return;
        }
        p = &rp->policy[rp->npolicies++];
        p->first = p->last = ts;
    }
    p->decisions += w;
    if (ts >= 0 && (ts < p->first || p->first < 0)) {
        p->first = ts;
    }
    if (ts > p->last) {
        p->last = ts;
    }
}

/* n more of a category's figure */
static void
add(strmap *m, const char *k, size_t len, size_t n)
{
    map_find(m, k ? k : "", k ? len : 0, 1)->count += n;
}

/* A decimal count field of an outcome (0 when absent or not one). */
static size_t
count_field(const entry *e, ca_audit_fid id)
{
    size_t      len, n = 0;
    const char *v = get(e, id, &len);

    for (size_t i = 0; v != NULL && i < len && i < 9; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
        n = n * 10 + (size_t) (v[i] - '0');
    }
    return n;
}

/*
 * An allowed verification's checks: counted for its category, and its
 * rid remembered whatever the period (an outcome in the period may answer
 * a decision just before it).
 */
static void
see_verification(report_ctx *rp, const entry *e, int in)
{
    size_t      len, clen, rlen, k;
    const char *checks = get(e, CA_F_CHECKS, &len);
    const char *cat = get(e, CA_F_CATEGORY, &clen);
    const char *rid = get(e, CA_F_RID, &rlen);

    if (in) {
        if (checks == NULL) {
            rp->unlisted++;         /* written before schema v2 */
        } else {
            rp->checks += ca_audit_list_count(checks, len);
            add(&rp->cat_checks, cat, clen,
                ca_audit_list_count(checks, len));
        }
    }
    if (rid == NULL || cat == NULL) {
        return;
    }
    for (k = 0; k < rp->nvcat; k++) {
        if (strlen(rp->vcat[k]) == clen
            && memcmp(rp->vcat[k], cat, clen) == 0)
        {
            break;
        }
    }
    if (k == rp->nvcat) {
        if (k == VCATS_MAX || (rp->vcat[k] = strndup(cat, clen)) == NULL) {
            return;
        }
        rp->nvcat++;
    }
    map_find(&rp->verify_rid, rid, rlen, 1)->count = k + 1;
}

/* A verification's outcome: its answers, for its decision's category. */
static void
see_answers(report_ctx *rp, const entry *e)
{
    size_t           rlen, n[3];
    const char      *rid = get(e, CA_F_RID, &rlen), *cat;
    map_slot        *s;
    strmap          *m[3] = {&rp->cat_matched, &rp->cat_unmatched,
                             &rp->cat_absent};
    static const ca_audit_fid  f[3] = {CA_F_MATCHED, CA_F_UNMATCHED,
                                       CA_F_ABSENT};

    for (size_t i = 0; i < 3; i++) {
        n[i] = count_field(e, f[i]);
    }
    rp->matched += n[0];
    rp->unmatched += n[1];
    rp->absent += n[2];
    s = rid ? map_find(&rp->verify_rid, rid, rlen, 0) : NULL;
    if (s == NULL || s->count == 0 || s->count > rp->nvcat) {
        return;
    }
    cat = rp->vcat[s->count - 1];
    for (size_t i = 0; i < 3; i++) {
        add(m[i], cat, strlen(cat), n[i]);
    }
}

/* n entries alike (n > 1: a group the archive counted, trail_groups) */
static int
report_n(const entry *e, size_t n, void *data)
{
    report_ctx *rp = data;
    size_t      len, blen, clen, elen;
    const char *v, *bank, *cat, *ent;
    int         in = in_period(&rp->per, e);

    if (is_event(e, CA_EV_DECISION) && has_value(e, CA_F_MODE, "verify")
        && has_value(e, CA_F_DECISION, "allow"))
    {
        see_verification(rp, e, in);
    }
    if (!in) {
        return 0;
    }
    if (is_event(e, CA_EV_OUTCOME)) {
        rp->outcomes += n;
        if (get(e, CA_F_MATCHED, &len) != NULL) {
            see_answers(rp, e);
        }
        return 0;
    }
    if (is_event(e, CA_EV_REVOCATION)) {
        rp->revocations += n;
        v = get(e, CA_F_BY, &len);
        add(&rp->revoked_by, v, len, n);
        return 0;
    }
    if (!is_event(e, CA_EV_DECISION)) {
        return 0;
    }
    rp->decisions += n;
    if (entry_ts(e) >= 0) {
        if (rp->first_ts < 0 || entry_ts(e) < rp->first_ts) {
            rp->first_ts = entry_ts(e);
        }
        if (entry_ts(e) > rp->last_ts) {
            rp->last_ts = entry_ts(e);
        }
    }
    for (size_t d = 0; d < NDIMS; d++) {
        v = get(e, report_dims[d], &len);
        add(&rp->by[d], v, len, n);
    }
    bank = get(e, CA_F_BANK, &blen);
    cat = get(e, CA_F_CATEGORY, &clen);
    ent = get(e, CA_F_ENTERPRISE, &elen);
    v = get(e, CA_F_PURPOSE, &len);
    if (has_value(e, CA_F_DECISION, "allow")) {
        add(&rp->purpose_allow, v, len, n);
    } else if (has_value(e, CA_F_DECISION, "deny")) {
        add(&rp->purpose_deny, v, len, n);
    } else if (has_value(e, CA_F_DECISION, "report")) {
        add(&rp->purpose_report, v, len, n);
    }
    if ((v = get(e, CA_F_POLICY, &len)) != NULL) {
        see_policy(rp, v, len, entry_ts(e), n);
    }
    if (has_value(e, CA_F_DECISION, "allow")) {
        if (ent != NULL && elen > 0) {
            add(&rp->served, ent, elen, n);
            count2(&rp->bank_ent, bank, blen, ent, elen, n);
        }
        add(&rp->bank_allow, bank, blen, n);
        add(has_value(e, CA_F_MODE, "verify") ? &rp->cat_verify
                                             : &rp->cat_query, cat, clen, n);
        if (has_value(e, CA_F_DETAIL, "raw")) {
            count2(&rp->raw, bank, blen, cat, clen, n);
        }
    } else if (has_value(e, CA_F_DECISION, "deny")) {
        v = get(e, CA_F_REASON, &len);
        add(&rp->bank_deny, bank, blen, n);
        add(&rp->cat_deny, cat, clen, n);
        count2(&rp->refusals, bank, blen, v, len, n);
    } else if (has_value(e, CA_F_DECISION, "report")) {
        add(&rp->cat_report, cat, clen, n);
    }
    return 0;
}

static int
cb_report(const entry *e, void *data)
{
    return report_n(e, 1, data);
}

/* What report_n reads of an entry it counts without looking further: the
 * archive may count those in groups (trail_groups).  Alone: what
 * see_verification and see_answers join by rid. */
static const ca_audit_fid counted_by[] = {
    CA_F_EVENT, CA_F_BANK, CA_F_CATEGORY, CA_F_PURPOSE, CA_F_DECISION,
    CA_F_REASON, CA_F_POLICY, CA_F_ENTERPRISE, CA_F_MODE, CA_F_DETAIL,
    CA_F_BY
};
static const trail_groups counted = {
    counted_by, sizeof(counted_by) / sizeof(counted_by[0]),
    "'decision', 'outcome', 'revocation'",
    "(event = 'decision' AND mode = 'verify' AND decision = 'allow') OR "
    "(event = 'outcome' AND matched IS NOT NULL)",
    report_n
};

static void
report_free(report_ctx *rp)
{
    strmap *maps[] = {&rp->served, &rp->bank_allow, &rp->bank_deny,
                      &rp->bank_ent, &rp->cat_query, &rp->cat_verify,
                      &rp->cat_deny, &rp->cat_report, &rp->raw,
                      &rp->refusals, &rp->cat_checks, &rp->cat_matched,
                      &rp->cat_unmatched, &rp->cat_absent, &rp->verify_rid,
                      &rp->revoked_by, &rp->purpose_allow, &rp->purpose_deny,
                      &rp->purpose_report};

    for (size_t i = 0; i < rp->nvcat; i++) {
        free(rp->vcat[i]);
    }

    for (size_t d = 0; d < NDIMS; d++) {
        map_free(&rp->by[d]);
    }
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        map_free(maps[i]);
    }
    for (size_t i = 0; i < rp->npolicies; i++) {
        free(rp->policy[i].policy);
    }
}

/* --issuer: one line a document can print (a table cell, a heading). */
static int
bad_issuer(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 256) {
        return 1;
    }
    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq((const unsigned char *) s + i, len - i);

        if (n == 0 || (n == 1 && ((unsigned char) s[i] < 0x20
                                  || s[i] == 0x7f)))
        {
            return 1;
        }
        i += n;
    }
    return 0;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the command ----------------------------------------------------- */

int
cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"month", required_argument, NULL, OPT_MONTH},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"out", required_argument, NULL, OPT_OUT},
        {"issuer", required_argument, NULL, OPT_ISSUER},
        {"excel", no_argument, NULL, OPT_EXCEL},
        NAMES_LONGOPTS,
        ARCHIVE_READ_LONGOPT,
        {NULL, 0, NULL, 0}
    };
    static const char *const formats[] = {
        "text", "json", "md", "csv", "html", NULL
    };
    common_opts   co;
    report_ctx    rp;
    int           ch, rv, fmt = -1, excel = 0;
    size_t        count;
    const char   *outfile = NULL;
    names         nm = {0};
    report_meta   meta = {0};
    av_keys       ks = {0};
    av_run       *v = NULL;
    trail         t = {0};
    redisContext *rc;
    json_t       *m;
    FILE         *out = stdout;

    common_init(&co);
    memset(&rp, 0, sizeof(rp));
    rp.first_ts = rp.last_ts = -1;
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        switch (ch) {
        case OPT_SINCE:
        case OPT_UNTIL:
        case OPT_MONTH:
            period_opt(&rp.per, ch, optarg);
            break;
        case OPT_FORMAT:
            for (fmt = 0; formats[fmt] && strcmp(formats[fmt], optarg); fmt++)
            {
                /* look it up */
            }
            if (formats[fmt] == NULL) {
                return usage_error(usage_report, "bad --format %s (text, md, "
                                   "csv, json or html)", optarg);
            }
            break;
        case OPT_OUT:
            outfile = optarg;
            break;
        case OPT_ISSUER:
            if (bad_issuer(optarg)) {
                return short_usage_error("report", "bad --issuer: one line "
                                         "of 1 to 256 bytes of UTF-8 text, "
                                         "the organisation issuing the "
                                         "report");
            }
            meta.issuer = optarg;
            break;
        case OPT_EXCEL:
            excel = 1;
            break;
        case OPT_ARCHIVE_READ:
            t.conninfo = optarg;
            break;
        case 'h':
            fputs(usage_report, stdout);
            return 0;
        default:
            if (names_opt(&nm, ch, optarg)) {
                break;
            }
            return usage_error(usage_report, NULL, NULL);
        }
    }
    if (args_done(usage_report, argc, argv, &rp.per) != 0) {
        return EXIT_USAGE;
    }
    if (fmt < 0) {
        fmt = co.json ? 1 : 0;
    }
    if (excel && fmt != 3) {
        return short_usage_error("report", "--excel is for --format csv");
    }
    if (names_load(&nm) != 0) {
        names_free(&nm);
        return EXIT_USAGE;
    }
    if ((co.npubkeys > 0 || co.keyring != NULL)
        && (av_keys_load(&co, &ks) != 0 || (v = av_run_new(&ks)) == NULL))
    {
        names_free(&nm);
        av_keys_free(&ks);
        return EXIT_USAGE;
    }
    if ((rc = trail_open(&t, &co.redis)) == NULL) {
        rv = EXIT_USAGE;
        goto done;
    }
    if (v != NULL) {
        /* verification needs whole chains: the whole stream is read, the
         * period's entries counted on the way */
        av_run_hook(v, cb_report, &rp);
        rv = av_run_stream(v, &t, rc, co.stream, "-", &count);
    } else {
        /* the archive's partitions of the period only, counted there
         * where the report reads no more than a group's fields */
        t.per = &rp.per;
        t.groups = getenv("CREDIT_AUDIT_ROWS") ? NULL : &counted;
        rv = trail_scan(&t, rc, co.stream, cb_report, &rp, &count);
    }
    redisFree(rc);
    trail_close(&t);
    if (rv != 0) {
        goto done;
    }
    if (outfile != NULL && (out = fopen(outfile, "w")) == NULL) {
        perror(outfile);
        rv = EXIT_USAGE;
        goto done;
    }
    meta.tz = tool_tz_name();
    meta.generated = now_ms();
    if (fmt == 0) {
        report_text(out, &co, &rp, &nm, &meta);
    } else {
        m = report_model(&co, &rp, &nm, v, &ks, &meta);
        switch (fmt) {
        case 1:
            json_dumpf(m, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fputc('\n', out);
            break;
        case 2:
            render_md(out, m);
            break;
        case 3:
            render_csv(out, m, excel);
            break;
        default:
            render_html(out, m);
        }
        json_decref(m);
    }
    if (fflush(out) != 0 || ferror(out)
        || (out != stdout && fclose(out) != 0))
    {
        fprintf(stderr, "credit-audit: %s: write error\n",
                outfile ? outfile : "stdout");
        rv = EXIT_USAGE;
    }

done:
    report_free(&rp);
    av_run_free(v);
    av_keys_free(&ks);
    names_free(&nm);
    return rv;
}
