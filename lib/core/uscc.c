#include <string.h>

#include "uscc.h"

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
