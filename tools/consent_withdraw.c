/*
 * credit-consent withdraw: the enterprise takes its consent back itself
 * (contract §3 v3).  It signs a revocation+jwt (iss, jti, iat) with its own
 * key and POSTs it to a gateway's credit_auth_revocation_endpoint, which
 * answers once the withdrawal is in force on every gateway and audited.
 *
 * HTTP is libcurl's: it verifies the server certificate and host name,
 * follows the proxy settings an office network needs (https_proxy,
 * no_proxy), and bounds every wait; no redirect is followed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "consent.h"
#include "jws/jws.h"

#define ANSWER_MAX  65536

static const char usage_withdraw[] =
    "usage: credit-consent withdraw --endpoint URL --key FILE\n"
    "         (--jti ID | --token FILE) [--jwk FILE | --alg ALG --kid KID\n"
    "         --iss USCC] [--passphrase-file FILE] [--cacert FILE]\n"
    "         [--timeout SECONDS] [--json]\n"
    "\n"
    "Withdraws one of the enterprise's own consents: signs a withdrawal\n"
    "(typ revocation+jwt: iss, the consent's jti, iat now) with the\n"
    "enterprise's key and sends it to the platform's withdrawal endpoint\n"
    "(https://...).  The consent is refused on every gateway from the\n"
    "answer on.  --jti names the consent, or --token FILE (the consent\n"
    "token itself, - for standard input) gives it.  --jwk FILE (keygen's\n"
    "PREFIX.jwk, by default the one beside --key PREFIX.key.pem) gives\n"
    "alg, kid and iss.  --cacert FILE: the CA of the platform's server\n"
    "certificate, when it is not one the system trusts.  --timeout: the\n"
    "whole exchange (default 30 s).  Prints what the gateway answered\n"
    "(--json: its JSON); exit status 0 withdrawn, 1 refused (the reason\n"
    "is printed), 2 usage or connection error.  Sending the same\n"
    "withdrawal again is harmless.\n";

typedef struct {
    char   *data;
    size_t  len;
    char    date[64];           /* the server's Date header */
} answer;

static size_t
on_body(char *p, size_t size, size_t n, void *u)
{
    answer *a = u;
    size_t  len = size * n;

    if (a->len + len > ANSWER_MAX) {
        return 0;               /* no answer of ours is that large */
    }
    memcpy(a->data + a->len, p, len);
    a->len += len;
    a->data[a->len] = '\0';
    return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *u)
{
    answer *a = u;
    size_t  len = size * n;

    if (len > 6 && len < sizeof(a->date) + 6
        && strncasecmp(p, "Date: ", 6) == 0)
    {
        memcpy(a->date, p + 6, len - 6);
        a->date[strcspn(a->date, "\r\n")] = '\0';
    }
    return len;
}

/*
 * POSTs a compact JWS; 0 with the HTTP status and the answer, or -1 after
 * a message (no connection, TLS, timeout: EXIT_USAGE for the caller).
 */
