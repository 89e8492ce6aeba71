/*
 * The personal-identifier forms of pii.h, one table.  A form is a name
 * (what a log may say instead of the value), how its candidates are cut
 * from the text, and a test of one candidate.
 */
#include <string.h>

#include "pii.h"
#include "uscc.h"

/* The longest digit form: 0086 + a 19-digit card is not one, a card is at
 * most 19; 0086 + area + number is 15; so 24 leaves room. */
#define PII_DIGITS_MAX  24
/* The longest word form: H + 10 digits. */
#define PII_WORD_MAX    11

typedef enum {
    PII_DIGITS,         /* whole groups of digits, joiners dropped, 'X' */
    PII_WORD,           /* a whole word of [A-Za-z0-9] */
    PII_TEXT            /* the form scans the text itself */
} pii_cut;

typedef struct {
    const char  *name;
    pii_cut      cut;
    int        (*match)(const char *s, size_t n);
} pii_form;


static int
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int
is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int
is_alnum(char c)
{
    return is_digit(c) || is_alpha(c);
}

static char
upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char) (c - 'a' + 'A') : c;
}

/* What may stand between the groups of one number: 139-1234-5678,
 * +86 139..., (0591) 8765.4321, 1101_0519... */
static int
joiner(char c)
{
    return c == ' ' || c == '-' || c == '.' || c == '_' || c == '('
           || c == ')' || c == '+';
}

static int
all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int
number(const char *s, size_t n)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int
luhn_valid(const char *d, size_t n)
{
    int sum = 0;

    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (i % 2 == 1) {
            v *= 2;
            if (v > 9) {
                v -= 9;
            }
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* A letter of a passport or permit series: never I or O. */
static int
series_letter(char c)
{
    c = upper(c);
    return c >= 'A' && c <= 'Z' && c != 'I' && c != 'O';
}


/* ---- digit forms ------------------------------------------------------ */

/* GB/T 2260 provinces; 81, 82, 83: Hong Kong, Macao and Taiwan residents'
 * residence permits, numbered as resident IDs. */
static int
province(const char *d)
{
    static const unsigned char codes[] = {
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37,
        41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65,
        71, 81, 82, 83
    };
    int p = number(d, 2);

    for (size_t i = 0; i < sizeof(codes); i++) {
        if (codes[i] == p) {
            return 1;
        }
    }
    return 0;
}

static int
valid_date(int y, int m, int d)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
                                31 };
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    if (m < 1 || m > 12 || d < 1) {
        return 0;
    }
    return d <= days[m - 1] + (m == 2 && leap);
}

/* GB 11643: province, birth date, sequence, check character (0-9 or X).
 * The check character is not verified: a mistyped or invented ID number
 * in a record is still a person's.  The 15-digit form of before 1999 has
 * a two-digit year and no check character. */
static int
resident_id(const char *d, size_t n)
{
    int  y;

    if (n == 15) {
        return all_digits(d, 15) && province(d)
               && valid_date(1900 + number(d + 6, 2), number(d + 8, 2),
                             number(d + 10, 2));
    }
    if (n != 18 || !all_digits(d, 17) || !(is_digit(d[17]) || d[17] == 'X')
        || !province(d))
    {
        return 0;
    }
    y = number(d + 6, 4);
    return y >= 1900 && y <= 2099
           && valid_date(y, number(d + 10, 2), number(d + 12, 2));
}

/* The country code: 86 or 0086 (a '+' is a joiner); its length. */
static size_t
country_code(const char *d, size_t n)
{
    if (n > 4 && memcmp(d, "0086", 4) == 0) {
        return 4;
    }
    if (n > 2 && memcmp(d, "86", 2) == 0) {
        return 2;
    }
    return 0;
}

static int
mobile(const char *d, size_t n)
{
    size_t cc = (n == 13 || n == 15) ? country_code(d, n) : 0;

    d += cc;
    n -= cc;
    return n == 11 && all_digits(d, 11) && d[0] == '1' && d[1] >= '3'
           && d[1] <= '9';
}

/* 0 + area code + number; with a country code the trunk 0 is usually
 * left out.  Area codes: 10, 2x, or three digits from 3; numbers: 7 or 8
 * digits, never starting with 0 or 1. */
static int
landline(const char *d, size_t n)
{
    size_t cc, area;

    if (!all_digits(d, n)) {
        return 0;
    }
    cc = country_code(d, n);
    d += cc;
    n -= cc;
    if (n == 0 || (cc == 0 && d[0] != '0')) {
        return 0;
    }
    if (d[0] == '0') {
        d++;
        n--;
    }
    if (n >= 2 && (d[0] == '2' || (d[0] == '1' && d[1] == '0'))) {
        area = 2;
    } else if (n >= 3 && d[0] >= '3' && d[0] <= '9') {
        area = 3;
    } else {
        return 0;
    }
    return (n - area == 7 || n - area == 8) && d[area] >= '2'
           && d[area] <= '9';
}

