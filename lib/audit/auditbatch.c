/*
 * One script call for a batch of audit entries, whatever their chains.
 *
 * KEYS[1]: the stream.  ARGV:
 *   ntemplates, then per template: nf, mask, then nf times: name, and its
 *     value when the mask says 'f' (the same in every entry of the batch:
 *     sent once).  'v': a value per entry; 'x': a value per variant.
 *   nitems, then per item: kind, template, head key, head field, seq,
 *     its 'v' values; a decision ('D') then: nchecks, 7 strings per check
 *     (op, key, hash field or "", increment, max, expire-at, variant),
 *     nvariants, the 'x' values of each variant.
 * Chain heads (the last seq written) are kept per writer in the hash
 * credit:chains:<gw>/<pid>/<start>, one field per lane, 30 days.  An
 * entry ('E') is written when its seq is the next; a seq already written
 * is a duplicate; a replayed entry ('F') may follow a missing predecessor
 * once per chain and call (the spool is in chain order: what is missing
 * before its head is lost).  A decision runs its checks in order, the
 * first that refuses choosing the variant: 'E' refuses when the key exists
 * (revocation); 'C' adds the increment to a counter (a key, or a field of
 * a hash) and refuses past max; counters are taken back unless all pass
 * (a counter back at 0 is removed: a refusal leaves no trace), and expire
 * at expire-at from their first use.
 * Reply: one character per item: w written, d duplicate, g gap (not
 * written), or the variant written (1 = allow).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditbatch.h"
#include "auditschema.h"
#include "core/util.h"

static const char  ca_aw_lua[] =
    "local a, i, T = ARGV, 2, {}\n"
    "for t = 1, tonumber(a[1]) do\n"
    "  local nf, mask = tonumber(a[i]), a[i + 1]\n"
    "  local f, vp, xp = {}, {}, {}\n"
    "  i = i + 2\n"
    "  for j = 1, nf do\n"
    "    f[2 * j - 1] = a[i]; i = i + 1\n"
    "    local m = string.byte(mask, j)\n"
    "    if m == 102 then f[2 * j] = a[i]; i = i + 1\n"
    "    elseif m == 118 then vp[#vp + 1] = 2 * j\n"
    "    else xp[#xp + 1] = 2 * j end\n"
    "  end\n"
    "  T[t] = {f, vp, xp, 2 * nf, #vp, #xp}\n"
    "end\n"
    "local heads, out = {}, {}\n"
    "local n = tonumber(a[i]); i = i + 1\n"
    "for k = 1, n do\n"
    "  local kind, t = a[i], T[tonumber(a[i + 1])]\n"
    "  local hk, hf = a[i + 2], a[i + 3]\n"
    "  local seq, vals = tonumber(a[i + 4]), i + 5\n"
    "  local hh = heads[hk]\n"
    "  if not hh then hh = {}; heads[hk] = hh end\n"
    "  local h = hh[hf]\n"
    "  local res, x\n"
    "  i = vals + t[5]\n"
    "  if kind == 'D' then\n"
    "    local nc = tonumber(a[i])\n"
    "    local checks = i + 1\n"
    "    i = checks + 7 * nc\n"
    "    local xs = i + 1\n"
    "    i = xs + tonumber(a[i]) * t[6]\n"
    "    if h and h[1] + 1 ~= seq then\n"
    "      res = 'g'\n"
    "    else\n"
    "      local v, counted = 1, nil\n"
    "      for c = 0, nc - 1 do\n"
    "        local p = checks + 7 * c\n"
    "        local key, field, by = a[p + 1], a[p + 2], tonumber(a[p + 3])\n"
    "        if a[p] == 'E' then\n"
    "          if redis.call('EXISTS', key) == 1 then\n"
    "            v = tonumber(a[p + 6]); break\n"
    "          end\n"
    "        else\n"
    "          local used\n"
    "          if field == '' then used = redis.call('INCRBY', key, by)\n"
    "          else used = redis.call('HINCRBY', key, field, by) end\n"
    "          counted = counted or {}\n"
    "          counted[#counted + 1] = p\n"
    "          if used == by then redis.call('EXPIREAT', key, a[p + 5]) end\n"
    "          if used > tonumber(a[p + 4]) then\n"
    "            v = tonumber(a[p + 6]); break\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "      if v ~= 1 and counted then\n"
    "        for c = 1, #counted do\n"
    "          local p = counted[c]\n"
    "          local key, field = a[p + 1], a[p + 2]\n"
    "          if field == '' then\n"
    "            if redis.call('DECRBY', key, a[p + 3]) <= 0 then\n"
    "              redis.call('DEL', key)\n"
    "            end\n"
    "          elseif redis.call('HINCRBY', key, field, -a[p + 3]) <= 0 then\n"
    "            redis.call('HDEL', key, field)\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "      res = tostring(v)\n"
    "      x = xs + (v - 1) * t[6]\n"
    "    end\n"
    "  else\n"
    "    if not h then\n"
    "      h = {tonumber(redis.call('HGET', hk, hf) or '0'), false}\n"
    "      hh[hf] = h\n"
    "    end\n"
    "    if seq <= h[1] then res = 'd'\n"
    "    elseif seq == h[1] + 1 or (kind == 'F' and not h[2]) then res = 'w'\n"
    "    else res = 'g' end\n"
    "  end\n"
    "  if res ~= 'd' and res ~= 'g' then\n"
    "    local f, vp, xp = t[1], t[2], t[3]\n"
    "    for j = 1, t[5] do f[vp[j]] = a[vals + j - 1] end\n"
    "    for j = 1, t[6] do f[xp[j]] = a[x + j - 1] end\n"
    "    redis.call('XADD', KEYS[1], '*', unpack(f, 1, t[4]))\n"
    "    hh[hf] = {seq, true}\n"
    "  end\n"
    "  out[k] = res\n"
    "end\n"
    "for hk, hh in pairs(heads) do\n"
    "  local args, m = {}, 0\n"
    "  for hf, h in pairs(hh) do\n"
    "    if h[2] then args[m + 1] = hf; args[m + 2] = h[1]; m = m + 2 end\n"
    "  end\n"
    "  if m > 0 then\n"
    "    redis.call('HSET', hk, unpack(args))\n"
    "    redis.call('EXPIRE', hk, 2592000)\n"
    "  end\n"
    "end\n"
    "return table.concat(out)\n";

static char  ca_aw_sha[41];


const char *
ca_aw_script(void)
{
    return ca_aw_lua;
}


const char *
ca_aw_script_sha(void)
{
    return ca_script_sha(ca_aw_lua, sizeof(ca_aw_lua) - 1, ca_aw_sha);
}


/*
 * Jobs come and go at the request rate, a couple of KiB each: above
 * malloc's per-thread cache, each was a trip through its bins.  Jobs up
 * to CA_AW_JOB_BLOCK bytes are that size, and a few freed ones are kept
 * for the next (a process has one writer; tools none).  Not under ASan,
 * which could not see a job used after it was freed.
 */
