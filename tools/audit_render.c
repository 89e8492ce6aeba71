/*
 * The work report's documents (credit-audit report --format md|csv|html)
 * rendered from the report's JSON model (audit_report.c).  Headings are
 * Chinese with the English next to them: the reader is a Chinese
 * regulator, the operator may not be.  The HTML is one file with its
 * style and charts (SVG) inline: it opens without a network.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit_report.h"
#include "audit_tool.h"

#define TITLE_ZH "征信平台工作通报"
#define TITLE_EN "Work report of the credit-information platform"

/* section: Chinese heading, English heading */
static const char *const H[][2] = {
    {"报告期", "Period"},
    {"总体情况", "Summary"},
    {"一、准入银行", "Banks admitted"},
    {"二、服务银行", "Banks served"},
    {"三、服务企业", "Enterprises served"},
    {"四、各类信息查询与核验", "Queries and verifications per category"},
    {"五、原始明细披露", "Raw-detail disclosures"},
    {"六、拒绝情况(按银行与原因)", "Refusals by bank and reason"},
    {"七、在用策略版本", "Policy versions in force"},
    {"八、审计链完整性", "Integrity of the audit trail"},
};
enum { S_PERIOD, S_SUMMARY, S_ADMITTED, S_SERVED, S_ENTERPRISES,
       S_CATEGORIES, S_RAW, S_REFUSALS, S_POLICIES, S_INTEGRITY };

static const char *
str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

static long long
num(json_t *o, const char *k)
{
    return (long long) json_integer_value(json_object_get(o, k));
}

static const char *
when(json_t *m, const char *k, const char *none)
{
    const char *s = json_string_value(json_object_get(m, k));

    return s ? s : none;
}

static const char *
integrity_zh(json_t *in)
{
    if (!json_is_true(json_object_get(in, "checked"))) {
        return "未核验 not checked (no --pubkey)";
    }
    return json_is_true(json_object_get(in, "intact"))
           ? "完整 intact" : "不完整 NOT INTACT";
}

/* ---- Markdown -------------------------------------------------------- */

/* A table cell: no line break, no column separator, no HTML. */
static void
md_cell(FILE *out, const char *s)
{
    fputs("| ", out);
    for (; *s; s++) {
        if (*s == '|' || *s == '\\' || *s == '<' || *s == '>' || *s == '`'
            || *s == '*' || *s == '[' || *s == ']')
        {
            fputc('\\', out);
            fputc(*s, out);
        } else if ((unsigned char) *s < 0x20) {
            fputc(' ', out);
        } else {
            fputc(*s, out);
        }
    }
    fputc(' ', out);
}

static void
md_num(FILE *out, long long n)
{
    fprintf(out, "| %lld ", n);
}

static void
md_head(FILE *out, int s)
{
    fprintf(out, "\n## %s %s\n\n", H[s][0], H[s][1]);
}

