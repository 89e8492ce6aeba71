/*
 * credit-audit: the regulator's side of the audit trail (SPEC §7, §9).
 *
 *   tail     the last entries, optionally following the stream
 *   query    entries by enterprise, bank, consent, decision, reason, time
 *   verify   hash chains and signed checkpoints (lib/auditverify)
 *   export   JSON Lines or CSV, one line per entry with its stream id
 *   report   a period's figures for the platform's periodic work report
 *
 * Exit status: 0 success (verify: every chain intact), 1 a finding
 * (verify: any break), 2 usage or connection error.
 *
 * A command-line reader may block, so this uses synchronous hiredis and
 * reads the stream in pages of XRANGE COUNT 1000: memory stays bounded by
 * a page (verify keeps a small record per entry, see auditverify.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "audit.h"
#include "auditverify.h"

#define EXIT_FINDING 1
#define EXIT_USAGE   2
#define PAGE         1000

/* ---- usage ----------------------------------------------------------- */

#define COMMON_OPTS \
    "common options:\n" \
    "  --redis HOST:PORT|unix:PATH   Redis (default 127.0.0.1:6379)\n" \
    "  --stream KEY                  audit stream (default credit:audit)\n" \
    "  --json                        machine-readable output\n" \
    "  --help                        this text\n"

#define TIME_NOTE \
    "T is Unix seconds or an ISO-8601 date or date-time in UTC\n" \
    "(2026-01-31, 2026-01-31T08:00, 2026-01-31T08:00:00Z).  --since is\n" \
    "inclusive and --until exclusive, so consecutive periods never\n" \
    "overlap.  Times are the gateway's `ts`.\n"

static const char usage_main[] =
    "usage: credit-audit COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  tail     the last entries (--follow: keep reading)\n"
    "  query    entries by enterprise, bank, consent, decision, time\n"
    "  verify   hash chains and signed checkpoints (--pubkey)\n"
    "  export   JSON Lines or CSV\n"
    "  report   a period's figures per bank, category, purpose, decision\n"
    "           and reason, and distinct enterprises served\n"
    "\n"
    COMMON_OPTS
    "\n"
    "Exit status: 0 success (verify: every chain intact), 1 a finding\n"
    "(verify: any break), 2 usage or connection error.\n"
    "'credit-audit COMMAND --help' shows a command's options.\n";

static const char usage_tail[] =
    "usage: credit-audit tail [-n N] [--follow] [common options]\n"
    "\n"
    "Prints the last N entries (default 10), oldest first, one per line:\n"
    "stream id, then the fields in stored order.  --follow keeps waiting\n"
    "for new entries (Ctrl-C stops).  --json prints JSON Lines.\n"
    "\n" COMMON_OPTS;

static const char usage_query[] =
    "usage: credit-audit query [--enterprise USCC] [--bank CODE]\n"
    "         [--consent JTI] [--decision allow|deny|report] [--reason R]\n"
    "         [--event decision|outcome|checkpoint] [--since T]"
    " [--until T]\n"
    "         [common options]\n"
    "\n"
    "Prints the matching entries in stream order.  Enterprise, bank,\n"
    "consent, decision and reason are attributes of decision entries; an\n"
    "outcome entry matches when the decision with its rid matched (for\n"
    "--reason, also when the outcome's own reason is R, e.g. a filter\n"
    "failure after an allow).  Checkpoints match only when none of those\n"
    "five filters is given.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS;

static const char usage_verify[] =
    "usage: credit-audit verify --pubkey FILE [common options]\n"
    "\n"
    "Checks every writer's hash chain and every checkpoint signature with\n"
    "the gateway's Ed25519 public key (PEM).  Per chain: entries,\n"
    "checkpoints verified, last signed seq, unsigned tail (entries after\n"
    "the last verified checkpoint: a warning, not a break), duplicates\n"
    "(the same entry delivered twice: counted, not a break), and breaks\n"
    "with their stream id and kind: modified, inserted, deleted,\n"
    "reordered, truncated, bad_signature.  See docs/audit-format.md.\n"
    "Exit status 1 if any chain has a break.\n"
    "\n" COMMON_OPTS
    "  --pubkey FILE                 the gateway's audit public key\n";

static const char usage_export[] =
    "usage: credit-audit export [--format jsonl|csv] [--since T]"
    " [--until T]\n"
    "         [--out FILE] [common options]\n"
    "\n"
    "One line per entry with its stream id (`id`).  jsonl (default): a\n"
    "JSON object of the fields in stored order.  csv (RFC 4180): a header,\n"
    "then the known fields in fixed columns and any other field as a JSON\n"
    "object in the `extra` column.  Invalid UTF-8 is shown as U+FFFD; the\n"
    "stream itself stays the evidence (verify reads it, not the export).\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS;

static const char usage_report[] =
    "usage: credit-audit report [--since T] [--until T] [common options]\n"
    "\n"
    "Counts the period's decision entries per bank, category, purpose,\n"
    "decision and reason, and the distinct enterprises served (distinct\n"
    "`enterprise` among allow decisions).  A text table, or with --json\n"
    "one JSON object.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS;

/* ---- options common to every command --------------------------------- */

typedef struct {
    const char *redis;
    const char *stream;
    const char *pubkey;
    int         json;
} common_opts;

enum {
    OPT_REDIS = 256, OPT_STREAM, OPT_PUBKEY, OPT_JSON, OPT_FOLLOW,
    OPT_ENTERPRISE, OPT_BANK, OPT_CONSENT, OPT_DECISION, OPT_REASON,
    OPT_EVENT, OPT_SINCE, OPT_UNTIL, OPT_FORMAT, OPT_OUT
};

