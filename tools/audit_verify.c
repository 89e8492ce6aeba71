/*
 * credit-audit verify and archive: the chains and checkpoints of the
 * stream against one or several gateways' public keys (lib/auditverify).
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
#include "verify/auditverify.h"
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

/* ---- verifying a stream ---------------------------------------------- */

struct av_run_s {
    const av_keys *keys;
    ca_av         *av[AV_KEYS_MAX];
    size_t         read, total;
    int            progress;
    av_entry_hook  hook;
    void          *hook_data;
    av_resume     *resume;
    av_anchor     *anchor;
    char           last_id[48];
    /* the result */
    size_t         nchains;
    const ca_av_chain **chain;
    size_t        *key;         /* which key verified chain[i] */
    size_t         breaks;
};

av_run *
av_run_new(const av_keys *ks)
{
    av_run *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->keys = ks;
    for (size_t i = 0; i < ks->n; i++) {
        if ((r->av[i] = ca_av_new(ks->key[i])) == NULL) {
            av_run_free(r);
            return NULL;
        }
    }
    return r;
}

void
av_run_hook(av_run *r, av_entry_hook hook, void *data)
{
    r->hook = hook;
    r->hook_data = data;
}

int
av_run_add(av_run *r, const entry *e)
{
    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_add(r->av[i], e->id, e->n, e->name, e->nlen, e->value,
                      e->vlen) != 0)
        {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    return 0;
}

