#include <stdio.h>
#include <string.h>

#include "uscc.h"
#include "core_testing.h"

/* 31 characters: digits and upper-case letters without I, O, S, V, Z. */
static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";

static int
uscc_value(char c)
{
    const char *p;

    if (c == '\0') {
        return -1;
    }
    p = strchr(alphabet, c);
    return p ? (int) (p - alphabet) : -1;
}

char
ca_uscc_check_char(const char *s17)
{
    int sum = 0, weight = 1;

    for (int i = 0; i < 17; i++) {
        int v = uscc_value(s17[i]);
        if (v < 0) {
            return 0;
        }
        sum += v * weight;          /* weight is 3^i mod 31 */
        weight = weight * 3 % 31;
    }
    int check = 31 - sum % 31;
    return alphabet[check == 31 ? 0 : check];
}

int
ca_uscc_valid(const char *s, size_t len)
{
    char check;

    if (len != CA_USCC_LEN) {
        return 0;
    }
    check = ca_uscc_check_char(s);
    return check != 0 && s[17] == check;
}

const char *
ca_uscc_problem(const char *s, size_t len, char *buf, size_t buflen)
{
    char   up[CA_USCC_LEN + 1];
    int    lower = 0;
    char   check;

    if (ca_uscc_valid(s, len)) {
        return NULL;
    }
    if (len != CA_USCC_LEN) {
        snprintf(buf, buflen, "has %zu characters, a USCC has %d", len,
                 CA_USCC_LEN);
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        lower |= s[i] >= 'a' && s[i] <= 'z';
        up[i] = s[i] >= 'a' && s[i] <= 'z' ? (char) (s[i] - 'a' + 'A') : s[i];
    }
    up[len] = '\0';
    if (lower && ca_uscc_valid(up, len)) {
        snprintf(buf, buflen, "is in lower case: a USCC is written in upper "
                 "case (%s)", up);
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        if (uscc_value(up[i]) < 0) {
            unsigned char c = (unsigned char) s[i];

            if (c > 0x20 && c < 0x7f) {
                snprintf(buf, buflen, "character %zu '%c' is not used in a "
                         "USCC (0-9 and A-Z without I, O, S, V, Z)", i + 1,
                         (char) c);
            } else {
                snprintf(buf, buflen, "character %zu (byte 0x%02x) is not "
                         "used in a USCC (0-9 and A-Z without I, O, S, V, Z)",
                         i + 1, c);
            }
            return buf;
        }
    }
    check = ca_uscc_check_char(up);
    snprintf(buf, buflen, "check character (the 18th) is %c, the first 17 "
             "give %c%s", up[17], check,
             lower ? "; and a USCC is written in upper case" : "");
    return buf;
}