static int
post_jws(const char *url, const char *cacert, long timeout, const char *jws,
         long *status, answer *a)
{
    CURL               *h;
    CURLcode            rc;
    char                err[CURL_ERROR_SIZE] = "";
    struct curl_slist  *hdrs = NULL;

    if (strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "credit-consent: --endpoint %s: an https:// URL (the "
                "platform's withdrawal endpoint)\n", url);
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK
        || (h = curl_easy_init()) == NULL)
    {
        fprintf(stderr, "credit-consent: cannot start libcurl\n");
        return -1;
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/jwt");
    hdrs = curl_slist_append(hdrs, "Accept: application/json, "
                             "application/problem+json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, jws);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) strlen(jws));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "credit-consent/" CA_VERSION);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, timeout < 10 ? timeout : 10);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    if (cacert != NULL) {
        curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
    }
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    } else {
        fprintf(stderr, "credit-consent: %s: %s\n", url,
                err[0] ? err : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return rc == CURLE_OK ? 0 : -1;
}

/* A refusal about time: how far the signer's clock is from the
 * gateway's, which is the usual cause. */
static void
clock_hint(const answer *a)
{
    time_t  theirs = a->date[0] ? curl_getdate(a->date, NULL) : -1;
    long    d;

    if (theirs < 0) {
        return;
    }
    d = (long) (time(NULL) - theirs);
    if (d > 5 || d < -5) {
        fprintf(stderr, "credit-consent: this computer's clock is %ld s %s "
                "the gateway's: set it right and send again\n",
                d < 0 ? -d : d, d < 0 ? "behind" : "ahead of");
    }
}

/* What the gateway answered: 0 withdrawn, 1 refused. */
static int
report(long status, const answer *a, int as_json)
{
    json_t     *doc = json_loadb(a->data, a->len, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *reason = type && strncmp(type, "urn:credit-auth:", 16) == 0
                         ? type + 16 : NULL;
    int         rc = EXIT_FINDING;

    if (as_json && doc != NULL) {
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        putchar('\n');
    }
    if (status == 200 && json_is_string(json_object_get(doc, "revoked"))) {
        if (!as_json) {
            printf("withdrawn: consent %s of %s, by the %s, at %s\n",
                   json_string_value(json_object_get(doc, "revoked")),
                   json_string_value(json_object_get(doc, "enterprise")),
                   json_string_value(json_object_get(doc, "by")),
                   json_string_value(json_object_get(doc, "at")));
        }
        rc = 0;
    } else if (reason != NULL) {
        fprintf(stderr, "credit-consent: refused: %s (%ld): %s (request "
                "%s)\n", reason, status,
                json_string_value(json_object_get(doc, "detail")),
                json_string_value(json_object_get(doc, "request_id")));
        if (strcmp(reason, "token_expired") == 0
            || strcmp(reason, "token_not_yet_valid") == 0)
        {
            clock_hint(a);
        }
    } else {
        fprintf(stderr, "credit-consent: the endpoint answered HTTP %ld, "
                "not a withdrawal's answer%s\n", status,
                status == 429 ? ": too many requests, wait and send again"
                : status == 404 ? ": is the URL the withdrawal endpoint?"
                : "");
    }
    json_decref(doc);
    return rc;
}

/* keygen's PREFIX.jwk beside PREFIX.key.pem, if it is there. */
const char *
jwk_beside(const char *key, char *buf, size_t len)
{
    size_t  n = strlen(key);
    FILE   *f;

    if (n < 8 || n + 1 > len || strcmp(key + n - 8, ".key.pem") != 0) {
        return NULL;
    }
    snprintf(buf, len, "%.*s.jwk", (int) (n - 8), key);
    if ((f = fopen(buf, "r")) == NULL) {
        return NULL;
    }
    fclose(f);
    return buf;
}

/*
 * Signs the withdrawal of jti (sub: the enterprise, when the platform's
 * key signs; NULL for the enterprise's own) and sends it: the exit
 * status (0 withdrawn, 1 refused, 2 not sent).
 */
int
send_withdrawal(const signer *sg, const char *sub, const char *jti,
                const char *url, const char *cacert, long timeout,
                int as_json)
{
    char   *hdr, *claims, *jws;
    long    status = 0;
    int     rc;
    json_t *doc;
    answer  a;

    doc = json_pack("{s:s,s:s,s:s}", "alg", ca_alg_name(sg->alg), "typ",
                    CA_WITHDRAWAL_TYP, "kid", sg->kid);
    hdr = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    doc = json_pack("{s:s,s:s,s:I}", "iss", sg->uscc, "jti", jti, "iat",
                    (json_int_t) time(NULL));
    if (sub != NULL) {
        json_object_set_new(doc, "sub", json_string(sub));
    }
    claims = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    jws = hdr && claims ? ca_token_sign(sg->alg, sg->pkey, hdr, claims)
                        : NULL;
    free(hdr);
    free(claims);
    if (jws == NULL) {
        fprintf(stderr, "credit-consent: the key cannot sign %s\n",
                ca_alg_name(sg->alg));
        return EXIT_USAGE;
    }

    memset(&a, 0, sizeof(a));
    a.data = malloc(ANSWER_MAX + 1);
    if (a.data == NULL || post_jws(url, cacert, timeout, jws, &status, &a)
                          != 0)
    {
        free(a.data);
        free(jws);
        return EXIT_USAGE;
    }
    rc = report(status, &a, as_json);
    free(a.data);
    free(jws);
    return rc;
}

int
cmd_withdraw(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"key", required_argument, NULL, 'k'},
        {"jwk", required_argument, NULL, 'w'},
        {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'i'},
        {"iss", required_argument, NULL, 's'},
        {"jti", required_argument, NULL, 'j'},
        {"token", required_argument, NULL, 't'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"cacert", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *key = NULL, *jwk = NULL, *alg = NULL;
    const char *kid = NULL, *iss = NULL, *jti = NULL, *token = NULL;
    const char *pass = NULL, *cacert = NULL, *s_timeout = NULL;
    char        missing[64], why[256], beside[4096], tiss[19];
    char        tjti[CA_JTI_MAX + 1];
    long long   timeout = 30, exp;
    int         as_json = 0, c, rc;
    signer      sg;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'e': url = optarg; break;
        case 'k': key = optarg; break;
        case 'w': jwk = optarg; break;
        case 'a': alg = optarg; break;
        case 'i': kid = optarg; break;
        case 's': iss = optarg; break;
        case 'j': jti = optarg; break;
        case 't': token = optarg; break;
        case 'p': pass = optarg; break;
        case 'c': cacert = optarg; break;
        case 'T': s_timeout = optarg; break;
        case 'J': as_json = 1; break;
        case 'h': fputs(usage_withdraw, stdout); return 0;
        default: return usage_option(usage_withdraw, argv);
        }
    }
    if (optind != argc) {
        return usage_error(usage_withdraw, "withdraw: unexpected argument "
                           "%s", argv[optind]);
    }
    missing[0] = '\0';
    need(missing, sizeof(missing), url, "--endpoint");
    need(missing, sizeof(missing), key, "--key");
    if (missing[0] != '\0') {
        return usage_error(usage_withdraw, "withdraw: missing %s", missing);
    }
    if ((jti == NULL) == (token == NULL)) {
        return usage_error(usage_withdraw, "%s", "withdraw: give --jti ID "
                           "or --token FILE (one of them)");
    }
    if (jti != NULL && !ca_is_token_chars(jti, CA_JTI_MAX)) {
        return usage_error(usage_withdraw, "bad --jti %s (a consent's id: "
                           "1..64 characters of [A-Za-z0-9._-])", jti);
    }
    if (s_timeout && (parse_duration(s_timeout, &timeout) != 0
                      || timeout > 600))
    {
        return usage_error(usage_withdraw, "bad --timeout %s (1..600 "
                           "seconds)", s_timeout);
    }
    if (iss != NULL && uscc_why(iss, why, sizeof(why)) != NULL) {
        return usage_error(usage_withdraw, "--iss: %s", why);
    }
    if (token != NULL
        && token_ids(token, tiss, tjti, sizeof(tjti), &exp) != 0)
    {
        return EXIT_USAGE;
    }
    if (jwk == NULL) {
        jwk = jwk_beside(key, beside, sizeof(beside));
    }
    rc = signer_load(&sg, key, pass, jwk, alg, kid, iss, 1, usage_withdraw);
    if (rc != 0) {
        return rc;
    }
    if (token != NULL) {
        if (strcmp(tiss, sg.uscc) != 0) {
            fprintf(stderr, "credit-consent: the consent in %s is %s's, the "
                    "key is %s's: an enterprise withdraws only its own\n",
                    token, tiss, sg.uscc);
            signer_free(&sg);
            return EXIT_USAGE;
        }
        jti = tjti;
    }

    rc = send_withdrawal(&sg, NULL, jti, url, cacert, (long) timeout,
                         as_json);
    signer_free(&sg);
    return rc;
}
