/*
 * credit-audit verify and anchor: the chains and checkpoints of the
 * stream against one or several gateways' public keys (lib/verify/), run
 * by audit_run.c; anchor writes what such a run verified
 * (audit_anchor.c, audit_resume.c).
 *
 * Several keys: one verifier per key, each fed every entry; a chain is
 * reported from the key that verifies most of its checkpoints.  Chain
 * breaks do not depend on the key, bad signatures do: a chain is intact
 * if one key of the keyring verifies all its checkpoints (a worker signs
 * with one key for its whole life, a new key means a reload and new
 * chains).
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit_tool.h"
#include "verify/verify.h"
#include "audit_verify.h"

static const char usage_verify[] =
    "usage: credit-audit verify --pubkey FILE [--pubkey FILE ...]\n"
    "         [--keyring FILE] [--resume FILE] [common options]\n"
    "\n"
    "Checks every writer's hash chain and every checkpoint signature with\n"
    "the gateways' Ed25519 public keys (PEM).  Per chain: entries,\n"
    "checkpoints verified, last signed seq, unsigned tail (entries after\n"
    "the last verified checkpoint: a warning, not a break), duplicates\n"
    "(the same entry delivered twice: counted, not a break), the key that\n"
    "verified it, and breaks with their stream id and kind: modified,\n"
    "inserted, deleted, reordered, truncated, bad_signature,\n"
    "discontinuity.  See\n"
    "docs/audit-format.md.  Exit status 1 if any chain has a break.\n"
    "The stream is read in pages of 1000 entries; on a terminal, progress\n"
    "is shown on stderr.\n"
    "\n" COMMON_OPTS
    "  --pubkey FILE                 a gateway's audit public key (PEM;\n"
    "                                repeatable, a file may hold several)\n"
    "  --keyring FILE                PEM public keys, one after another\n"
    "  --anchor FILE                 every (chain, seq, hash) of FILE\n"
    "                                (credit-audit anchor --out) must still\n"
    "                                be in the stream: a chain deleted or cut\n"
    "                                below it is a break (not with --resume)\n"
    ARCHIVE_READ_HELP
    "                                (chains continue from the archive into\n"
    "                                Redis; not with --resume)\n"
    "  --resume FILE                 start from what the last run verified\n"
    "                                (FILE: its anchors, created if absent,\n"
    "                                replaced after a run without a break):\n"
    "                                only new entries are read and kept\n";

/* ---- verify ---------------------------------------------------------- */

static void
anchor_json(const char *chain, const char *id, const char *why, void *data)
{
    int *first = data;

    fputs(*first ? "{\"chain\":" : ",{\"chain\":", stdout);
    *first = 0;
    json_str(stdout, chain, strlen(chain));
    fputs(",\"id\":", stdout);
    json_str(stdout, id, strlen(id));
    fputs(",\"detail\":", stdout);
    json_str(stdout, why, strlen(why));
    fputc('}', stdout);
}

static void
anchor_text(const char *chain, const char *id, const char *why, void *data)
{
    fputs("chain ", stdout);
    text_value(stdout, chain, strlen(chain));
    printf(": BROKEN\n  %-13s %s: %s\n", "modified", id, why);
}

static void
verify_json(const common_opts *co, const av_run *v, const av_resume *rs,
            const char *from)
{
    size_t nb = av_run_breaks(v), hc, hm;
    int    first = 1;

    av_run_heads(v, &hc, &hm);
    fputs("{\"stream\":", stdout);
    json_str(stdout, co->stream, strlen(co->stream));
    printf(",\"intact\":%s,\"entries\":%zu,\"breaks\":%zu,"
           "\"heads_checked\":%zu,\"heads_missing\":%zu,",
           nb ? "false" : "true", av_run_entries(v), nb, hc, hm);
    if (rs != NULL) {
        fputs("\"resumed_from\":", stdout);
        json_str(stdout, from, strlen(from));
        printf(",\"skipped\":%zu,\"anchor_breaks\":[",
               av_resume_skipped(rs));
        av_resume_each_break(rs, anchor_json, &first);
        fputs("],", stdout);
    }
    if (av_run_anchors(v) != NULL) {
        json_t *m = av_anchor_missing_json(av_run_anchors(v));
        char   *t = json_dumps(m, JSON_COMPACT);

        printf("\"anchors_missing\":%s,", t ? t : "[]");
        free(t);
        json_decref(m);
    }
    fputs("\"chains\":[", stdout);
    for (size_t i = 0; i < av_run_nchains(v); i++) {
        const char        *kn;
        const ca_av_chain *c = av_run_chain(v, i, &kn);

        printf("%s{\"chain\":", i ? "," : "");
        json_str(stdout, c->chain, strlen(c->chain));
        fputs(",\"key\":", stdout);
        json_str(stdout, kn, strlen(kn));
        printf(",\"entries\":%zu,\"first_seq\":%llu,\"last_seq\":%llu,"
               "\"checkpoints\":%zu,\"checkpoints_verified\":%zu,"
               "\"last_signed_seq\":",
               c->entries, (unsigned long long) c->first_seq,
               (unsigned long long) c->last_seq, c->checkpoints,
               c->checkpoints_verified);
        if (c->has_signed) {
            printf("%llu", (unsigned long long) c->last_signed_seq);
        } else {
            fputs("null", stdout);
        }
        printf(",\"unsigned_tail\":%zu,\"duplicates\":%zu,\"intact\":%s,"
               "\"breaks\":[", c->unsigned_tail, c->duplicates,
               av_run_chain_breaks(v, c) ? "false" : "true");
        for (size_t j = 0, k = 0; j < c->nfindings; j++) {
            const ca_av_finding *f = &c->findings[j];

            if (av_run_excused(v, c, f)) {
                continue;
            }
            printf("%s{\"kind\":\"%s\",\"id\":", k++ ? "," : "",
                   ca_av_kind_name(f->kind));
            json_str(stdout, f->id, strlen(f->id));
            printf(",\"seq\":%llu,\"detail\":", (unsigned long long) f->seq);
            json_str(stdout, f->detail, strlen(f->detail));
            fputc('}', stdout);
        }
        fputs("]}", stdout);
    }
    fputs("]}\n", stdout);
}

