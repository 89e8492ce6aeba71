/*
 * The access statement as a page a finance officer reads and prints
 * (contract §7.3): one file, no script, no network; Chinese first with
 * English beside it; every value from the trail escaped.  The page says
 * how to check it: the JSON form, with `credit-consent statement verify`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_stmt.h"

static const char css[] =
    "body{font-family:'WenQuanYi Micro Hei','Noto Sans CJK SC',sans-serif;"
    "margin:2em;color:#111}"
    "h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;"
    "margin-top:1.6em;border-bottom:1px solid #999}"
    ".en{color:#555;font-size:.85em}"
    "table{border-collapse:collapse;margin:.5em 0;width:100%}"
    "th,td{border:1px solid #bbb;padding:.25em .45em;text-align:left;"
    "vertical-align:top;font-size:.9em}"
    "th{background:#eee}td.n{text-align:right}"
    ".deny{color:#a00}.mono{font-family:monospace;word-break:break-all}"
    "@media print{body{margin:1cm}a{color:inherit}"
    "tr{page-break-inside:avoid}}";

static void
esc(FILE *out, const char *s)
{
    html_text(out, s, strlen(s));
}

static void
esc_span(FILE *out, const ca_span *s)
{
    if (s->p != NULL) {
        html_text(out, s->p, s->len);
    }
}

/* "中文 <span class=en>English</span>" */
static void
label(FILE *out, const char *zh, const char *en)
{
    fprintf(out, "%s <span class=\"en\">%s</span>", zh, en);
}

static void
named(FILE *out, const ca_span *code, const char *name)
{
    if (name != NULL && code->p != NULL
        && (strlen(name) != code->len
            || memcmp(name, code->p, code->len) != 0))
    {
        esc(out, name);
        fputs(" <span class=\"en\">", out);
        esc_span(out, code);
        fputs("</span>", out);
    } else {
        esc_span(out, code);
    }
}

static void
counts_table(FILE *out, const statement *st, int col, const char *zh,
             const char *en, const char *id)
{
    size_t    n;
    st_count *c = st_counts(st, col, &n);

    fprintf(out, "<table id=\"%s\"><tr><th>", id);
    label(out, zh, en);
    fputs("</th><th>", out);
    label(out, "次数", "Requests");
    fputs("</th></tr>\n", out);
    for (size_t i = 0; c != NULL && i < n; i++) {
        ca_span     s = {c[i].code, strlen(c[i].code)};
        const char *name = col == CA_SR_BANK
                           ? bank_name(&st->nm, s.p, s.len)
                           : purpose_name(&st->nm, s.p, s.len);

        fprintf(out, "<tr data-code=\"");
        esc(out, c[i].code);
        fputs("\"><td>", out);
        named(out, &s, name);
        fprintf(out, "</td><td class=\"n\">%zu</td></tr>\n", c[i].n);
        free(c[i].code);
    }
    fputs("</table>\n", out);
    free(c);
}

static size_t
count_decision(const statement *st, const char *d)
{
    size_t n = 0;

    for (size_t i = 0; i < st->nr; i++) {
        const ca_span *s = &st->rq[i].row[CA_SR_DECISION];

        n += s->p != NULL && s->len == strlen(d)
             && memcmp(s->p, d, s->len) == 0;
    }
    return n;
}

