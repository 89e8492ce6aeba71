/*
 * credit-audit report: the period's work report (工作通报, SPEC §9) from
 * the audit stream.  One pass over the stream counts the figures (and,
 * with keys, verifies the chains); the figures become one JSON model,
 * which each format renders: text (the original table), json, md, csv,
 * html (tools/audit_render.c).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit_report.h"
#include "audit_tool.h"
#include "audit_verify.h"
#include "banks.h"

static const char usage_report[] =
    "usage: credit-audit report [--month YYYY-MM | --since T --until T]\n"
    "         [--format text|md|csv|json|html] [--out FILE]\n"
    "         [--banks FILE] [--pubkey FILE ... | --keyring FILE]\n"
    "         [common options]\n"
    "\n"
    "The period's work report (工作通报): banks admitted (from --banks, the\n"
    "gateway's banks file) and banks served, enterprises served, queries\n"
    "and verifications per category, raw-detail disclosures, refusals by\n"
    "bank and reason, the policy versions in force, and the integrity of\n"
    "the audit trail (every chain verified with --pubkey/--keyring; without\n"
    "keys the report says it was not checked).  Counts are of decision\n"
    "entries: an allow with mode query is a query, with mode verify a\n"
    "verification, with detail raw a raw-detail disclosure; a deny is a\n"
    "refusal; report is what report-only mode would have refused.\n"
    "\n"
    "Formats: text (default: the counts per bank, category, purpose,\n"
    "decision and reason), json (--json: those and every figure above),\n"
    "md (Markdown, headings in Chinese and English), csv (section, item,\n"
    "detail, count), html (one self-contained file with inline SVG charts,\n"
    "no network).  Times are shown in --tz.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS
    "  --banks FILE                  the gateway's banks file (admitted)\n"
    "  --out FILE                    write there instead of stdout\n";

/* ---- counting -------------------------------------------------------- */

static const char *const dims[] = {
    "bank", "category", "purpose", "decision", "reason"
};
#define NDIMS (sizeof(dims) / sizeof(dims[0]))

#define POLICIES_MAX 64
#define SEP "\x1f"          /* joins two values into one map key */

typedef struct {
    char    *policy;
    size_t   decisions;
    int64_t  first, last;
} policy_seen;

typedef struct {
    period       per;
    size_t       decisions, outcomes;
    strmap       by[NDIMS];
    strmap       served;        /* distinct enterprises among allows */
    strmap       bank_allow, bank_deny, bank_ent;  /* bank / bank SEP ent */
    strmap       cat_query, cat_verify, cat_deny, cat_report;
    strmap       raw;           /* bank SEP category */
    strmap       refusals;      /* bank SEP reason */
    policy_seen  policy[POLICIES_MAX];
    size_t       npolicies, policies_dropped;
} report_ctx;

static void
count(strmap *m, const char *k, size_t len)
{
    map_find(m, k ? k : "", k ? len : 0, 1)->count++;
}

static void
count2(strmap *m, const char *a, size_t alen, const char *b, size_t blen)
{
    char key[512];
    int  n = snprintf(key, sizeof(key), "%.*s" SEP "%.*s",
                      (int) (a ? alen : 0), a ? a : "",
                      (int) (b ? blen : 0), b ? b : "");

    if (n > 0 && (size_t) n < sizeof(key)) {
        map_find(m, key, (size_t) n, 1)->count++;
    }
}

static void
see_policy(report_ctx *rp, const char *v, size_t len, int64_t ts)
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
            rp->policies_dropped++;
            return;
        }
        p = &rp->policy[rp->npolicies++];
        p->first = p->last = ts;
    }
    p->decisions++;
    if (ts >= 0 && (ts < p->first || p->first < 0)) {
        p->first = ts;
    }
    if (ts > p->last) {
        p->last = ts;
    }
}

