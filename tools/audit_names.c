/* Names beside the trail's codes: see audit_names.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_names.h"
#include "audit_tool.h"
#include "core/core.h"
#include "json/json.h"

/* An enterprises file is a directory of every enterprise the platform
 * serves: millions of lines at most. */
#define ENTERPRISES_FILE_MAX (256u << 20)

int
names_opt(names *n, int ch, const char *arg)
{
    switch (ch) {
    case OPT_BANKS:
        n->banks_file = arg;
        return 1;
    case OPT_POLICY:
        n->policy_file = arg;
        return 1;
    case OPT_ENTERPRISES:
        n->enterprises_file = arg;
        return 1;
    }
    return 0;
}

/* One enterprise: a valid USCC and a one-line name. */
static int
add_enterprise(json_t *map, const char *file, const char *where,
               json_t *uscc, json_t *name)
{
    char        why[160];
    const char *u = json_string_value(uscc), *s;

    if (u == NULL || ca_uscc_problem(u, json_string_length(uscc), why,
                                     sizeof(why)) != NULL)
    {
        fprintf(stderr, "credit-audit: --enterprises %s: %s: %s\n", file,
                where, u == NULL ? "the USCC must be a string" : why);
        return -1;
    }
    if ((s = json_string_value(name)) == NULL) {
        fprintf(stderr, "credit-audit: --enterprises %s: %s: the name must "
                "be a string\n", file, where);
        return -1;
    }
    for (; *s; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            fprintf(stderr, "credit-audit: --enterprises %s: %s: a control "
                    "character in the name\n", file, where);
            return -1;
        }
    }
    json_object_set(map, u, name);
    return 0;
}

/*
 * [{"uscc": ..., "name": ...}, ...] (other members ignored: the demo's
 * demo/enterprises.json is such a list), or {"USCC": "name", ...}.
 */
static json_t *
load_enterprises(const char *file)
{
    ca_error    err;
    json_t     *root, *map, *v;
    const char *k;
    char       *text, where[64];
    size_t      len, i;
    json_error_t je;

    if ((text = ca_read_file(file, ENTERPRISES_FILE_MAX, &len, &err))
        == NULL)
    {
        fprintf(stderr, "credit-audit: --enterprises: %s\n", err.text);
        return NULL;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &je);
    free(text);
    if (root == NULL) {
        fprintf(stderr, "credit-audit: --enterprises %s: invalid JSON at line "
                "%d column %d: %s\n", file, je.line, je.column, je.text);
        return NULL;
    }
    map = json_object();
    if (json_is_array(root)) {
        json_array_foreach(root, i, v) {
            snprintf(where, sizeof(where), "$[%zu]", i);
            if (add_enterprise(map, file, where, json_object_get(v, "uscc"),
                               json_object_get(v, "name")) != 0)
            {
                goto bad;
            }
        }
    } else if (json_is_object(root)) {
        json_object_foreach(root, k, v) {
            json_t *u = json_string(k);

            snprintf(where, sizeof(where), "member %.40s", k);
            if (u == NULL || add_enterprise(map, file, where, u, v) != 0) {
                json_decref(u);
                goto bad;
            }
            json_decref(u);
        }
    } else {
        fprintf(stderr, "credit-audit: --enterprises %s: want a list of "
                "{\"uscc\", \"name\"} or an object USCC -> name\n", file);
        goto bad;
    }
    json_decref(root);
    return map;

bad:
    json_decref(root);
    json_decref(map);
    return NULL;
}

int
names_load(names *n)
{
    ca_error err;

    if (n->banks_file != NULL
        && (n->banks = ca_banks_load(n->banks_file, &err)) == NULL)
    {
        fprintf(stderr, "credit-audit: --banks: %s\n", err.text);
        return EXIT_USAGE;
    }
    if (n->policy_file != NULL
        && (n->policy = ca_policy_load(n->policy_file, &err)) == NULL)
    {
        fprintf(stderr, "credit-audit: --policy: %s\n", err.text);
        return EXIT_USAGE;
    }
    if (n->enterprises_file != NULL
        && (n->enterprises = load_enterprises(n->enterprises_file)) == NULL)
    {
        return EXIT_USAGE;
    }
    return 0;
}