#define CA_AW_JOB_BLOCK  4096
#define CA_AW_JOBS_KEPT  32
#if defined(__SANITIZE_ADDRESS__)
#define CA_AW_KEEP_JOBS  0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CA_AW_KEEP_JOBS  0
#endif
#endif
#ifndef CA_AW_KEEP_JOBS
#define CA_AW_KEEP_JOBS  1
#endif

static void    *ca_aw_kept[CA_AW_JOBS_KEPT];
static size_t   ca_aw_n_kept;


static void *
ca_aw_job_alloc(size_t size, size_t *cap)
{
    if (size > CA_AW_JOB_BLOCK) {
        *cap = size;
        return malloc(size);
    }
    *cap = CA_AW_JOB_BLOCK;
    if (ca_aw_n_kept > 0) {
        return ca_aw_kept[--ca_aw_n_kept];
    }
    return malloc(CA_AW_JOB_BLOCK);
}


void
ca_aw_jobs_release(void)
{
    while (ca_aw_n_kept > 0) {
        free(ca_aw_kept[--ca_aw_n_kept]);
    }
}


ca_aw_job *
ca_aw_job_new(size_t n, const char *const *names, const char *const *values,
              const size_t *lens, size_t ncheck, size_t key_bytes)
{
    size_t      size, i, nl, all, cap;
    size_t      nls[CA_ENTRY_FIELDS];
    char       *p, *v;
    ca_aw_job  *job;

    size = sizeof(ca_aw_job) + n * (2 * sizeof(char *) + sizeof(size_t))
           + ncheck * sizeof(ca_aw_jcheck) + key_bytes;
    all = 0;
    for (i = 0; i < n; i++) {
        nl = strlen(names[i]);
        if (i < CA_ENTRY_FIELDS) {
            nls[i] = nl;
        }
        all += nl + 1;
        size += lens[i] + 1;
    }
    size += all;

    /* everything past the job itself is written below (or, the checks,
     * by the caller): zeroing it all was a third of the cost */
    job = ca_aw_job_alloc(size, &cap);
    if (job == NULL) {
        return NULL;
    }
    memset(job, 0, sizeof(ca_aw_job));
    job->cap = cap;
    job->n = n;
    job->name = (const char **) (job + 1);
    job->value = job->name + n;
    job->len = (size_t *) (job->value + n);
    job->check = (ca_aw_jcheck *) (job->len + n);
    job->chain = (size_t) -1;

    /* the names side by side, then the values: jobs of one shape have
     * the same names block (ca_aw_same_shape) */
    p = (char *) (job->check + ncheck);
    job->names_len = all;
    v = p + all;

    for (i = 0; i < n; i++) {
        nl = i < CA_ENTRY_FIELDS ? nls[i] : strlen(names[i]);
        memcpy(p, names[i], nl + 1);
        job->name[i] = p;
        p += nl + 1;
        memcpy(v, values[i], lens[i]);
        v[lens[i]] = '\0';
        job->value[i] = v;
        job->len[i] = lens[i];
        v += lens[i] + 1;
        if (strcmp(job->name[i], CA_AUDIT_NAME(TS)) == 0) {
            job->ts = strtoll(job->value[i], NULL, 10);
        } else if (strcmp(job->name[i], CA_AUDIT_NAME(SEQ)) == 0) {
            job->seq = strtoull(job->value[i], NULL, 10);
        } else if (strcmp(job->name[i], CA_AUDIT_NAME(CHAIN)) == 0
                   && job->chain == (size_t) -1)
        {
            job->chain = i;
        }
    }
    /* what is left is for the checks' keys */
    for (i = 0; i < ncheck; i++) {
        job->check[i].key = v;
    }
    return job;
}


