/* The work report: counting (audit_report.c), the JSON model
 * (audit_model.c) and its renderers (audit_render.c). */
#ifndef CA_TOOLS_AUDIT_REPORT_H
#define CA_TOOLS_AUDIT_REPORT_H

#include <stdio.h>

#include <jansson.h>

#include <stdint.h>

#include "audit_names.h"
#include "audit_tool.h"
#include "audit_verify.h"

/* the fields decisions are counted by: bank, category, purpose,
 * decision, reason */
extern const ca_audit_fid report_dims[];
#define NDIMS 5

#define POLICIES_MAX 64
#define VCATS_MAX    256        /* categories of verifications joined */
#define SEP "\x1f"          /* joins two values into one map key */

typedef struct {
    char    *policy;
    size_t   decisions;
    int64_t  first, last;
} policy_seen;

/* The period's counts (audit_report.c). */
typedef struct {
    period       per;
    size_t       decisions, outcomes;
    strmap       by[NDIMS];     /* per report_dims */
    strmap       served;        /* distinct enterprises among allows */
    strmap       bank_allow, bank_deny, bank_ent;  /* bank / bank SEP ent */
    strmap       cat_query, cat_verify, cat_deny, cat_report;
    strmap       raw;           /* bank SEP category */
    strmap       refusals;      /* bank SEP reason */
    /* a verification's checks (contract §7): asked, per category, from the
     * allow decisions; answered, from their outcomes (joined by rid:
     * verify_rid counts 1 + the category's place in vcat) */
    strmap       cat_checks, cat_matched, cat_unmatched, cat_absent;
    strmap       verify_rid;
    char        *vcat[VCATS_MAX];
    size_t       nvcat;
    size_t       checks, matched, unmatched, absent;
    size_t       unlisted;      /* allowed verifications without `checks`
                                   (schema v1) */
    strmap       purpose_allow, purpose_deny, purpose_report;
    int64_t      first_ts, last_ts;     /* of the period's decisions; -1 */
    strmap       revoked_by;    /* revocation entries per `by` */
    size_t       revocations;
    policy_seen  policy[POLICIES_MAX];
    size_t       npolicies, policies_dropped;
} report_ctx;

void count(strmap *m, const char *k, size_t len);

/* Who issues the report and when (contract §9: a document to hand in). */
typedef struct {
    const char *issuer;         /* --issuer, or NULL */
    int64_t     generated;      /* Unix ms */
    const char *tz;
} report_meta;

/* Every figure of the report as one JSON object (audit_model.c): what
 * --format json prints and the other formats render.  v and ks: the
 * verification of the stream, or NULL when no key was given.  Beside
 * each code the model gives its name for people when nm knows it
 * ("bank_name", "category_name", "purpose_name", "reason_name"). */
json_t *report_model(const common_opts *co, const report_ctx *rp,
                     const names *nm, const av_run *v, const av_keys *ks,
                     const report_meta *meta);

#define TITLE_ZH "征信平台工作通报"
#define TITLE_EN "Work report of the credit-information platform"

/* the report's sections, and their headings: Chinese, English */
enum { S_PERIOD, S_SUMMARY, S_ADMITTED, S_SERVED, S_ENTERPRISES,
       S_CATEGORIES, S_PURPOSES, S_RAW, S_REFUSALS, S_POLICIES,
       S_INTEGRITY };
extern const char *const report_heading[][2];

#define NCATEGORY_FIGURES 9
extern const char *const category_figures[NCATEGORY_FIGURES];

/* members of the model: "" / 0 / none when absent */
const char *m_str(json_t *o, const char *k);
long long m_num(json_t *o, const char *k);
const char *m_when(json_t *m, const char *k, const char *none);
const char *integrity_zh(json_t *in);
/* A code with its name for people, "纳税信息 (tax)"; the code alone when
 * the model has no "<k>_name"; none when the code is empty. */
const char *m_label(json_t *o, const char *k, const char *none, char *buf,
                    size_t size);
/* The first 12 hex digits of a SHA-256: a table cell; the whole digest
 * goes in a title or a footnote. */
#define SHA_SHORT 12
/* sha's first SHA_SHORT hex digits in buf (SHA_SHORT + 1 bytes), or sha
 * itself when it does not start with them. */
const char *sha_short(const char *sha, char *buf);
#define PURPOSE_FIGURES 4
extern const char *const purpose_figures[PURPOSE_FIGURES];

void report_text(FILE *out, const common_opts *co, report_ctx *rp,
                 const names *nm, const report_meta *meta);
void render_md(FILE *out, json_t *m);
/* excel: a UTF-8 byte order mark first (--excel) */
void render_csv(FILE *out, json_t *m, int excel);
void render_html(FILE *out, json_t *m);

#endif
