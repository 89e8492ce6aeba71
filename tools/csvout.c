/* The tools' CSV writer: see csvout.h for what a cell becomes and why. */
#include <stdio.h>
#include <string.h>

#include "csvout.h"
#include "json/json.h"

void
csv_begin(csv_out *c, FILE *out)
{
    c->out = out;
    c->cells = 0;
}

/* -12, 3.5, +7: a number, shown as one, whatever its sign. */
static int
plain_number(const char *s, size_t len)
{
    size_t  i = (len > 0 && (s[0] == '-' || s[0] == '+')), digits = 0;
    int     dot = 0;

    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            digits++;
        } else if (s[i] == '.' && !dot && digits > 0) {
            dot = 1;
        } else {
            return 0;
        }
    }
    return digits > 0 && s[len - 1] != '.';
}

/* What a spreadsheet would take for a formula (OWASP's list). */
static int
formula_like(const char *s, size_t len)
{
    return len > 0 && strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0'
           && !plain_number(s, len);
}

static int
needs_quotes(const char *s, size_t len)
{
    return len > 0 && (memchr(s, ',', len) != NULL
                       || memchr(s, '"', len) != NULL
                       || s[0] == ' ' || s[len - 1] == ' ');
}

void
csv_cell(csv_out *c, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    int                  quote = needs_quotes(s, len);

    if (c->cells++ > 0) {
        fputc(',', c->out);
    }
    if (quote) {
        fputc('"', c->out);
    }
    if (formula_like(s, len)) {
        fputc('\'', c->out);
    }
    for (size_t i = 0; i < len;) {
        size_t n = ca_utf8_seq(p + i, len - i);

        if (n == 0) {
            fputs("\xef\xbf\xbd", c->out);      /* U+FFFD */
            i++;
        } else if (n > 1) {
            fwrite(p + i, 1, n, c->out);
            i += n;
        } else {
            switch (p[i]) {
            case '\n': fputs("\\n", c->out); break;
            case '\r': fputs("\\r", c->out); break;
            case '\t': fputs("\\t", c->out); break;
            case '"': fputs("\"\"", c->out); break;
            default:
                if (p[i] < 0x20 || p[i] == 0x7f) {
                    fprintf(c->out, "\\x%02x", p[i]);
                } else {
                    fputc(p[i], c->out);
                }
            }
            i++;
        }
    }
    if (quote) {
        fputc('"', c->out);
    }
}

void
csv_text(csv_out *c, const char *s)
{
    csv_cell(c, s ? s : "", s ? strlen(s) : 0);
}

void
csv_int(csv_out *c, long long n)
{
    char    buf[24];
    int     len = snprintf(buf, sizeof(buf), "%lld", n);

    csv_cell(c, buf, (size_t) len);
}

void
csv_bom(csv_out *c)
{
    fputs("\xef\xbb\xbf", c->out);
}

void
csv_row(csv_out *c)
{
    fputs("\r\n", c->out);
    c->cells = 0;
}
