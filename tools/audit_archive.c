/*
 * credit-audit archive: moves whole, verified chains older than a date
 * out of Redis (the gateway never trims; each entry costs Redis memory).
 *
 *   1. verify the whole stream with the keys; pick the chains that are
 *      intact, end in a verified checkpoint (no unsigned tail) and whose
 *      last entry is older than --before;
 *   2. export their entries to a new file (JSON Lines, as `export`), up
 *      to the last stream id read in step 1, and fsync it;
 *   3. read the file back and verify it on its own: every picked chain
 *      must come back intact, signed and whole;
 *   4. only then XDEL exactly those entries, a page at a time.
 *
 * Nothing is trimmed that was not exported and verified from the file.
 * A picked chain that grew after step 1 (a worker still alive, idle since
 * --before) stops the trim: trimming its head would break it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit_tool.h"
#include "audit_verify.h"

static const char usage_archive[] =
    "usage: credit-audit archive --before T --out FILE\n"
    "         (--pubkey FILE ... | --keyring FILE) [--dry-run]"
    " [common options]\n"
    "\n"
    "Exports, verifies and trims whole chains whose last entry is older\n"
    "than --before: only chains that verify intact and end in a verified\n"
    "checkpoint are taken.  Their entries are written to FILE (JSON Lines\n"
    "as `export` writes them; FILE must not exist), FILE is read back and\n"
    "verified on its own, and only then are exactly those entries deleted\n"
    "from the stream (XDEL).  --dry-run stops before deleting.  Verify an\n"
    "archive later with `credit-audit verify` after loading it into a\n"
    "scratch Redis, or keep it with the period's report.  Exit status 0\n"
    "done (or nothing to archive), 1 the archive did not verify or a chain\n"
    "grew meanwhile (nothing deleted), 2 usage or connection error.\n"
    "\n" TIME_NOTE "\n" COMMON_OPTS
    "  --before T                    archive chains that ended before T\n"
    "  --out FILE                    the archive (created, never replaced)\n"
    "  --dry-run                     export and verify, delete nothing\n";

typedef struct {
    int64_t  last_ts;
    size_t   entries;       /* stream entries read (duplicates included) */
    int      picked;
} chain_info;

typedef struct {
    strmap      names;      /* chain -> index (count) */
    chain_info *info;
    size_t      n, cap;
    char        end_id[64]; /* the last stream id of pass 1 */
    /* pass 2 and 3 */
    FILE       *out;
    size_t      written;
    redisContext *rc;
    const char *stream;
    char      **del;
    size_t      ndel, deleted;
    int         grew;
} archive_ctx;

static chain_info *
chain_of(archive_ctx *a, const entry *e, int create)
{
    size_t      len;
    const char *c = get(e, CA_F_CHAIN, &len);
    map_slot   *s;

    if (c == NULL || len == 0) {
        return NULL;
    }
    s = map_find(&a->names, c, len, 0);
    if (s == NULL && create) {
        if (a->n == a->cap) {
            size_t      ncap = a->cap ? a->cap * 2 : 64;
            chain_info *ni = realloc(a->info, ncap * sizeof(*ni));

            if (ni == NULL) {
                return NULL;
            }
            a->info = ni;
            a->cap = ncap;
        }
        s = map_find(&a->names, c, len, 1);
        s->count = a->n;
        memset(&a->info[a->n], 0, sizeof(a->info[0]));
        a->n++;
    }
    return s ? &a->info[s->count] : NULL;
}

/* Stream ids compare as (ms, seq). */
static int
id_cmp(const char *x, const char *y)
{
    unsigned long long xm = 0, xs = 0, ym = 0, ys = 0;

    sscanf(x, "%llu-%llu", &xm, &xs);
    sscanf(y, "%llu-%llu", &ym, &ys);
    if (xm != ym) {
        return xm < ym ? -1 : 1;
    }
    return xs < ys ? -1 : xs > ys;
}