#define COMMON_LONGOPTS \
    {"redis", required_argument, NULL, OPT_REDIS}, \
    {"stream", required_argument, NULL, OPT_STREAM}, \
    {"pubkey", required_argument, NULL, OPT_PUBKEY}, \
    {"json", no_argument, NULL, OPT_JSON}, \
    {"help", no_argument, NULL, 'h'}

/* Returns 1 if ch was a common option. */
static int
common_opt(common_opts *co, int ch)
{
    switch (ch) {
    case OPT_REDIS:  co->redis = optarg; return 1;
    case OPT_STREAM: co->stream = optarg; return 1;
    case OPT_PUBKEY: co->pubkey = optarg; return 1;
    case OPT_JSON:   co->json = 1; return 1;
    }
    return 0;
}

static void
common_init(common_opts *co)
{
    co->redis = "127.0.0.1:6379";
    co->stream = "credit:audit";
    co->pubkey = NULL;
    co->json = 0;
}

static int
usage_error(const char *usage, const char *fmt, const char *arg)
{
    if (fmt != NULL) {
        fputs("credit-audit: ", stderr);
        fprintf(stderr, fmt, arg);
        fputc('\n', stderr);
    }
    fputs(usage, stderr);
    return EXIT_USAGE;
}

/* ---- times ----------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm(): the
 * answer must not depend on the TZ of the regulator's machine). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t  era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned) (y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* T = Unix seconds, or YYYY-MM-DD[(T| )HH:MM[:SS]][Z|+00:00], UTC;
 * result in Unix milliseconds (the unit of `ts`). */
static int
parse_time(const char *s, int64_t *ms)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                31};
    int         y, mo, d, h = 0, mi = 0, se = 0;
    size_t      len = strlen(s), i;
    const char *p;

    for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        /* all digits: Unix seconds */
    }
    if (len > 0 && i == len) {
        if (len > 12) {
            return -1;
        }
        *ms = strtoll(s, NULL, 10) * 1000;
        return 0;
    }
    if (len < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo)
        || s[7] != '-' || digits(s + 8, 2, &d))
    {
        return -1;
    }
    p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi)) {
            return -1;
        }
        p += 6;
        if (*p == ':') {
            if (digits(p + 1, 2, &se)) {
                return -1;
            }
            p += 3;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (strcmp(p, "+00:00") == 0) {
        p += 6;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]
        || (mo == 2 && d == 29
            && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        || h > 23 || mi > 59 || se > 60)
    {
        return -1;
    }
    *ms = (days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400
           + h * 3600 + mi * 60 + se) * 1000;
    return 0;
}

static void
format_time(int64_t ms, char *out, size_t outlen)
{
    time_t    t = (time_t) (ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, outlen, "%lld", (long long) ms);
        return;
    }
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- Redis ----------------------------------------------------------- */

static redisContext *
redis_open(const char *addr)
{
    struct timeval tv = {10, 0};
    redisContext  *rc;
    char           host[256];
    const char    *colon;
    char          *end;
    long           port;

    if (strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr + 5, tv);
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon == addr
            || (size_t) (colon - addr) >= sizeof(host))
        {
            fprintf(stderr, "credit-audit: bad --redis %s (HOST:PORT or "
                    "unix:PATH)\n", addr);
            return NULL;
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end != '\0' || end == colon + 1 || port < 1
            || port > 65535)
        {
            fprintf(stderr, "credit-audit: bad --redis %s (HOST:PORT or "
                    "unix:PATH)\n", addr);
            return NULL;
        }
        memcpy(host, addr, (size_t) (colon - addr));
        host[colon - addr] = '\0';
        /* [::1]:6379 */
        if (host[0] == '[' && host[colon - addr - 1] == ']') {
            memmove(host, host + 1, (size_t) (colon - addr) - 2);
            host[colon - addr - 2] = '\0';
        }
        rc = redisConnectWithTimeout(host, (int) port, tv);
    }
    if (rc == NULL || rc->err) {
        fprintf(stderr, "credit-audit: redis %s: %s\n", addr,
                rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    return rc;
}

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

/* Walks an array of [id, [name, value, ...]]; -1 on a malformed reply,
 * else the callback's first non-zero result or 0. */
static int
walk_entries(redisReply *arr, int reverse, entry_cb cb, void *data)
{
    const char *names[2 * CA_ENTRY_FIELDS + 16];
    const char *values[2 * CA_ENTRY_FIELDS + 16];
    size_t      nlen[2 * CA_ENTRY_FIELDS + 16];
    size_t      vlen[2 * CA_ENTRY_FIELDS + 16];
    entry       e;
    int         rc;

    for (size_t k = 0; k < arr->elements; k++) {
        size_t      i = reverse ? arr->elements - 1 - k : k;
        redisReply *it = arr->element[i], *f;

        if (it->type != REDIS_REPLY_ARRAY || it->elements != 2
            || it->element[0]->type != REDIS_REPLY_STRING)
        {
            return -1;
        }
        f = it->element[1];
        e.id = it->element[0]->str;
        e.n = 0;
        if (f->type == REDIS_REPLY_ARRAY) {
            /* an entry wider than any the gateway writes is still shown
             * (its first fields) and still verified as not intact */
            for (size_t j = 0; j + 1 < f->elements
                 && e.n < sizeof(names) / sizeof(names[0]); j += 2)
            {
                if (f->element[j]->type != REDIS_REPLY_STRING
                    || f->element[j + 1]->type != REDIS_REPLY_STRING)
                {
                    return -1;
                }
                names[e.n] = f->element[j]->str;
                nlen[e.n] = f->element[j]->len;
                values[e.n] = f->element[j + 1]->str;
                vlen[e.n] = f->element[j + 1]->len;
                e.n++;
            }
        }
        e.name = names;
        e.nlen = nlen;
        e.value = values;
        e.vlen = vlen;
        rc = cb(&e, data);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
reply_error(redisContext *rc, redisReply *r, const char *what)
{
    if (r == NULL) {
        fprintf(stderr, "credit-audit: redis: %s: %s\n", what, rc->errstr);
    } else if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "credit-audit: redis: %s: %s\n", what, r->str);
    } else {
        fprintf(stderr, "credit-audit: redis: %s: unexpected reply\n", what);
    }
    freeReplyObject(r);
    return EXIT_USAGE;
}

/* A misspelt --stream must not read as an empty, "intact" trail. */
static int
stream_exists(redisContext *rc, const char *stream)
{
    redisReply *r = redisCommand(rc, "EXISTS %s", stream);

    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        return reply_error(rc, r, "EXISTS");
    }
    if (r->integer == 0) {
        fprintf(stderr, "credit-audit: stream %s does not exist\n", stream);
        freeReplyObject(r);
        return EXIT_USAGE;
    }
    freeReplyObject(r);
    return 0;
}