void
names_free(names *n)
{
    ca_banks_free(n->banks);
    ca_policy_free(n->policy);
    json_decref(n->enterprises);
    n->banks = NULL;
    n->policy = NULL;
    n->enterprises = NULL;
}

/* The code as a C string in buf (codes are short); 0 if it does not fit
 * or holds a NUL. */
static int
code_str(char *buf, size_t size, const char *code, size_t len)
{
    if (code == NULL || len == 0 || len >= size
        || memchr(code, '\0', len) != NULL)
    {
        return 0;
    }
    memcpy(buf, code, len);
    buf[len] = '\0';
    return 1;
}

const char *
bank_name(const names *n, const char *code, size_t len)
{
    char k[CA_CODE_MAX + 1];

    if (n->banks == NULL || !code_str(k, sizeof(k), code, len)) {
        return NULL;
    }
    for (size_t i = 0; i < n->banks->n; i++) {
        if (strcmp(n->banks->banks[i].code, k) == 0) {
            return n->banks->banks[i].name;
        }
    }
    return NULL;
}

const char *
enterprise_name(const names *n, const char *uscc, size_t len)
{
    char k[CA_USCC_LEN + 1];

    if (n->enterprises == NULL || !code_str(k, sizeof(k), uscc, len)) {
        return NULL;
    }
    return json_string_value(json_object_get(n->enterprises, k));
}

/* A policy's name for the code: name_zh, else name. */
static const char *
policy_name(const names *n, const char *code, size_t len,
            const char *(*lookup)(const ca_policy *, const char *, int))
{
    char        k[CA_CODE_MAX + 1];
    const char *zh;

    if (!code_str(k, sizeof(k), code, len)) {
        return NULL;
    }
    zh = lookup(n->policy, k, 1);
    return zh != NULL ? zh : lookup(n->policy, k, 0);
}

const char *
category_name(const names *n, const char *code, size_t len)
{
    return policy_name(n, code, len, ca_policy_category_name);
}

const char *
purpose_name(const names *n, const char *code, size_t len)
{
    return policy_name(n, code, len, ca_policy_purpose_name);
}

const char *
reason_name(const char *code, size_t len)
{
    char k[CA_CODE_MAX + 1];
    int  r;

    if (!code_str(k, sizeof(k), code, len) || (r = ca_reason_from_name(k)) < 0)
    {
        return NULL;
    }
    return ca_reason_zh((ca_reason) r);
}

const char *
word_zh(const char *word, size_t len)
{
    static const char *const words[][2] = {
        {"allow", "放行"}, {"deny", "拒绝"}, {"report", "仅报告"},
        {"query", "查询"}, {"verify", "核验"}, {"masked", "脱敏"},
        {"raw", "原始明细"}, {"enterprise", "企业"}, {"platform", "平台"},
    };

    for (size_t i = 0; word != NULL && i < sizeof(words) / sizeof(words[0]);
         i++)
    {
        if (strlen(words[i][0]) == len && memcmp(words[i][0], word, len) == 0)
        {
            return words[i][1];
        }
    }
    return NULL;
}

int
short_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    fputs("credit-audit: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n('credit-audit %s --help' lists the options)\n",
            command);
    return EXIT_USAGE;
}

void
print_name(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t               len = strlen(s);

    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq(p + i, len - i);

        /* C0, DEL, C1 (U+0080..U+009F) and bad UTF-8 drive a terminal */
        if (n == 0 || (n == 1 && (p[i] < 0x20 || p[i] == 0x7f))
            || (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0))
        {
            text_value(out, s, len);
            return;
        }
        i += n;
    }
    fputs(s, out);
}
