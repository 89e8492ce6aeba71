/* The work report's figures as one JSON object (see audit_report.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit_report.h"

const ca_audit_fid report_dims[NDIMS] = {
    CA_F_BANK, CA_F_CATEGORY, CA_F_PURPOSE, CA_F_DECISION, CA_F_REASON
};

/* ---- the model ------------------------------------------------------- */

/* One more of k (the report's tallies; their reading is below). */
void
count(strmap *m, const char *k, size_t len)
{
    map_find(m, k ? k : "", k ? len : 0, 1)->count++;
}

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

/* "<member>_name" beside a code, when a name is known */
static void
set_name(json_t *o, const char *member, const char *name)
{
    char k[64];

    if (name != NULL) {
        snprintf(k, sizeof(k), "%s_name", member);
        json_object_set_new(o, k, json_string(name));
    }
}

/* The names of the codes o holds: bank, category, purpose, reason. */
static void
add_names(json_t *o, const names *nm)
{
    static const struct {
        const char *member;
        int         kind;
    } codes[] = {{"bank", 0}, {"category", 1}, {"purpose", 2},
                 {"reason", 3}};
    const char *v, *name;
    size_t      len;

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if ((v = json_string_value(json_object_get(o, codes[i].member)))
            == NULL)
        {
            continue;
        }
        len = strlen(v);
        name = codes[i].kind == 0 ? bank_name(nm, v, len)
               : codes[i].kind == 1 ? category_name(nm, v, len)
               : codes[i].kind == 2 ? purpose_name(nm, v, len)
               : reason_name(v, len);
        set_name(o, codes[i].member, name);
    }
}

/* Every object of the array with its names. */
static json_t *
named(json_t *a, const names *nm)
{
    size_t  i;
    json_t *o;

    json_array_foreach(a, i, o) {
        add_names(o, nm);
    }
    return a;
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

/* A member name for any bytes: invalid UTF-8 and NUL become U+FFFD (names
 * that then look alike add up; the text form shows them apart). */
static json_t *
dim_object(const strmap *m)
{
    json_t    *o = json_object();
    map_slot **s = sorted_slots(m);

    for (size_t i = 0; i < m->n; i++) {
        char       *k = malloc(s[i]->len * 3 + 1);
        size_t      n = 0;
        json_t     *name;
        const char *kk;

        if (k == NULL) {
            continue;
        }
        for (size_t j = 0; j < s[i]->len; j++) {
            if (s[i]->key[j] == '\0') {
                memcpy(k + n, "\xef\xbf\xbd", 3);
                n += 3;
            } else {
                k[n++] = s[i]->key[j];
            }
        }
        name = jstr(k, n);
        kk = json_string_value(name);
        json_object_set_new(o, kk, json_integer(
            json_integer_value(json_object_get(o, kk))
            + (json_int_t) s[i]->count));
        json_decref(name);
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
            "{s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "category",
            jstr(s[i]->key, s[i]->len),
            "queries", (json_int_t) count_of(&rp->cat_query, k),
            "verifications", (json_int_t) count_of(&rp->cat_verify, k),
            "raw", (json_int_t) raw,
            "refused", (json_int_t) count_of(&rp->cat_deny, k),
            "reported", (json_int_t) count_of(&rp->cat_report, k),
            "checks", (json_int_t) count_of(&rp->cat_checks, k),
            "matched", (json_int_t) count_of(&rp->cat_matched, k),
            "unmatched", (json_int_t) count_of(&rp->cat_unmatched, k),
            "absent", (json_int_t) count_of(&rp->cat_absent, k)));
    }
    free(s);
    map_free(&all);
    return a;
}

static json_t *
purposes(const report_ctx *rp)
{
    json_t    *a = json_array();
    const strmap *m = &rp->by[2];       /* report_dims[2]: purpose */
    map_slot **s = named_slots(m);

    for (size_t i = 0; i < m->n; i++) {
        char k[256];

        snprintf(k, sizeof(k), "%.*s", (int) s[i]->len, s[i]->key);
        json_array_append_new(a, json_pack(
            "{s:o,s:I,s:I,s:I,s:I}", "purpose", jstr(s[i]->key, s[i]->len),
            "decisions", (json_int_t) s[i]->count,
            "allowed", (json_int_t) count_of(&rp->purpose_allow, k),
            "refused", (json_int_t) count_of(&rp->purpose_deny, k),
            "reported", (json_int_t) count_of(&rp->purpose_report, k)));
    }
    free(s);
    return a;
}

