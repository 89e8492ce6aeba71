/*
 * Policy files (contract §6): purposes, token rules, categories with routes,
 * field allowlists with per-level treatments and classes, verify rules.
 * Loaded once at configuration time; read-only afterwards.
 */
#ifndef CA_POLICY_H
#define CA_POLICY_H

#include <stddef.h>

#include "jws/jws.h"
#include "core/core.h"

typedef enum {
    CA_TREAT_KEEP = 0,
    CA_TREAT_DROP,
    CA_TREAT_MASK,          /* a = leading, b = trailing code points kept */
    CA_TREAT_HASH,
    CA_TREAT_BUCKET,        /* width */
    CA_TREAT_YEAR,
} ca_treat_kind;

typedef struct {
    ca_treat_kind kind;
    unsigned      a, b;
    double        width;
    /* As the policy wrote it ("bucket:0.05"), for display: a double
     * prints 0.05 as 0.050000000000000003.  Owned by the policy; NULL in
     * a treatment built in code. */
    char         *text;
} ca_treatment;

typedef enum {
    CA_CLASS_PUBLIC = 0,
    CA_CLASS_PERSONAL,
    CA_CLASS_TRADE_SECRET,
} ca_class;

typedef struct {
    char        *path;          /* as written: "annual[].tax_paid" */
    ca_treatment masked;
    ca_treatment raw;
    ca_class     cls;
} ca_field;

/*
 * The allowlist compiled into a tree that the filter walks alongside the
 * document.  A node either names an object member (key) or stands for
 * every array element (each); field is set where a listed path ends.
 */
typedef struct ca_node {
    char           *key;        /* NULL for an array-element node */
    const ca_field *field;
    struct ca_node *children;
    size_t          n_children;
    struct ca_node *each;       /* the "[]" child, if any */
} ca_node;

#define CA_OP_EQ 1u
#define CA_OP_NE 2u
#define CA_OP_GT 4u
#define CA_OP_GE 8u
#define CA_OP_LT 16u
#define CA_OP_LE 32u

/* Bounds on policy paths: components counts every member name and every
 * "[]".  They keep the filter's recursion far below its depth limit. */
#define CA_PATH_MAX        256
#define CA_PATH_DEPTH_MAX  32

unsigned ca_op_from_name(const char *name);   /* 0 if unknown */
const char *ca_op_name(unsigned op);
/* The names of a set of ops, space-separated in a fixed order ("eq ge
 * le"), "" for none. */
void ca_ops_format(unsigned ops, char *buf, size_t len);

typedef struct {
    char    *path;              /* "annual[].tax_paid" */
    unsigned ops;
} ca_verify_rule;

typedef struct {
    char           *name;
    char           *description;    /* the officer's note, or NULL */
    char          **routes;
    size_t          n_routes;
    char          **purposes;
    size_t          n_purposes;
    int             raw_allowed;
    ca_field       *fields;
    size_t          n_fields;
    ca_node         tree;       /* root: an object node */
    ca_verify_rule *verify;
    size_t          n_verify;
    unsigned        verify_budget;  /* checks per verify field per consent */
    char           *label, *label_zh;   /* "name", "name_zh": for people;
                                           NULL when not given */
} ca_category;

/* Default and bound of a category's "verify_budget" (contract §2.1). */
#define CA_VERIFY_BUDGET_DEFAULT 3
#define CA_VERIFY_BUDGET_MAX     1000

/* The officer's notes ("description", top level and per category): shown
 * by the tools, never used by the gateway. */
#define CA_DESCRIPTION_MAX 4096

typedef struct {
    char          *file;
    char          *version;
    char          *description;     /* or NULL */
    char           sha256[65];  /* hex SHA-256 of the file's bytes */
    char         **purposes;
    size_t         n_purposes;
    /* a purpose's "name" and "name_zh", parallel to purposes; an element
     * is NULL when not given */
    char         **purpose_name, **purpose_name_zh;
    ca_token_rules token;
    ca_category   *categories;
    size_t         n_categories;
    /* Route templates split into segments at load time, so that matching
     * a request allocates nothing. */
    struct ca_route_tpl *route_tpls;
    size_t               n_route_tpls;
} ca_policy;

ca_policy *ca_policy_load(const char *file, ca_error *err);
/* The same validation on an in-memory document (tests, tools). */
ca_policy *ca_policy_parse(const char *text, size_t len, const char *name,
                           ca_error *err);
void ca_policy_free(ca_policy *p);

int ca_policy_knows_purpose(const ca_policy *p, const char *purpose);
int ca_category_allows_purpose(const ca_category *c, const char *purpose);

typedef enum {
    CA_ROUTE_NONE = 0,          /* no template matches */
    CA_ROUTE_MATCH,
    CA_ROUTE_BAD_USCC,          /* template matches, {uscc} is not valid */
} ca_route_result;

/* Matches a request path (no query string) against every route template;
 * on a match sets *cat and copies the {uscc} segment into uscc. */
ca_route_result ca_policy_match_route(const ca_policy *p, const char *path,
                                      size_t len, const ca_category **cat,
                                      char uscc[19]);

/* The verify rule for a check path with selections normalised to "[]";
 * NULL if the field is not verifiable. */
const ca_verify_rule *ca_category_verify_rule(const ca_category *c,
                                              const char *norm_path);

/*
 * The allowlist entry that governs the value at a normalised path
 * ("annual[].year"): the field listed for that path, or for an object or
 * array enclosing it (which keeps or drops its whole subtree).  NULL when
 * the value is withheld.
 */
const ca_field *ca_category_field_at(const ca_category *c,
                                     const char *norm_path);

/* The category named name, or NULL. */
const ca_category *ca_policy_find_category(const ca_policy *p,
                                           const char *name);

/* A purpose's or category's name for people (policy.md, "Names"): its
 * name_zh (zh) or name; NULL when the policy gives none or does not know
 * the code.  p may be NULL. */
const char *ca_policy_purpose_name(const ca_policy *p, const char *code,
                                   int zh);
const char *ca_policy_category_name(const ca_policy *p, const char *code,
                                    int zh);

/* "public", "personal", "trade_secret". */
const char *ca_class_name(ca_class cls);

/* Writes a treatment as the policy spells it ("mask:6,4", a bucket's width
 * as written); returns what snprintf returns. */
int ca_treatment_format(const ca_treatment *t, char *buf, size_t len);

/*
 * policy/policy.h is the component's public header: the rest of policy/'s
 * public API comes with it.  Internal: policy_int.h, treat.h,
 * policy_testing.h.
 */
#include "banks.h"
#include "checks.h"
#include "filter.h"
#include "policylint.h"

#endif
