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

void
stmt_json(FILE *out, const statement *st)
{
    fprintf(out, "{\"statement\":\"%s\",\"enterprise\":\"%s\",\"month\":"
            "\"%s\",\"tz\":", CA_STMT_TITLE, st->enterprise, st->month);
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
    fputs("},\n\"entries\":[", out);
    for (size_t i = 0; i < st->ne; i++) {
        fputs(i ? ",\n" : "\n", out);
        mk_entry_json(out, st->e[i].ord, st->e[i].raw, st->e[i].len,
                      st->e[i].path, st->e[i].np);
    }
    fputs("]}\n", out);
}

