/*
 * Names for people beside the trail's codes (contract §9): a bank's from the
 * gateway's banks file (--banks), a category's and a purpose's from the
 * policy (--policy, its optional name_zh and name), a reason's from the
 * engine's table (core/reason.h), an enterprise's from a file the
 * regulator gives (--enterprises): the trail holds only the USCC.
 */
#ifndef CA_TOOLS_AUDIT_NAMES_H
#define CA_TOOLS_AUDIT_NAMES_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "policy/policy.h"

/* options of report, export and query, above audit_tool.h's OPT_* */
enum {
    OPT_POLICY = 400, OPT_ENTERPRISES, OPT_ISSUER, OPT_EXCEL, OPT_VIEW,
    OPT_FULL
};

#define NAMES_LONGOPTS \
    {"banks", required_argument, NULL, OPT_BANKS}, \
    {"policy", required_argument, NULL, OPT_POLICY}

#define ENTERPRISES_LONGOPT \
    {"enterprises", required_argument, NULL, OPT_ENTERPRISES}

#define NAMES_HELP \
    "  --banks FILE                  the gateway's banks file: bank names\n" \
    "  --policy FILE                 the policy: names of categories and\n" \
    "                                purposes (name_zh, name)\n"

#define ENTERPRISES_HELP \
    "  --enterprises FILE            enterprise names (the trail holds only\n" \
    "                                the USCC): JSON [{\"uscc\", \"name\"}]\n" \
    "                                or {\"USCC\": \"name\"}\n"

typedef struct {
    const char *banks_file, *policy_file, *enterprises_file;
    ca_banks   *banks;
    ca_policy  *policy;
    json_t     *enterprises;        /* USCC -> name */
} names;

/* 1 if ch was one of NAMES_LONGOPTS (noted), else 0. */
int names_opt(names *n, int ch, const char *arg);
/* Reads the files given: 0, or EXIT_USAGE after a message. */
int names_load(names *n);
void names_free(names *n);

/* A name, or NULL when none is known.  Category and purpose: name_zh,
 * else name. */
const char *bank_name(const names *n, const char *code, size_t len);
const char *enterprise_name(const names *n, const char *uscc, size_t len);
const char *category_name(const names *n, const char *code, size_t len);
const char *purpose_name(const names *n, const char *code, size_t len);
/* A reason code's Chinese label; NULL for "" and an unknown code. */
const char *reason_name(const char *code, size_t len);

/* A name on a terminal: as it is when it is printable UTF-8 (Chinese
 * included), else quoted and escaped as text_value() does. */
void print_name(FILE *out, const char *s);

/* "credit-audit: " and the message, then where the options are told (the
 * whole usage would bury the message); returns EXIT_USAGE. */
int short_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "allow" -> "放行", "query" -> "查询": the decision and mode words. */
const char *word_zh(const char *word, size_t len);

#endif
