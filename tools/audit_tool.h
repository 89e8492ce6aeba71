/*
 * credit-audit's pieces (tools/credit-audit.c and tools/audit_*.c): the
 * options every command takes, the stream read a page at a time, entries,
 * periods and the output encodings.
 */
#ifndef CA_TOOLS_AUDIT_TOOL_H
#define CA_TOOLS_AUDIT_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <getopt.h>

#include <hiredis/hiredis.h>

#include "audit/audit.h"
#include "csvout.h"
#include "common.h"
#include "core/core.h"

#define PAGE 1000

#define COMMON_OPTS \
    "common options:\n" \
    TOOL_REDIS_HELP \
    "  --stream KEY                  audit stream (default credit:audit)\n" \
    TOOL_TZ_HELP \
    "  --json                        machine-readable output\n" \
    "  --help, --version             this text, the tool's version\n"

#define TIME_NOTE \
    "T is Unix seconds or ISO 8601: 2026-11, 2026-11-01, 2026-11-01T08:00,\n" \
    "2026-11-01T08:00:00.250+08:00, 2026-11-01T00:00:00Z; without an\n" \
    "offset it is in --tz.  --since is inclusive and --until exclusive, so\n" \
    "consecutive periods never overlap; --since 2026-11 starts at the\n" \
    "month's first instant.  --month YYYY-MM is the whole month in --tz.\n" \
    "Times are the gateway's `ts`; output shows `time` (ISO, --tz) next\n" \
    "to it.\n"

typedef struct {
    tool_redis  redis;
    const char *stream;
    const char *pubkey[16];     /* --pubkey, repeatable */
    size_t      npubkeys;
    const char *keyring;
    int         json;
} common_opts;

enum {
    OPT_STREAM = 256, OPT_PUBKEY, OPT_JSON, OPT_FOLLOW, OPT_ENTERPRISE,
    OPT_BANK, OPT_CONSENT, OPT_DECISION, OPT_REASON, OPT_EVENT, OPT_SINCE,
    OPT_UNTIL, OPT_MONTH, OPT_FORMAT, OPT_OUT, OPT_KEYRING, OPT_BANKS,
    OPT_BEFORE, OPT_DRY_RUN, OPT_RESUME, OPT_ANCHOR
};

#define COMMON_LONGOPTS \
    TOOL_REDIS_LONGOPTS, \
    {"stream", required_argument, NULL, OPT_STREAM}, \
    {"pubkey", required_argument, NULL, OPT_PUBKEY}, \
    {"keyring", required_argument, NULL, OPT_KEYRING}, \
    {"tz", required_argument, NULL, TOOL_OPT_TZ}, \
    {"json", no_argument, NULL, OPT_JSON}, \
    {"help", no_argument, NULL, 'h'}

void common_init(common_opts *co);
/* getopt_long() with the common options taken care of: the command's next
 * own option, -1 at the end, 0 after an error message (a bad --db, --tz,
 * a password on the command line). */
int next_opt(common_opts *co, int argc, char **argv, const char *shortopts,
             const struct option *opts);
int usage_error(const char *usage, const char *fmt, const char *arg);

/* One stream entry, pointing into a hiredis reply. */
typedef struct {
    const char   *id;
    size_t        n;
    const char  **name;
    size_t       *nlen;
    const char  **value;
    size_t       *vlen;
} entry;

typedef int (*entry_cb)(const entry *e, void *data);

int walk_entries(redisReply *arr, int reverse, entry_cb cb, void *data);
int reply_error(redisContext *rc, redisReply *r, const char *what);
int stream_exists(redisContext *rc, const char *stream);
/* Every entry from stream id `from` ("-": the start) in stream order, a
 * page at a time.  0, the callback's non-zero result, or EXIT_USAGE
 * after a Redis error; a stream that does not exist is EXIT_USAGE. */
int scan_stream_from(redisContext *rc, const char *stream, const char *from,
                     entry_cb cb, void *data, size_t *count);
int scan_stream(redisContext *rc, const char *stream, entry_cb cb,
                void *data, size_t *count);

/* Fields are named by the audit schema (lib/audit/auditschema.h). */
int field_eq(const char *s, size_t len, const char *want);
const char *get(const entry *e, ca_audit_fid id, size_t *len);
int has_value(const entry *e, ca_audit_fid id, const char *want);
/* event: one CA_EV_* bit */
int is_event(const entry *e, unsigned event);
int64_t entry_ts(const entry *e);

typedef struct {
    int         set;
    int64_t     since, until;       /* ms; [since, until) */
    const char *arg[3];             /* --since, --until, --month */
} period;

int in_period(const period *p, const entry *e);
/* After the options: no operand left, and the period (may be NULL) read
 * now that --tz is known.  0, or EXIT_USAGE after a message. */
int args_done(const char *usage, int argc, char **argv, period *p);
/* --since, --until, --month: noted, read by period_resolve() once every
 * option is parsed (--tz may come after them). */
void period_opt(period *p, int ch, const char *arg);
/* -1 after an error message. */
int period_resolve(period *p);

/* output encodings */
void json_str(FILE *out, const char *s, size_t len);
void text_value(FILE *out, const char *s, size_t len);
void html_text(FILE *out, const char *s, size_t len);
void print_json_entry(FILE *out, const entry *e, int with_time);
void print_entry(const common_opts *co, const entry *e);
/* The entry's ts in ISO 8601 (--tz) into buf; 0, or -1 without a ts. */
int entry_time(const entry *e, char *buf, size_t len);

/* a small string map (rids, counts, distinct values) */
typedef struct {
    char   *key;
    size_t  len;
    size_t  count;
} map_slot;

typedef struct {
    map_slot *slot;
    size_t    cap, n;
} strmap;

map_slot *map_find(strmap *m, const char *k, size_t len, int create);
void map_free(strmap *m);
/* The map's slots, most frequent first (ties by name); caller frees. */
map_slot **sorted_slots(const strmap *m);
/* ... by name. */
map_slot **named_slots(const strmap *m);

int cmd_verify(int argc, char **argv);
int cmd_anchor(int argc, char **argv);
int cmd_archive(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_ship(int argc, char **argv);
int cmd_findings(int argc, char **argv);
int cmd_proof(int argc, char **argv);         /* audit_proof.c */
int cmd_statement(int argc, char **argv);     /* audit_stmt.c */

#endif
