/*
 * credit-consent: the enterprise's side of a consent (contract §9).
 *
 *   keygen   a signing key pair: private PEM and the public JWK to register
 *   sign     a consent token (consent_sign.c)
 *   inspect  decode a token; with --jwks, verify it as the gateway would
 *   revoke   mark a consent revoked in Redis (consent_revoke.c)
 *   key      the enterprise key registry in Redis (consent_key.c)
 *
 * Exit status: 0 success, 1 a finding (inspect: invalid), 2 usage or
 * connection error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/pem.h>

#include "consent.h"
#include "core/core.h"
#include "jws/jws.h"


static const char usage_main[] =
    "usage: credit-consent COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  keygen    create a signing key and its public JWK\n"
    "  codes     the bank, purpose and category codes, with their names\n"
    "  sign      sign a consent token\n"
    "  inspect   show a token; with --jwks, verify it\n"
    "  withdraw  take a consent back: a signed withdrawal sent to the\n"
    "            platform's withdrawal endpoint\n"
    "  revoke    the platform's revocation (Redis, or --endpoint)\n"
    "  key       the enterprise key registry in Redis: add, rotate,"
    " revoke,\n"
    "            list, show\n"
    "  statement  `statement verify FILE`: check an access statement\n"
    "            (signatures, every proof, consistency with a checkpoint\n"
    "            kept before)\n"
    "\n"
    "credit-consent COMMAND --help shows a command's options;\n"
    "credit-consent --version its version.  For the enterprise, step by\n"
    "step: docs/enterprise.md.\n";

static const char usage_keygen[] =
    "usage: credit-consent keygen --alg ALG --kid KID --uscc USCC"
    " --out PREFIX\n"
    "         [--passphrase-file FILE] [--force]\n"
    "\n"
    "Writes PREFIX.key.pem (private key, PKCS#8, mode 0600) and PREFIX.jwk\n"
    "(public JWK with kid, alg, use and uscc: what the enterprise sends\n"
    "the platform to register) and prints the JWK.  With\n"
    "--passphrase-file the private key is encrypted (PKCS#8, AES-256)\n"
    "with the file's first line; sign and withdraw read it with the same\n"
    "option.  An existing PREFIX.key.pem or PREFIX.jwk is not overwritten\n"
    "(tokens signed with that key would stop verifying) unless --force is\n"
    "given.  ALG: ES256 RS256 PS256 EdDSA SM2 (RSA keys: 2048 bits).\n";

/* ---- keygen ---------------------------------------------------------- */

static int
write_private(const char *path, EVP_PKEY *pkey, int force,
              const char *passphrase)
{
    int   fd;
    FILE *f;
    int   ok;

    /* The private key is created unreadable to others from the start;
     * O_EXCL: an existing key is never lost to a repeated command. */
    fd = open(path, O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL), 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "credit-consent: %s: %s\n", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    /* PKCS#8 either way; encrypted: PBES2 with AES-256-CBC */
    ok = PEM_write_PrivateKey(f, pkey, passphrase ? EVP_aes_256_cbc() : NULL,
                              (const unsigned char *) passphrase,
                              passphrase ? (int) strlen(passphrase) : 0,
                              NULL, NULL) == 1;
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "credit-consent: %s: cannot write key\n", path);
        return -1;
    }
    return 0;
}