/* Decisions per reason (refusals, and what report-only mode would have
 * refused), most frequent first. */
static json_t *
reasons(const report_ctx *rp)
{
    json_t    *a = json_array();
    const strmap *m = &rp->by[4];       /* report_dims[4]: reason */
    map_slot **s = sorted_slots(m);

    for (size_t i = 0; i < m->n; i++) {
        if (s[i]->len > 0) {
            json_array_append_new(a, json_pack(
                "{s:o,s:I}", "reason", jstr(s[i]->key, s[i]->len),
                "count", (json_int_t) s[i]->count));
        }
    }
    free(s);
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
        /* "<version> <sha256>": the version may hold spaces, the
         * digest never does */
        const char        *sp = strrchr(p->policy, ' ');

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
                /* the stream id's time: when Redis took the entry */
                json_array_append_new(breaks, json_pack(
                    "{s:s,s:s,s:o,s:I,s:s}", "kind", ca_av_kind_name(f->kind),
                    "id", f->id, "time", iso(t), "seq", (json_int_t) f->seq,
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

json_t *
report_model(const common_opts *co, const report_ctx *rp, const names *nm,
             const av_run *v, const av_keys *ks, const report_meta *meta)
{
    json_t *m = json_object();
    size_t  nref, nraw;

    json_object_set_new(m, "issuer", meta->issuer ? json_string(meta->issuer)
                                                  : json_null());
    json_object_set_new(m, "generated", iso(meta->generated));
    json_object_set_new(m, "stream", jstr(co->stream, strlen(co->stream)));
    json_object_set_new(m, "since", iso(rp->per.set ? rp->per.since
                                                    : INT64_MIN));
    json_object_set_new(m, "until", iso(rp->per.set ? rp->per.until
                                                    : INT64_MAX));
    json_object_set_new(m, "tz", json_string(meta->tz));
    json_object_set_new(m, "first_decision", iso(rp->first_ts));
    json_object_set_new(m, "last_decision", iso(rp->last_ts));
    json_object_set_new(m, "decisions",
                        json_integer((json_int_t) rp->decisions));
    json_object_set_new(m, "outcomes",
                        json_integer((json_int_t) rp->outcomes));
    json_object_set_new(m, "enterprises_served",
                        json_integer((json_int_t) rp->served.n));
    for (size_t d = 0; d < NDIMS; d++) {
        json_object_set_new(m, ca_audit_schema[report_dims[d]].name,
                            dim_object(&rp->by[d]));
    }
    json_object_set_new(m, "banks_admitted", banks_admitted(nm->banks));
    json_object_set_new(m, "banks_served", named(banks_served(rp), nm));
    json_object_set_new(m, "categories", named(categories(rp), nm));
    json_object_set_new(m, "purposes", named(purposes(rp), nm));
    json_object_set_new(m, "reasons", named(reasons(rp), nm));
    json_object_set_new(m, "raw_disclosures",
                        named(pairs(&rp->raw, "bank", "category", &nraw),
                              nm));
    json_object_set_new(m, "raw_disclosures_total",
                        json_integer((json_int_t) nraw));
    json_object_set_new(m, "refusals",
                        named(pairs(&rp->refusals, "bank", "reason", &nref),
                              nm));
    json_object_set_new(m, "refusals_total", json_integer((json_int_t) nref));
    json_object_set_new(m, "checks", json_pack(
        "{s:I,s:I,s:I,s:I,s:I}", "asked", (json_int_t) rp->checks,
        "matched", (json_int_t) rp->matched,
        "unmatched", (json_int_t) rp->unmatched,
        "absent", (json_int_t) rp->absent,
        "unlisted", (json_int_t) rp->unlisted));
    json_object_set_new(m, "revocations", dim_object(&rp->revoked_by));
    json_object_set_new(m, "revocations_total",
                        json_integer((json_int_t) rp->revocations));
    json_object_set_new(m, "policies", policies(rp));
    json_object_set_new(m, "integrity", integrity(v, ks, &rp->per));
    return m;
}