/* Every entry of the stream in stream order, a page at a time.  Returns
 * 0, the callback's non-zero result, or EXIT_USAGE after a Redis error. */
static int
scan_stream(redisContext *rc, const char *stream, entry_cb cb, void *data,
            size_t *count)
{
    char        start[64] = "-";
    redisReply *r;
    int         rv;

    *count = 0;
    for (;;) {
        r = redisCommand(rc, "XRANGE %s %s + COUNT %d", stream, start, PAGE);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            return reply_error(rc, r, "XRANGE");
        }
        if (r->elements == 0) {
            freeReplyObject(r);
            return *count == 0 ? stream_exists(rc, stream) : 0;
        }
        rv = walk_entries(r, 0, cb, data);
        if (rv != 0) {
            freeReplyObject(r);
            if (rv < 0) {
                fprintf(stderr, "credit-audit: redis: malformed XRANGE "
                        "reply\n");
                return EXIT_USAGE;
            }
            return rv;
        }
        *count += r->elements;
        /* the next page starts after the last id (exclusive range,
         * Redis 6.2+): ids are unique, so nothing is read twice */
        snprintf(start, sizeof(start), "(%s",
                 r->element[r->elements - 1]->element[0]->str);
        if (r->elements < PAGE) {
            freeReplyObject(r);
            return 0;
        }
        freeReplyObject(r);
    }
}

/* ---- entry helpers --------------------------------------------------- */

static int
field_eq(const char *s, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* First value of a field, or NULL. */
static const char *
get(const entry *e, const char *name, size_t *len)
{
    for (size_t i = 0; i < e->n; i++) {
        if (field_eq(e->name[i], e->nlen[i], name)) {
            *len = e->vlen[i];
            return e->value[i];
        }
    }
    *len = 0;
    return NULL;
}

static int
has_value(const entry *e, const char *name, const char *want)
{
    size_t      len;
    const char *v = get(e, name, &len);

    return v != NULL && field_eq(v, len, want);
}

/* The entry's ts in ms; -1 when absent or not a number. */
static int64_t
entry_ts(const entry *e)
{
    size_t      len;
    const char *v = get(e, "ts", &len);
    int64_t     n = 0;

    if (v == NULL || len == 0 || len > 18) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

typedef struct {
    int     set;
    int64_t since, until;       /* ms; [since, until) */
} period;

static int
in_period(const period *p, const entry *e)
{
    int64_t ts;

    if (!p->set) {
        return 1;
    }
    ts = entry_ts(e);
    return ts >= 0 && ts >= p->since && ts < p->until;
}

static int
period_opt(period *p, int ch, const char *arg)
{
    int64_t ms;

    if (parse_time(arg, &ms) != 0) {
        return -1;
    }
    if (!p->set) {
        p->set = 1;
        p->since = INT64_MIN;
        p->until = INT64_MAX;
    }
    if (ch == OPT_SINCE) {
        p->since = ms;
    } else {
        p->until = ms;
    }
    return 0;
}

/* ---- output ---------------------------------------------------------- */

/* Length of a valid UTF-8 sequence at s (1..4), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t left)
{
    size_t   n;
    uint32_t cp;

    if (s[0] < 0x80) {
        return 1;
    } else if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > left) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800)
        || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff))
    {
        return 0;
    }
    return n;
}

/* A JSON string; invalid UTF-8 becomes U+FFFD (JSON cannot carry it). */
static void
json_str(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;

    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);

        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
        } else if (n > 1) {
            fwrite(p + i, 1, n, out);
            i += n;
        } else if (p[i] == '"' || p[i] == '\\') {
            fprintf(out, "\\%c", p[i++]);
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            fprintf(out, "\\u%04x", p[i++]);
        } else {
            fputc(p[i++], out);
        }
    }
    fputc('"', out);
}

static void
print_json_entry(FILE *out, const entry *e)
{
    fputs("{\"id\":", out);
    json_str(out, e->id, strlen(e->id));
    for (size_t i = 0; i < e->n; i++) {
        fputc(',', out);
        json_str(out, e->name[i], e->nlen[i]);
        fputc(':', out);
        json_str(out, e->value[i], e->vlen[i]);
    }
    fputs("}\n", out);
}