int
av_run_resume(av_run *r, av_resume *rs)
{
    r->resume = rs;
    for (size_t i = 0; rs != NULL && i < r->keys->n; i++) {
        if (av_resume_floors(rs, r->av[i]) != 0) {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static int
cb_verify(const entry *e, void *data)
{
    av_run *r = data;
    int     rc;

    snprintf(r->last_id, sizeof(r->last_id), "%s", e->id);
    if (r->resume != NULL) {
        rc = av_resume_filter(r->resume, e);
        if (rc != 0) {
            return rc < 0 ? EXIT_USAGE : 0;
        }
    }
    rc = av_run_add(r, e);
    if (rc == 0 && r->hook != NULL) {
        rc = r->hook(e, r->hook_data);
    }
    if (r->progress && ++r->read % PAGE == 0) {
        fprintf(stderr, "\rcredit-audit: %zu of %zu entries read", r->read,
                r->total);
    }
    return rc;
}

/* Per chain, the key's report that verified most checkpoints, then the
 * most findings: with as many signatures verified, a finding only one
 * key's verifier makes comes from a head that key's checkpoint listed
 * (the chain's own key may vouch for nothing of a chain cut before its
 * first checkpoint).  Lookups by chain name through a map. */
int
av_run_finish(av_run *r)
{
    strmap names;
    size_t n0 = 0;

    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_finish(r->av[i]) != 0) {
            fputs("credit-audit: out of memory\n", stderr);
            return EXIT_USAGE;
        }
    }
    /* a chain only a listed head names exists in the verifiers whose key
     * verified the listing: every key's chains, once each */
    for (size_t k = 0; k < r->keys->n; k++) {
        n0 += ca_av_nchains(r->av[k]);
    }
    r->chain = calloc(n0 ? n0 : 1, sizeof(*r->chain));
    r->key = calloc(n0 ? n0 : 1, sizeof(*r->key));
    if (r->chain == NULL || r->key == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        return EXIT_USAGE;
    }
    memset(&names, 0, sizeof(names));
    n0 = 0;
    for (size_t k = 0; k < r->keys->n; k++) {
        for (size_t i = 0; i < ca_av_nchains(r->av[k]); i++) {
            const ca_av_chain *c = ca_av_chain_at(r->av[k], i), *b;
            map_slot          *s = map_find(&names, c->chain,
                                            strlen(c->chain), 1);

            if (s->count == 0) {
                s->count = ++n0;        /* index + 1 */
                r->chain[n0 - 1] = c;
                r->key[n0 - 1] = k;
                continue;
            }
            b = r->chain[s->count - 1];
            if (c->checkpoints_verified > b->checkpoints_verified
                || (c->checkpoints_verified == b->checkpoints_verified
                    && c->nfindings > b->nfindings))
            {
                r->chain[s->count - 1] = c;
                r->key[s->count - 1] = k;
            }
        }
    }
    map_free(&names);
    r->nchains = n0;
    r->breaks = av_resume_breaks(r->resume);
    for (size_t i = 0; i < n0; i++) {
        r->breaks += av_run_chain_breaks(r, r->chain[i]);
    }
    return 0;
}

int
av_run_excused(const av_run *r, const ca_av_chain *c, const ca_av_finding *f)
{
    return av_resume_excused(r->resume, c->chain, f);
}

size_t
av_run_chain_breaks(const av_run *r, const ca_av_chain *c)
{
    size_t n = 0;

    for (size_t j = 0; j < c->nfindings; j++) {
        n += !av_run_excused(r, c, &c->findings[j]);
    }
    return n;
}

const char *
av_run_last_id(const av_run *r)
{
    return r->last_id;
}

int
av_run_stream(av_run *r, trail *t, redisContext *rc, const char *stream,
              const char *from, size_t *count)
{
    redisReply *x;
    int         rv;

    r->progress = isatty(STDERR_FILENO);
    if (r->progress) {
        x = redisCommand(rc, "XLEN %s", stream);
        r->total = x != NULL && x->type == REDIS_REPLY_INTEGER
                   ? (size_t) x->integer : 0;
        freeReplyObject(x);
    }
    rv = trail_scan_from(t, rc, stream, from, cb_verify, r, count);
    if (r->progress) {
        fprintf(stderr, "\rcredit-audit: %zu of %zu entries read\n", r->read,
                r->total);
    }
    return rv != 0 ? rv : av_run_finish(r);
}

size_t
av_run_nchains(const av_run *r)
{
    return r->nchains;
}

const ca_av_chain *
av_run_chain(const av_run *r, size_t i, const char **keyname)
{
    if (keyname != NULL) {
        *keyname = r->keys->name[r->key[i]];
    }
    return r->chain[i];
}

size_t
av_run_breaks(const av_run *r)
{
    return r->breaks + av_anchor_missing(r->anchor, 1);
}

void
av_run_anchor(av_run *r, av_anchor *an)
{
    r->anchor = an;
    av_run_hook(r, av_anchor_see, an);
}

/* Listed heads checked and missing, from the key that checked most. */
static void
av_run_heads(const av_run *r, size_t *checked, size_t *missing)
{
    *checked = *missing = 0;
    for (size_t i = 0; i < r->keys->n; i++) {
        if (ca_av_heads_checked(r->av[i]) > *checked) {
            *checked = ca_av_heads_checked(r->av[i]);
            *missing = ca_av_heads_missing(r->av[i]);
        }
    }
}

size_t
av_run_entries(const av_run *r)
{
    return ca_av_entries(r->av[0]);
}

void
av_run_free(av_run *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < AV_KEYS_MAX; i++) {
        ca_av_free(r->av[i]);
    }
    free(r->chain);
    free(r->key);
    free(r);
}

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
    if (v->anchor != NULL) {
        json_t *m = av_anchor_missing_json(v->anchor);
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
    (void) av_anchor_missing(v->anchor, 0);
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
    redisContext *rc;
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
    if (av_keys_load(&co, &ks) != 0) {
        av_resume_free(rs);
        av_anchor_free(an);
        return EXIT_USAGE;
    }
    if ((rc = trail_open(&t, &co.redis)) == NULL) {
        av_keys_free(&ks);
        av_resume_free(rs);
        av_anchor_free(an);
        return EXIT_USAGE;
    }
    v = av_run_new(&ks);
    if (v == NULL) {
        fputs("credit-audit: out of memory\n", stderr);
        rv = EXIT_USAGE;
    } else {
        if (an != NULL) {
            av_run_anchor(v, an);
        }
        rv = av_run_resume(v, rs);
        if (rv == 0) {
            rv = av_run_stream(v, &t, rc, co.stream, from, &count);
        }
    }
    redisFree(rc);
    trail_close(&t);
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
            && av_resume_save(rs, v, co.stream, resume, from,
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
