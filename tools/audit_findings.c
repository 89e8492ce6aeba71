/*
 * credit-audit findings: the breaks `ship` found and recorded in the
 * archive (contract §7.2), and their acknowledgement.  A finding holds its
 * chain in Redis, from the entry concerned on, until someone acknowledges
 * it; the database records when and as which role (the trigger of
 * docs/archive.md), the command who (--by) and why (--note).
 */
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit_pg.h"

static const char usage_findings[] =
    "usage: credit-audit findings --archive CONNINFO [--all] [common "
    "options]\n"
    "       credit-audit findings --archive CONNINFO --acknowledge ID\n"
    "         [--by NAME] [--note TEXT]\n"
    "\n"
    "Lists the findings `ship` recorded for the stream: the unacknowledged\n"
    "ones (their chains stay in Redis), or with --all every one.  Exit\n"
    "status 1 when an unacknowledged finding is listed.  --acknowledge ID\n"
    "marks one as seen: the database records when and the role that did\n"
    "it, this command who (--by, default the login name) and why (--note);\n"
    "the chain is then trimmed again.  It needs the role\n"
    "credit_audit_acknowledger; an acknowledgement cannot be undone.\n"
    "\n" COMMON_OPTS TOOL_ARCHIVE_HELP
    "  --all                         acknowledged findings too\n"
    "  --acknowledge ID              acknowledge finding ID\n"
    "  --by NAME                     who acknowledges (default: the login)\n"
    "  --note TEXT                   why (what was found out)\n";

enum { OPT_ARCHIVE = 300, OPT_ALL, OPT_ACK, OPT_BY, OPT_NOTE };

static const char columns[] =
    "id, found_at, stream_id, ord, chain, coalesce(seq::text, ''), kind, "
    "detail, shipper, acknowledged_at, coalesce(acknowledged_by, ''), "
    "coalesce(acknowledged_role, ''), coalesce(note, '')";

/* an ISO time in --tz from a timestamptz read as UTC */
static void
iso(const char *pgtime, char *out, size_t len)
{
    int64_t         ms;
    ca_time_unit    unit;

    if (pgtime[0] != '\0' && ca_time_parse(pgtime, &ms, &unit, NULL, 0)
        == 0)
    {
        ca_time_format(ms, out, len);
    } else {
        snprintf(out, len, "%s", pgtime);
    }
}

static void
print_json(PGresult *r, int i)
{
    static const char *const names[] = {
        "id", "found_at", "stream_id", "ord", "chain", "seq", "kind",
        "detail", "shipper", "acknowledged_at", "acknowledged_by",
        "acknowledged_role", "note"
    };
    char t[48];

    fputc('{', stdout);
    for (int c = 0; c < 13; c++) {
        const char *v = PQgetvalue(r, i, c);

        printf("%s\"%s\":", c ? "," : "", names[c]);
        if (c == 0 || c == 3 || (c == 5 && v[0] != '\0')) {
            fputs(v, stdout);
        } else if (c == 5 || (c == 9 && PQgetisnull(r, i, c))) {
            fputs("null", stdout);
        } else if (c == 1 || c == 9) {
            iso(v, t, sizeof(t));
            json_str(stdout, t, strlen(t));
        } else {
            json_str(stdout, v, strlen(v));
        }
    }
    fputs("}\n", stdout);
}