/* A value for a terminal: quoted and escaped when it holds anything but
 * plain printable characters, so a hostile value (a client-chosen request
 * id, say) cannot forge a line or drive the terminal. */
static void
text_value(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    int                  plain = len > 0;

    for (size_t i = 0; i < len && plain; i++) {
        plain = p[i] > 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\';
    }
    if (plain) {
        fwrite(s, 1, len, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);

        if (n > 1 && !(n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)) {
            fwrite(p + i, 1, n, out);       /* printable non-ASCII */
            i += n;
        } else if (n == 1 && (p[i] == '"' || p[i] == '\\')) {
            fprintf(out, "\\%c", p[i++]);
        } else if (n == 1 && p[i] >= 0x20 && p[i] < 0x7f) {
            fputc(p[i++], out);
        } else {
            fprintf(out, "\\x%02x", p[i++]);
        }
    }
    fputc('"', out);
}

static void
print_text_entry(FILE *out, const entry *e)
{
    fputs(e->id, out);
    for (size_t i = 0; i < e->n; i++) {
        fputc(' ', out);
        text_value(out, e->name[i], e->nlen[i]);
        fputc('=', out);
        text_value(out, e->value[i], e->vlen[i]);
    }
    fputc('\n', out);
}

static void
print_entry(const common_opts *co, const entry *e)
{
    if (co->json) {
        print_json_entry(stdout, e);
    } else {
        print_text_entry(stdout, e);
    }
}

/* ---- a small string map (rids, counts, distinct values) --------------- */

typedef struct {
    char   *key;
    size_t  len;
    size_t  count;
} map_slot;

typedef struct {
    map_slot *slot;
    size_t    cap, n;
} strmap;

static uint64_t
hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char) s[i]) * 1099511628211ULL;
    }
    return h;
}

static map_slot *
map_find(strmap *m, const char *k, size_t len, int create)
{
    size_t j;

    if (create && (m->n + 1) * 2 > m->cap) {
        size_t    ncap = m->cap ? m->cap * 2 : 64;
        map_slot *ns = calloc(ncap, sizeof(*ns));

        if (ns == NULL) {
            fputs("credit-audit: out of memory\n", stderr);
            exit(EXIT_USAGE);
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->slot[i].key != NULL) {
                j = hash_bytes(m->slot[i].key, m->slot[i].len) & (ncap - 1);
                while (ns[j].key != NULL) {
                    j = (j + 1) & (ncap - 1);
                }
                ns[j] = m->slot[i];
            }
        }
        free(m->slot);
        m->slot = ns;
        m->cap = ncap;
    }
    if (m->cap == 0) {
        return NULL;
    }
    j = hash_bytes(k, len) & (m->cap - 1);
    while (m->slot[j].key != NULL) {
        if (m->slot[j].len == len && memcmp(m->slot[j].key, k, len) == 0) {
            return &m->slot[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    if (!create) {
        return NULL;
    }
    m->slot[j].key = malloc(len + 1);
    if (m->slot[j].key == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        exit(EXIT_USAGE);
    }
    memcpy(m->slot[j].key, k, len);
    m->slot[j].key[len] = '\0';
    m->slot[j].len = len;
    m->slot[j].count = 0;
    m->n++;
    return &m->slot[j];
}

static void
map_free(strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->slot[i].key);
    }
    free(m->slot);
    m->slot = NULL;
    m->cap = m->n = 0;
}

/* ---- tail ------------------------------------------------------------ */

static int
cb_print(const entry *e, void *data)
{
    print_entry(data, e);
    return 0;
}

static int
follow(redisContext *rc, const common_opts *co, char *last, size_t lastlen)
{
    struct timeval tv = {15, 0};
    redisReply    *r, *s;

    /* BLOCK 5 s and loop: the socket timeout stays a real error */
    redisSetTimeout(rc, tv);
    for (;;) {
        r = redisCommand(rc, "XREAD COUNT %d BLOCK 5000 STREAMS %s %s", PAGE,
                         co->stream, last);
        if (r == NULL || (r->type != REDIS_REPLY_ARRAY
                          && r->type != REDIS_REPLY_NIL))
        {
            return reply_error(rc, r, "XREAD");
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1
            && r->element[0]->type == REDIS_REPLY_ARRAY
            && r->element[0]->elements == 2)
        {
            s = r->element[0]->element[1];
            if (s->type != REDIS_REPLY_ARRAY
                || walk_entries(s, 0, cb_print, (void *) co) != 0)
            {
                freeReplyObject(r);
                fputs("credit-audit: redis: malformed XREAD reply\n",
                      stderr);
                return EXIT_USAGE;
            }
            if (s->elements > 0) {
                snprintf(last, lastlen, "%s",
                         s->element[s->elements - 1]->element[0]->str);
            }
            fflush(stdout);
        }
        freeReplyObject(r);
    }
}