/* 16-19 digits passing Luhn, or starting 62 (UnionPay: nearly every
 * card issued in China, a mistyped check digit included).  An 18-digit
 * USCC passes Luhn one time in ten: the enterprise's own code is never
 * taken for a card. */
static int
bank_card(const char *d, size_t n)
{
    return n >= 16 && n <= 19 && all_digits(d, n)
           && (luhn_valid(d, n) || (d[0] == '6' && d[1] == '2'))
           && !ca_uscc_valid(d, n);
}


/* ---- word forms (w: n characters of [A-Za-z0-9]) ---------------------- */

static int
passport(const char *w, size_t n)
{
    char a, b;

    if (n != 9) {
        return 0;
    }
    a = upper(w[0]);
    b = upper(w[1]);
    if ((a == 'E' || a == 'G') && all_digits(w + 1, 8)) {
        return 1;
    }
    if (a == 'E' && series_letter(b) && all_digits(w + 2, 7)) {
        return 1;
    }
    /* diplomatic, service, official */
    return (a == 'D' || a == 'S' || a == 'P') && b == 'E'
           && all_digits(w + 2, 7);
}

/* To Hong Kong and Macao (C), to Taiwan (L), Home Return Permit of Hong
 * Kong and Macao residents (H, M; 10 digits before 2013). */
static int
permit(const char *w, size_t n)
{
    char a = upper(w[0]);

    if (n == 9 && (a == 'C' || a == 'L' || a == 'H' || a == 'M')
        && all_digits(w + 1, 8))
    {
        return 1;
    }
    if (n == 9 && a == 'C' && series_letter(w[1]) && all_digits(w + 2, 7)) {
        return 1;
    }
    return n == 11 && (a == 'H' || a == 'M') && all_digits(w + 1, 10);
}

/* A123456(7) or AB1234567 (the parentheses are dropped by the cutter):
 * letters count 10..35, a missing second letter 36; weights 9..2. */
static int
hong_kong_id(const char *w, size_t n)
{
    size_t  letters;
    int     sum, check;

    if (n != 8 && n != 9) {
        return 0;
    }
    letters = n - 7;
    if (!is_alpha(w[0])
        || (letters == 2 && !is_alpha(w[1])) || !all_digits(w + letters, 6))
    {
        return 0;
    }
    if (letters == 2) {
        sum = (upper(w[0]) - 'A' + 10) * 9 + (upper(w[1]) - 'A' + 10) * 8;
    } else {
        sum = 36 * 9 + (upper(w[0]) - 'A' + 10) * 8;
    }
    for (size_t i = 0; i < 6; i++) {
        sum += (w[letters + i] - '0') * (int) (7 - i);
    }
    check = (11 - sum % 11) % 11;
    return upper(w[n - 1]) == (check == 10 ? 'A' : '0' + check);
}

/* A123456789: the letter's two-digit code, sex (1, 2; 8, 9 for residents
 * of other nationalities), 7 digits, check digit. */
static int
taiwan_id(const char *w, size_t n)
{
    static const unsigned char code[26] = {
        10, 11, 12, 13, 14, 15, 16, 17, 34, 18, 19, 20, 21, 22, 35, 23, 24,
        25, 26, 27, 28, 29, 32, 30, 31, 33
    };
    char  a = upper(w[0]);
    int   sum;

    if (n != 10 || a < 'A' || a > 'Z' || !all_digits(w + 1, 9)
        || (w[1] != '1' && w[1] != '2' && w[1] != '8' && w[1] != '9'))
    {
        return 0;
    }
    sum = code[a - 'A'] / 10 + code[a - 'A'] % 10 * 9;
    for (size_t i = 1; i <= 8; i++) {
        sum += (w[i] - '0') * (int) (9 - i);
    }
    sum += w[9] - '0';
    return sum % 10 == 0;
}


/* ---- text forms ------------------------------------------------------- */

static int
local_part_char(char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+'
           || c == '-';
}

