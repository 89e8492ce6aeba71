/*
 * A counting command's archive read grouped in SQL (audit_archread.h,
 * trail_groups; docs/archive.md "Reading the archive"): a month's report
 * is a few tens of thousands of distinct (bank, enterprise, category,
 * ...) among millions of entries, so PostgreSQL counts them and sends the
 * groups, not every row with its verbatim copy.
 *
 * The answer stays the one the command gives reading every entry:
 *  - an entry is grouped only when its typed columns are all of it: the
 *    columns that are not NULL, encoded as raw encodes a field (u32 name
 *    u32 value; an integer column's text is the canonical decimal it was
 *    taken from), add up to raw's length.  Any field a column does not
 *    hold (a value that did not fit, a field twice, an unknown field)
 *    makes raw longer, and the entry comes alone, from raw;
 *  - the command reads the first value of a field, which is the column;
 *  - only entries the command counts (its events, inside the period by
 *    their ts as in_period() judges it, not `alone`) are grouped; an
 *    entry that is neither counted nor alone changes nothing and is not
 *    sent;
 *  - a group comes in the archive order of its first entry, so whatever
 *    the command keeps in order of first appearance (a report's policies)
 *    comes in the same order; within a group only ts differs among what
 *    is read, and the command keeps only its least and greatest (first
 *    and last decision), so the group comes as n - 1 entries at the least
 *    ts and one at the greatest (an entry without ts given the least
 *    changes neither).
 */
#include <string.h>

#include "audit_archread.h"

#define ENTRIES ARCHIVE_SCHEMA ".entries"

/* A ts that entry_ts() reads as itself, or none: a group's least and
 * greatest are then its first and last (a ts it reads as -1, negative or
 * of 19 digits, comes alone). */
#define TS_PLAIN "(ts IS NULL OR ts BETWEEN 0 AND 999999999999999999)"

/* raw's length when the typed columns are the whole entry */
static void
columns_length(sbuf *sql)
{
    sb_puts(sql, "0");
    for (int i = 0; i < CA_F_COUNT; i++) {
        sb_printf(sql, " + coalesce(%zu + octet_length(%s::text), 0)",
                  8 + strlen(ca_audit_schema[i].name),
                  ca_audit_schema[i].column);
    }
}

void
trail_group_sql(sbuf *sql, const trail_groups *g, const char *where,
                const char *in_period)
{
    sbuf clean = {0}, unclean = {0}, counted = {0}, by = {0};

    /* the columns never add up to more than raw: "<=" is "=", and
     * PostgreSQL estimates an inequality as a third of the rows, not an
     * equality's 0.5 % (which made it sort, not hash, the groups) */
    sb_puts(&clean, "octet_length(raw) <= (");
    columns_length(&clean);
    sb_puts(&clean, ")");
    sb_puts(&unclean, "octet_length(raw) > (");
    columns_length(&unclean);
    sb_puts(&unclean, ")");
    sb_printf(&counted, "(event IN (%s) AND %s AND " TS_PLAIN " AND NOT "
              "coalesce(%s, false)) IS TRUE", g->events, in_period, g->alone);
    for (size_t i = 0; i < g->nby; i++) {
        sb_printf(&by, "%s%s", i ? ", " : "", ca_audit_schema[g->by[i]].column);
    }
    if (clean.failed || unclean.failed || counted.failed || by.failed) {
        sql->failed = 1;
        goto done;
    }
    /* one by one: what may differ from its columns, and what is alone */
    sb_puts(sql, "SELECT " ARCHIVE_SCAN_COLUMNS);
    for (int i = 0; i < CA_F_COUNT; i++) {
        sb_printf(sql, ", %s::text", ca_audit_schema[i].column);
    }
    sb_printf(sql, ", NULL::bigint FROM " ENTRIES "%s AND (%s OR NOT "
              TS_PLAIN " OR coalesce(%s, false))", where, unclean.p,
              g->alone);
    /* the groups: the fields read, ts as the least or the greatest */
    sb_printf(sql, " UNION ALL SELECT g.ord, g.stream, ''::text, "
              "NULL::bigint, 0::bigint, NULL::bytea");
    for (int i = 0; i < CA_F_COUNT; i++) {
        int read = i == CA_F_TS;

        for (size_t k = 0; k < g->nby; k++) {
            read |= (int) g->by[k] == i;
        }
        if (i == CA_F_TS) {
            sb_puts(sql, ", v.ts::text");
        } else if (read) {
            sb_printf(sql, ", g.%s::text", ca_audit_schema[i].column);
        } else {
            sb_puts(sql, ", NULL::text");
        }
    }
    sb_printf(sql, ", v.n FROM (SELECT min(ord) AS ord, min(stream) AS "
              "stream, count(*) AS n, min(ts) AS lo, max(ts) AS hi, %s FROM "
              ENTRIES "%s AND %s AND %s GROUP BY %s) g CROSS JOIN LATERAL "
              "(VALUES (g.lo, g.n - 1), (g.hi, 1)) v(ts, n) WHERE v.n > 0 "
              "ORDER BY 1", by.p, where, clean.p, counted.p, by.p);

done:
    sb_free(&clean);
    sb_free(&unclean);
    sb_free(&counted);
    sb_free(&by);
}