void
render_md(FILE *out, json_t *m)
{
    json_t *a, *e, *in = json_object_get(m, "integrity");
    size_t  i;

    fprintf(out, "# %s\n\n%s\n", TITLE_ZH, TITLE_EN);
    md_head(out, S_PERIOD);
    fprintf(out, "%s — %s (%s; 截止时间不含 until exclusive)\n\n"
            "审计流 Stream: `%s`\n", when(m, "since", "始 beginning"),
            when(m, "until", "今 now"), str(m, "tz"), str(m, "stream"));

    md_head(out, S_SUMMARY);
    fputs("| 项目 Item | 数量 Count |\n|---|---:|\n", out);
    fprintf(out, "| 决定 Decisions | %lld |\n", num(m, "decisions"));
    fprintf(out, "| 服务企业 Enterprises served | %lld |\n",
            num(m, "enterprises_served"));
    fprintf(out, "| 拒绝 Refusals | %lld |\n", num(m, "refusals_total"));
    fprintf(out, "| 原始明细披露 Raw-detail disclosures | %lld |\n",
            num(m, "raw_disclosures_total"));
    fprintf(out, "| 审计链 Audit trail | %s |\n", integrity_zh(in));

    md_head(out, S_ADMITTED);
    a = json_object_get(m, "banks_admitted");
    if (!json_is_array(a)) {
        fputs("未提供银行名录 No banks file given (--banks FILE).\n", out);
    } else {
        fputs("| 银行代码 Bank | 名称 Name | 状态 Status |\n|---|---|---|\n",
              out);
        json_array_foreach(a, i, e) {
            md_cell(out, str(e, "bank"));
            md_cell(out, str(e, "name"));
            md_cell(out, json_is_true(json_object_get(e, "suspended"))
                         ? "暂停 suspended" : "准入 admitted");
            fputs("|\n", out);
        }
    }

    md_head(out, S_SERVED);
    fputs("| 银行 Bank | 放行 Allowed | 拒绝 Refused | 企业数 Enterprises |\n"
          "|---|---:|---:|---:|\n", out);
    json_array_foreach(json_object_get(m, "banks_served"), i, e) {
        md_cell(out, str(e, "bank"));
        md_num(out, num(e, "allowed"));
        md_num(out, num(e, "refused"));
        md_num(out, num(e, "enterprises"));
        fputs("|\n", out);
    }

    md_head(out, S_ENTERPRISES);
    fprintf(out, "放行请求涉及的不同企业 Distinct enterprises in allowed "
            "requests: **%lld**\n", num(m, "enterprises_served"));

    md_head(out, S_CATEGORIES);
    fputs("| 类别 Category | 查询 Queries | 核验 Verifications | "
          "原始明细 Raw | 拒绝 Refused | 仅报告 Report-only |\n"
          "|---|---:|---:|---:|---:|---:|\n", out);
    json_array_foreach(json_object_get(m, "categories"), i, e) {
        md_cell(out, str(e, "category"));
        md_num(out, num(e, "queries"));
        md_num(out, num(e, "verifications"));
        md_num(out, num(e, "raw"));
        md_num(out, num(e, "refused"));
        md_num(out, num(e, "reported"));
        fputs("|\n", out);
    }

    md_head(out, S_RAW);
    fprintf(out, "合计 Total: **%lld**\n\n", num(m, "raw_disclosures_total"));
    fputs("| 银行 Bank | 类别 Category | 次数 Count |\n|---|---|---:|\n", out);
    json_array_foreach(json_object_get(m, "raw_disclosures"), i, e) {
        md_cell(out, str(e, "bank"));
        md_cell(out, str(e, "category"));
        md_num(out, num(e, "count"));
        fputs("|\n", out);
    }

    md_head(out, S_REFUSALS);
    fprintf(out, "合计 Total: **%lld**\n\n", num(m, "refusals_total"));
    fputs("| 银行 Bank | 原因 Reason | 次数 Count |\n|---|---|---:|\n", out);
    json_array_foreach(json_object_get(m, "refusals"), i, e) {
        md_cell(out, str(e, "bank")[0] ? str(e, "bank") : "(未识别 unknown)");
        md_cell(out, str(e, "reason"));
        md_num(out, num(e, "count"));
        fputs("|\n", out);
    }

    md_head(out, S_POLICIES);
    fputs("| 版本 Version | SHA-256 | 决定 Decisions | 首次 First | "
          "末次 Last |\n|---|---|---:|---|---|\n", out);
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        md_cell(out, str(e, "version"));
        md_cell(out, str(e, "sha256"));
        md_num(out, num(e, "decisions"));
        md_cell(out, str(e, "first"));
        md_cell(out, str(e, "last"));
        fputs("|\n", out);
    }

    md_head(out, S_INTEGRITY);
    fprintf(out, "结论 Result: **%s**\n\n", integrity_zh(in));
    if (json_is_true(json_object_get(in, "checked"))) {
        fprintf(out, "| 链 Chains | 条目 Entries | 断点 Breaks | "
                "本期断点 Breaks in period | 未签名尾部 Unsigned tail |\n"
                "|---:|---:|---:|---:|---:|\n"
                "| %lld | %lld | %lld | %lld | %lld |\n",
                num(in, "chains"), num(in, "entries"), num(in, "breaks"),
                num(in, "breaks_in_period"), num(in, "unsigned_tail"));
        json_array_foreach(json_object_get(in, "first_breaks"), i, e) {
            fprintf(out, "%s- %s ", i ? "" : "\n", str(e, "kind"));
            md_cell(out, str(e, "id"));
            md_cell(out, str(e, "detail"));
            fputc('\n', out);
        }
    }
}