void
ca_aw_job_free(ca_aw_job *job)
{
    if (CA_AW_KEEP_JOBS && job != NULL && job->cap == CA_AW_JOB_BLOCK
        && ca_aw_n_kept < CA_AW_JOBS_KEPT)
    {
        ca_aw_kept[ca_aw_n_kept++] = job;
        return;
    }
    free(job);
}


int
ca_aw_job_chain(const ca_aw_job *job, const char **chain, size_t *len,
                size_t *slash)
{
    size_t  i = job->chain, k;

    if (i == (size_t) -1) {
        return -1;
    }
    *chain = job->value[i];
    *len = job->len[i];
    for (k = job->len[i]; k > 0; k--) {
        if (job->value[i][k - 1] == '/') {
            *slash = k - 1;
            return 0;
        }
    }
    return -1;
}


/* --- encoding ---------------------------------------------------------- */

typedef struct {
    char                kind;           /* 'D' or the others */
    const ca_aw_job    *first;
    char               *mask;
} ca_aw_template;


static int
ca_aw_is_x(const ca_aw_job *job, size_t i)
{
    return job->kind == CA_AW_KIND_DECISION
           && (i == job->xpos[0] || i == job->xpos[1] || i == job->xpos[2]);
}


/* The same names in the same order, the same ones per variant. */
static int
ca_aw_same_shape(const ca_aw_job *a, const ca_aw_job *b)
{
    int  decision = (a->kind == CA_AW_KIND_DECISION);

    if (decision != (b->kind == CA_AW_KIND_DECISION) || a->n != b->n
        || a->names_len != b->names_len
        || (decision && memcmp(a->xpos, b->xpos, sizeof(a->xpos)) != 0))
    {
        return 0;
    }
    /* NUL-separated, so one comparison is every name's */
    return a->n == 0 || memcmp(a->name[0], b->name[0], a->names_len) == 0;
}


void
ca_aw_batch_free(ca_aw_batch *b)
{
    free(b->cmd.argv);
    free(b->cmd.lens);
    free(b->scratch);
    free(b->jobs);
    free(b);
}


/*
 * Template of each job, and which of its fields are the same in every job
 * of that template (sent once).
 */
static size_t
ca_aw_templates(ca_aw_batch *b, ca_aw_template *tp, size_t *tof)
{
    size_t          i, j, t, nt = 0;
    const ca_aw_job *job, *f;

    for (i = 0; i < b->njobs; i++) {
        job = b->jobs[i];
        for (t = 0; t < nt; t++) {
            if (ca_aw_same_shape(tp[t].first, job)) {
                break;
            }
        }
        if (t == nt) {
            tp[t].first = job;
            tp[t].mask = malloc(job->n + 1);
            if (tp[t].mask == NULL) {
                return (size_t) -1;
            }
            for (j = 0; j < job->n; j++) {
                tp[t].mask[j] = ca_aw_is_x(job, j) ? 'x' : 'f';
            }
            tp[t].mask[job->n] = '\0';
            nt++;
        }
        tof[i] = t;
        f = tp[t].first;
        for (j = 0; j < job->n; j++) {
            if (tp[t].mask[j] == 'f'
                && (f->len[j] != job->len[j]
                    || memcmp(f->value[j], job->value[j], job->len[j]) != 0))
            {
                tp[t].mask[j] = 'v';
            }
        }
    }
    return nt;
}


