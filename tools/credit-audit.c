/*
 * credit-audit: the regulator's side of the audit trail (contract §7, §9).
 *
 *   tail     the last entries, optionally following the stream
 *   query    entries by enterprise, bank, consent, decision, reason, time
 *   verify   hash chains and signed checkpoints (tools/audit_verify.c)
 *   export   JSON Lines or CSV, one line per entry with its stream id
 *   report   a period's figures: the platform's periodic work report
 *            (tools/audit_report.c, audit_render.c)
 *   ship     the stream into the PostgreSQL archive (audit_ship*.c)
 *   findings what ship found, acknowledged (audit_findings.c)
 *   archive  a month of the archive as a verified export
 *            (audit_archive.c)
 *   proof    inclusion and consistency proofs of the Merkle log
 *            (audit_proof.c; the log: audit_mklog.c, audit_mkstore.c)
 *   statement an enterprise's access statement (audit_stmt*.c)
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

#include "audit_archread.h"
#include "audit_requests.h"
#include "audit_tool.h"
#include "core/core.h"

/* ---- usage ----------------------------------------------------------- */

static const char usage_main[] =
    "usage: credit-audit COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  tail     the last entries (--follow: keep reading)\n"
    "  query    requests (one line each; --full: the entries) by\n"
    "           enterprise, bank, consent, decision, reason, event, time\n"
    "  verify   hash chains and signed checkpoints (--pubkey, --keyring;\n"
    "           --resume: only what is new)\n"
    "  anchor   signed heads to a file outside Redis (--out); verify\n"
    "           --anchor FILE: nothing before them was dropped\n"
    "  export   JSON Lines or CSV: every entry, or one row per request\n"
    "  report   the period's work report (工作通报): md, csv, json, html\n"
    "  ship     the stream into the PostgreSQL archive, verified, then\n"
    "           trimmed (--archive CONNINFO; --init: the schema)\n"
    "  findings  the breaks ship found; --acknowledge ID\n"
    "  archive  a month of the archive as a verified export\n"
    "  proof    a request's entries with inclusion proofs against a signed\n"
    "           checkpoint; --consistency OLD NEW\n"
    "  statement  an enterprise's monthly access statement, with proofs\n"

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
    "         [--event E] [--since T] [--until T] [--month YYYY-MM]\n"
    "         [--full] [common options]\n"
    "\n"
    "Shows one line per request: time, bank, enterprise, category,\n"
    "purpose, mode, decision/reason and the HTTP status the bank got (its\n"
    "outcome joined by rid; for a refusal, the status of its reason; - while\n"
    "an allowed request has no outcome), and one line per consent withdrawn\n"
    "and per discontinuity.  --full (and --json, --event outcome, --event\n"
    "checkpoint) prints the matching entries themselves instead, every\n"
    "field, in stream order.  --enterprise must be a valid USCC (upper\n"
    "case, check character right): anything else is an error, not an\n"
    "empty answer.\n"
    "\n"
    "Filters (all given must match): E is decision, outcome, revocation,\n"
    "checkpoint or discontinuity.  Enterprise, bank, consent, decision and\n"
    "reason are attributes of decision entries; an outcome entry matches\n"
    "when the decision with its rid matched (for --reason, also when the\n"
    "outcome's own reason is R, e.g. a filter failure after an allow: the\n"
    "short view then shows that request); a revocation when its\n"
    "enterprise and consent match and no bank, decision or reason is asked\n"
    "for.  Checkpoints match only when none of those five filters is\n"
    "given.  When nothing matches, standard error says so (exit 0).\n"
    "\n"
    "With --archive, the archive is read for what the shipper moved out of\n"
    "Redis (its indexes answer --enterprise, --bank, --consent, --reason\n"
    "and the period) and Redis for the rest, each entry once.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS
    "  --full                        every field of every matching entry\n"
    ARCHIVE_READ_HELP;

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
    while ((ch = next_opt(&co, argc, argv, "n:fh", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        switch (ch) {
        case 'n':
            errno = 0;
            n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 0 || n > 1000000) {
                return usage_error(usage_tail, "bad -n %s "
                                   "(a count, 0 to 1000000)", optarg);
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
    if (args_done(usage_tail, argc, argv, NULL) != 0) {
        return EXIT_USAGE;
    }
    if ((rc = tool_redis_open(&co.redis)) == NULL) {
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
    /* an empty answer may be a misspelt --stream: say so (rc 2) */
    if (strcmp(last, "$") == 0 && (rv = stream_exists(rc, co.stream)) != 0) {
        redisFree(rc);
        return rv;
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
    int                entries;     /* --full: the entries, not requests */
    int                header;
    request_join       join;        /* the short view's requests */
} query_ctx;

static int
decision_attrs(const query_ctx *q)
{
    return q->enterprise || q->bank || q->consent || q->decision
           || q->reason;
}

static void
emit_line(const entry *e, const entry *out, void *data)
{
    query_ctx *q = data;

    short_line(stdout, e, out, &q->header);
    q->shown++;
}

/*
 * The short view: a request's line comes out when its outcome is in (or
 * late: audit_join.h).  With --reason, a decision that matches all but
 * the reason waits too: its outcome may carry the reason (a filter
 * failure after an allow), and only then is it shown.
 */
static void
short_view(query_ctx *q, const entry *e, int match, int tentative)
{
    if (is_event(e, CA_EV_OUTCOME)) {
        join_outcome(&q->join, e, q->reason != NULL
                                  && has_value(e, CA_F_REASON, q->reason));
        return;
    }
    if (is_event(e, CA_EV_CHECKPOINT)
        || (q->event && !has_value(e, CA_F_EVENT, q->event))
        || !in_period(&q->per, e))
    {
        return;
    }
    if (!is_event(e, CA_EV_DECISION)) {
        if (match) {
            join_add(&q->join, e, 0, 0);
        }
        return;
    }
    if (match || tentative) {
        join_add(&q->join, e, expects_outcome(e), !match);
    }
}

static int
cb_query(const entry *e, void *data)
{
    query_ctx  *q = data;
    size_t      rlen;
    const char *rid = get(e, CA_F_RID, &rlen);
    int         match, tentative = 0;

    if (is_event(e, CA_EV_DECISION)) {
        int others = (!q->enterprise
                      || has_value(e, CA_F_ENTERPRISE, q->enterprise))
                     && (!q->bank || has_value(e, CA_F_BANK, q->bank))
                     && (!q->consent || has_value(e, CA_F_CONSENT, q->consent))
                     && (!q->decision
                         || has_value(e, CA_F_DECISION, q->decision));

        match = others && (!q->reason || has_value(e, CA_F_REASON, q->reason));
        tentative = others && q->reason != NULL;
        /* remembered whatever the period: an outcome inside the period
         * joins a decision just before it */
        if (rid != NULL && decision_attrs(q) && q->entries) {
            if (match) {
                map_find(&q->full, rid, rlen, 1);
            }
            if (others && q->reason) {
                map_find(&q->but_reason, rid, rlen, 1);
            }
        }
    } else if (is_event(e, CA_EV_REVOCATION)) {
        /* a withdrawn consent names its enterprise and consent, no bank,
         * decision or reason */
        match = !q->bank && !q->decision && !q->reason
                && (!q->enterprise
                    || has_value(e, CA_F_ENTERPRISE, q->enterprise))
                && (!q->consent || has_value(e, CA_F_CONSENT, q->consent));
    } else if (is_event(e, CA_EV_OUTCOME)) {
        match = !decision_attrs(q)
                || (rid != NULL
                    && (map_find(&q->full, rid, rlen, 0) != NULL
                        || (q->reason && has_value(e, CA_F_REASON, q->reason)
                            && map_find(&q->but_reason, rid, rlen, 0)
                               != NULL)));
    } else {
        match = !decision_attrs(q);
    }

    if (!q->entries) {
        short_view(q, e, match, tentative);
        return 0;
    }
    if (match && (!q->event || has_value(e, CA_F_EVENT, q->event))
        && in_period(&q->per, e))
    {
        print_entry(q->co, e);
        q->shown++;
    }
    return 0;
}

/* A misspelt reason would match nothing and look like a clean period. */
static int
bad_reason(const char *name)
{
    fprintf(stderr, "credit-audit: unknown --reason %s; the reasons "
            "(contract §4) are:", name);
    for (int r = CA_OK + 1; r < CA_REASON_COUNT; r++) {
        fprintf(stderr, "%s %s", r == CA_OK + 1 ? "" : ",",
                ca_reason_name((ca_reason) r));
    }
    fputc('\n', stderr);
    return EXIT_USAGE;
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
        {"month", required_argument, NULL, OPT_MONTH},
        {"full", no_argument, NULL, OPT_FULL},
        ARCHIVE_READ_LONGOPT,
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    trail         t = {0};
    query_ctx     q;
    int           ch, rv;
    size_t        count;
    redisContext *rc;
    char          why[160];

    common_init(&co);
    memset(&q, 0, sizeof(q));
    q.co = &co;
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        switch (ch) {
        case OPT_ENTERPRISE:
            /* a USCC the trail cannot hold would match nothing and look
             * like an enterprise nobody asked about */
            if (ca_uscc_problem(optarg, strlen(optarg), why, sizeof(why))) {
                return short_usage_error("query", "bad --enterprise %s: %s",
                                         optarg, why);
            }
            q.enterprise = optarg;
            break;
        case OPT_FULL:       q.entries = 1; break;
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
        case OPT_REASON:
            if (ca_reason_from_name(optarg) <= 0) {
                return bad_reason(optarg);
            }
            q.reason = optarg;
            break;
        case OPT_EVENT:
            if (ca_audit_event_find(optarg, strlen(optarg)) == 0) {
                return usage_error(usage_query, "bad --event %s (decision, "
                                   "outcome, revocation, checkpoint or "
                                   "discontinuity)", optarg);
            }
            q.event = optarg;
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
        case OPT_MONTH:
            period_opt(&q.per, ch, optarg);
            break;
        case OPT_ARCHIVE_READ:
            t.conninfo = optarg;
            break;
        case 'h':
            fputs(usage_query, stdout);
            return 0;
        default:
            return usage_error(usage_query, NULL, NULL);
        }
    }
    if (args_done(usage_query, argc, argv, &q.per) != 0) {
        return EXIT_USAGE;
    }
    /* outcomes and checkpoints have no line of their own */
    q.entries |= co.json || (q.event != NULL
                             && (strcmp(q.event, "outcome") == 0
                                 || strcmp(q.event, "checkpoint") == 0));
    if ((rc = trail_open(&t, &co.redis)) == NULL) {
        return EXIT_USAGE;
    }
    /* the archive's indexes select; cb_query decides, as over Redis */
    t.per = &q.per;
    t.enterprise = q.enterprise;
    t.bank = q.bank;
    t.consent = q.consent;
    t.reason = q.reason;
    /* the entries of one event other than outcome need no outcome */
    t.requests = !q.entries || q.event == NULL
                 || strcmp(q.event, "outcome") == 0;
    join_init(&q.join, emit_line, &q);
    rv = trail_scan(&t, rc, co.stream, cb_query, &q, &count);
    redisFree(rc);
    trail_close(&t);
    join_finish(&q.join);
    map_free(&q.full);
    map_free(&q.but_reason);
    if (rv == 0 && q.shown == 0) {
        fprintf(stderr, "credit-audit: no entry matched (%zu read)\n",
                count);
    }
    return rv;
}

/* ---------------------------------------------------------------------- */

const char *tool_name = "credit-audit";

int
main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int       (*run)(int, char **);
    } cmds[] = {
        {"tail", cmd_tail}, {"query", cmd_query}, {"verify", cmd_verify},
        {"anchor", cmd_anchor},
        {"export", cmd_export}, {"report", cmd_report},
        {"archive", cmd_archive}, {"ship", cmd_ship},
        {"findings", cmd_findings}, {"proof", cmd_proof},
        {"statement", cmd_statement}
    };

    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (tool_version(argc, argv)) {
        return 0;
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