static int
cmd_tail(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"follow", no_argument, NULL, OPT_FOLLOW},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    long          n = 10;
    int           ch, fol = 0, rv;
    char         *end, last[64] = "$";
    redisContext *rc;
    redisReply   *r;

    common_init(&co);
    while ((ch = getopt_long(argc, argv, "n:fh", opts, NULL)) != -1) {
        if (common_opt(&co, ch)) {
            continue;
        }
        switch (ch) {
        case 'n':
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 0 || n > 1000000) {
                return usage_error(usage_tail, "bad -n %s", optarg);
            }
            break;
        case 'f':
        case OPT_FOLLOW:
            fol = 1;
            break;
        case 'h':
            fputs(usage_tail, stdout);
            return 0;
        default:
            return usage_error(usage_tail, NULL, NULL);
        }
    }
    if (optind != argc) {
        return usage_error(usage_tail, "unexpected argument %s",
                           argv[optind]);
    }
    if ((rc = redis_open(co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    rv = 0;
    if (n > 0) {
        r = redisCommand(rc, "XREVRANGE %s + - COUNT %ld", co.stream, n);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            rv = reply_error(rc, r, "XREVRANGE");
            redisFree(rc);
            return rv;
        }
        if (walk_entries(r, 1, cb_print, &co) != 0) {
            freeReplyObject(r);
            redisFree(rc);
            fputs("credit-audit: redis: malformed XREVRANGE reply\n",
                  stderr);
            return EXIT_USAGE;
        }
        if (r->elements > 0) {
            snprintf(last, sizeof(last), "%s", r->element[0]->element[0]->str);
        }
        freeReplyObject(r);
    }
    fflush(stdout);
    if (fol) {
        if (strcmp(last, "$") == 0) {
            /* "$" would skip what arrives between two reads: start from
             * the current last id instead */
            r = redisCommand(rc, "XREVRANGE %s + - COUNT 1", co.stream);
            if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
                rv = reply_error(rc, r, "XREVRANGE");
                redisFree(rc);
                return rv;
            }
            snprintf(last, sizeof(last), "%s",
                     r->elements ? r->element[0]->element[0]->str : "0-0");
            freeReplyObject(r);
        }
        rv = follow(rc, &co, last, sizeof(last));
    }
    redisFree(rc);
    return rv;
}

/* ---- query ----------------------------------------------------------- */

typedef struct {
    const common_opts *co;
    const char        *enterprise, *bank, *consent, *decision, *reason,
                      *event;
    period             per;
    strmap             full;        /* rids of decisions matching all */
    strmap             but_reason;  /* ... all but --reason */
    size_t             shown;
} query_ctx;

static int
decision_attrs(const query_ctx *q)
{
    return q->enterprise || q->bank || q->consent || q->decision
           || q->reason;
}

static int
cb_query(const entry *e, void *data)
{
    query_ctx  *q = data;
    size_t      rlen;
    const char *rid = get(e, "rid", &rlen);
    int         match;

    if (has_value(e, "event", "decision")) {
        int others = (!q->enterprise
                      || has_value(e, "enterprise", q->enterprise))
                     && (!q->bank || has_value(e, "bank", q->bank))
                     && (!q->consent || has_value(e, "consent", q->consent))
                     && (!q->decision
                         || has_value(e, "decision", q->decision));

        match = others && (!q->reason || has_value(e, "reason", q->reason));
        /* remembered whatever the period: an outcome inside the period
         * joins a decision just before it */
        if (rid != NULL && decision_attrs(q)) {
            if (match) {
                map_find(&q->full, rid, rlen, 1);
            }
            if (others && q->reason) {
                map_find(&q->but_reason, rid, rlen, 1);
            }
        }
    } else if (has_value(e, "event", "outcome")) {
        match = !decision_attrs(q)
                || (rid != NULL
                    && (map_find(&q->full, rid, rlen, 0) != NULL
                        || (q->reason && has_value(e, "reason", q->reason)
                            && map_find(&q->but_reason, rid, rlen, 0)
                               != NULL)));
    } else {
        match = !decision_attrs(q);
    }

    if (match && (!q->event || has_value(e, "event", q->event))
        && in_period(&q->per, e))
    {
        print_entry(q->co, e);
        q->shown++;
    }
    return 0;
}