static int
cb_survey(const entry *e, void *data)
{
    archive_ctx *a = data;
    chain_info  *c = chain_of(a, e, 1);
    int64_t      ts = entry_ts(e);

    snprintf(a->end_id, sizeof(a->end_id), "%s", e->id);
    if (c != NULL) {
        c->entries++;
        if (ts > c->last_ts) {
            c->last_ts = ts;
        }
    }
    return 0;
}

static int
cb_export(const entry *e, void *data)
{
    archive_ctx *a = data;
    chain_info  *c;

    if (id_cmp(e->id, a->end_id) > 0) {
        c = chain_of(a, e, 0);
        if (c != NULL && c->picked) {
            a->grew = 1;
        }
        return 0;
    }
    c = chain_of(a, e, 0);
    if (c != NULL && c->picked) {
        print_json_entry(a->out, e, 0);
        a->written++;
    }
    return 0;
}

static int
flush_del(archive_ctx *a)
{
    const char **argv;
    redisReply  *r;
    int          rv = 0;

    if (a->ndel == 0) {
        return 0;
    }
    argv = malloc((a->ndel + 2) * sizeof(*argv));
    if (argv == NULL) {
        return EXIT_USAGE;
    }
    argv[0] = "XDEL";
    argv[1] = a->stream;
    for (size_t i = 0; i < a->ndel; i++) {
        argv[i + 2] = a->del[i];
    }
    r = redisCommandArgv(a->rc, (int) a->ndel + 2, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        rv = reply_error(a->rc, r, "XDEL");
    } else {
        a->deleted += (size_t) r->integer;
        freeReplyObject(r);
    }
    free(argv);
    for (size_t i = 0; i < a->ndel; i++) {
        free(a->del[i]);
    }
    a->ndel = 0;
    return rv;
}

static int
cb_trim(const entry *e, void *data)
{
    archive_ctx *a = data;
    chain_info  *c;

    if (id_cmp(e->id, a->end_id) > 0) {
        return 0;
    }
    c = chain_of(a, e, 0);
    if (c == NULL || !c->picked) {
        return 0;
    }
    if ((a->del[a->ndel] = strdup(e->id)) == NULL) {
        return EXIT_USAGE;
    }
    if (++a->ndel == PAGE) {
        return flush_del(a);
    }
    return 0;
}

/* Pass 3: the archive file, read back and verified on its own. */
static int
verify_file(const char *file, const av_keys *ks, archive_ctx *a)
{
    FILE       *f = fopen(file, "r");
    char       *line = NULL;
    size_t      cap = 0, bad = 0, lines = 0;
    av_run     *v = av_run_new(ks);
    int         rv = 0;

    if (f == NULL || v == NULL) {
        fprintf(stderr, "credit-audit: %s: %s\n", file,
                f ? "out of memory" : strerror(errno));
        if (f) {
            fclose(f);
        }
        av_run_free(v);
        return EXIT_USAGE;
    }
    while (rv == 0 && getline(&line, &cap, f) > 0) {
        json_error_t  jerr;
        json_t       *o = json_loads(line, JSON_ALLOW_NUL, &jerr), *val;
        const char   *names[2 * CA_ENTRY_FIELDS + 16];
        const char   *values[2 * CA_ENTRY_FIELDS + 16];
        size_t        nlen[2 * CA_ENTRY_FIELDS + 16];
        size_t        vlen[2 * CA_ENTRY_FIELDS + 16];
        const char   *key;
        entry         e = {0};

        lines++;
        if (!json_is_object(o)
            || !json_is_string(json_object_get(o, "id")))
        {
            bad++;
            json_decref(o);
            continue;
        }
        e.id = json_string_value(json_object_get(o, "id"));
        /* jansson keeps members in the order read: the stored order */
        json_object_foreach(o, key, val) {
            if (strcmp(key, "id") == 0 || !json_is_string(val)
                || e.n == sizeof(names) / sizeof(names[0]))
            {
                continue;
            }
            names[e.n] = key;
            nlen[e.n] = strlen(key);
            values[e.n] = json_string_value(val);
            vlen[e.n] = json_string_length(val);
            e.n++;
        }
        e.name = names;
        e.nlen = nlen;
        e.value = values;
        e.vlen = vlen;
        rv = av_run_add(v, &e);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rv == 0) {
        rv = av_run_finish(v);
    }
    if (rv == 0) {
        size_t picked = 0, good = 0;

        for (size_t i = 0; i < a->n; i++) {
            picked += a->info[i].picked;
        }
        for (size_t i = 0; i < av_run_nchains(v); i++) {
            const ca_av_chain *c = av_run_chain(v, i, NULL);

            if (c->nfindings == 0 && c->has_signed && c->unsigned_tail == 0)
            {
                good++;
            } else {
                fprintf(stderr, "credit-audit: archive %s: chain %s does "
                        "not verify from the file (%zu breaks, unsigned "
                        "tail %zu)\n", file, c->chain, c->nfindings,
                        c->unsigned_tail);
            }
        }
        if (bad > 0 || lines != a->written || good != picked
            || av_run_nchains(v) != picked)
        {
            fprintf(stderr, "credit-audit: archive %s did not verify: %zu "
                    "of %zu chains intact, %zu unreadable lines; nothing "
                    "deleted\n", file, good, picked, bad);
            rv = EXIT_FINDING;
        }
    }
    av_run_free(v);
    return rv;
}

