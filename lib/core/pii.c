#include "pii.h"

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

static int
run_is_personal(const char *d, size_t n)
{
    /* resident IDs (15 or 18), long account and card numbers; a random
     * 32-hex id has such a run about once in 1 600 */
    if (n >= 15) {
        return 1;
    }
    if (n == 11 && d[0] == '1' && d[1] >= '3' && d[1] <= '9') {
        return 1;
    }
    return n >= 13 && luhn_valid(d, n);
}

int
ca_looks_personal(const char *s, size_t len)
{
    char   run[24];
    size_t n = 0;

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : '\0';

        if (c == '-' || c == '.' || c == '_' || c == ' ') {
            continue;
        }
        /* a resident ID may end in X */
        if ((c >= '0' && c <= '9') || ((c == 'X' || c == 'x') && n == 17)) {
            if (n < sizeof(run)) {
                run[n] = c;
            }
            n++;
            continue;
        }
        if (n > 0 && run_is_personal(run, n > 20 ? 20 : n)) {
            return 1;
        }
        n = 0;
    }
    return 0;
}
