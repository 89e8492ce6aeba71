/*
 * credit-audit statement as JSON (docs/transparency.md, "The statement"):
 * what `credit-consent statement verify` reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_stmt.h"

const char *
st_str(const ca_span *s, int slot)
{
    static char buf[4][1024];
    size_t      n;

    if (s->p == NULL) {
        return "";
    }
    n = s->len < sizeof(buf[0]) - 1 ? s->len : sizeof(buf[0]) - 1;
    memcpy(buf[slot & 3], s->p, n);
    buf[slot & 3][n] = '\0';
    return buf[slot & 3];
}

st_count *
st_counts(const statement *st, int col, size_t *n)
{
    st_count *c = calloc(st->nr + 1, sizeof(*c));

    *n = 0;
    for (size_t i = 0; c != NULL && i < st->nr; i++) {
        const char *v = st_str(&st->rq[i].row[col], 0);
        size_t      j;

        for (j = 0; j < *n && strcmp(c[j].code, v) != 0; j++) {
        }
        if (j == *n) {
            if ((c[j].code = strdup(v)) == NULL) {
                break;
            }
            (*n)++;
        }
        c[j].n++;
    }
    return c;
}

/* ---- JSON ------------------------------------------------------------------ */

static void
json_span(FILE *out, const ca_span *s)
{
    if (s->p == NULL) {
        fputs("null", out);
    } else {
        json_str(out, s->p, s->len);
    }
}

static void
json_name(FILE *out, const char *key, const char *name)
{
    fprintf(out, ",\"%s\":", key);
    if (name == NULL) {
        fputs("null", out);
    } else {
        json_str(out, name, strlen(name));
    }
}

static void
json_counts(FILE *out, const statement *st, const char *key, int col)
{
    size_t    n;
    st_count *c = st_counts(st, col, &n);

    fprintf(out, "\"%s\":{", key);
    for (size_t i = 0; c != NULL && i < n; i++) {
        fputs(i ? "," : "", out);
        json_str(out, c[i].code, strlen(c[i].code));
        fprintf(out, ":%zu", c[i].n);
        free(c[i].code);
    }
    fputc('}', out);
    free(c);
}

/* ---- the proofs: each distinct node once --------------------------------- */

/* The statement's proofs share their upper nodes (every proof of a leaf
 * under one subtree ends the same way): "nodes" lists each distinct hash
 * once, an entry's "proof" lists indexes into it. */
typedef struct {
    const unsigned char *h;     /* NULL: free */
    size_t               index;
} node_slot;

static size_t
node_hash_of(const unsigned char *h, size_t cap)
{
    uint64_t v;

    memcpy(&v, h, sizeof(v));       /* a SHA-256: already uniform */
    return (size_t) v & (cap - 1);
}

static int
json_proofs(FILE *out, const statement *st)
{
    size_t     total = 0, cap = 16, nn = 0;
    node_slot *t;
    size_t    *ref;
    char       b64[48];

    for (size_t i = 0; i < st->ne; i++) {
        total += st->e[i].np > 0 ? (size_t) st->e[i].np : 0;
    }
    while (cap < 2 * total) {
        cap *= 2;
    }
    t = calloc(cap, sizeof(*t));
    ref = calloc(total + 1, sizeof(*ref));
    if (t == NULL || ref == NULL) {
        free(t);
        free(ref);
        return -1;
    }
    fputs("\"nodes\":[", out);
    for (size_t i = 0, k = 0; i < st->ne; i++) {
        for (int j = 0; j < st->e[i].np; j++, k++) {
            const unsigned char *h = st->e[i].path[j];
            size_t               s = node_hash_of(h, cap);

            while (t[s].h != NULL && memcmp(t[s].h, h, 32) != 0) {
                s = (s + 1) & (cap - 1);
            }
            if (t[s].h == NULL) {
                t[s].h = h;
                t[s].index = nn++;
                ca_b64std_encode(h, 32, b64);
                fprintf(out, "%s\"%s\"", t[s].index ? "," : "", b64);
            }
            ref[k] = t[s].index;
        }
    }
    fputs("],\n\"entries\":[", out);
    for (size_t i = 0, k = 0; i < st->ne; i++) {
        const st_entry *e = &st->e[i];

        fprintf(out, "%s{\"ord\":%llu,\"leaf\":", i ? ",\n" : "\n",
                (unsigned long long) e->ord);
        mk_json_b64(out, e->leaf, 32);
        fputs(",\"raw\":", out);
        mk_json_b64(out, e->raw, e->len);
        if (e->np < 0) {
            fputs(",\"proof\":null}", out);
            continue;
        }
        fputs(",\"proof\":[", out);
        for (int j = 0; j < e->np; j++, k++) {
            fprintf(out, "%s%zu", j ? "," : "", ref[k]);
        }
        fputs("]}", out);
    }
    fputs("]", out);
    free(t);
    free(ref);
    return 0;
}