static void
verify_text(const common_opts *co, const av_run *v, const av_resume *rs,
            const char *from)
{
    size_t nb = av_run_breaks(v), nc = av_run_nchains(v), hc, hm;

    if (rs != NULL) {
        printf("resumed from %s: %zu entries verified before skipped\n",
               from, av_resume_skipped(rs));
        av_resume_each_break(rs, anchor_text, NULL);
    }
    for (size_t i = 0; i < nc; i++) {
        const char        *kn;
        const ca_av_chain *c = av_run_chain(v, i, &kn);

        fputs("chain ", stdout);
        text_value(stdout, c->chain[0] ? c->chain : "(none)",
                   c->chain[0] ? strlen(c->chain) : 6);
        printf(": %s\n", av_run_chain_breaks(v, c) ? "BROKEN" : "intact");
        printf("  entries %zu (seq %llu..%llu), checkpoints %zu verified "
               "%zu, last signed seq ", c->entries,
               (unsigned long long) c->first_seq,
               (unsigned long long) c->last_seq, c->checkpoints,
               c->checkpoints_verified);
        if (c->has_signed) {
            printf("%llu", (unsigned long long) c->last_signed_seq);
        } else {
            fputs("none", stdout);
        }
        printf(", unsigned tail %zu, duplicates %zu", c->unsigned_tail,
               c->duplicates);
        if (c->checkpoints_verified > 0) {
            fputs(", key ", stdout);
            text_value(stdout, kn, strlen(kn));
        }
        fputc('\n', stdout);
        for (size_t j = 0; j < c->nfindings; j++) {
            const ca_av_finding *f = &c->findings[j];

            if (av_run_excused(v, c, f)) {
                continue;
            }
            printf("  %-13s %s seq %llu: %s\n", ca_av_kind_name(f->kind),
                   f->id, (unsigned long long) f->seq, f->detail);
        }
    }
    (void) av_anchor_missing(av_run_anchors(v), 0);
    av_run_heads(v, &hc, &hm);
    if (hc > 0) {
        printf("heads listed by checkpoints: %zu checked, %zu missing\n", hc,
               hm);
    }
    printf("%s: %zu chain%s, %zu entries, %zu break%s: %s\n", co->stream, nc,
           nc == 1 ? "" : "s", av_run_entries(v), nb, nb == 1 ? "" : "s",
           nb ? "NOT INTACT" : "intact");
}