/* A writer's checkpoints list the heads of its other chains (v2): its
 * chains go together or stay together, so that neither the archive nor
 * what is left in Redis holds a listing of a chain the other has.  The
 * number of chains put back. */
static size_t
whole_writers(archive_ctx *a, const av_run *v)
{
    strmap  kept;               /* writers with a chain that stays */
    size_t  back = 0;

    memset(&kept, 0, sizeof(kept));
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < av_run_nchains(v); i++) {
            const char *name = av_run_chain(v, i, NULL)->chain;
            const char *slash = strrchr(name, '/');
            size_t      wlen = slash ? (size_t) (slash - name) : strlen(name);
            map_slot   *s = map_find(&a->names, name, strlen(name), 0);
            chain_info *ci = s ? &a->info[s->count] : NULL;

            if (pass == 0 && (ci == NULL || !ci->picked)) {
                map_find(&kept, name, wlen, 1);
            } else if (pass == 1 && ci != NULL && ci->picked
                       && map_find(&kept, name, wlen, 0) != NULL)
            {
                ci->picked = 0;
                back++;
            }
        }
    }
    map_free(&kept);
    return back;
}

int
cmd_archive(int argc, char **argv)
{
    static const struct option opts[] = {
        COMMON_LONGOPTS,
        {"before", required_argument, NULL, OPT_BEFORE},
        {"out", required_argument, NULL, OPT_OUT},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {NULL, 0, NULL, 0}
    };
    common_opts   co;
    archive_ctx   a;
    av_keys       ks = {0};
    av_run       *v = NULL;
    period        per = {0};
    const char   *outfile = NULL;
    int           ch, rv, dry = 0, fd;
    size_t        count, picked = 0;

    common_init(&co);
    memset(&a, 0, sizeof(a));
    while ((ch = next_opt(&co, argc, argv, "h", opts)) != -1) {
        if (ch == 0) {
            return EXIT_USAGE;
        }
        switch (ch) {
        case OPT_BEFORE:
            period_opt(&per, OPT_UNTIL, optarg);
            break;
        case OPT_OUT:
            outfile = optarg;
            break;
        case OPT_DRY_RUN:
            dry = 1;
            break;
        case 'h':
            fputs(usage_archive, stdout);
            return 0;
        default:
            return usage_error(usage_archive, NULL, NULL);
        }
    }
    if (args_done(usage_archive, argc, argv, &per) != 0) {
        return EXIT_USAGE;
    }
    if (!per.set || outfile == NULL) {
        return usage_error(usage_archive, "%s", "archive needs --before T "
                           "and --out FILE");
    }
    if (co.npubkeys == 0 && co.keyring == NULL) {
        return usage_error(usage_archive, "%s", "archive verifies before it "
                           "trims: give --pubkey FILE or --keyring FILE");
    }
    if (av_keys_load(&co, &ks) != 0 || (v = av_run_new(&ks)) == NULL) {
        av_keys_free(&ks);
        return EXIT_USAGE;
    }
    a.stream = co.stream;
    if ((a.rc = tool_redis_open(&co.redis)) == NULL) {
        rv = EXIT_USAGE;
        goto done;
    }

    /* 1. verify and pick */
    av_run_hook(v, cb_survey, &a);
    if ((rv = av_run_stream(v, a.rc, co.stream, "-", &count)) != 0) {
        goto done;
    }
    for (size_t i = 0; i < av_run_nchains(v); i++) {
        const ca_av_chain *c = av_run_chain(v, i, NULL);
        map_slot          *s = map_find(&a.names, c->chain,
                                        strlen(c->chain), 0);
        chain_info        *ci = s ? &a.info[s->count] : NULL;

        if (ci != NULL && c->nfindings == 0 && c->has_signed
            && c->unsigned_tail == 0 && ci->last_ts >= 0
            && ci->last_ts < per.until)
        {
            ci->picked = 1;
            picked++;
        }
    }
    picked -= whole_writers(&a, v);
    if (picked == 0) {
        printf("nothing to archive: no intact, signed chain ended before "
               "the date\n");
        goto done;
    }

    /* 2. export */
    fd = open(outfile, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || (a.out = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "credit-audit: --out %s: %s (the archive is never "
                "written over: choose a new file)\n", outfile,
                strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        rv = EXIT_USAGE;
        goto done;
    }
    rv = scan_stream(a.rc, co.stream, cb_export, &a, &count);
    if (fflush(a.out) != 0 || fsync(fileno(a.out)) != 0 || ferror(a.out)) {
        fprintf(stderr, "credit-audit: %s: write error\n", outfile);
        rv = EXIT_USAGE;
    }
    fclose(a.out);
    a.out = NULL;
    if (rv != 0) {
        goto done;
    }

    /* 3. verify the file */
    if ((rv = verify_file(outfile, &ks, &a)) != 0) {
        goto done;
    }
    printf("%zu chains, %zu entries exported to %s and verified\n", picked,
           a.written, outfile);
    if (a.grew) {
        fprintf(stderr, "credit-audit: a chain picked for the archive grew "
                "while it was read (its worker is alive): nothing deleted; "
                "choose an earlier --before\n");
        rv = EXIT_FINDING;
        goto done;
    }
    if (dry) {
        printf("--dry-run: nothing deleted\n");
        goto done;
    }

    /* 4. trim exactly what was exported and verified, unless a picked
     * chain grew since (the entries after end_id) */
    {
        char from[72];

        snprintf(from, sizeof(from), "(%s", a.end_id);
        rv = scan_stream_from(a.rc, co.stream, from, cb_export, &a, &count);
        if (rv != 0) {
            goto done;
        }
        if (a.grew) {
            fprintf(stderr, "credit-audit: a chain picked for the archive "
                    "grew meanwhile: nothing deleted; choose an earlier "
                    "--before\n");
            rv = EXIT_FINDING;
            goto done;
        }
    }
    a.del = calloc(PAGE, sizeof(*a.del));
    if (a.del == NULL) {
        rv = EXIT_USAGE;
        goto done;
    }
    rv = scan_stream(a.rc, co.stream, cb_trim, &a, &count);
    if (rv == 0) {
        rv = flush_del(&a);
    }
    printf("%zu entries deleted from %s\n", a.deleted, co.stream);

done:
    if (a.rc != NULL) {
        redisFree(a.rc);
    }
    for (size_t i = 0; i < a.ndel; i++) {
        free(a.del[i]);
    }
    free(a.del);
    free(a.info);
    map_free(&a.names);
    av_run_free(v);
    av_keys_free(&ks);
    return rv;
}