int
stmt_json(FILE *out, const statement *st)
{
    fprintf(out, "{\"statement\":\"%s\",\"version\":%d,\"enterprise\":"
            "\"%s\",\"month\":\"%s\",\"tz\":", CA_STMT_TITLE,
            CA_STMT_VERSION, st->enterprise, st->month);
    json_str(out, st->tz, strlen(st->tz));
    fprintf(out, ",\"since_ms\":%lld,\"until_ms\":%lld,\"made_at\":\"%s\","
            "\"pending\":%zu,\n\"log\":", (long long) st->since_ms,
            (long long) st->until_ms, st->made_at, st->pending);
    mk_ckpt_json(out, &st->ck);
    fputs(",\n\"signed\":", out);
    json_str(out, st->signed_note, strlen(st->signed_note));
    fputs(",\n\"consistency\":[", out);
    if (st->has_prev) {
        fprintf(out, "{\"tree_size\":%llu,\"root\":",
                (unsigned long long) st->prev_size);
        mk_json_b64(out, st->prev_root, 32);
        fputs(",\"proof\":", out);
        mk_json_hashes(out, st->prev_proof, (size_t) st->prev_np);
        fputc('}', out);
    }
    fputs("],\n\"requests\":[", out);
    for (size_t i = 0; i < st->nr; i++) {
        const st_request *q = &st->rq[i];
        char              t[48];
        int64_t           ts = ca_sr_ts(st->e[q->dec].raw,
                                        st->e[q->dec].len);

        fprintf(out, "%s{\"decision_ord\":%llu,\"outcome_ord\":", i ? ",\n"
                : "\n", (unsigned long long) st->e[q->dec].ord);
        if (q->out == SIZE_MAX) {
            fputs("null", out);
        } else {
            fprintf(out, "%llu", (unsigned long long) st->e[q->out].ord);
        }
        for (int c = 0; c < CA_SR_COUNT; c++) {
            fprintf(out, ",\"%s\":", ca_sr_names[c]);
            json_span(out, &q->row[c]);
        }
        ca_time_format(ts, t, sizeof(t));
        fprintf(out, ",\"time\":\"%s\"", ts >= 0 ? t : "");
        json_name(out, "bank_name", bank_name(&st->nm,
                  q->row[CA_SR_BANK].p ? q->row[CA_SR_BANK].p : "",
                  q->row[CA_SR_BANK].len));
        json_name(out, "purpose_name", purpose_name(&st->nm,
                  q->row[CA_SR_PURPOSE].p ? q->row[CA_SR_PURPOSE].p : "",
                  q->row[CA_SR_PURPOSE].len));
        json_name(out, "category_name", category_name(&st->nm,
                  q->row[CA_SR_CATEGORY].p ? q->row[CA_SR_CATEGORY].p : "",
                  q->row[CA_SR_CATEGORY].len));
        fputc('}', out);
    }
    fprintf(out, "],\n\"totals\":{\"requests\":%zu,", st->nr);
    json_counts(out, st, "by_bank", CA_SR_BANK);
    fputc(',', out);
    json_counts(out, st, "by_purpose", CA_SR_PURPOSE);
    fputc(',', out);
    json_counts(out, st, "by_decision", CA_SR_DECISION);
    fprintf(out, ",\"revocations\":%zu},\n\"revocations\":[", st->nrv);
    for (size_t i = 0; i < st->nrv; i++) {
        const st_revocation *v = &st->rv[i];
        char                 t[48];
        int64_t              ts = ca_sr_ts(st->e[v->ent].raw,
                                           st->e[v->ent].len);

        fprintf(out, "%s{\"ord\":%llu", i ? ",\n" : "\n",
                (unsigned long long) st->e[v->ent].ord);
        for (int c = 0; c < CA_SRV_COUNT; c++) {
            fprintf(out, ",\"%s\":", ca_srv_names[c]);
            json_span(out, &v->row[c]);
        }
        ca_time_format(ts, t, sizeof(t));
        fprintf(out, ",\"time\":\"%s\"}", ts >= 0 ? t : "");
    }
    fputs("],\n", out);
    if (json_proofs(out, st) != 0) {
        return -1;
    }
    fputs("}\n", out);
    return 0;
}
