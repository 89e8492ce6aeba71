/*
 * The work report's documents (credit-audit report --format md|csv, and
 * the helpers audit_html.c shares) rendered from the report's JSON model
 * (audit_model.c).  Headings are
 * Chinese with the English next to them: the reader is a Chinese
 * regulator, the operator may not be.  The HTML is one file with its
 * style and charts (SVG) inline: it opens without a network.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "audit_report.h"
#include "audit_tool.h"


/* section: Chinese heading, English heading */
const char *const report_heading[][2] = {
    {"报告期", "Period"},
    {"总体情况", "Summary"},
    {"一、准入银行", "Banks admitted"},
    {"二、服务银行", "Banks served"},
    {"三、服务企业", "Enterprises served"},
    {"四、各类信息查询与核验", "Queries and verifications per category"},
    {"五、各用途查询情况", "Requests per purpose"},
    {"六、原始明细披露", "Raw-detail disclosures"},
    {"七、拒绝情况(按银行与原因)", "Refusals by bank and reason"},
    {"八、在用策略版本", "Policy versions in force"},
    {"九、审计链完整性", "Integrity of the audit trail"},
};

/* A purpose's figures, in the order the tables show them. */
const char *const purpose_figures[PURPOSE_FIGURES] = {
    "decisions", "allowed", "refused", "reported"
};

/* A category's figures, in the order the tables show them. */
const char *const category_figures[NCATEGORY_FIGURES] = {
    "queries", "verifications", "raw", "refused", "reported", "checks",
    "matched", "unmatched", "absent"
};

const char *
m_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

long long
m_num(json_t *o, const char *k)
{
    return (long long) json_integer_value(json_object_get(o, k));
}

const char *
m_when(json_t *m, const char *k, const char *none)
{
    const char *s = json_string_value(json_object_get(m, k));

    return s ? s : none;
}

const char *
m_label(json_t *o, const char *k, const char *none, char *buf, size_t size)
{
    const char *code = m_str(o, k), *name;
    char        nk[64];

    if (code[0] == '\0') {
        return none;
    }
    snprintf(nk, sizeof(nk), "%s_name", k);
    name = m_str(o, nk);
    if (name[0] == '\0') {
        return code;
    }
    snprintf(buf, size, "%s (%s)", name, code);
    return buf;
}

const char *
sha_short(const char *sha, char *buf)
{
    size_t n = 0;

    while (n < SHA_SHORT && ((sha[n] >= '0' && sha[n] <= '9')
                             || (sha[n] >= 'a' && sha[n] <= 'f')))
    {
        n++;
    }
    if (n < SHA_SHORT) {
        return sha;             /* not a digest: shown whole */
    }
    memcpy(buf, sha, SHA_SHORT);
    buf[SHA_SHORT] = '\0';
    return buf;
}

const char *
integrity_zh(json_t *in)
{
    if (!json_is_true(json_object_get(in, "checked"))) {
        return "未核验 not checked (no --pubkey)";
    }
    return json_is_true(json_object_get(in, "intact"))
           ? "完整 intact" : "不完整 NOT INTACT";
}

/* ---- Markdown -------------------------------------------------------- */

/* Text in a Markdown document: no line break, no column separator, no
 * HTML, no link or emphasis. */
static void
md_text(FILE *out, const char *s)
{
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
}

/* A table cell. */
static void
md_cell(FILE *out, const char *s)
{
    fputs("| ", out);
    md_text(out, s);
    fputc(' ', out);
}

static void
md_num(FILE *out, long long n)
{
    fprintf(out, "| %lld ", n);
}

/* A table's header, or a line saying there is nothing to list. */
static void
md_table(FILE *out, json_t *rows, const char *header)
{
    fputs(json_array_size(rows) ? header : "无 None.\n", out);
}

/* A table's rows, each a labelled code and its figures. */
static void
md_figure_rows(FILE *out, json_t *rows, const char *code,
               const char *const *figures, size_t n)
{
    size_t  i;
    json_t *e;
    char    lb[512];

    json_array_foreach(rows, i, e) {
        md_cell(out, m_label(e, code, "(无 none)", lb, sizeof(lb)));
        for (size_t j = 0; j < n; j++) {
            md_num(out, m_num(e, figures[j]));
        }
        fputs("|\n", out);
    }
}

