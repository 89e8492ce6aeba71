/* credit-consent's pieces (tools/credit-consent.c, tools/consent_*.c). */
#ifndef CA_TOOLS_CONSENT_H
#define CA_TOOLS_CONSENT_H

#include <stdio.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common.h"
#include "jws/jws.h"

/* "credit-consent: <fmt> (see: credit-consent CMD --help)", one line:
 * EXIT_USAGE.  CMD is read from the usage's first line. */
int usage_error(const char *usage, const char *fmt, const char *arg);
/* The same for an option getopt refused (argv[optind - 1]). */
int usage_option(const char *usage, char **argv);
int parse_i64(const char *s, long long min, long long *out);
/* A duration: seconds, or a number with s, m, h or d (30d); 0 or -1. */
int parse_duration(const char *s, long long *seconds);
/* "not a valid USCC: X (why)" for a message. */
const char *uscc_why(const char *s, char *buf, size_t len);

/*
 * The enterprise's signing key (consent_signer.c): keygen's
 * PREFIX.key.pem, encrypted or not, and its public JWK (PREFIX.jwk),
 * whose alg, kid and uscc fill in what the command line leaves out.
 */
typedef struct {
    EVP_PKEY   *pkey;
    ca_alg      alg;
    const char *kid;
    const char *uscc;           /* NULL: neither given nor in a JWK */
    char        kid_buf[CA_KID_MAX + 1];
    char        uscc_buf[19];
} signer;

/* The private key in a PEM file, decrypted with the passphrase file's
 * first line if given; NULL after a message. */
EVP_PKEY *read_private(const char *path, const char *passphrase_file);
/* key (the private PEM), jwk (its JWK, may be NULL: then alg and kid must
 * be given, and uscc when need_uscc), and the options given (NULL when
 * not): an option that disagrees with the JWK, or a JWK that is not the
 * private key's, is an error.  0, or EXIT_USAGE after a message. */
int signer_load(signer *s, const char *key, const char *passphrase_file,
                const char *jwk, const char *alg, const char *kid,
                const char *uscc, int need_uscc, const char *usage);
void signer_free(signer *s);
/* A base64url JSON segment of a compact JWS, or NULL. */
json_t *decode_part(const char *s, size_t len);
/* TOKEN, or standard input for NULL or "-"; "Bearer " and white space
 * trimmed.  Caller frees. */
char *read_token(const char *arg);
/* The token in a file ("-": standard input), as read_token() trims it;
 * NULL after a message naming the option. */
char *read_token_file(const char *option, const char *file);
/* iss, jti and exp of the consent token in a file (consent_revoke.c). */
int token_ids(const char *file, char *iss, char *jti, size_t jlen,
              long long *exp);

/* Appends name to the list of missing options when value is NULL. */
void need(char *list, size_t len, const char *value, const char *name);

/* consent_codes.c: the known codes of a kind ('b' banks, 'p' purposes,
 * 'c' categories), printed one a line; codes_check: every code given is
 * known, else an error listing them (-1). */
#include "policy/policy.h"
json_t *codes_list(const ca_policy *p, const ca_banks *b, char kind);
void codes_print(FILE *f, json_t *list);
int codes_check(const ca_policy *p, const ca_banks *b, char kind,
                const char *file, json_t *given);

int cmd_sign(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_withdraw(int argc, char **argv);
/* consent_withdraw.c: a withdrawal signed and sent to a gateway's
 * endpoint (sub: the enterprise, for the platform's key; else NULL); the
 * exit status.  jwk_beside: keygen's PREFIX.jwk beside PREFIX.key.pem. */
int send_withdrawal(const signer *sg, const char *sub, const char *jti,
                    const char *url, const char *cacert, long timeout,
                    int as_json);
const char *jwk_beside(const char *key, char *buf, size_t len);
int cmd_codes(int argc, char **argv);
/* consent_statement.c: statement verify (contract 7.3) */
int cmd_statement(int argc, char **argv);

#endif
