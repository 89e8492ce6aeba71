/*
 * The one CSV writer of the command-line tools (RFC 4180, CRLF): every
 * command that writes CSV writes its cells through it, so that what a
 * spreadsheet makes of a cell is decided in one place.
 *
 * A cell is written so that a spreadsheet shows it as text and runs
 * nothing (OWASP, "CSV Injection"): a value beginning with =, +, -, @,
 * tab or CR gets a leading ' (a plain number such as -5 excepted).  A
 * cell never holds a line break: LF is written as the two characters \n,
 * CR as \r, tab as \t and any other control character as \xHH (a
 * backslash itself is left as it is: CSV is for reading; the tools' JSON
 * forms are exact).  Invalid UTF-8 becomes U+FFFD.  A cell holding a
 * comma, a double quote or a leading or trailing space is quoted, its
 * quotes doubled.
 */
#ifndef CA_TOOLS_CSVOUT_H
#define CA_TOOLS_CSVOUT_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE       *out;
    size_t      cells;          /* written in the current row */
} csv_out;

void csv_begin(csv_out *c, FILE *out);
/* The next cell of the row: len bytes of s. */
void csv_cell(csv_out *c, const char *s, size_t len);
/* A C string (NULL: an empty cell). */
void csv_text(csv_out *c, const char *s);
void csv_int(csv_out *c, long long n);
/* Ends the row. */
void csv_row(csv_out *c);
/* Before the first row, for Excel (--excel): the UTF-8 byte order mark,
 * without which Excel reads a CSV in the machine's legacy code page
 * (GBK on a Chinese Windows) and garbles every Chinese name. */
void csv_bom(csv_out *c);

#endif