/* ---- CSV ------------------------------------------------------------- */

static void
csv_row(FILE *out, const char *section, const char *item,
        const char *detail, long long n)
{
    csv_field(out, section, strlen(section));
    fputc(',', out);
    csv_field(out, item, strlen(item));
    fputc(',', out);
    csv_field(out, detail, strlen(detail));
    fprintf(out, ",%lld\r\n", n);
}

void
render_csv(FILE *out, json_t *m)
{
    json_t *e, *in = json_object_get(m, "integrity");
    size_t  i;

    fputs("section,item,detail,count\r\n", out);
    csv_row(out, "period", when(m, "since", ""), when(m, "until", ""), 0);
    csv_row(out, "decisions", "", "", num(m, "decisions"));
    csv_row(out, "enterprises_served", "", "", num(m, "enterprises_served"));
    json_array_foreach(json_object_get(m, "banks_admitted"), i, e) {
        csv_row(out, "bank_admitted", str(e, "bank"),
                json_is_true(json_object_get(e, "suspended")) ? "suspended"
                                                              : "admitted",
                1);
    }
    json_array_foreach(json_object_get(m, "banks_served"), i, e) {
        csv_row(out, "bank_served", str(e, "bank"), "allowed",
                num(e, "allowed"));
        csv_row(out, "bank_served", str(e, "bank"), "refused",
                num(e, "refused"));
        csv_row(out, "bank_served", str(e, "bank"), "enterprises",
                num(e, "enterprises"));
    }
    json_array_foreach(json_object_get(m, "categories"), i, e) {
        static const char *const k[] = {"queries", "verifications", "raw",
                                        "refused", "reported"};

        for (size_t j = 0; j < 5; j++) {
            csv_row(out, "category", str(e, "category"), k[j], num(e, k[j]));
        }
    }
    json_array_foreach(json_object_get(m, "raw_disclosures"), i, e) {
        csv_row(out, "raw_disclosure", str(e, "bank"), str(e, "category"),
                num(e, "count"));
    }
    json_array_foreach(json_object_get(m, "refusals"), i, e) {
        csv_row(out, "refusal", str(e, "bank"), str(e, "reason"),
                num(e, "count"));
    }
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        csv_row(out, "policy", str(e, "version"), str(e, "sha256"),
                num(e, "decisions"));
    }
    if (json_is_true(json_object_get(in, "checked"))) {
        csv_row(out, "integrity", json_is_true(json_object_get(in, "intact"))
                ? "intact" : "not_intact", "breaks", num(in, "breaks"));
        csv_row(out, "integrity", "", "breaks_in_period",
                num(in, "breaks_in_period"));
        csv_row(out, "integrity", "", "chains", num(in, "chains"));
        csv_row(out, "integrity", "", "entries", num(in, "entries"));
    } else {
        csv_row(out, "integrity", "not_checked", "", 0);
    }
}

/* ---- HTML ------------------------------------------------------------ */

static void
h(FILE *out, const char *s)
{
    html_text(out, s, strlen(s));
}

static void
html_head(FILE *out, int s)
{
    fprintf(out, "<h2>%s <span class=en>%s</span></h2>\n", H[s][0], H[s][1]);
}

/* A horizontal bar chart, stacked over nser series.  label: the member
 * naming a bar; ser: the members counted. */