static int
cmd_query(int argc, char **argv)
{
    static char consent_id[CA_CONSENT_ID_MAX + 1];
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"enterprise", required_argument, NULL, OPT_ENTERPRISE},
        {"bank", required_argument, NULL, OPT_BANK},
        {"consent", required_argument, NULL, OPT_CONSENT},
        {"decision", required_argument, NULL, OPT_DECISION},
        {"reason", required_argument, NULL, OPT_REASON},
        {"event", required_argument, NULL, OPT_EVENT},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    query_ctx     q;
    int           ch, rv;
    size_t        count;
    redisContext *rc;

    common_init(&co);
    memset(&q, 0, sizeof(q));
    q.co = &co;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (common_opt(&co, ch)) {
            continue;
        }
        switch (ch) {
        case OPT_ENTERPRISE: q.enterprise = optarg; break;
        case OPT_BANK:       q.bank = optarg; break;
        case OPT_CONSENT:
            /* the trail holds a personal-looking jti as its digest */
            ca_audit_consent_id(optarg, strlen(optarg), consent_id);
            q.consent = consent_id;
            break;
        case OPT_DECISION:
            if (strcmp(optarg, "allow") && strcmp(optarg, "deny")
                && strcmp(optarg, "report"))
            {
                return usage_error(usage_query, "bad --decision %s "
                                   "(allow, deny or report)", optarg);
            }
            q.decision = optarg;
            break;
        case OPT_REASON:     q.reason = optarg; break;
        case OPT_EVENT:      q.event = optarg; break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (period_opt(&q.per, ch, optarg) != 0) {
                return usage_error(usage_query, "bad time %s", optarg);
            }
            break;
        case 'h':
            fputs(usage_query, stdout);
            return 0;
        default:
            return usage_error(usage_query, NULL, NULL);
        }
    }
    if (optind != argc) {
        return usage_error(usage_query, "unexpected argument %s",
                           argv[optind]);
    }
    if ((rc = redis_open(co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    rv = scan_stream(rc, co.stream, cb_query, &q, &count);
    redisFree(rc);
    map_free(&q.full);
    map_free(&q.but_reason);
    return rv;
}

/* ---- verify ---------------------------------------------------------- */

static int
cb_verify(const entry *e, void *data)
{
    if (ca_av_add(data, e->id, e->n, e->name, e->nlen, e->value, e->vlen)
        != 0)
    {
        fputs("credit-audit: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    return 0;
}

static void
verify_json(const common_opts *co, const ca_av *v)
{
    size_t nb = ca_av_breaks(v);

    fputs("{\"stream\":", stdout);
    json_str(stdout, co->stream, strlen(co->stream));
    printf(",\"intact\":%s,\"entries\":%zu,\"breaks\":%zu,\"chains\":[",
           nb ? "false" : "true", ca_av_entries(v), nb);
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        printf("%s{\"chain\":", i ? "," : "");
        json_str(stdout, c->chain, strlen(c->chain));
        printf(",\"entries\":%zu,\"first_seq\":%llu,\"last_seq\":%llu,"
               "\"checkpoints\":%zu,\"checkpoints_verified\":%zu,"
               "\"last_signed_seq\":",
               c->entries, (unsigned long long) c->first_seq,
               (unsigned long long) c->last_seq, c->checkpoints,
               c->checkpoints_verified);
        if (c->has_signed) {
            printf("%llu", (unsigned long long) c->last_signed_seq);
        } else {
            fputs("null", stdout);
        }
        printf(",\"unsigned_tail\":%zu,\"duplicates\":%zu,\"intact\":%s,"
               "\"breaks\":[", c->unsigned_tail, c->duplicates,
               c->nfindings ? "false" : "true");
        for (size_t j = 0; j < c->nfindings; j++) {
            const ca_av_finding *f = &c->findings[j];

            printf("%s{\"kind\":\"%s\",\"id\":", j ? "," : "",
                   ca_av_kind_name(f->kind));
            json_str(stdout, f->id, strlen(f->id));
            printf(",\"seq\":%llu,\"detail\":", (unsigned long long) f->seq);
            json_str(stdout, f->detail, strlen(f->detail));
            fputc('}', stdout);
        }
        fputs("]}", stdout);
    }
    fputs("]}\n", stdout);
}

static void
verify_text(const common_opts *co, const ca_av *v)
{
    size_t nb = ca_av_breaks(v), nc = ca_av_nchains(v);

    for (size_t i = 0; i < nc; i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        fputs("chain ", stdout);
        text_value(stdout, c->chain[0] ? c->chain : "(none)",
                   c->chain[0] ? strlen(c->chain) : 6);
        printf(": %s\n", c->nfindings ? "BROKEN" : "intact");
        printf("  entries %zu (seq %llu..%llu), checkpoints %zu verified "
               "%zu, last signed seq ", c->entries,
               (unsigned long long) c->first_seq,
               (unsigned long long) c->last_seq, c->checkpoints,
               c->checkpoints_verified);
        if (c->has_signed) {
            printf("%llu", (unsigned long long) c->last_signed_seq);
        } else {
            fputs("none", stdout);
        }
        printf(", unsigned tail %zu, duplicates %zu\n", c->unsigned_tail,
               c->duplicates);
        for (size_t j = 0; j < c->nfindings; j++) {
            const ca_av_finding *f = &c->findings[j];

            printf("  %-13s %s seq %llu: %s\n", ca_av_kind_name(f->kind),
                   f->id, (unsigned long long) f->seq, f->detail);
        }
    }
    printf("%s: %zu chain%s, %zu entries, %zu break%s: %s\n", co->stream, nc,
           nc == 1 ? "" : "s", ca_av_entries(v), nb, nb == 1 ? "" : "s",
           nb ? "NOT INTACT" : "intact");
}

static int
cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    int           ch, rv;
    size_t        count;
    char          err[512];
    EVP_PKEY     *key;
    ca_av        *v;
    redisContext *rc;

    common_init(&co);
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (common_opt(&co, ch)) {
            continue;
        }
        if (ch == 'h') {
            fputs(usage_verify, stdout);
            return 0;
        }
        return usage_error(usage_verify, NULL, NULL);
    }
    if (optind != argc) {
        return usage_error(usage_verify, "unexpected argument %s",
                           argv[optind]);
    }
    /* without the key a forger's re-hashed chain looks intact: refuse
     * rather than report a verification that proves nothing */
    if (co.pubkey == NULL) {
        return usage_error(usage_verify, "%s", "verify needs --pubkey");
    }
    key = ca_audit_key_load(co.pubkey, 0, err, sizeof(err));
    if (key == NULL) {
        fprintf(stderr, "credit-audit: %s\n", err);
        return EXIT_USAGE;
    }
    if ((rc = redis_open(co.redis)) == NULL) {
        EVP_PKEY_free(key);
        return EXIT_USAGE;
    }
    v = ca_av_new(key);
    if (v == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        rv = EXIT_USAGE;
    } else {
        rv = scan_stream(rc, co.stream, cb_verify, v, &count);
    }
    redisFree(rc);
    if (rv == 0 && ca_av_finish(v) != 0) {
        fputs("credit-audit: out of memory\n", stderr);
        rv = EXIT_USAGE;
    }
    if (rv == 0) {
        if (count == 0) {
            fprintf(stderr, "credit-audit: stream %s is empty\n",
                    co.stream);
        }
        if (co.json) {
            verify_json(&co, v);
        } else {
            verify_text(&co, v);
        }
        rv = ca_av_breaks(v) ? EXIT_FINDING : 0;
    }
    ca_av_free(v);
    EVP_PKEY_free(key);
    return rv;
}

/* ---- export ---------------------------------------------------------- */

/* Fixed CSV columns: every field SPEC §7 names, in the order entries
 * carry them; anything else goes to `extra`. */
static const char *const csv_cols[] = {
    "v", "event", "ts", "gw", "rid", "bank", "cert", "ip", "method", "path",
    "category", "enterprise", "purpose", "consent", "mode", "detail",
    "decision", "reason", "policy", "status", "bytes", "disclosed",
    "masked", "withheld", "upstream_ms", "covers", "head", "sig", "chain",
    "seq", "prev", "hash", NULL
};

typedef struct {
    FILE   *out;
    int     csv;
    period  per;
    size_t  written;
} export_ctx;

static void
csv_field(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    int                  quote = 0;

    for (size_t i = 0; i < len && !quote; i++) {
        quote = p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n';
    }
    if (quote) {
        fputc('"', out);
    }
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);

        if (n == 0) {
            fputs("\xef\xbf\xbd", out);     /* U+FFFD */
            i++;
        } else {
            if (n == 1 && p[i] == '"') {
                fputc('"', out);
            }
            fwrite(p + i, 1, n, out);
            i += n;
        }
    }
    if (quote) {
        fputc('"', out);
    }
}