static int
cb_report(const entry *e, void *data)
{
    report_ctx *rp = data;
    size_t      len, blen, clen, elen;
    const char *v, *bank, *cat, *ent;

    if (!in_period(&rp->per, e)) {
        return 0;
    }
    if (has_value(e, "event", "outcome")) {
        rp->outcomes++;
        return 0;
    }
    if (!has_value(e, "event", "decision")) {
        return 0;
    }
    rp->decisions++;
    for (size_t d = 0; d < NDIMS; d++) {
        v = get(e, dims[d], &len);
        count(&rp->by[d], v, len);
    }
    bank = get(e, "bank", &blen);
    cat = get(e, "category", &clen);
    ent = get(e, "enterprise", &elen);
    if ((v = get(e, "policy", &len)) != NULL) {
        see_policy(rp, v, len, entry_ts(e));
    }
    if (has_value(e, "decision", "allow")) {
        if (ent != NULL && elen > 0) {
            count(&rp->served, ent, elen);
            count2(&rp->bank_ent, bank, blen, ent, elen);
        }
        count(&rp->bank_allow, bank, blen);
        count(has_value(e, "mode", "verify") ? &rp->cat_verify
                                             : &rp->cat_query, cat, clen);
        if (has_value(e, "detail", "raw")) {
            count2(&rp->raw, bank, blen, cat, clen);
        }
    } else if (has_value(e, "decision", "deny")) {
        v = get(e, "reason", &len);
        count(&rp->bank_deny, bank, blen);
        count(&rp->cat_deny, cat, clen);
        count2(&rp->refusals, bank, blen, v, len);
    } else if (has_value(e, "decision", "report")) {
        count(&rp->cat_report, cat, clen);
    }
    return 0;
}