static void
svg_bars(FILE *out, const char *id, json_t *rows, const char *label,
         const char *const *ser, const char *const *ser_names, size_t nser)
{
    static const char *const color[] = {"#2f6db5", "#54a24b", "#e45756",
                                        "#f2a93b", "#8e6bbf"};
    size_t  n = json_array_size(rows), i;
    json_t *e;
    double  max = 1;
    int     w = 640, lw = 180, bh = 22, top = 28;
    int     hgt = top + (int) n * (bh + 6) + 10;

    json_array_foreach(rows, i, e) {
        double t = 0;

        for (size_t k = 0; k < nser; k++) {
            t += (double) num(e, ser[k]);
        }
        max = t > max ? t : max;
    }
    fprintf(out, "<svg id=\"%s\" class=chart xmlns=\"http://www.w3.org/2000/"
            "svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "role=img>\n", id, w, hgt, w, hgt);
    for (size_t k = 0; k < nser; k++) {
        fprintf(out, "<rect x=\"%zu\" y=\"6\" width=\"12\" height=\"12\" "
                "fill=\"%s\"/><text x=\"%zu\" y=\"16\" font-size=\"12\">",
                lw + k * 130, color[k % 5], lw + k * 130 + 16);
        h(out, ser_names[k]);
        fputs("</text>\n", out);
    }
    json_array_foreach(rows, i, e) {
        int    y = top + (int) i * (bh + 6);
        double x = lw;

        fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"12\" "
                "text-anchor=\"end\">", lw - 6, y + 15);
        h(out, str(e, label)[0] ? str(e, label) : "(none)");
        fputs("</text>", out);
        for (size_t k = 0; k < nser; k++) {
            double bw = (double) num(e, ser[k]) * (w - lw - 60) / max;

            if (bw > 0) {
                fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                        "height=\"%d\" fill=\"%s\"><title>%lld</title>"
                        "</rect>", x, y, bw, bh, color[k % 5],
                        num(e, ser[k]));
            }
            x += bw;
        }
        {
            long long t = 0;

            for (size_t k = 0; k < nser; k++) {
                t += num(e, ser[k]);
            }
            fprintf(out, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\">%lld"
                    "</text>\n", x + 4, y + 15, t);
        }
    }
    fputs("</svg>\n", out);
}

static void
td_num(FILE *out, const char *fig, long long n)
{
    fprintf(out, "<td class=n data-figure=\"%s\">%lld</td>", fig, n);
}

static void
td(FILE *out, const char *s)
{
    fputs("<td>", out);
    h(out, s);
    fputs("</td>", out);
}