static void
md_head(FILE *out, int s)
{
    fprintf(out, "\n## %s %s\n\n", report_heading[s][0], report_heading[s][1]);
}

void
render_md(FILE *out, json_t *m)
{
    json_t *a, *e, *in = json_object_get(m, "integrity");
    size_t  i;
    char    lb[512], lb2[512];

    fprintf(out, "# %s\n\n%s\n\n", TITLE_ZH, TITLE_EN);
    fputs("| 发布单位 Issuer ", out);
    md_cell(out, m_when(m, "issuer", "未署名 not given (--issuer)"));
    fputs("|\n|---|---|\n| 生成时间 Generated ", out);
    md_cell(out, m_str(m, "generated"));
    fputs("|\n", out);
    md_head(out, S_PERIOD);
    fprintf(out, "%s — %s (%s; 截止时间不含 until exclusive)\n\n"
            "本期首末决定 First and last decision: %s — %s\n\n"
            "审计流 Stream: `%s`\n", m_when(m, "since", "始 beginning"),
            m_when(m, "until", "今 now"), m_str(m, "tz"),
            m_when(m, "first_decision", "无 none"),
            m_when(m, "last_decision", "无 none"), m_str(m, "stream"));

    md_head(out, S_SUMMARY);
    fputs("| 项目 Item | 数量 Count |\n|---|---:|\n", out);
    fprintf(out, "| 决定 Decisions | %lld |\n", m_num(m, "decisions"));
    fprintf(out, "| 服务企业 Enterprises served | %lld |\n",
            m_num(m, "enterprises_served"));
    fprintf(out, "| 拒绝 Refusals | %lld |\n", m_num(m, "refusals_total"));
    fprintf(out, "| 原始明细披露 Raw-detail disclosures | %lld |\n",
            m_num(m, "raw_disclosures_total"));
    fprintf(out, "| 核验项 Checks verified | %lld |\n",
            m_num(json_object_get(m, "checks"), "asked"));
    fprintf(out, "| 撤回授权 Consents withdrawn | %lld |\n",
            m_num(m, "revocations_total"));
    fprintf(out, "| 审计链 Audit trail | %s |\n", integrity_zh(in));

    md_head(out, S_ADMITTED);
    a = json_object_get(m, "banks_admitted");
    if (!json_is_array(a)) {
        fputs("未提供银行名录 No banks file given (--banks FILE).\n", out);
    } else {
        fputs("| 银行代码 Bank | 名称 Name | 状态 Status |\n|---|---|---|\n",
              out);
        json_array_foreach(a, i, e) {
            md_cell(out, m_str(e, "bank"));
            md_cell(out, m_str(e, "name"));
            md_cell(out, json_is_true(json_object_get(e, "suspended"))
                         ? "暂停 suspended" : "准入 admitted");
            fputs("|\n", out);
        }
    }

    md_head(out, S_SERVED);
    md_table(out, json_object_get(m, "banks_served"),
             "| 银行 Bank | 放行 Allowed | 拒绝 Refused | "
             "企业数 Enterprises |\n"
             "|---|---:|---:|---:|\n");
    json_array_foreach(json_object_get(m, "banks_served"), i, e) {
        md_cell(out, m_label(e, "bank", "", lb, sizeof(lb)));
        md_num(out, m_num(e, "allowed"));
        md_num(out, m_num(e, "refused"));
        md_num(out, m_num(e, "enterprises"));
        fputs("|\n", out);
    }

    md_head(out, S_ENTERPRISES);
    fprintf(out, "放行请求涉及的不同企业 Distinct enterprises in allowed "
            "requests: **%lld**\n", m_num(m, "enterprises_served"));

    md_head(out, S_CATEGORIES);
    md_table(out, json_object_get(m, "categories"),
             "| 类别 Category | 查询 Queries | 核验 Verifications | "
             "原始明细 Raw | 拒绝 Refused | 仅报告 Report-only | "
             "核验项 Checks | 相符 Matched | 不符 Not matched | "
             "无值 Absent |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    md_figure_rows(out, json_object_get(m, "categories"), "category",
                   category_figures, NCATEGORY_FIGURES);

    md_head(out, S_PURPOSES);
    md_table(out, json_object_get(m, "purposes"),
             "| 用途 Purpose | 决定 Decisions | 放行 Allowed | 拒绝 Refused | "
             "仅报告 Report-only |\n|---|---:|---:|---:|---:|\n");
    md_figure_rows(out, json_object_get(m, "purposes"), "purpose",
                   purpose_figures, PURPOSE_FIGURES);

    md_head(out, S_RAW);
    fprintf(out, "合计 Total: **%lld**\n\n", m_num(m, "raw_disclosures_total"));
    md_table(out, json_object_get(m, "raw_disclosures"),
             "| 银行 Bank | 类别 Category | 次数 Count |\n|---|---|---:|\n");
    json_array_foreach(json_object_get(m, "raw_disclosures"), i, e) {
        md_cell(out, m_label(e, "bank", "", lb, sizeof(lb)));
        md_cell(out, m_label(e, "category", "(无 none)", lb2, sizeof(lb2)));
        md_num(out, m_num(e, "count"));
        fputs("|\n", out);
    }

    md_head(out, S_REFUSALS);
    fprintf(out, "合计 Total: **%lld**\n\n", m_num(m, "refusals_total"));
    md_table(out, json_object_get(m, "refusals"),
             "| 银行 Bank | 原因 Reason | 次数 Count |\n|---|---|---:|\n");
    json_array_foreach(json_object_get(m, "refusals"), i, e) {
        md_cell(out, m_label(e, "bank", "(未识别 unknown)", lb, sizeof(lb)));
        md_cell(out, m_label(e, "reason", "", lb2, sizeof(lb2)));
        md_num(out, m_num(e, "count"));
        fputs("|\n", out);
    }

    md_head(out, S_POLICIES);
    md_table(out, json_object_get(m, "policies"),
             "| 版本 Version | SHA-256 | 决定 Decisions | 首次 First | "
             "末次 Last |\n|---|---|---:|---|---|\n");
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        md_cell(out, m_str(e, "version"));
        snprintf(lb, sizeof(lb), "%s… [%zu]",
                 sha_short(m_str(e, "sha256"), lb2), i + 1);
        md_cell(out, lb);
        md_num(out, m_num(e, "decisions"));
        md_cell(out, m_str(e, "first"));
        md_cell(out, m_str(e, "last"));
        fputs("|\n", out);
    }
    /* the whole digests under the table: a reader compares them with
     * credit-policy check's */
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        fprintf(out, "\n[%zu] SHA-256 ", i + 1);
        md_text(out, m_str(e, "sha256"));
        fputc('\n', out);
    }

    md_head(out, S_INTEGRITY);
    fprintf(out, "结论 Result: **%s**\n\n", integrity_zh(in));
    if (json_is_true(json_object_get(in, "checked"))) {
        fprintf(out, "| 链 Chains | 条目 Entries | 断点 Breaks | "
                "本期断点 Breaks in period | 未签名尾部 Unsigned tail |\n"
                "|---:|---:|---:|---:|---:|\n"
                "| %lld | %lld | %lld | %lld | %lld |\n",
                m_num(in, "chains"), m_num(in, "entries"), m_num(in, "breaks"),
                m_num(in, "breaks_in_period"), m_num(in, "unsigned_tail"));
        json_array_foreach(json_object_get(in, "first_breaks"), i, e) {
            fprintf(out, "%s- %s ", i ? "" : "\n", m_str(e, "kind"));
            md_cell(out, m_str(e, "time"));
            md_cell(out, m_str(e, "id"));
            md_cell(out, m_str(e, "detail"));
            fputc('\n', out);
        }
    }
}