static void
report_free(report_ctx *rp)
{
    strmap *maps[] = {&rp->served, &rp->bank_allow, &rp->bank_deny,
                      &rp->bank_ent, &rp->cat_query, &rp->cat_verify,
                      &rp->cat_deny, &rp->cat_report, &rp->raw,
                      &rp->refusals};

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

/* ---- the model ------------------------------------------------------- */

static size_t
count_of(const strmap *m, const char *k)
{
    map_slot *s = map_find((strmap *) m, k, strlen(k), 0);

    return s ? s->count : 0;
}

static json_t *
iso(int64_t ms)
{
    char buf[48];

    if (ms == INT64_MIN || ms == INT64_MAX || ms < 0) {
        return json_null();
    }
    ca_time_format(ms, buf, sizeof(buf));
    return json_string(buf);
}

/* A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
static json_t *
jstr(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    char   *buf;
    size_t  blen;
    FILE   *m;

    if (v != NULL) {
        return v;
    }
    m = open_memstream(&buf, &blen);
    if (m == NULL) {
        return json_string("?");
    }
    json_str(m, s, len);
    fclose(m);
    v = json_loadb(buf, blen, JSON_DECODE_ANY, NULL);
    free(buf);
    return v ? v : json_string("?");
}

/* "a SEP b" -> the two halves */
static void
split2(const map_slot *s, json_t *o, const char *ka, const char *kb)
{
    const char *sep = memchr(s->key, SEP[0], s->len);
    size_t      alen = sep ? (size_t) (sep - s->key) : s->len;

    json_object_set_new(o, ka, jstr(s->key, alen));
    json_object_set_new(o, kb, sep ? jstr(sep + 1, s->len - alen - 1)
                                   : json_string(""));
}

static json_t *
dim_object(const strmap *m)
{
    json_t    *o = json_object();
    map_slot **s = sorted_slots(m);

    for (size_t i = 0; i < m->n; i++) {
        char *k = strndup(s[i]->key, s[i]->len);

        /* a key with a NUL byte cannot be a JSON member: shown escaped */
        if (k != NULL && strlen(k) == s[i]->len && json_stringn(k, s[i]->len)
            != NULL)
        {
            json_object_set_new(o, k, json_integer((json_int_t) s[i]->count));
        } else {
            json_object_set_new(o, "\xef\xbf\xbd",
                                json_integer((json_int_t) s[i]->count));
        }
        free(k);
    }
    free(s);
    return o;
}

static json_t *
banks_served(const report_ctx *rp)
{
    json_t    *a = json_array();
    strmap     all = {0};
    strmap     ents = {0};
    map_slot **s;

    /* enterprises per bank: the distinct pairs, counted per bank */
    for (size_t i = 0; i < rp->bank_ent.cap; i++) {
        const map_slot *p = &rp->bank_ent.slot[i];
        const char     *sep;

        if (p->key != NULL && (sep = memchr(p->key, SEP[0], p->len)) != NULL)
        {
            count(&ents, p->key, (size_t) (sep - p->key));
        }
    }
    for (size_t i = 0; i < rp->bank_allow.cap; i++) {
        if (rp->bank_allow.slot[i].key != NULL) {
            map_find(&all, rp->bank_allow.slot[i].key,
                     rp->bank_allow.slot[i].len, 1)->count +=
                rp->bank_allow.slot[i].count;
        }
    }
    s = named_slots(&all);
    for (size_t i = 0; i < all.n; i++) {
        json_t *o = json_object();
        char    k[CA_CODE_MAX * 4];

        snprintf(k, sizeof(k), "%.*s", (int) s[i]->len, s[i]->key);
        json_object_set_new(o, "bank", jstr(s[i]->key, s[i]->len));
        json_object_set_new(o, "allowed",
                            json_integer((json_int_t) s[i]->count));
        json_object_set_new(o, "refused", json_integer(
                                (json_int_t) count_of(&rp->bank_deny, k)));
        json_object_set_new(o, "enterprises", json_integer(
                                (json_int_t) count_of(&ents, k)));
        json_array_append_new(a, o);
    }
    free(s);
    map_free(&all);
    map_free(&ents);
    return a;
}

static json_t *
categories(const report_ctx *rp)
{
    json_t    *a = json_array();
    strmap     all = {0};
    map_slot **s;
    strmap    *parts[] = {(strmap *) &rp->cat_query, (strmap *) &rp->cat_verify,
                          (strmap *) &rp->cat_deny, (strmap *) &rp->cat_report};

    for (size_t p = 0; p < 4; p++) {
        for (size_t i = 0; i < parts[p]->cap; i++) {
            if (parts[p]->slot[i].key != NULL) {
                map_find(&all, parts[p]->slot[i].key, parts[p]->slot[i].len,
                         1);
            }
        }
    }
    s = named_slots(&all);
    for (size_t i = 0; i < all.n; i++) {
        char   k[256];
        size_t raw = 0;

        snprintf(k, sizeof(k), "%.*s", (int) s[i]->len, s[i]->key);
        for (size_t j = 0; j < rp->raw.cap; j++) {
            const map_slot *r = &rp->raw.slot[j];
            const char     *sep = r->key ? memchr(r->key, SEP[0], r->len)
                                         : NULL;

            if (sep != NULL && r->len - (size_t) (sep - r->key) - 1
                               == s[i]->len
                && memcmp(sep + 1, s[i]->key, s[i]->len) == 0)
            {
                raw += r->count;
            }
        }
        json_array_append_new(a, json_pack(
            "{s:o,s:I,s:I,s:I,s:I,s:I}", "category",
            jstr(s[i]->key, s[i]->len),
            "queries", (json_int_t) count_of(&rp->cat_query, k),
            "verifications", (json_int_t) count_of(&rp->cat_verify, k),
            "raw", (json_int_t) raw,
            "refused", (json_int_t) count_of(&rp->cat_deny, k),
            "reported", (json_int_t) count_of(&rp->cat_report, k)));
    }
    free(s);
    map_free(&all);
    return a;
}

static json_t *
pairs(const strmap *m, const char *ka, const char *kb, size_t *total)
{
    json_t    *a = json_array();
    map_slot **s = sorted_slots(m);

    *total = 0;
    for (size_t i = 0; i < m->n; i++) {
        json_t *o = json_object();

        split2(s[i], o, ka, kb);
        json_object_set_new(o, "count", json_integer((json_int_t) s[i]->count));
        json_array_append_new(a, o);
        *total += s[i]->count;
    }
    free(s);
    return a;
}

static json_t *
policies(const report_ctx *rp)
{
    json_t *a = json_array();

    for (size_t i = 0; i < rp->npolicies; i++) {
        const policy_seen *p = &rp->policy[i];
        const char        *sp = strchr(p->policy, ' ');

        json_array_append_new(a, json_pack(
            "{s:o,s:o,s:o,s:I,s:o,s:o}",
            "policy", jstr(p->policy, strlen(p->policy)),
            "version", jstr(p->policy, sp ? (size_t) (sp - p->policy)
                                          : strlen(p->policy)),
            "sha256", sp ? jstr(sp + 1, strlen(sp + 1)) : json_string(""),
            "decisions", (json_int_t) p->decisions,
            "first", iso(p->first), "last", iso(p->last)));
    }
    return a;
}

static json_t *
banks_admitted(const ca_banks *b)
{
    json_t *a;

    if (b == NULL) {
        return json_null();
    }
    a = json_array();
    for (size_t i = 0; i < b->n; i++) {
        json_array_append_new(a, json_pack(
            "{s:s,s:s,s:b}", "bank", b->banks[i].code,
            "name", b->banks[i].name ? b->banks[i].name : "",
            "suspended", b->banks[i].suspended));
    }
    return a;
}

/* The stream id's milliseconds (when Redis added the entry). */
static int64_t
id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

static json_t *
integrity(const av_run *v, const av_keys *ks, const period *per)
{
    json_t *o, *keys, *breaks;
    size_t  in_period_breaks = 0, tail = 0;

    if (v == NULL) {
        return json_pack("{s:b,s:s}", "checked", 0, "note",
                         "not checked: give --pubkey or --keyring");
    }
    keys = json_array();
    for (size_t i = 0; i < ks->n; i++) {
        json_array_append_new(keys, json_string(ks->name[i]));
    }
    breaks = json_array();
    for (size_t i = 0; i < av_run_nchains(v); i++) {
        const ca_av_chain *c = av_run_chain(v, i, NULL);

        tail += c->unsigned_tail;
        for (size_t j = 0; j < c->nfindings; j++) {
            const ca_av_finding *f = &c->findings[j];
            int64_t              t = id_ms(f->id);

            if (!per->set || (t >= per->since && t < per->until)) {
                in_period_breaks++;
            }
            if (json_array_size(breaks) < 100) {
                json_array_append_new(breaks, json_pack(
                    "{s:s,s:s,s:I,s:s}", "kind", ca_av_kind_name(f->kind),
                    "id", f->id, "seq", (json_int_t) f->seq,
                    "detail", f->detail));
            }
        }
    }
    o = json_pack("{s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:o,s:o}",
                  "checked", 1, "intact", av_run_breaks(v) == 0,
                  "chains", (json_int_t) av_run_nchains(v),
                  "entries", (json_int_t) av_run_entries(v),
                  "breaks", (json_int_t) av_run_breaks(v),
                  "breaks_in_period", (json_int_t) in_period_breaks,
                  "unsigned_tail", (json_int_t) tail,
                  "keys", keys, "first_breaks", breaks);
    return o;
}

static json_t *
model(const common_opts *co, const report_ctx *rp, const ca_banks *banks,
      const av_run *v, const av_keys *ks, const char *tz)
{
    json_t *m = json_object();
    size_t  nref, nraw;

    json_object_set_new(m, "stream", jstr(co->stream, strlen(co->stream)));
    json_object_set_new(m, "since", iso(rp->per.set ? rp->per.since
                                                    : INT64_MIN));
    json_object_set_new(m, "until", iso(rp->per.set ? rp->per.until
                                                    : INT64_MAX));
    json_object_set_new(m, "tz", json_string(tz));
    json_object_set_new(m, "decisions",
                        json_integer((json_int_t) rp->decisions));
    json_object_set_new(m, "outcomes",
                        json_integer((json_int_t) rp->outcomes));
    json_object_set_new(m, "enterprises_served",
                        json_integer((json_int_t) rp->served.n));
    for (size_t d = 0; d < NDIMS; d++) {
        json_object_set_new(m, dims[d], dim_object(&rp->by[d]));
    }
    json_object_set_new(m, "banks_admitted", banks_admitted(banks));
    json_object_set_new(m, "banks_served", banks_served(rp));
    json_object_set_new(m, "categories", categories(rp));
    json_object_set_new(m, "raw_disclosures", pairs(&rp->raw, "bank",
                                                    "category", &nraw));
    json_object_set_new(m, "raw_disclosures_total",
                        json_integer((json_int_t) nraw));
    json_object_set_new(m, "refusals", pairs(&rp->refusals, "bank", "reason",
                                             &nref));
    json_object_set_new(m, "refusals_total", json_integer((json_int_t) nref));
    json_object_set_new(m, "policies", policies(rp));
    json_object_set_new(m, "integrity", integrity(v, ks, &rp->per));
    return m;
}

/* ---- the original text form ------------------------------------------ */

static void
report_text(FILE *out, const common_opts *co, report_ctx *rp)
{
    char since[48] = "beginning", until[48] = "end";

    if (rp->per.set && rp->per.since != INT64_MIN) {
        ca_time_format(rp->per.since, since, sizeof(since));
    }
    if (rp->per.set && rp->per.until != INT64_MAX) {
        ca_time_format(rp->per.until, until, sizeof(until));
    }
    fprintf(out, "audit report for %s, %s to %s (until exclusive)\n", co->stream,
           since, until);
    fprintf(out, "  decisions                    %zu\n", rp->decisions);
    fprintf(out, "  outcomes                     %zu\n", rp->outcomes);
    fprintf(out, "  distinct enterprises served  %zu\n", rp->served.n);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        fprintf(out, "\n  %-28s %10s\n", dims[d], "decisions");
        for (size_t i = 0; i < rp->by[d].n; i++) {
            int w;

            fputs("  ", out);
            if (s[i]->len == 0) {
                fputs("(none)", out);
                w = 6;
            } else {
                text_value(out, s[i]->key, s[i]->len);
                w = (int) s[i]->len;
            }
            fprintf(out, "%*s %10zu\n", w < 28 ? 28 - w : 0, "", s[i]->count);
        }
        free(s);
    }
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
        {"banks", required_argument, NULL, OPT_BANKS},
        {"out", required_argument, NULL, OPT_OUT},
        {NULL, 0, NULL, 0}
    };
    static const char *const formats[] = {
        "text", "json", "md", "csv", "html", NULL
    };
    common_opts   co;
    report_ctx    rp;
    int           ch, rv, fmt = -1;
    size_t        count;
    const char   *banks_file = NULL, *outfile = NULL, *tz;
    ca_banks     *banks = NULL;
    ca_error      err;
    av_keys       ks = {0};
    av_run       *v = NULL;
    redisContext *rc;
    json_t       *m;
    FILE         *out = stdout;

    common_init(&co);
    memset(&rp, 0, sizeof(rp));
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
        case OPT_BANKS:
            banks_file = optarg;
            break;
        case OPT_OUT:
            outfile = optarg;
            break;
        case 'h':
            fputs(usage_report, stdout);
            return 0;
        default:
            return usage_error(usage_report, NULL, NULL);
        }
    }
    if (args_done(usage_report, argc, argv, &rp.per) != 0) {
        return EXIT_USAGE;
    }
    if (fmt < 0) {
        fmt = co.json ? 1 : 0;
    }
    if (banks_file != NULL && (banks = ca_banks_load(banks_file, &err))
                              == NULL)
    {
        fprintf(stderr, "credit-audit: --banks: %s\n", err.text);
        return EXIT_USAGE;
    }
    if ((co.npubkeys > 0 || co.keyring != NULL)
        && (av_keys_load(&co, &ks) != 0 || (v = av_run_new(&ks)) == NULL))
    {
        ca_banks_free(banks);
        av_keys_free(&ks);
        return EXIT_USAGE;
    }
    if ((rc = tool_redis_open(&co.redis)) == NULL) {
        rv = EXIT_USAGE;
        goto done;
    }
    if (v != NULL) {
        /* verification needs whole chains: the whole stream is read, the
         * period's entries counted on the way */
        av_run_hook(v, cb_report, &rp);
        rv = av_run_stream(v, rc, co.stream, &count);
    } else {
        rv = scan_stream(rc, co.stream, cb_report, &rp, &count);
    }
    redisFree(rc);
    if (rv != 0) {
        goto done;
    }
    if (outfile != NULL && (out = fopen(outfile, "w")) == NULL) {
        perror(outfile);
        rv = EXIT_USAGE;
        goto done;
    }
    tz = tool_tz_name();
    if (fmt == 0) {
        report_text(out, &co, &rp);
    } else {
        m = model(&co, &rp, banks, v, &ks, tz);
        switch (fmt) {
        case 1:
            json_dumpf(m, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fputc('\n', out);
            break;
        case 2:
            render_md(out, m);
            break;
        case 3:
            render_csv(out, m);
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
    ca_banks_free(banks);
    return rv;
}