int
cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"resume", required_argument, NULL, OPT_RESUME},
        {"anchor", required_argument, NULL, OPT_ANCHOR},
        ARCHIVE_READ_LONGOPT,
        {NULL, 0, NULL, 0}
    };
    trail         t = {0};
    av_anchor    *an = NULL;
    const char   *anchor = NULL;
    common_opts   co;
    int           ch, rv;
    size_t        count;
    av_keys       ks;
    av_run       *v;
    av_resume    *rs = NULL;
    const char   *resume = NULL;
    char          from[64] = "-";

    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        if (ch == OPT_RESUME) {
            resume = optarg;
            continue;
        }
        if (ch == OPT_ANCHOR) {
            anchor = optarg;
            continue;
        }
        if (ch == OPT_ARCHIVE_READ) {
            t.conninfo = optarg;
            continue;
        }
        if (ch == 'h') {
            fputs(usage_verify, stdout);
            return 0;
        }
        return usage_error(usage_verify, NULL, NULL);
    }
    if (args_done(usage_verify, argc, argv, NULL) != 0) {
        return EXIT_USAGE;
    }
    /* without the key a forger's re-hashed chain looks intact: refuse
     * rather than report a verification that proves nothing */
    if (co.npubkeys == 0 && co.keyring == NULL) {
        return usage_error(usage_verify, "%s", "verify needs the gateways' "
                           "public keys: --pubkey FILE or --keyring FILE");
    }
    if (anchor != NULL && resume != NULL) {
        return usage_error(usage_verify, "%s", "--anchor reads the whole "
                           "stream: not with --resume");
    }
    if (t.conninfo != NULL && resume != NULL) {
        return usage_error(usage_verify, "%s", "--resume continues from "
                           "Redis: not with --archive");
    }
    if (resume != NULL && (rs = av_resume_load(resume, co.stream, from,
                                               sizeof(from))) == NULL)
    {
        return EXIT_USAGE;
    }
    if (anchor != NULL && (an = av_anchor_load(anchor, co.stream)) == NULL) {
        return EXIT_USAGE;
    }
    rv = av_run_verify(&co, &t, &ks, rs, an, from, &count, &v);
    if (rv == 0) {
        if (count == 0 && rs == NULL) {
            fprintf(stderr, "credit-audit: stream %s is empty\n",
                    co.stream);
        }
        if (co.json) {
            verify_json(&co, v, rs, from);
        } else {
            verify_text(&co, v, rs, from);
            if (t.conninfo != NULL) {
                printf("read %zu entries from the archive, %zu from "
                       "Redis\n", t.from_archive, t.from_redis);
            }
        }
        /* the next run starts from here only if this one found nothing */
        if (rs != NULL && av_run_breaks(v) == 0
            && av_resume_save(rs, av_run_chains(v), av_run_nchains(v),
                              co.stream, resume, from,
                              av_run_last_id(v)) != 0)
        {
            rv = EXIT_USAGE;
        }
        if (rv == 0) {
            rv = av_run_breaks(v) ? EXIT_FINDING : 0;
        }
    }
    av_run_free(v);
    av_keys_free(&ks);
    av_resume_free(rs);
    av_anchor_free(an);
    return rv;
}


/* ---- anchor ---------------------------------------------------------- */

static const char usage_anchor[] =
    "usage: credit-audit anchor --out FILE --pubkey FILE [--pubkey FILE ...]\n"
    "         [--keyring FILE] [common options]\n"
    "\n"
    "Verifies the whole stream and, when no chain has a break, writes to\n"
    "FILE (write, fsync, rename) per chain the seq and hash of its last\n"
    "verified checkpoint.  Keep FILE outside Redis, where only the\n"
    "regulator writes: `credit-audit verify --anchor FILE` later proves\n"
    "that nothing signed before it was deleted or cut (contract 7.1).  Exit\n"
    "status 1, and no FILE, if the stream has a break.\n"
    "\n" COMMON_OPTS
    "  --out FILE                    the anchor file\n"
    "  --pubkey FILE, --keyring FILE the gateways' public keys (as verify)\n";

int
cmd_anchor(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"out", required_argument, NULL, OPT_OUT},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    int           ch, rv;
    size_t        count = 0;
    av_keys       ks;
    av_run       *v;
    av_resume    *rs;
    const char   *out = NULL;
    char          from[64];

    common_init(&co);
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        if (ch == OPT_OUT) {
            out = optarg;
            continue;
        }
        if (ch == 'h') {
            fputs(usage_anchor, stdout);
            return 0;
        }
        return usage_error(usage_anchor, NULL, NULL);
    }
    if (args_done(usage_anchor, argc, argv, NULL) != 0) {
        return EXIT_USAGE;
    }
    if (out == NULL || (co.npubkeys == 0 && co.keyring == NULL)) {
        return usage_error(usage_anchor, "%s", "anchor needs --out FILE and "
                           "the gateways' public keys");
    }
    /* a fresh state ("" names no file): the whole stream is read */
    if ((rs = av_resume_load("", co.stream, from, sizeof(from))) == NULL) {
        return EXIT_USAGE;
    }
    rv = av_run_verify(&co, NULL, &ks, rs, NULL, "-", &count, &v);
    if (rv == 0 && av_run_breaks(v) != 0) {
        fprintf(stderr, "credit-audit: stream %s has %zu break(s): no "
                "anchor written (see credit-audit verify)\n", co.stream,
                av_run_breaks(v));
        rv = EXIT_FINDING;
    } else if (rv == 0) {
        if (av_resume_save(rs, av_run_chains(v), av_run_nchains(v), co.stream,
                           out, "-", av_run_last_id(v))
            != 0)
        {
            rv = EXIT_USAGE;
        } else {
            printf("anchored %zu chain(s), %zu entries, to %s\n",
                   av_run_nchains(v), count, out);
        }
    }
    av_run_free(v);
    av_keys_free(&ks);
    av_resume_free(rs);
    return rv;
}
