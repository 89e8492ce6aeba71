/*
 * credit-audit report --format html: one self-contained file (style and
 * SVG charts inline, no script, a Content-Security-Policy that forbids
 * any fetch), to open in a browser or print.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit_report.h"
#include "audit_tool.h"

/* ---- HTML ------------------------------------------------------------ */

static void
h(FILE *out, const char *s)
{
    html_text(out, s, strlen(s));
}

static void
html_head(FILE *out, int s)
{
    fprintf(out, "<h2>%s <span class=en>%s</span></h2>\n",
            report_heading[s][0], report_heading[s][1]);
}

/* A horizontal bar chart, stacked over nser series.  label: the member
 * naming a bar; ser: the members counted. */
static void
svg_bars(FILE *out, const char *id, json_t *rows, const char *label,
         const char *const *ser, const char *const *ser_names,
         const char *const *color, size_t nser)
{
    size_t  n = json_array_size(rows), i;
    json_t *e;
    double  max = 1;
    int     w = 860, lw = 380, bh = 22, top = 28;
    char    lb[512];
    int     hgt = top + (int) n * (bh + 6) + 10;

    json_array_foreach(rows, i, e) {
        double t = 0;

        for (size_t k = 0; k < nser; k++) {
            t += (double) m_num(e, ser[k]);
        }
        max = t > max ? t : max;
    }
    fprintf(out, "<svg id=\"%s\" class=chart xmlns=\"http://www.w3.org/2000/"
            "svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "role=img>\n", id, w, hgt, w, hgt);
    for (size_t k = 0; k < nser; k++) {
        fprintf(out, "<rect x=\"%zu\" y=\"6\" width=\"12\" height=\"12\" "
                "fill=\"%s\"/><text x=\"%zu\" y=\"16\" font-size=\"12\">",
                lw + k * 130, color[k], lw + k * 130 + 16);
        h(out, ser_names[k]);
        fputs("</text>\n", out);
    }
    json_array_foreach(rows, i, e) {
        int    y = top + (int) i * (bh + 6);
        double x = lw;

        fprintf(out, "<text x=\"%d\" y=\"%d\" font-size=\"12\" "
                "text-anchor=\"end\">", lw - 6, y + 15);
        h(out, m_label(e, label, "(none)", lb, sizeof(lb)));
        fputs("</text>", out);
        for (size_t k = 0; k < nser; k++) {
            double bw = (double) m_num(e, ser[k]) * (w - lw - 60) / max;

            if (bw > 0) {
                fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" "
                        "height=\"%d\" fill=\"%s\"><title>%lld</title>"
                        "</rect>", x, y, bw, bh, color[k],
                        m_num(e, ser[k]));
            }
            x += bw;
        }
        {
            long long t = 0;

            for (size_t k = 0; k < nser; k++) {
                t += m_num(e, ser[k]);
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

/* A table's start, or a line saying there is nothing to list. */
static void
html_table(FILE *out, json_t *rows, const char *start)
{
    fputs(json_array_size(rows) ? start : "<p class=none>无 None.</p>\n",
          out);
}

static void
html_table_end(FILE *out, json_t *rows)
{
    if (json_array_size(rows)) {
        fputs("</table>\n", out);
    }
}

static void
td_time(FILE *out, const char *s)
{
    fputs("<td class=t>", out);
    h(out, s);
    fputs("</td>", out);
}

static void
td(FILE *out, const char *s)
{
    fputs("<td>", out);
    h(out, s);
    fputs("</td>", out);
}

/* A code with its name: "纳税信息 <code>tax</code>"; the code alone when
 * the model has no name for it. */
static void
td_label(FILE *out, json_t *e, const char *k, const char *none)
{
    char        nk[64];
    const char *code = m_str(e, k), *name;

    snprintf(nk, sizeof(nk), "%s_name", k);
    name = m_str(e, nk);
    fprintf(out, "<td data-code=\"");
    h(out, code);
    fputs("\">", out);
    if (code[0] == '\0') {
        h(out, none);
    } else if (name[0] == '\0') {
        h(out, code);
    } else {
        h(out, name);
        fputs(" <code class=c>", out);
        h(out, code);
        fputs("</code>", out);
    }
    fputs("</td>", out);
}

/* A table's rows, each a labelled code and its figures, and its end. */
static void
figure_rows(FILE *out, json_t *rows, const char *code,
            const char *const *figures, size_t n)
{
    size_t  i;
    json_t *e;

    json_array_foreach(rows, i, e) {
        fputs("<tr>", out);
        td_label(out, e, code, "(无 none)");
        for (size_t j = 0; j < n; j++) {
            td_num(out, figures[j], m_num(e, figures[j]));
        }
        fputs("</tr>\n", out);
    }
    html_table_end(out, rows);
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
    static const char *const blue_green_red[] = {"#2f6db5", "#54a24b",
                                                 "#e45756"};
    static const char *const blue_red[] = {"#2f6db5", "#e45756"};
    static const char *const red[] = {"#e45756"};
    json_t *a, *e, *in = json_object_get(m, "integrity");
    size_t  i;
    char    sha[SHA_SHORT + 1];

    fputs("<!DOCTYPE html>\n<html lang=zh-CN>\n<head>\n<meta charset=utf-8>\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src"
          " 'none'; style-src 'unsafe-inline'; img-src data:\">\n<title>",
          out);
    fputs(TITLE_ZH " ", out);
    h(out, m_when(m, "since", ""));
    fputs("</title>\n<style>\n"
          "body{font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei',"
          "'Microsoft YaHei',sans-serif;margin:2em auto;max-width:60em;"
          "color:#222}\n"
          "h1{border-bottom:2px solid #2f6db5}h2{margin-top:1.6em;"
          "font-size:1.2em}.en{color:#666;font-weight:normal;"
          "font-size:.85em}\n"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px "
          "solid #bbb;padding:.25em .6em}th{background:#eef2f8}"
          "td.n{text-align:right}td code{word-break:break-all}"
          "td.t{white-space:nowrap}.none{color:#666}\n"
          "td.v{white-space:nowrap;max-width:14em;overflow:hidden;"
          "text-overflow:ellipsis}\n"
          "td.sha code,code.c{white-space:nowrap;word-break:normal}"
          "ol.fn{font-size:.8em;color:#444}ol.fn code{word-break:break-all}"
          "table#meta th{text-align:left}\n"
          ".ok{color:#1b7a1b;font-weight:bold}.bad{color:#b00;"
          "font-weight:bold}svg.chart{display:block;margin:.5em 0}\n"
          "</style>\n</head>\n<body>\n", out);
    fprintf(out, "<h1>%s <span class=en>%s</span></h1>\n", TITLE_ZH,
            TITLE_EN);
    fputs("<table id=meta>\n<tr><th>发布单位 Issuer</th><td data-figure="
          "issuer>", out);
    h(out, m_when(m, "issuer", "未署名 not given (--issuer)"));
    fputs("</td></tr>\n<tr><th>生成时间 Generated</th><td data-figure="
          "generated class=t>", out);
    h(out, m_str(m, "generated"));
    fputs("</td></tr>\n</table>\n", out);

    html_head(out, S_PERIOD);
    fputs("<p id=period><span data-figure=since>", out);
    h(out, m_when(m, "since", "始 beginning"));
    fputs("</span> — <span data-figure=until>", out);
    h(out, m_when(m, "until", "今 now"));
    fputs("</span> (", out);
    h(out, m_str(m, "tz"));
    fputs("; 截止时间不含 until exclusive)<br>本期首末决定 First and last "
          "decision: <span data-figure=first_decision>", out);
    h(out, m_when(m, "first_decision", "无 none"));
    fputs("</span> — <span data-figure=last_decision>", out);
    h(out, m_when(m, "last_decision", "无 none"));
    fputs("</span><br>审计流 Stream: <code>", out);
    h(out, m_str(m, "stream"));
    fputs("</code></p>\n", out);

    html_head(out, S_SUMMARY);
    fputs("<table id=summary>\n<tr><th>项目 Item</th><th>数量 Count</th>"
          "</tr>\n<tr><td>决定 Decisions</td>", out);
    td_num(out, "decisions", m_num(m, "decisions"));
    fputs("</tr>\n<tr><td>服务企业 Enterprises served</td>", out);
    td_num(out, "enterprises_served", m_num(m, "enterprises_served"));
    fputs("</tr>\n<tr><td>拒绝 Refusals</td>", out);
    td_num(out, "refusals_total", m_num(m, "refusals_total"));
    fputs("</tr>\n<tr><td>原始明细披露 Raw-detail disclosures</td>", out);
    td_num(out, "raw_disclosures_total", m_num(m, "raw_disclosures_total"));
    fputs("</tr>\n<tr><td>核验项 Checks verified</td>", out);
    td_num(out, "checks", m_num(json_object_get(m, "checks"), "asked"));
    fputs("</tr>\n<tr><td>撤回授权 Consents withdrawn</td>", out);
    td_num(out, "revocations_total", m_num(m, "revocations_total"));
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
            td(out, m_str(e, "bank"));
            td(out, m_str(e, "name"));
            td(out, json_is_true(json_object_get(e, "suspended"))
                    ? "暂停 suspended" : "准入 admitted");
            fputs("</tr>\n", out);
        }
        fputs("</table>\n", out);
    }

    html_head(out, S_SERVED);
    a = json_object_get(m, "banks_served");
    svg_bars(out, "chart-banks", a, "bank", bank_ser, bank_names, blue_red,
             2);
    html_table(out, a, "<table id=banks-served>\n<tr><th>银行 Bank</th>"
               "<th>放行 Allowed</th><th>拒绝 Refused</th><th>企业数 "
               "Enterprises</th></tr>\n");
    json_array_foreach(a, i, e) {
        fputs("<tr>", out);
        td_label(out, e, "bank", "");
        td_num(out, "allowed", m_num(e, "allowed"));
        td_num(out, "refused", m_num(e, "refused"));
        td_num(out, "enterprises", m_num(e, "enterprises"));
        fputs("</tr>\n", out);
    }
    html_table_end(out, a);

    html_head(out, S_ENTERPRISES);
    fprintf(out, "<p>放行请求涉及的不同企业 Distinct enterprises in allowed "
            "requests: <strong data-figure=enterprises>%lld</strong></p>\n",
            m_num(m, "enterprises_served"));

    html_head(out, S_CATEGORIES);
    a = json_object_get(m, "categories");
    svg_bars(out, "chart-categories", a, "category", cat_ser, cat_names,
             blue_green_red, 3);
    html_table(out, a, "<table id=categories>\n<tr><th>类别 Category</th>"
               "<th>查询 Queries</th><th>核验 Verifications</th><th>原始明细 "
               "Raw</th><th>拒绝 Refused</th><th>仅报告 Report-only</th>"
               "<th>核验项 Checks</th><th>相符 Matched</th><th>不符 Not "
               "matched</th><th>无值 Absent</th></tr>\n");
    figure_rows(out, a, "category", category_figures, NCATEGORY_FIGURES);

    html_head(out, S_PURPOSES);
    a = json_object_get(m, "purposes");
    html_table(out, a, "<table id=purposes>\n<tr><th>用途 Purpose</th>"
               "<th>决定 Decisions</th><th>放行 Allowed</th><th>拒绝 "
               "Refused</th><th>仅报告 Report-only</th></tr>\n");
    figure_rows(out, a, "purpose", purpose_figures, PURPOSE_FIGURES);

    html_head(out, S_RAW);
    fprintf(out, "<p>合计 Total: <strong data-figure=raw_total>%lld</strong>"
            "</p>\n", m_num(m, "raw_disclosures_total"));
    a = json_object_get(m, "raw_disclosures");
    html_table(out, a, "<table id=raw>\n<tr><th>银行 Bank</th><th>类别 "
               "Category</th><th>次数 Count</th></tr>\n");
    json_array_foreach(a, i, e) {
        fputs("<tr>", out);
        td_label(out, e, "bank", "");
        td_label(out, e, "category", "(无 none)");
        td_num(out, "count", m_num(e, "count"));
        fputs("</tr>\n", out);
    }
    html_table_end(out, a);

    html_head(out, S_REFUSALS);
    /* the chart sums per reason; the table keeps bank and reason */
    svg_bars(out, "chart-refusals", json_object_get(m, "reasons"), "reason",
             ref_ser, ref_names, red, 1);
    fprintf(out, "<p>合计 Total: <strong data-figure=refusals_total>%lld"
            "</strong></p>\n", m_num(m, "refusals_total"));
    a = json_object_get(m, "refusals");
    html_table(out, a, "<table id=refusals>\n<tr><th>银行 Bank</th>"
               "<th>原因 Reason</th><th>次数 Count</th></tr>\n");
    json_array_foreach(a, i, e) {
        fputs("<tr>", out);
        td_label(out, e, "bank", "(未识别 unknown)");
        td_label(out, e, "reason", "");
        td_num(out, "count", m_num(e, "count"));
        fputs("</tr>\n", out);
    }
    html_table_end(out, a);

    html_head(out, S_POLICIES);
    a = json_object_get(m, "policies");
    html_table(out, a, "<table id=policies>\n<tr><th>版本 Version</th>"
               "<th>SHA-256</th><th>决定 Decisions</th><th>首次 First</th>"
               "<th>末次 Last</th></tr>\n");
    json_array_foreach(a, i, e) {
        /* one line a row: a long version ends in an ellipsis, the digest
         * is cut to 12 hex digits; each whole in its title and, for
         * print, the digest in a footnote */
        fputs("<tr><td class=v title=\"", out);
        h(out, m_str(e, "version"));
        fputs("\">", out);
        h(out, m_str(e, "version"));
        fputs("</td><td class=sha><code title=\"", out);
        h(out, m_str(e, "sha256"));
        fputs("\">", out);
        h(out, sha_short(m_str(e, "sha256"), sha));
        fprintf(out, "…</code><sup>[%zu]</sup></td>", i + 1);
        td_num(out, "decisions", m_num(e, "decisions"));
        td_time(out, m_str(e, "first"));
        td_time(out, m_str(e, "last"));
        fputs("</tr>\n", out);
    }
    html_table_end(out, a);
    if (json_array_size(a)) {
        fputs("<ol id=digests class=fn>\n", out);
        json_array_foreach(a, i, e) {
            fputs("<li>SHA-256 <code>", out);
            h(out, m_str(e, "sha256"));
            fputs("</code></li>\n", out);
        }
        fputs("</ol>\n", out);
    }

    html_head(out, S_INTEGRITY);
    fprintf(out, "<p>结论 Result: <strong id=integrity class=%s>%s</strong>"
            "</p>\n", json_is_true(json_object_get(in, "intact")) ? "ok"
                                                                 : "bad",
            integrity_zh(in));
    if (json_is_true(json_object_get(in, "checked"))) {
        fputs("<table id=integrity-figures>\n<tr><th>链 Chains</th><th>条目 "
              "Entries</th><th>断点 Breaks</th><th>本期断点 Breaks in period"
              "</th><th>未签名尾部 Unsigned tail</th></tr>\n<tr>", out);
        td_num(out, "chains", m_num(in, "chains"));
        td_num(out, "entries", m_num(in, "entries"));
        td_num(out, "breaks", m_num(in, "breaks"));
        td_num(out, "breaks_in_period", m_num(in, "breaks_in_period"));
        td_num(out, "unsigned_tail", m_num(in, "unsigned_tail"));
        fputs("</tr>\n</table>\n<ul>\n", out);
        json_array_foreach(json_object_get(in, "first_breaks"), i, e) {
            fputs("<li>", out);
            h(out, m_str(e, "kind"));
            fputs(" ", out);
            h(out, m_str(e, "time"));
            fputs(" <code>", out);
            h(out, m_str(e, "id"));
            fputs("</code> ", out);
            h(out, m_str(e, "detail"));
            fputs("</li>\n", out);
        }
        fputs("</ul>\n", out);
    }
    fputs("</body>\n</html>\n", out);
}
