/*
 * The policy loader's vocabulary (contract §6), shared by the files that read
 * a policy (policy.c, policycat.c, policynames.c): only the members a
 * place allows (naming the one a typo probably meant), descriptions and
 * texts the tools print, lists of codes.  Lowest of the loader's files: it
 * calls none of them.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

#define CODE_MAX           64

/* ---- small validators ------------------------------------------------- */

#define NAME_GUESS_MAX 64

/*
 * Edit distance between a and b, counting a swap of two neighbours as one
 * edit ("pruposes"); only for short names.
 */
static size_t
edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
    unsigned char d[NAME_GUESS_MAX + 1][NAME_GUESS_MAX + 1];

    for (size_t i = 0; i <= la; i++) {
        d[i][0] = (unsigned char) i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = (unsigned char) j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t v = (size_t) d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = (size_t) d[i - 1][j] + 1;
            size_t ins = (size_t) d[i][j - 1] + 1;
            if (del < v) {
                v = del;
            }
            if (ins < v) {
                v = ins;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2]
                && a[i - 2] == b[j - 1] && (size_t) d[i - 2][j - 2] + 1 < v) {
                v = (size_t) d[i - 2][j - 2] + 1;
            }
            d[i][j] = (unsigned char) v;
        }
    }
    return d[la][lb];
}

/* The known name a misspelt key most likely meant, or NULL: one edit, two
 * for names of six characters or more. */
static const char *
name_guess(const char *k, size_t klen, const char *const *names)
{
    const char *best = NULL;
    size_t      best_d = (size_t) -1;

    if (klen > NAME_GUESS_MAX) {
        return NULL;
    }
    for (const char *const *n = names; *n; n++) {
        size_t nl = strlen(*n), d, max;
        if (nl > NAME_GUESS_MAX) {
            continue;
        }
        d = edit_distance(k, klen, *n, nl);
        max = nl >= 6 ? 2 : 1;
        if (d <= max && d < best_d) {
            best = *n;
            best_d = d;
        }
    }
    return best;
}

/* Refuses members outside the allowed set: a misspelt "raw_alowed" must
 * not quietly fall back to a default.  The error names the member that
 * was probably meant. */
int
ca_pol_only_members(ctx_t *cx, const char *jp, json_t *obj,
                    const char *const *names)
{
    const char *k, *guess;
    size_t      klen;
    json_t     *v;
    char        sub[JPATH_MAX];

    json_object_keylen_foreach(obj, k, klen, v) {
        int known = 0;
        for (const char *const *n = names; *n; n++) {
            if (key_eq(k, klen, *n)) {
                known = 1;
                break;
            }
        }
        if (!known) {
            jp_key(sub, jp, k, klen);
            if ((guess = name_guess(k, klen, names)) != NULL) {
                return fail(cx, sub, "unknown member (did you mean \"%s\"?)",
                            guess);
            }
            return fail(cx, sub, "unknown member");
        }
    }
    return 0;
}

/*
 * A text the tools print: no control character but newline and tab (a
 * terminal would act on an escape sequence), no NUL inside.
 */
int
ca_pol_printable_text(json_t *v, int newlines)
{
    const char *s = json_string_value(v);

    if (strlen(s) != json_string_length(v)) {
        return 0;
    }
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if ((c < 0x20 && !(newlines && (c == '\n' || c == '\t')))
            || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* "description": optional; the officer's note, which the gateway ignores. */
int
ca_pol_parse_description(ctx_t *cx, const char *jp, json_t *v, char **out)
{
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > CA_DESCRIPTION_MAX) {
        return fail(cx, jp, "must be a string of at most %d bytes",
                    CA_DESCRIPTION_MAX);
    }
    if (!ca_pol_printable_text(v, 1)) {
        return fail(cx, jp, "control characters other than newline and tab"
                    " are not allowed");
    }
    if ((*out = strdup(json_string_value(v))) == NULL) {
        return fail(cx, jp, "out of memory");
    }
    return 0;
}

int
ca_pol_is_code(const char *s, size_t len)
{
    return strlen(s) == len && ca_is_token_chars(s, CODE_MAX);
}

int
ca_pol_find_str(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* A non-empty array of unique codes; with `within`, each must be in it. */
int
ca_pol_parse_codes(ctx_t *cx, const char *jp, json_t *arr, char ***out,
                   size_t *n, char **within, size_t n_within)
{
    char   sub[JPATH_MAX];
    size_t i;
    json_t *v;

    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        return fail(cx, jp, "must be a non-empty array of codes");
    }
    *out = calloc(json_array_size(arr), sizeof(char *));
    if (*out == NULL) {
        return fail(cx, jp, "out of memory");
    }
    json_array_foreach(arr, i, v) {
        jp_idx(sub, jp, i);
        if (!json_is_string(v)
            || !ca_pol_is_code(json_string_value(v), json_string_length(v))) {
            return fail(cx, sub, "must be 1-64 characters of"
                        " [A-Za-z0-9._-]");
        }
        if (ca_pol_find_str(*out, *n, json_string_value(v))) {
            return fail(cx, sub, "\"%s\" is listed twice",
                        json_string_value(v));
        }
        if (within && !ca_pol_find_str(within, n_within, json_string_value(v))) {
            return fail(cx, sub, "\"%s\" is not one of the policy's"
                        " purposes", json_string_value(v));
        }
        (*out)[*n] = strdup(json_string_value(v));
        if ((*out)[*n] == NULL) {
            return fail(cx, sub, "out of memory");
        }
        (*n)++;
    }
    return 0;
}
