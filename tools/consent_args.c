/*
 * What every credit-consent command shares (consent.h): one-line usage
 * errors, durations and integers, USCCs, the parts of a token and the
 * files and pipes a token is read from.  Below the commands, which
 * credit-consent.c dispatches to.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"

/* "sign": the word after "usage: credit-consent ". */
static void
usage_command(const char *usage, char *out, size_t len)
{
    const char *p = strstr(usage, "credit-consent ");
    size_t      n = 0;

    p = p ? p + 15 : "";
    while (p[n] >= 'a' && p[n] <= 'z') {
        n++;
    }
    snprintf(out, len, "%.*s", (int) n, p);
}

/* One line: what is wrong, and where the usage is (never the whole usage
 * after every mistake). */
int
usage_error(const char *usage, const char *fmt, const char *arg)
{
    char  cmd[32];

    usage_command(usage, cmd, sizeof(cmd));
    fprintf(stderr, "credit-consent: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see: credit-consent %s%s--help)\n", cmd,
            cmd[0] ? " " : "");
    return EXIT_USAGE;
}

int
usage_option(const char *usage, char **argv)
{
    const char *opt = argv[optind - 1];

    if (optopt != 0 && strncmp(opt, "--", 2) == 0) {
        return usage_error(usage, "%s needs a value", opt);
    }
    return usage_error(usage, "unknown option %s", opt);
}

const char *
uscc_why(const char *s, char *buf, size_t len)
{
    char why[160];

    if (ca_uscc_problem(s, strlen(s), why, sizeof(why)) == NULL) {
        return NULL;
    }
    snprintf(buf, len, "not a valid USCC: %s %s", s, why);
    return buf;
}

int
parse_duration(const char *s, long long *seconds)
{
    static const struct { char unit; long long mul; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}
    };
    char      *end;
    long long  v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 1 || !(*s >= '0' && *s <= '9')) {
        return -1;
    }
    if (*end == '\0') {
        *seconds = v;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (end[0] == units[i].unit && end[1] == '\0'
            && v <= 100LL * 365 * 86400 / units[i].mul)
        {
            *seconds = v * units[i].mul;
            return 0;
        }
    }
    return -1;
}

int
parse_i64(const char *s, long long min, long long *out)
{
    char     *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min) {
        return -1;
    }
    *out = v;
    return 0;
}

void
need(char *list, size_t len, const char *value, const char *name)
{
    size_t n = strlen(list);

    if (value == NULL) {
        snprintf(list + n, len - n, "%s%s", n ? ", " : "", name);
    }
}

json_t *
decode_part(const char *s, size_t len)
{
    unsigned char *buf = malloc(3 * len / 4 + 3);
    json_t        *v = NULL;
    long           n;

    if (buf != NULL && (n = ca_b64url_decode(s, len, buf)) > 0) {
        v = json_loadb((char *) buf, (size_t) n, JSON_REJECT_DUPLICATES,
                       NULL);
    }
    free(buf);
    return v;
}

char *
read_token_file(const char *option, const char *file)
{
    FILE   *f;
    char    buf[CA_TOKEN_MAX * 2 + 2];
    size_t  n;

    if (strcmp(file, "-") == 0) {
        return read_token(NULL);
    }
    if ((f = fopen(file, "r")) == NULL) {
        fprintf(stderr, "credit-consent: %s %s: %s\n", option, file,
                strerror(errno));
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return read_token(buf);
}

char *
read_token(const char *arg)
{
    char   *buf;
    size_t  n = 0, cap = CA_TOKEN_MAX * 2 + 2;

    if (arg != NULL && strcmp(arg, "-") != 0) {
        buf = strdup(arg);
    } else {
        buf = malloc(cap);
        if (buf != NULL) {
            n = fread(buf, 1, cap - 1, stdin);
            buf[n] = '\0';
        }
    }
    if (buf != NULL) {
        /* Tolerate the whitespace a shell pipe or a Bearer header adds. */
        char *p = buf;
        if (strncmp(p, "Bearer ", 7) == 0) {
            p += 7;
        }
        p += strspn(p, " \t\r\n");
        n = strcspn(p, " \t\r\n");
        memmove(buf, p, n);
        buf[n] = '\0';
    }
    return buf;
}

/* iss, jti and exp of the token in file ("-": standard input); the
 * signature is not checked.  0, or -1 after a message. */
int
token_ids(const char *file, char *iss, char *jti, size_t jlen,
             long long *exp)
{
    char       *tok, *d1, *d2;
    json_t     *claims = NULL, *j, *e, *i;
    int         rc = -1;

    if ((tok = read_token_file("--token", file)) == NULL) {
        return -1;
    }
    d1 = tok ? strchr(tok, '.') : NULL;
    d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d2 != NULL) {
        claims = decode_part(d1 + 1, (size_t) (d2 - d1 - 1));
    }
    j = json_object_get(claims, "jti");
    e = json_object_get(claims, "exp");
    i = json_object_get(claims, "iss");
    if (claims == NULL) {
        fprintf(stderr, "credit-consent: --token %s: not a compact consent "
                "token (header.claims.signature, base64url JSON)\n", file);
    } else if (!json_is_string(i)
               || !ca_uscc_valid(json_string_value(i),
                                 json_string_length(i)))
    {
        fprintf(stderr, "credit-consent: --token %s: the token has no "
                "valid iss (the issuing enterprise's USCC)\n", file);
    } else if (!json_is_string(j)
               || !ca_is_token_chars(json_string_value(j), CA_JTI_MAX))
    {
        fprintf(stderr, "credit-consent: --token %s: the token has no "
                "valid jti (1..64 characters of [A-Za-z0-9._-])\n", file);
    } else if (!json_is_integer(e) || json_integer_value(e) <= 0) {
        fprintf(stderr, "credit-consent: --token %s: the token has no "
                "valid exp (Unix seconds)\n", file);
    } else {
        memcpy(iss, json_string_value(i), CA_USCC_LEN + 1);
        snprintf(jti, jlen, "%s", json_string_value(j));
        *exp = (long long) json_integer_value(e);
        rc = 0;
    }
    json_decref(claims);
    free(tok);
    return rc;
}
