/* credit-audit's output encodings: JSON, terminal text, HTML (CSV:
 * tools/csvout.c, the tools' one CSV writer). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "audit_tool.h"
#include "json/json.h"

/* ---- output ---------------------------------------------------------- */

/* A JSON string; invalid UTF-8 becomes U+FFFD (JSON cannot carry it). */
void
json_str(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;

    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq(p + i, len - i);

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

/* with_time: a `time` member (ISO 8601, --tz) after `ts`, for people;
 * export leaves it out, its lines are the stored entries exactly. */
int
entry_time(const entry *e, char *buf, size_t len)
{
    int64_t ts = entry_ts(e);

    if (ts < 0) {
        return -1;
    }
    ca_time_format(ts, buf, len);
    return 0;
}

void
print_json_entry(FILE *out, const entry *e, int with_time)
{
    char iso[48];

    fputs("{\"id\":", out);
    json_str(out, e->id, strlen(e->id));
    for (size_t i = 0; i < e->n; i++) {
        fputc(',', out);
        json_str(out, e->name[i], e->nlen[i]);
        fputc(':', out);
        json_str(out, e->value[i], e->vlen[i]);
        if (with_time && field_eq(e->name[i], e->nlen[i], CA_AUDIT_NAME(TS))
            && entry_time(e, iso, sizeof(iso)) == 0)
        {
            fprintf(out, ",\"time\":\"%s\"", iso);
        }
    }
    fputs("}\n", out);
}

/* A value for a terminal: quoted and escaped when it holds anything but
 * plain printable characters, so a hostile value (a client-chosen request
 * id, say) cannot forge a line or drive the terminal. */
void
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
        size_t n = ca_utf8_seq(p + i, len - i);

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
    char iso[48];

    fputs(e->id, out);
    for (size_t i = 0; i < e->n; i++) {
        fputc(' ', out);
        text_value(out, e->name[i], e->nlen[i]);
        fputc('=', out);
        text_value(out, e->value[i], e->vlen[i]);
        if (field_eq(e->name[i], e->nlen[i], CA_AUDIT_NAME(TS))
            && entry_time(e, iso, sizeof(iso)) == 0)
        {
            fprintf(out, " (%s)", iso);
        }
    }
    fputc('\n', out);
}

void
print_entry(const common_opts *co, const entry *e)
{
    if (co->json) {
        print_json_entry(stdout, e, 1);
    } else {
        print_text_entry(stdout, e);
    }
}

/* HTML text or attribute content; invalid UTF-8 becomes U+FFFD. */
void
html_text(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;

    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq(p + i, len - i);

        if (n == 0) {
            fputs("\xef\xbf\xbd", out);
            i++;
        } else if (n > 1) {
            fwrite(p + i, 1, n, out);
            i += n;
        } else {
            switch (p[i]) {
            case '<': fputs("&lt;", out); break;
            case '>': fputs("&gt;", out); break;
            case '&': fputs("&amp;", out); break;
            case '"': fputs("&quot;", out); break;
            case '\'': fputs("&#39;", out); break;
            default:
                if (p[i] < 0x20 || p[i] == 0x7f) {
                    fputs("\xef\xbf\xbd", out);
                } else {
                    fputc(p[i], out);
                }
            }
            i++;
        }
    }
}