/* x@y.cn: a local part, an '@', two or more labels, the last of letters. */
static int
email(const char *s, size_t len)
{
    for (size_t at = 1; at + 3 < len; at++) {
        size_t  j, label = 0, dots = 0, tld = 0, prev_tld = 0;
        int     alpha = 1, prev_alpha = 0;

        if (s[at] != '@' || !local_part_char(s[at - 1])) {
            continue;
        }
        for (j = at + 1; j < len; j++) {
            if (s[j] == '.') {
                if (label == 0) {
                    break;
                }
                dots++;
                prev_tld = tld;
                prev_alpha = alpha;
                label = tld = 0;
                alpha = 1;
            } else if (is_alnum(s[j]) || s[j] == '-') {
                label++;
                tld++;
                alpha = alpha && is_alpha(s[j]);
            } else {
                break;
            }
        }
        if (label == 0 && dots > 0) {
            /* a trailing dot ends the sentence, not the domain */
            dots--;
            tld = prev_tld;
            alpha = prev_alpha;
        }
        if (dots >= 1 && tld >= 2 && alpha) {
            return 1;
        }
    }
    return 0;
}


static const pii_form  forms[] = {
    { "resident ID number",             PII_DIGITS, resident_id },
    { "mobile number",                  PII_DIGITS, mobile },
    { "landline number",                PII_DIGITS, landline },
    { "bank card number",               PII_DIGITS, bank_card },
    { "passport number",                PII_WORD,   passport },
    { "travel permit number",           PII_WORD,   permit },
    { "Hong Kong identity card number", PII_WORD,   hong_kong_id },
    { "Taiwan identity card number",    PII_WORD,   taiwan_id },
    { "email address",                  PII_TEXT,   email },
};

#define PII_FORMS  (sizeof(forms) / sizeof(forms[0]))


static const char *
candidate(pii_cut cut, const char *s, size_t n)
{
    for (size_t f = 0; f < PII_FORMS; f++) {
        if (forms[f].cut == cut && forms[f].match(s, n)) {
            return forms[f].name;
        }
    }
    return NULL;
}


/*
 * Every run of whole groups starting at a group: 86-139-1234-5678 is
 * tried as 86, 86139, 861391234, 8613912345678, then from 139 on, ...
 * A group may end in X (a resident ID's check character): tried with and
 * without it, and nothing joins after it.
 */
static const char *
digit_forms(const char *s, size_t len)
{
    char         buf[PII_DIGITS_MAX + 1];
    size_t       i, j, n, k;
    const char  *name;

    for (i = 0; i < len; i++) {
        if (!is_digit(s[i]) || (i > 0 && is_digit(s[i - 1]))) {
            continue;
        }
        n = 0;
        j = i;
        for ( ;; ) {
            while (j < len && is_digit(s[j])) {
                if (n < PII_DIGITS_MAX) {
                    buf[n] = s[j];
                }
                n++;
                j++;
            }
            if (n > PII_DIGITS_MAX) {
                break;
            }
            if ((name = candidate(PII_DIGITS, buf, n)) != NULL) {
                return name;
            }
            if (j < len && upper(s[j]) == 'X') {
                buf[n] = 'X';
                if ((name = candidate(PII_DIGITS, buf, n + 1)) != NULL) {
                    return name;
                }
                break;
            }
            for (k = 0; j < len && k < 4 && joiner(s[j]); j++, k++) {
                /* void */
            }
            if (k == 0 || k > 3 || j >= len || !is_digit(s[j])) {
                break;
            }
        }
    }
    return NULL;
}


/* Whole words; "A123456(7)": a check character in parentheses right after
 * a word is tried as part of it too. */
static const char *
word_forms(const char *s, size_t len)
{
    char         w[PII_WORD_MAX + 1];
    size_t       i, j, n;
    const char  *name;

    for (i = 0; i < len; i = j) {
        if (!is_alnum(s[i])) {
            j = i + 1;
            continue;
        }
        for (j = i; j < len && is_alnum(s[j]); j++) {
            /* void */
        }
        n = j - i;
        if (n >= PII_WORD_MAX) {
            if (n == PII_WORD_MAX
                && (name = candidate(PII_WORD, s + i, n)) != NULL)
            {
                return name;
            }
            continue;
        }
        memcpy(w, s + i, n);
        if ((name = candidate(PII_WORD, w, n)) != NULL) {
            return name;
        }
        if (j + 2 < len && s[j] == '(' && is_alnum(s[j + 1])
            && s[j + 2] == ')')
        {
            w[n] = s[j + 1];
            if ((name = candidate(PII_WORD, w, n + 1)) != NULL) {
                return name;
            }
        }
    }
    return NULL;
}


const char *
ca_pii_find(const char *s, size_t len)
{
    const char  *name;

    if ((name = digit_forms(s, len)) != NULL
        || (name = word_forms(s, len)) != NULL)
    {
        return name;
    }
    return candidate(PII_TEXT, s, len);
}


int
ca_looks_personal(const char *s, size_t len)
{
    return ca_pii_find(s, len) != NULL;
}