static int
cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"alg", required_argument, NULL, 'a'},
        {"kid", required_argument, NULL, 'k'},
        {"uscc", required_argument, NULL, 'u'},
        {"out", required_argument, NULL, 'o'},
        {"passphrase-file", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *alg_name = NULL, *kid = NULL, *uscc = NULL, *out = NULL;
    const char *passfile = NULL;
    char        path[4096], missing[128], why[256], pass[1024];
    int         force = 0;
    ca_alg      alg;
    EVP_PKEY   *pkey;
    json_t     *jwk;
    char       *text;
    int         c, rc = EXIT_USAGE;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': alg_name = optarg; break;
        case 'k': kid = optarg; break;
        case 'u': uscc = optarg; break;
        case 'o': out = optarg; break;
        case 'p': passfile = optarg; break;
        case 'f': force = 1; break;
        case 'h': fputs(usage_keygen, stdout); return 0;
        default: return usage_option(usage_keygen, argv);
        }
    }
    if (optind != argc) {
        return usage_error(usage_keygen, "keygen: unexpected argument %s",
                           argv[optind]);
    }
    missing[0] = '\0';
    need(missing, sizeof(missing), alg_name, "--alg");
    need(missing, sizeof(missing), kid, "--kid");
    need(missing, sizeof(missing), uscc, "--uscc");
    need(missing, sizeof(missing), out, "--out");
    if (missing[0] != '\0') {
        return usage_error(usage_keygen, "keygen: missing %s", missing);
    }
    if (!force) {
        const char *ext[] = {".key.pem", ".jwk"};

        for (size_t i = 0; i < 2; i++) {
            snprintf(path, sizeof(path), "%s%s", out, ext[i]);
            if (access(path, F_OK) == 0) {
                fprintf(stderr, "credit-consent: %s exists: not overwritten "
                        "(tokens signed with its key would stop verifying); "
                        "choose another --out, or --force\n", path);
                return EXIT_USAGE;
            }
        }
    }
    if ((alg = ca_alg_from_name(alg_name)) == CA_ALG_NONE) {
        return usage_error(usage_keygen, "unknown alg %s "
                           "(ES256, RS256, PS256, EdDSA or SM2)", alg_name);
    }
    if (!ca_is_token_chars(kid, CA_KID_MAX)) {
        return usage_error(usage_keygen, "bad kid %s "
                           "(1..64 characters of [A-Za-z0-9._-])", kid);
    }
    if (uscc_why(uscc, why, sizeof(why)) != NULL) {
        return usage_error(usage_keygen, "--uscc: %s", why);
    }
    if (passfile != NULL
        && tool_secret_file("--passphrase-file", passfile, pass,
                            sizeof(pass)) != 0)
    {
        return EXIT_USAGE;
    }

    pkey = ca_key_generate(alg);
    jwk = pkey ? ca_jwk_from_pkey(pkey, alg, kid, uscc) : NULL;
    if (jwk == NULL) {
        fprintf(stderr, "credit-consent: cannot generate a %s key\n",
                alg_name);
        EVP_PKEY_free(pkey);
        return EXIT_USAGE;
    }
    text = json_dumps(jwk, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    snprintf(path, sizeof(path), "%s.key.pem", out);
    if (write_private(path, pkey, force, passfile ? pass : NULL) == 0) {
        snprintf(path, sizeof(path), "%s.jwk", out);
        if (json_dump_file(jwk, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
            != 0)
        {
            fprintf(stderr, "credit-consent: %s: cannot write\n", path);
        } else {
            printf("%s\n", text);
            rc = 0;
        }
    }
    OPENSSL_cleanse(pass, sizeof(pass));
    free(text);
    json_decref(jwk);
    EVP_PKEY_free(pkey);
    return rc;
}

const char *tool_name = "credit-consent";

int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (tool_version(argc, argv)) {
        return 0;
    }
    if (cmd == NULL) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0
        || strcmp(cmd, "help") == 0)
    {
        fputs(usage_main, stdout);
        return 0;
    }
    /* Each command parses its own options from its own argv, and says
     * what is wrong in one line of its own (usage_option). */
    opterr = 0;
    argc--;
    argv++;
    if (strcmp(cmd, "keygen") == 0) {
        return cmd_keygen(argc, argv);
    }
    if (strcmp(cmd, "sign") == 0) {
        return cmd_sign(argc, argv);
    }
    if (strcmp(cmd, "inspect") == 0) {
        return cmd_inspect(argc, argv);
    }
    if (strcmp(cmd, "revoke") == 0) {
        return cmd_revoke(argc, argv);
    }
    if (strcmp(cmd, "key") == 0) {
        return cmd_key(argc, argv);
    }
    if (strcmp(cmd, "withdraw") == 0) {
        return cmd_withdraw(argc, argv);
    }
    if (strcmp(cmd, "codes") == 0) {
        return cmd_codes(argc, argv);
    }
    if (strcmp(cmd, "statement") == 0) {
        return cmd_statement(argc, argv);
    }
    fprintf(stderr, "credit-consent: unknown command %s (see: "
            "credit-consent --help)\n", cmd);
    return EXIT_USAGE;
}