static void
print_text(PGresult *r, int i)
{
    char t[48];

    iso(PQgetvalue(r, i, 1), t, sizeof(t));
    printf("finding %s: %s at %s, chain ", PQgetvalue(r, i, 0),
           PQgetvalue(r, i, 6), t);
    text_value(stdout, PQgetvalue(r, i, 4), strlen(PQgetvalue(r, i, 4)));
    printf(" seq %s, stream id %s (archive entry %s), found by ",
           PQgetvalue(r, i, 5)[0] ? PQgetvalue(r, i, 5) : "-",
           PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
    text_value(stdout, PQgetvalue(r, i, 8), strlen(PQgetvalue(r, i, 8)));
    fputs("\n  ", stdout);
    text_value(stdout, PQgetvalue(r, i, 7), strlen(PQgetvalue(r, i, 7)));
    fputc('\n', stdout);
    if (PQgetisnull(r, i, 9)) {
        printf("  open: the chain stays in Redis from %s on\n",
               PQgetvalue(r, i, 2));
        return;
    }
    iso(PQgetvalue(r, i, 9), t, sizeof(t));
    printf("  acknowledged %s by ", t);
    text_value(stdout, PQgetvalue(r, i, 10), strlen(PQgetvalue(r, i, 10)));
    fputs(" (role ", stdout);
    text_value(stdout, PQgetvalue(r, i, 11), strlen(PQgetvalue(r, i, 11)));
    fputc(')', stdout);
    if (PQgetvalue(r, i, 12)[0] != '\0') {
        fputs(": ", stdout);
        text_value(stdout, PQgetvalue(r, i, 12),
                   strlen(PQgetvalue(r, i, 12)));
    }
    fputc('\n', stdout);
}

static int
acknowledge(PGconn *c, const common_opts *co, const char *id, const char *by,
            const char *note)
{
    const char *p[4] = {by, note, id, co->stream};
    PGresult   *r;
    char        q[600];

    snprintf(q, sizeof(q), "UPDATE " ARCHIVE_SCHEMA ".findings SET "
             "acknowledged_by = $1, note = nullif($2, '') WHERE id = $3 AND "
             "stream = $4 RETURNING %s", columns);
    if ((r = pg_query(c, q, 4, p)) == NULL) {
        return EXIT_USAGE;
    }
    if (PQntuples(r) == 0) {
        fprintf(stderr, "credit-audit: no finding %s on stream %s\n", id,
                co->stream);
        PQclear(r);
        return EXIT_USAGE;
    }
    if (co->json) {
        print_json(r, 0);
    } else {
        print_text(r, 0);
    }
    PQclear(r);
    return 0;
}

int
cmd_findings(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"archive", required_argument, NULL, OPT_ARCHIVE},
        {"all", no_argument, NULL, OPT_ALL},
        {"acknowledge", required_argument, NULL, OPT_ACK},
        {"by", required_argument, NULL, OPT_BY},
        {"note", required_argument, NULL, OPT_NOTE},
        {NULL, 0, NULL, 0}
    };
    common_opts     co;
    const char     *archive = NULL, *ack = NULL, *by = NULL, *note = "";
    int             ch, all = 0, rv = 0, open = 0;
    char            q[700], *end;
    PGconn         *c;
    PGresult       *r;
    const char     *p[1];
    struct passwd  *pw;

    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 0:
            return EXIT_USAGE;
        case OPT_ARCHIVE: archive = optarg; break;
        case OPT_ALL:     all = 1; break;
        case OPT_BY:      by = optarg; break;
        case OPT_NOTE:    note = optarg; break;
        case OPT_ACK:
            errno = 0;
            if (strtoll(optarg, &end, 10) <= 0 || errno || *end) {
                return usage_error(usage_findings, "bad --acknowledge %s "
                                   "(a finding's number)", optarg);
            }
            ack = optarg;
            break;
        case 'h':
            fputs(usage_findings, stdout);
            return 0;
        default:
            return usage_error(usage_findings, NULL, NULL);
        }
    }
    if (args_done(usage_findings, argc, argv, NULL) != 0) {
        return EXIT_USAGE;
    }
    if (archive == NULL) {
        return usage_error(usage_findings, "%s", "findings needs --archive "
                           "CONNINFO");
    }
    if (ack == NULL && (by != NULL || note[0] != '\0')) {
        return usage_error(usage_findings, "%s", "--by and --note go with "
                           "--acknowledge ID");
    }
    if (ack != NULL && by == NULL) {
        pw = getpwuid(getuid());
        by = pw != NULL ? pw->pw_name : getenv("USER");
        if (by == NULL || by[0] == '\0') {
            return usage_error(usage_findings, "%s", "say who acknowledges: "
                               "--by NAME");
        }
    }
    if ((c = pg_open(archive, "credit-audit findings")) == NULL) {
        return EXIT_USAGE;
    }
    if (pgschema_check(c) != 0) {
        PQfinish(c);
        return EXIT_USAGE;
    }
    if (ack != NULL) {
        rv = acknowledge(c, &co, ack, by, note);
        PQfinish(c);
        return rv;
    }
    snprintf(q, sizeof(q), "SELECT %s FROM " ARCHIVE_SCHEMA ".findings "
             "WHERE stream = $1%s ORDER BY id", columns,
             all ? "" : " AND acknowledged_at IS NULL");
    p[0] = co.stream;
    if ((r = pg_query(c, q, 1, p)) == NULL) {
        PQfinish(c);
        return EXIT_USAGE;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        open += PQgetisnull(r, i, 9);
        if (co.json) {
            print_json(r, i);
        } else {
            print_text(r, i);
        }
    }
    if (!co.json) {
        printf("%s: %d finding%s, %d open\n", co.stream, PQntuples(r),
               PQntuples(r) == 1 ? "" : "s", open);
    }
    PQclear(r);
    PQfinish(c);
    return open > 0 ? EXIT_FINDING : 0;
}