static int
cb_export(const entry *e, void *data)
{
    export_ctx *x = data;

    if (!in_period(&x->per, e)) {
        return 0;
    }
    x->written++;
    if (!x->csv) {
        print_json_entry(x->out, e);
        return 0;
    }

    csv_field(x->out, e->id, strlen(e->id));
    for (size_t c = 0; csv_cols[c] != NULL; c++) {
        size_t      len;
        const char *v = get(e, csv_cols[c], &len);

        fputc(',', x->out);
        if (v != NULL) {
            csv_field(x->out, v, len);
        }
    }
    fputc(',', x->out);
    {
        /* unknown fields: a JSON object in one cell */
        char   *buf = NULL;
        size_t  blen = 0;
        FILE   *m = open_memstream(&buf, &blen);
        int     any = 0;

        if (m == NULL) {
            return EXIT_USAGE;
        }
        for (size_t i = 0; i < e->n; i++) {
            int known = 0;

            for (size_t c = 0; csv_cols[c] != NULL && !known; c++) {
                known = field_eq(e->name[i], e->nlen[i], csv_cols[c]);
            }
            if (!known) {
                fputc(any++ ? ',' : '{', m);
                json_str(m, e->name[i], e->nlen[i]);
                fputc(':', m);
                json_str(m, e->value[i], e->vlen[i]);
            }
        }
        if (any) {
            fputc('}', m);
        }
        fclose(m);
        csv_field(x->out, buf, blen);
        free(buf);
    }
    fputs("\r\n", x->out);
    return 0;
}