static void
request_row(FILE *out, const statement *st, const st_request *q)
{
    const ca_span *r = q->row;
    char           t[48];
    int64_t        ts = ca_sr_ts(st->e[q->dec].raw, st->e[q->dec].len);
    const char    *zh;
    int            deny = r[CA_SR_DECISION].p != NULL
                          && r[CA_SR_DECISION].len == 4
                          && memcmp(r[CA_SR_DECISION].p, "deny", 4) == 0;

    ca_time_format(ts, t, sizeof(t));
    fprintf(out, "<tr class=\"request%s\" data-ord=\"%llu\"><td>%s</td><td>",
            deny ? " deny" : "", (unsigned long long) st->e[q->dec].ord,
            ts >= 0 ? t : "");
    named(out, &r[CA_SR_BANK], bank_name(&st->nm, r[CA_SR_BANK].p
          ? r[CA_SR_BANK].p : "", r[CA_SR_BANK].len));
    fputs("</td><td>", out);
    named(out, &r[CA_SR_PURPOSE], purpose_name(&st->nm, r[CA_SR_PURPOSE].p
          ? r[CA_SR_PURPOSE].p : "", r[CA_SR_PURPOSE].len));
    fputs("</td><td>", out);
    named(out, &r[CA_SR_CATEGORY], category_name(&st->nm,
          r[CA_SR_CATEGORY].p ? r[CA_SR_CATEGORY].p : "",
          r[CA_SR_CATEGORY].len));
    fputs("</td><td>", out);
    for (int c = CA_SR_MODE; c <= CA_SR_DECISION; c++) {
        zh = r[c].p ? word_zh(r[c].p, r[c].len) : NULL;
        named(out, &r[c], zh);
        fputs("</td><td>", out);
    }
    zh = r[CA_SR_REASON].p ? reason_name(r[CA_SR_REASON].p,
                                         r[CA_SR_REASON].len) : NULL;
    named(out, &r[CA_SR_REASON], zh);
    fputs("</td><td class=\"mono\">", out);
    esc_span(out, &r[CA_SR_DISCLOSED]);
    fputs("</td><td class=\"mono\">", out);
    esc_span(out, &r[CA_SR_MASKED]);
    fputs("</td></tr>\n", out);
}

/* The withdrawals of the enterprise's consents recorded this month: from
 * then on, every gateway refuses the consent. */
static void
revocations(FILE *out, const statement *st)
{
    fputs("<h2>撤回授权 <span class=\"en\">Consents withdrawn</span></h2>"
          "\n", out);
    if (st->nrv == 0) {
        fputs("<p id=\"no-revocations\">本月没有撤回授权。<span class=\"en\">"
              "No consent was withdrawn this month.</span></p>\n", out);
        return;
    }
    fputs("<table id=\"revocations\"><tr><th>", out);
    label(out, "时间", "Time");
    fputs("</th><th>", out);
    label(out, "授权编号", "Consent");
    fputs("</th><th>", out);
    label(out, "撤回方", "Withdrawn by");
    fputs("</th></tr>\n", out);
    for (size_t i = 0; i < st->nrv; i++) {
        const st_revocation *v = &st->rv[i];
        const ca_span       *by = &v->row[CA_SRV_BY];
        char                 t[48];
        int64_t              ts = ca_sr_ts(st->e[v->ent].raw,
                                           st->e[v->ent].len);
        int                  ent = by->p != NULL && by->len == 10
                                   && memcmp(by->p, "enterprise", 10) == 0;

        ca_time_format(ts, t, sizeof(t));
        fprintf(out, "<tr class=\"revocation\" data-ord=\"%llu\"><td>%s"
                "</td><td class=\"mono\">",
                (unsigned long long) st->e[v->ent].ord, ts >= 0 ? t : "");
        esc_span(out, &v->row[CA_SRV_CONSENT]);
        fputs("</td><td>", out);
        named(out, by, ent ? "贵司" : "平台");
        fputs("</td></tr>\n", out);
    }
    fputs("</table>\n", out);
}

