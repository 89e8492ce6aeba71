/*
 * credit-audit export: the stream, one line per entry with its stream id,
 * as JSON Lines (the stored fields, in order) or CSV (a column per field
 * of the audit schema, lib/audit/auditschema.h, written by the tools' one
 * CSV writer, tools/csvout.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_archread.h"
#include "audit_names.h"
#include "audit_requests.h"
#include "audit_tool.h"

static const char usage_export[] =
    "usage: credit-audit export [--view entries|requests]"
    " [--format jsonl|csv]\n"
    "         [--excel] [--since T] [--until T] [--month YYYY-MM]\n"
    "         [--out FILE] [--banks FILE] [--policy FILE]\n"
    "         [--enterprises FILE] [common options]\n"
    "\n"
    "--view entries (default): one line per entry with its stream id\n"
    "(`id`).  jsonl (default): a JSON object of the fields in stored\n"
    "order.  csv (RFC 4180): a header, then a column per field of the\n"
    "audit schema (and `time`, ISO 8601 in --tz, after `ts`) and any other\n"
    "field as a JSON object in the `extra` column.  A CSV cell a\n"
    "spreadsheet would run as a formula (beginning with = + - @, tab or\n"
    "CR) starts with ', a line break in a value is written \\n, invalid\n"
    "UTF-8 is shown as U+FFFD: the stream itself stays the evidence\n"
    "(verify reads it, not the export).\n"
    "\n"
    "--view requests: one row per request, for a spreadsheet: each\n"
    "decision in the period with its outcome joined by rid, and the\n"
    "names of its bank (--banks), enterprise (--enterprises: the trail\n"
    "holds only the USCC), category and purpose (--policy) and reason\n"
    "(built in) beside the codes; `time` is ISO 8601 text in --tz (no\n"
    "Unix milliseconds for a spreadsheet to show as 1.79667E+12);\n"
    "`status` is the outcome's, or for a refusal the status its reason\n"
    "answers; empty while an allowed request has no outcome.  An outcome\n"
    "written more than 10 minutes (stream time) after its decision is not\n"
    "joined.\n"
    "\n"
    "--excel: CSV for Excel: a UTF-8 byte order mark first (Excel then\n"
    "reads the Chinese names right); rows end in CRLF, as always.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS
    "  --view entries|requests       one line per entry, or per request\n"
    "  --format jsonl|csv            default jsonl\n"
    "  --excel                       CSV with a UTF-8 byte order mark\n"
    "  --out FILE                    write there instead of stdout\n"
    NAMES_HELP ENTERPRISES_HELP ARCHIVE_READ_HELP;

typedef struct {
    FILE       *out;
    csv_out     csv;
    int         is_csv;
    period      per;
    size_t      written;
} export_ctx;

/* Fields no schema column holds, as one JSON object ("" when none). */
static int
extra_cell(export_ctx *x, const entry *e)
{
    char   *buf = NULL;
    size_t  blen = 0;
    FILE   *m = open_memstream(&buf, &blen);
    int     any = 0;

    if (m == NULL) {
        return -1;
    }
    for (size_t i = 0; i < e->n; i++) {
        if (ca_audit_field_find(e->name[i], e->nlen[i]) < 0) {
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
    csv_cell(&x->csv, buf, blen);
    free(buf);
    return 0;
}

static int
cb_export(const entry *e, void *data)
{
    export_ctx *x = data;
    char        iso[48];
    size_t      len;
    const char *v;

    if (!in_period(&x->per, e)) {
        return 0;
    }
    x->written++;
    if (!x->is_csv) {
        print_json_entry(x->out, e, 0);
        return 0;
    }
    csv_text(&x->csv, e->id);
    for (int id = 0; id < CA_F_COUNT; id++) {
        v = get(e, (ca_audit_fid) id, &len);
        csv_cell(&x->csv, v ? v : "", len);
        if (id == CA_F_TS) {
            csv_text(&x->csv, entry_time(e, iso, sizeof(iso)) == 0 ? iso
                                                                   : NULL);
        }
    }
    if (extra_cell(x, e) != 0) {
        return EXIT_USAGE;
    }
    csv_row(&x->csv);
    return 0;
}

static void
csv_header(export_ctx *x)
{
    csv_text(&x->csv, "id");
    for (int id = 0; id < CA_F_COUNT; id++) {
        csv_text(&x->csv, ca_audit_schema[id].name);
        if (id == CA_F_TS) {
            csv_text(&x->csv, "time");
        }
    }
    csv_text(&x->csv, "extra");
    csv_row(&x->csv);
}

int
cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"format", required_argument, NULL, OPT_FORMAT},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"month", required_argument, NULL, OPT_MONTH},
        {"out", required_argument, NULL, OPT_OUT},
        {"view", required_argument, NULL, OPT_VIEW},
        {"excel", no_argument, NULL, OPT_EXCEL},
        NAMES_LONGOPTS,
        ENTERPRISES_LONGOPT,
        ARCHIVE_READ_LONGOPT,
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    export_ctx    x;
    names         nm = {0};
    const char   *outfile = NULL;
    int           ch, rv, requests = 0, excel = 0;
    size_t        count;
    trail         t = {0};
    redisContext *rc;

    common_init(&co);
    memset(&x, 0, sizeof(x));
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        switch (ch) {
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") == 0) {
                x.is_csv = 1;
            } else if (strcmp(optarg, "jsonl") == 0) {
                x.is_csv = 0;
            } else {
                return usage_error(usage_export, "bad --format %s (jsonl "
                                   "or csv)", optarg);
            }
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
        case OPT_MONTH:
            period_opt(&x.per, ch, optarg);
            break;
        case OPT_OUT:
            outfile = optarg;
            break;
        case OPT_VIEW:
            if (strcmp(optarg, "requests") != 0
                && strcmp(optarg, "entries") != 0)
            {
                return usage_error(usage_export, "bad --view %s (entries "
                                   "or requests)", optarg);
            }
            requests = optarg[0] == 'r';
            break;
        case OPT_EXCEL:
            excel = 1;
            break;
        case OPT_ARCHIVE_READ:
            t.conninfo = optarg;
            break;
        case 'h':
            fputs(usage_export, stdout);
            return 0;
        default:
            if (names_opt(&nm, ch, optarg)) {
                break;
            }
            return usage_error(usage_export, NULL, NULL);
        }
    }
    if (args_done(usage_export, argc, argv, &x.per) != 0) {
        return EXIT_USAGE;
    }
    if (excel && !x.is_csv) {
        return short_usage_error("export", "--excel is for --format csv");
    }
    if (!requests && (nm.banks_file || nm.policy_file
                      || nm.enterprises_file))
    {
        return short_usage_error("export", "--banks, --policy and "
                                 "--enterprises name the columns of --view "
                                 "requests; the entries view holds the "
                                 "trail's fields only");
    }
    if (names_load(&nm) != 0) {
        names_free(&nm);
        return EXIT_USAGE;
    }
    if ((rc = trail_open(&t, &co.redis)) == NULL) {
        names_free(&nm);
        return EXIT_USAGE;
    }
    t.per = &x.per;
    t.requests = requests;
    x.out = stdout;
    if (outfile != NULL && (x.out = fopen(outfile, "w")) == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", outfile, strerror(errno));
        redisFree(rc);
        trail_close(&t);
        names_free(&nm);
        return EXIT_USAGE;
    }
    csv_begin(&x.csv, x.out);
    if (excel) {
        csv_bom(&x.csv);
    }
    if (requests) {
        rv = export_requests(&t, rc, co.stream, &x.per, &nm, &x.csv, x.out,
                             x.is_csv, &x.written);
    } else {
        if (x.is_csv) {
            csv_header(&x);
        }
        rv = trail_scan(&t, rc, co.stream, cb_export, &x, &count);
    }
    redisFree(rc);
    trail_close(&t);
    names_free(&nm);
    if (fflush(x.out) != 0 || ferror(x.out)
        || (x.out != stdout && fclose(x.out) != 0))
    {
        fprintf(stderr, "credit-audit: %s: write error\n",
                outfile ? outfile : "stdout");
        return EXIT_USAGE;
    }
    if (rv == 0 && outfile != NULL) {
        fprintf(stderr, "credit-audit: %zu %s written to %s\n",
                x.written, requests ? "requests" : "entries", outfile);
    }
    return rv;
}