static int
cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"format", required_argument, NULL, OPT_FORMAT},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"out", required_argument, NULL, OPT_OUT},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    export_ctx    x;
    const char   *outfile = NULL;
    int           ch, rv;
    size_t        count;
    redisContext *rc;

    common_init(&co);
    memset(&x, 0, sizeof(x));
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (common_opt(&co, ch)) {
            continue;
        }
        switch (ch) {
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") == 0) {
                x.csv = 1;
            } else if (strcmp(optarg, "jsonl") == 0) {
                x.csv = 0;
            } else {
                return usage_error(usage_export, "bad --format %s (jsonl "
                                   "or csv)", optarg);
            }
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (period_opt(&x.per, ch, optarg) != 0) {
                return usage_error(usage_export, "bad time %s", optarg);
            }
            break;
        case OPT_OUT:
            outfile = optarg;
            break;
        case 'h':
            fputs(usage_export, stdout);
            return 0;
        default:
            return usage_error(usage_export, NULL, NULL);
        }
    }
    if (optind != argc) {
        return usage_error(usage_export, "unexpected argument %s",
                           argv[optind]);
    }
    if ((rc = redis_open(co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    x.out = stdout;
    if (outfile != NULL && (x.out = fopen(outfile, "w")) == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", outfile, strerror(errno));
        redisFree(rc);
        return EXIT_USAGE;
    }
    if (x.csv) {
        fputs("id", x.out);
        for (size_t c = 0; csv_cols[c] != NULL; c++) {
            fprintf(x.out, ",%s", csv_cols[c]);
        }
        fputs(",extra\r\n", x.out);
    }
    rv = scan_stream(rc, co.stream, cb_export, &x, &count);
    redisFree(rc);
    if (fflush(x.out) != 0 || ferror(x.out)
        || (x.out != stdout && fclose(x.out) != 0))
    {
        fprintf(stderr, "credit-audit: %s: write error\n",
                outfile ? outfile : "stdout");
        return EXIT_USAGE;
    }
    if (rv == 0 && outfile != NULL) {
        fprintf(stderr, "credit-audit: %zu entries written to %s\n",
                x.written, outfile);
    }
    return rv;
}

/* ---- report ---------------------------------------------------------- */

static const char *const dims[] = {
    "bank", "category", "purpose", "decision", "reason"
};
#define NDIMS (sizeof(dims) / sizeof(dims[0]))

typedef struct {
    period  per;
    size_t  decisions, outcomes;
    strmap  by[NDIMS];
    strmap  served;         /* distinct enterprises among allows */
} report_ctx;

static int
cb_report(const entry *e, void *data)
{
    report_ctx *rp = data;
    size_t      len;
    const char *v;

    if (!in_period(&rp->per, e)) {
        return 0;
    }
    if (has_value(e, "event", "outcome")) {
        rp->outcomes++;
        return 0;
    }
    if (!has_value(e, "event", "decision")) {
        return 0;
    }
    rp->decisions++;
    for (size_t d = 0; d < NDIMS; d++) {
        v = get(e, dims[d], &len);
        map_find(&rp->by[d], v ? v : "", len, 1)->count++;
    }
    v = get(e, "enterprise", &len);
    if (has_value(e, "decision", "allow") && v != NULL && len > 0) {
        map_find(&rp->served, v, len, 1)->count++;
    }
    return 0;
}

static int
slot_cmp(const void *a, const void *b)
{
    const map_slot *x = *(const map_slot *const *) a;
    const map_slot *y = *(const map_slot *const *) b;
    size_t          n;
    int             c;

    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    n = x->len < y->len ? x->len : y->len;
    c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The map's slots, most frequent first (ties by name). */
static map_slot **
sorted_slots(const strmap *m)
{
    map_slot **s = malloc((m->n ? m->n : 1) * sizeof(*s));
    size_t     k = 0;

    if (s == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        exit(EXIT_USAGE);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slot[i].key != NULL) {
            s[k++] = &m->slot[i];
        }
    }
    qsort(s, k, sizeof(*s), slot_cmp);
    return s;
}

static void
report_period(const period *p, char *since, char *until, size_t len)
{
    snprintf(since, len, "beginning");
    snprintf(until, len, "end");
    if (p->set && p->since != INT64_MIN) {
        format_time(p->since, since, len);
    }
    if (p->set && p->until != INT64_MAX) {
        format_time(p->until, until, len);
    }
}

static void
report_json(const common_opts *co, report_ctx *rp)
{
    char since[40], until[40];

    fputs("{\"stream\":", stdout);
    json_str(stdout, co->stream, strlen(co->stream));
    fputs(",\"since\":", stdout);
    if (rp->per.set && rp->per.since != INT64_MIN) {
        format_time(rp->per.since, since, sizeof(since));
        json_str(stdout, since, strlen(since));
    } else {
        fputs("null", stdout);
    }
    fputs(",\"until\":", stdout);
    if (rp->per.set && rp->per.until != INT64_MAX) {
        format_time(rp->per.until, until, sizeof(until));
        json_str(stdout, until, strlen(until));
    } else {
        fputs("null", stdout);
    }
    printf(",\"decisions\":%zu,\"outcomes\":%zu,\"enterprises_served\":%zu",
           rp->decisions, rp->outcomes, rp->served.n);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        printf(",\"%s\":{", dims[d]);
        for (size_t i = 0; i < rp->by[d].n; i++) {
            if (i) {
                fputc(',', stdout);
            }
            json_str(stdout, s[i]->key, s[i]->len);
            printf(":%zu", s[i]->count);
        }
        fputc('}', stdout);
        free(s);
    }
    fputs("}\n", stdout);
}

static void
report_text(const common_opts *co, report_ctx *rp)
{
    char since[40], until[40];

    report_period(&rp->per, since, until, sizeof(since));
    printf("audit report for %s, %s to %s (until exclusive)\n", co->stream,
           since, until);
    printf("  decisions                    %zu\n", rp->decisions);
    printf("  outcomes                     %zu\n", rp->outcomes);
    printf("  distinct enterprises served  %zu\n", rp->served.n);
    for (size_t d = 0; d < NDIMS; d++) {
        map_slot **s = sorted_slots(&rp->by[d]);

        printf("\n  %-28s %10s\n", dims[d], "decisions");
        for (size_t i = 0; i < rp->by[d].n; i++) {
            int w;

            fputs("  ", stdout);
            if (s[i]->len == 0) {
                fputs("(none)", stdout);
                w = 6;
            } else {
                text_value(stdout, s[i]->key, s[i]->len);
                w = (int) s[i]->len;
            }
            printf("%*s %10zu\n", w < 28 ? 28 - w : 0, "", s[i]->count);
        }
        free(s);
    }
}

static int
cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    report_ctx    rp;
    int           ch, rv;
    size_t        count;
    redisContext *rc;

    common_init(&co);
    memset(&rp, 0, sizeof(rp));
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (common_opt(&co, ch)) {
            continue;
        }
        switch (ch) {
        case OPT_SINCE:
        case OPT_UNTIL:
            if (period_opt(&rp.per, ch, optarg) != 0) {
                return usage_error(usage_report, "bad time %s", optarg);
            }
            break;
        case 'h':
            fputs(usage_report, stdout);
            return 0;
        default:
            return usage_error(usage_report, NULL, NULL);
        }
    }
    if (optind != argc) {
        return usage_error(usage_report, "unexpected argument %s",
                           argv[optind]);
    }
    if ((rc = redis_open(co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    rv = scan_stream(rc, co.stream, cb_report, &rp, &count);
    redisFree(rc);
    if (rv == 0) {
        if (co.json) {
            report_json(&co, &rp);
        } else {
            report_text(&co, &rp);
        }
    }
    for (size_t d = 0; d < NDIMS; d++) {
        map_free(&rp.by[d]);
    }
    map_free(&rp.served);
    return rv;
}

/* ---------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int       (*run)(int, char **);
    } cmds[] = {
        {"tail", cmd_tail}, {"query", cmd_query}, {"verify", cmd_verify},
        {"export", cmd_export}, {"report", cmd_report}
    };

    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "help") == 0)
    {
        fputs(usage_main, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) == 0) {
            /* the command parses its own argv, name as argv[0] */
            return cmds[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "credit-audit: unknown command %s\n", argv[1]);
    fputs(usage_main, stderr);
    return EXIT_USAGE;
}