void
render_html(FILE *out, json_t *m)
{
    static const char *const cat_ser[] = {"queries", "verifications",
                                          "refused"};
    static const char *const cat_names[] = {"查询 queries",
                                            "核验 verifications",
                                            "拒绝 refused"};
    static const char *const bank_ser[] = {"allowed", "refused"};
    static const char *const bank_names[] = {"放行 allowed", "拒绝 refused"};
    static const char *const ref_ser[] = {"count"};
    static const char *const ref_names[] = {"拒绝 refusals"};
    json_t *a, *e, *in = json_object_get(m, "integrity"), *reasons;
    size_t  i;
    const char *k;

    fputs("<!DOCTYPE html>\n<html lang=zh-CN>\n<head>\n<meta charset=utf-8>\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src"
          " 'none'; style-src 'unsafe-inline'; img-src data:\">\n<title>",
          out);
    fputs(TITLE_ZH " ", out);
    h(out, when(m, "since", ""));
    fputs("</title>\n<style>\n"
          "body{font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei',"
          "'Microsoft YaHei',sans-serif;margin:2em auto;max-width:60em;"
          "color:#222}\n"
          "h1{border-bottom:2px solid #2f6db5}h2{margin-top:1.6em;"
          "font-size:1.2em}.en{color:#666;font-weight:normal;"
          "font-size:.85em}\n"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px "
          "solid #bbb;padding:.25em .6em}th{background:#eef2f8}"
          "td.n{text-align:right}\n"
          ".ok{color:#1b7a1b;font-weight:bold}.bad{color:#b00;"
          "font-weight:bold}svg.chart{display:block;margin:.5em 0}\n"
          "</style>\n</head>\n<body>\n", out);
    fprintf(out, "<h1>%s <span class=en>%s</span></h1>\n", TITLE_ZH,
            TITLE_EN);

    html_head(out, S_PERIOD);
    fputs("<p id=period><span data-figure=since>", out);
    h(out, when(m, "since", "始 beginning"));
    fputs("</span> — <span data-figure=until>", out);
    h(out, when(m, "until", "今 now"));
    fputs("</span> (", out);
    h(out, str(m, "tz"));
    fputs("; 截止时间不含 until exclusive)<br>审计流 Stream: <code>", out);
    h(out, str(m, "stream"));
    fputs("</code></p>\n", out);

    html_head(out, S_SUMMARY);
    fputs("<table id=summary>\n<tr><th>项目 Item</th><th>数量 Count</th>"
          "</tr>\n<tr><td>决定 Decisions</td>", out);
    td_num(out, "decisions", num(m, "decisions"));
    fputs("</tr>\n<tr><td>服务企业 Enterprises served</td>", out);
    td_num(out, "enterprises_served", num(m, "enterprises_served"));
    fputs("</tr>\n<tr><td>拒绝 Refusals</td>", out);
    td_num(out, "refusals_total", num(m, "refusals_total"));
    fputs("</tr>\n<tr><td>原始明细披露 Raw-detail disclosures</td>", out);
    td_num(out, "raw_disclosures_total", num(m, "raw_disclosures_total"));
    fprintf(out, "</tr>\n<tr><td>审计链 Audit trail</td><td data-figure="
            "integrity class=%s>%s</td></tr>\n</table>\n",
            json_is_true(json_object_get(in, "intact")) ? "ok" : "bad",
            integrity_zh(in));

    html_head(out, S_ADMITTED);
    a = json_object_get(m, "banks_admitted");
    if (!json_is_array(a)) {
        fputs("<p>未提供银行名录 No banks file given (--banks FILE).</p>\n",
              out);
    } else {
        fputs("<table id=banks-admitted>\n<tr><th>银行代码 Bank</th>"
              "<th>名称 Name</th><th>状态 Status</th></tr>\n", out);
        json_array_foreach(a, i, e) {
            fputs("<tr>", out);
            td(out, str(e, "bank"));
            td(out, str(e, "name"));
            td(out, json_is_true(json_object_get(e, "suspended"))
                    ? "暂停 suspended" : "准入 admitted");
            fputs("</tr>\n", out);
        }
        fputs("</table>\n", out);
    }

    html_head(out, S_SERVED);
    a = json_object_get(m, "banks_served");
    svg_bars(out, "chart-banks", a, "bank", bank_ser, bank_names, 2);
    fputs("<table id=banks-served>\n<tr><th>银行 Bank</th><th>放行 Allowed"
          "</th><th>拒绝 Refused</th><th>企业数 Enterprises</th></tr>\n",
          out);
    json_array_foreach(a, i, e) {
        fputs("<tr>", out);
        td(out, str(e, "bank"));
        td_num(out, "allowed", num(e, "allowed"));
        td_num(out, "refused", num(e, "refused"));
        td_num(out, "enterprises", num(e, "enterprises"));
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);

    html_head(out, S_ENTERPRISES);
    fprintf(out, "<p>放行请求涉及的不同企业 Distinct enterprises in allowed "
            "requests: <strong data-figure=enterprises>%lld</strong></p>\n",
            num(m, "enterprises_served"));

    html_head(out, S_CATEGORIES);
    a = json_object_get(m, "categories");
    svg_bars(out, "chart-categories", a, "category", cat_ser, cat_names, 3);
    fputs("<table id=categories>\n<tr><th>类别 Category</th><th>查询 "
          "Queries</th><th>核验 Verifications</th><th>原始明细 Raw</th>"
          "<th>拒绝 Refused</th><th>仅报告 Report-only</th></tr>\n", out);
    json_array_foreach(a, i, e) {
        fputs("<tr>", out);
        td(out, str(e, "category"));
        td_num(out, "queries", num(e, "queries"));
        td_num(out, "verifications", num(e, "verifications"));
        td_num(out, "raw", num(e, "raw"));
        td_num(out, "refused", num(e, "refused"));
        td_num(out, "reported", num(e, "reported"));
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);

    html_head(out, S_RAW);
    fprintf(out, "<p>合计 Total: <strong data-figure=raw_total>%lld</strong>"
            "</p>\n<table id=raw>\n<tr><th>银行 Bank</th><th>类别 Category"
            "</th><th>次数 Count</th></tr>\n",
            num(m, "raw_disclosures_total"));
    json_array_foreach(json_object_get(m, "raw_disclosures"), i, e) {
        fputs("<tr>", out);
        td(out, str(e, "bank"));
        td(out, str(e, "category"));
        td_num(out, "count", num(e, "count"));
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);

    html_head(out, S_REFUSALS);
    /* the chart sums per reason; the table keeps bank and reason */
    reasons = json_array();
    json_object_foreach(json_object_get(m, "reason"), k, e) {
        if (k[0] != '\0') {
            json_array_append_new(reasons, json_pack("{s:s,s:O}", "reason",
                                                     k, "count", e));
        }
    }
    svg_bars(out, "chart-refusals", reasons, "reason", ref_ser, ref_names,
             1);
    json_decref(reasons);
    fprintf(out, "<p>合计 Total: <strong data-figure=refusals_total>%lld"
            "</strong></p>\n<table id=refusals>\n<tr><th>银行 Bank</th>"
            "<th>原因 Reason</th><th>次数 Count</th></tr>\n",
            num(m, "refusals_total"));
    json_array_foreach(json_object_get(m, "refusals"), i, e) {
        fputs("<tr>", out);
        td(out, str(e, "bank")[0] ? str(e, "bank") : "(未识别 unknown)");
        td(out, str(e, "reason"));
        td_num(out, "count", num(e, "count"));
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);

    html_head(out, S_POLICIES);
    fputs("<table id=policies>\n<tr><th>版本 Version</th><th>SHA-256</th>"
          "<th>决定 Decisions</th><th>首次 First</th><th>末次 Last</th>"
          "</tr>\n", out);
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        fputs("<tr>", out);
        td(out, str(e, "version"));
        fputs("<td><code>", out);
        h(out, str(e, "sha256"));
        fputs("</code></td>", out);
        td_num(out, "decisions", num(e, "decisions"));
        td(out, str(e, "first"));
        td(out, str(e, "last"));
        fputs("</tr>\n", out);
    }
    fputs("</table>\n", out);

    html_head(out, S_INTEGRITY);
    fprintf(out, "<p>结论 Result: <strong id=integrity class=%s>%s</strong>"
            "</p>\n", json_is_true(json_object_get(in, "intact")) ? "ok"
                                                                 : "bad",
            integrity_zh(in));
    if (json_is_true(json_object_get(in, "checked"))) {
        fputs("<table id=integrity-figures>\n<tr><th>链 Chains</th><th>条目 "
              "Entries</th><th>断点 Breaks</th><th>本期断点 Breaks in period"
              "</th><th>未签名尾部 Unsigned tail</th></tr>\n<tr>", out);
        td_num(out, "chains", num(in, "chains"));
        td_num(out, "entries", num(in, "entries"));
        td_num(out, "breaks", num(in, "breaks"));
        td_num(out, "breaks_in_period", num(in, "breaks_in_period"));
        td_num(out, "unsigned_tail", num(in, "unsigned_tail"));
        fputs("</tr>\n</table>\n<ul>\n", out);
        json_array_foreach(json_object_get(in, "first_breaks"), i, e) {
            fputs("<li>", out);
            h(out, str(e, "kind"));
            fputs(" <code>", out);
            h(out, str(e, "id"));
            fputs("</code> ", out);
            h(out, str(e, "detail"));
            fputs("</li>\n", out);
        }
        fputs("</ul>\n", out);
    }
    fputs("</body>\n</html>\n", out);
}