void
stmt_html(FILE *out, const statement *st)
{
    static const char *const head[][2] = {
        {"时间", "Time"}, {"银行", "Bank"}, {"用途", "Purpose"},
        {"数据类别", "Category"}, {"方式", "Mode"}, {"明细", "Detail"},
        {"结果", "Decision"}, {"原因", "Reason"},
        {"披露字段", "Fields disclosed"}, {"脱敏字段", "Fields masked"},
    };
    char b64[48];

    fprintf(out, "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta "
            "charset=\"utf-8\"><title>查询记录对账单 Access statement "
            "%s %s</title>\n<meta http-equiv=\"Content-Security-Policy\" "
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            "<style>%s</style></head><body>\n", st->enterprise, st->month,
            css);
    fputs("<h1>查询记录对账单 <span class=\"en\">Access statement</span>"
          "</h1>\n<table id=\"header\">\n<tr><th>", out);
    label(out, "企业", "Enterprise");
    fprintf(out, "</th><td id=\"enterprise\">%s</td></tr>\n<tr><th>",
            st->enterprise);
    label(out, "期间", "Period");
    fprintf(out, "</th><td id=\"period\">%s (", st->month);
    esc(out, st->tz);
    fputs(")</td></tr>\n<tr><th>", out);
    label(out, "日志检查点", "Log checkpoint");
    ca_b64std_encode(st->ck.root, 32, b64);
    fputs("</th><td class=\"mono\" id=\"checkpoint\">", out);
    esc(out, st->ck.origin);
    fprintf(out, " · %llu · %s · %s</td></tr>\n<tr><th>",
            (unsigned long long) st->ck.size, b64, st->ck.made_at);
    label(out, "生成时间", "Made at");
    fprintf(out, "</th><td>%s</td></tr>\n</table>\n", st->made_at);

    fputs("<h2>合计 <span class=\"en\">Totals</span></h2>\n"
          "<table id=\"totals\"><tr><th>", out);
    label(out, "查询次数", "Requests");
    fprintf(out, "</th><td class=\"n\" id=\"total-requests\">%zu</td></tr>"
            "\n<tr><th>", st->nr);
    label(out, "放行", "Allowed");
    fprintf(out, "</th><td class=\"n\" id=\"total-allowed\">%zu</td></tr>"
            "\n<tr><th>", count_decision(st, "allow"));
    label(out, "拒绝", "Refused");
    fprintf(out, "</th><td class=\"n\" id=\"total-refused\">%zu</td></tr>"
            "\n<tr><th>", count_decision(st, "deny"));
    label(out, "撤回授权", "Consents withdrawn");
    fprintf(out, "</th><td class=\"n\" id=\"total-revocations\">%zu</td>"
            "</tr>\n</table>\n", st->nrv);
    counts_table(out, st, CA_SR_BANK, "银行", "Bank", "by-bank");
    counts_table(out, st, CA_SR_PURPOSE, "用途", "Purpose", "by-purpose");
    if (st->pending > 0) {
        fprintf(out, "<p id=\"pending\">另有 %zu 次查询在检查点之后，"
                "将列入下一份对账单。<span class=\"en\">%zu more requests "
                "are after the checkpoint and will be in the next "
                "statement.</span></p>\n", st->pending, st->pending);
    }

    fputs("<h2>查询明细 <span class=\"en\">Requests</span></h2>\n"
          "<table id=\"requests\"><tr>", out);
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        fputs("<th>", out);
        label(out, head[i][0], head[i][1]);
        fputs("</th>", out);
    }
    fputs("</tr>\n", out);
    for (size_t i = 0; i < st->nr; i++) {
        request_row(out, st, &st->rq[i]);
    }
    fputs("</table>\n", out);
    revocations(out, st);
    fputs("<h2>如何核验 <span class=\"en\">How to check it</span>"
          "</h2>\n<p>每条记录都附有默克尔树包含证明，对应上述已签名的日志检查点。"
          "请用 JSON 格式的对账单在贵司自己的计算机上核验：<br><span "
          "class=\"en\">Every entry comes with a Merkle inclusion proof "
          "against the signed log checkpoint above. Check the JSON form of "
          "this statement on your own machine:</span></p>\n<p class=\"mono\">"
          "credit-consent statement verify statement.json --log-key "
          "LOG-KEY [--previous LAST-CHECKPOINT]</p>\n"
          "<p>本对账单不含任何字段值或个人身份信息。<span class=\"en\">This "
          "statement holds no field value and no personal identifier."
          "</span></p>\n</body></html>\n", out);
}