/* ---- CSV ------------------------------------------------------------- */

/* One figure: section, item, detail, count, then the names for people
 * of item and detail (ia, da: their members in e; NULL: none). */
static void
figure_named(csv_out *c, const char *section, const char *item,
             const char *detail, long long n, json_t *e, const char *ia,
             const char *da)
{
    char k[64];

    csv_text(c, section);
    csv_text(c, item);
    csv_text(c, detail);
    csv_int(c, n);
    snprintf(k, sizeof(k), "%s_name", ia ? ia : "");
    csv_text(c, ia ? m_str(e, k) : NULL);
    snprintf(k, sizeof(k), "%s_name", da ? da : "");
    csv_text(c, da ? m_str(e, k) : NULL);
    csv_row(c);
}

static void
figure(csv_out *c, const char *section, const char *item,
       const char *detail, long long n)
{
    figure_named(c, section, item, detail, n, NULL, NULL, NULL);
}

/* A row that is not a count (who, when): the count cell empty. */
static void
about(csv_out *c, const char *section, const char *item, const char *detail)
{
    csv_text(c, section);
    csv_text(c, item);
    csv_text(c, detail);
    for (int i = 0; i < 3; i++) {
        csv_text(c, NULL);
    }
    csv_row(c);
}

void
render_csv(FILE *out, json_t *m, int excel)
{
    static const char *const head[] = {
        "section", "item", "detail", "count", "item_name", "detail_name"
    };
    json_t      *e, *v, *in = json_object_get(m, "integrity");
    size_t       i;
    csv_out      csv, *c = &csv;
    const char  *k;

    csv_begin(c, out);
    if (excel) {
        csv_bom(c);
    }
    for (i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        csv_text(c, head[i]);
    }
    csv_row(c);
    about(c, "issuer", m_when(m, "issuer", ""), "");
    about(c, "generated", m_str(m, "generated"), m_str(m, "tz"));
    figure(c, "period", m_when(m, "since", ""), m_when(m, "until", ""), 0);
    about(c, "decision_times", m_when(m, "first_decision", ""),
          m_when(m, "last_decision", ""));
    figure(c, "decisions", "", "", m_num(m, "decisions"));
    figure(c, "enterprises_served", "", "", m_num(m, "enterprises_served"));
    json_object_foreach(json_object_get(m, "checks"), k, v) {
        figure(c, "checks", k, "", (long long) json_integer_value(v));
    }
    json_object_foreach(json_object_get(m, "revocations"), k, v) {
        figure(c, "revocation", k, "", (long long) json_integer_value(v));
    }
    json_array_foreach(json_object_get(m, "banks_admitted"), i, e) {
        csv_text(c, "bank_admitted");
        csv_text(c, m_str(e, "bank"));
        csv_text(c, json_is_true(json_object_get(e, "suspended"))
                    ? "suspended" : "admitted");
        csv_int(c, 1);
        csv_text(c, m_str(e, "name"));
        csv_text(c, NULL);
        csv_row(c);
    }
    json_array_foreach(json_object_get(m, "banks_served"), i, e) {
        figure_named(c, "bank_served", m_str(e, "bank"), "allowed",
                     m_num(e, "allowed"), e, "bank", NULL);
        figure_named(c, "bank_served", m_str(e, "bank"), "refused",
                     m_num(e, "refused"), e, "bank", NULL);
        figure_named(c, "bank_served", m_str(e, "bank"), "enterprises",
                     m_num(e, "enterprises"), e, "bank", NULL);
    }
    json_array_foreach(json_object_get(m, "categories"), i, e) {
        for (size_t j = 0; j < NCATEGORY_FIGURES; j++) {
            figure_named(c, "category", m_str(e, "category"),
                         category_figures[j], m_num(e, category_figures[j]),
                         e, "category", NULL);
        }
    }
    json_array_foreach(json_object_get(m, "purposes"), i, e) {
        for (size_t j = 0; j < PURPOSE_FIGURES; j++) {
            figure_named(c, "purpose", m_str(e, "purpose"),
                         purpose_figures[j], m_num(e, purpose_figures[j]),
                         e, "purpose", NULL);
        }
    }
    json_array_foreach(json_object_get(m, "raw_disclosures"), i, e) {
        figure_named(c, "raw_disclosure", m_str(e, "bank"),
                     m_str(e, "category"), m_num(e, "count"), e, "bank",
                     "category");
    }
    json_array_foreach(json_object_get(m, "refusals"), i, e) {
        figure_named(c, "refusal", m_str(e, "bank"), m_str(e, "reason"),
                     m_num(e, "count"), e, "bank", "reason");
    }
    json_array_foreach(json_object_get(m, "policies"), i, e) {
        figure(c, "policy", m_str(e, "version"), m_str(e, "sha256"),
               m_num(e, "decisions"));
    }
    if (json_is_true(json_object_get(in, "checked"))) {
        figure(c, "integrity", json_is_true(json_object_get(in, "intact"))
               ? "intact" : "not_intact", "breaks", m_num(in, "breaks"));
        figure(c, "integrity", "", "breaks_in_period",
               m_num(in, "breaks_in_period"));
        figure(c, "integrity", "", "chains", m_num(in, "chains"));
        figure(c, "integrity", "", "entries", m_num(in, "entries"));
    } else {
        figure(c, "integrity", "not_checked", "", 0);
    }
}