int
ca_aw_encode(ca_aw_batch *b, const char *stream)
{
    size_t            i, j, k, t, nt, max, argc, sc;
    size_t           *tof;
    char             *s;
    const ca_aw_job  *job;
    ca_aw_template   *tp;
    int               rc = -1;

    tp = calloc(b->njobs, sizeof(ca_aw_template));
    tof = calloc(b->njobs, sizeof(size_t));
    if (tp == NULL || tof == NULL) {
        goto done;
    }
    nt = ca_aw_templates(b, tp, tof);
    if (nt == (size_t) -1) {
        goto done;
    }

    /* an upper bound of the arguments, and of the numbers printed */
    max = 6;
    sc = 48;
    for (t = 0; t < nt; t++) {
        max += 2 + 2 * tp[t].first->n;
        sc += 24 + tp[t].first->n + 1;
    }
    for (i = 0; i < b->njobs; i++) {
        job = b->jobs[i];
        max += 5 + job->n + 2 + 7 * job->ncheck + 3 * job->nvar;
        sc += 5 * 24 + sizeof("credit:chains:") + 160;
    }
    b->cmd.argv = malloc(max * sizeof(char *));
    b->cmd.lens = malloc(max * sizeof(size_t));
    b->scratch = malloc(sc);
    if (b->cmd.argv == NULL || b->cmd.lens == NULL || b->scratch == NULL) {
        goto done;
    }
    s = b->scratch;
    argc = 0;

#define ARG(p, l)  (b->cmd.argv[argc] = (p), b->cmd.lens[argc++] = (l))
#define NUM(v)                                                               \
    do {                                                                     \
        size_t  _n = ca_u64_str((uint64_t) (v), s);                          \
        ARG(s, _n);                                                          \
        s += _n + 1;                                                         \
    } while (0)

    ARG("EVALSHA", 7);
    ARG(ca_aw_script_sha(), 40);
    ARG("1", 1);
    ARG(stream, strlen(stream));

    NUM(nt);
    for (t = 0; t < nt; t++) {
        job = tp[t].first;
        NUM(job->n);
        memcpy(s, tp[t].mask, job->n + 1);
        ARG(s, job->n);
        s += job->n + 1;
        for (j = 0; j < job->n; j++) {
            ARG(job->name[j], strlen(job->name[j]));
            if (tp[t].mask[j] == 'f') {
                ARG(job->value[j], job->len[j]);
            }
        }
    }

    NUM(b->njobs);
    for (i = 0; i < b->njobs; i++) {
        const char  *chain;
        size_t       clen, slash, n;

        job = b->jobs[i];
        if (ca_aw_job_chain(job, &chain, &clen, &slash) != 0) {
            goto done;
        }
        ARG(job->kind == CA_AW_KIND_DECISION ? "D"
            : job->kind == CA_AW_KIND_REPLAY || job->after_gap ? "F" : "E",
            1);
        NUM(tof[i] + 1);
        n = slash < 160 ? slash : 160;
        memcpy(s, "credit:chains:", 14);
        memcpy(s + 14, chain, n);
        s[14 + n] = '\0';
        ARG(s, 14 + n);
        s += 14 + n + 1;
        ARG(chain + slash + 1, clen - slash - 1);
        NUM(job->seq);
        for (j = 0; j < job->n; j++) {
            if (tp[tof[i]].mask[j] == 'v') {
                ARG(job->value[j], job->len[j]);
            }
        }
        if (job->kind != CA_AW_KIND_DECISION) {
            continue;
        }
        NUM(job->ncheck);
        for (k = 0; k < job->ncheck; k++) {
            const ca_aw_jcheck  *c = &job->check[k];

            ARG(c->op == 'E' ? "E" : "C", 1);
            ARG(c->key, strlen(c->key));
            ARG(c->field, strlen(c->field));
            ARG(c->by, strlen(c->by));
            ARG(c->max, strlen(c->max));
            ARG(c->expire, strlen(c->expire));
            ARG(c->variant, strlen(c->variant));
        }
        NUM(job->nvar);
        for (k = 0; k < job->nvar; k++) {
            const ca_aw_variant  *v = &job->var[k];
            const char           *why = v->reason == CA_OK
                                        ? "" : ca_reason_name(v->reason);

            /* in entry order: decision, reason, hash */
            ARG(v->decision, strlen(v->decision));
            ARG(why, strlen(why));
            ARG(v->hash, 64);
        }
    }
#undef NUM
#undef ARG

    b->cmd.argc = (int) argc;
    rc = 0;

done:
    for (t = 0; tp != NULL && t < b->njobs && tp[t].first; t++) {
        free(tp[t].mask);
    }
    free(tp);
    free(tof);
    return rc;
}
