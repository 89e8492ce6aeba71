/*
 * lib/auditwriter: the writer against a stand-in for Redis that runs the
 * batch script's rules in C (heads per chain, checks, variants), so that
 * what reaches the "stream" can be verified with lib/auditverify exactly
 * as credit-audit verify does.  The real script runs in the integration
 * tests (tests/integration/test_audit_faults.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "audit/audit.h"
#include "verify/auditverify.h"
#include "audit/auditwriter.h"
#include "audit/spool.h"
#include "core/util.h"

#include "audit_stream.h"

#define MAX_ENTRIES 512
#define MAX_KEYS    128

/* --- the stand-in for Redis -------------------------------------------- */


typedef struct {
    sentry   e[MAX_ENTRIES];
    size_t   n;
    char    *hkey[MAX_KEYS];        /* "<hash key>\n<field>" -> seq */
    uint64_t hseq[MAX_KEYS];
    size_t   nh;
    char    *key[MAX_KEYS];         /* revoked keys and counters */
    long     count[MAX_KEYS];
    size_t   nk;
} redis;

static redis     R;
static EVP_PKEY *key, *pub;
static char      dir[] = "/tmp/test_auditwriter.XXXXXX";
static char      reply[CA_AW_BATCH_MAX + 1];

static uint64_t *
head(const char *hk, size_t hkl, const char *hf, size_t hfl)
{
    char  k[512];

    snprintf(k, sizeof(k), "%.*s\n%.*s", (int) hkl, hk, (int) hfl, hf);
    for (size_t i = 0; i < R.nh; i++) {
        if (strcmp(R.hkey[i], k) == 0) {
            return &R.hseq[i];
        }
    }
    assert_true(R.nh < MAX_KEYS);
    R.hkey[R.nh] = strdup(k);
    R.hseq[R.nh] = 0;
    return &R.hseq[R.nh++];
}

static long *
counter(const char *k, size_t kl, int create)
{
    for (size_t i = 0; i < R.nk; i++) {
        if (strlen(R.key[i]) == kl && memcmp(R.key[i], k, kl) == 0) {
            return &R.count[i];
        }
    }
    if (!create) {
        return NULL;
    }
    R.key[R.nk] = strndup(k, kl);
    R.count[R.nk] = 0;
    return &R.count[R.nk++];
}

static long
num(const ca_aw_cmd *c, size_t i)
{
    char  b[32];

    assert_true(i < (size_t) c->argc && c->lens[i] < sizeof(b));
    memcpy(b, c->argv[i], c->lens[i]);
    b[c->lens[i]] = '\0';
    return strtol(b, NULL, 10);
}

static char *
dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

typedef struct {
    size_t       nf;
    const char  *mask;
    size_t       name[CA_ENTRY_FIELDS];     /* argv index */
    size_t       fixed[CA_ENTRY_FIELDS];
    size_t       nv, nx;
} tmpl;

/* Runs the command as the script would; returns the reply string. */
static const char *
run(const ca_aw_cmd *c)
{
    tmpl      T[CA_AW_BATCH_MAX];
    size_t    i = 5, nt, t, j, k, n;
    uint64_t  touched_seq[CA_AW_BATCH_MAX];
    uint64_t *touched[CA_AW_BATCH_MAX];
    size_t    ntouched = 0;
    int       wrote_in_call[CA_AW_BATCH_MAX] = { 0 };

    assert_int_equal(c->lens[0], 7);
    assert_memory_equal(c->argv[0], "EVALSHA", 7);
    assert_memory_equal(c->argv[1], ca_aw_script_sha(), 40);
    nt = (size_t) num(c, 4);
    for (t = 0; t < nt; t++) {
        T[t].nf = (size_t) num(c, i);
        T[t].mask = c->argv[i + 1];
        assert_int_equal(c->lens[i + 1], T[t].nf);
        i += 2;
        T[t].nv = T[t].nx = 0;
        for (j = 0; j < T[t].nf; j++) {
            T[t].name[j] = i++;
            if (T[t].mask[j] == 'f') {
                T[t].fixed[j] = i++;
            } else if (T[t].mask[j] == 'v') {
                T[t].nv++;
            } else {
                assert_int_equal(T[t].mask[j], 'x');
                T[t].nx++;
            }
        }
    }
    n = (size_t) num(c, i++);
    for (k = 0; k < n; k++) {
        char       kind = c->argv[i][0];
        tmpl      *tp = &T[num(c, i + 1) - 1];
        uint64_t  *h = head(c->argv[i + 2], c->lens[i + 2], c->argv[i + 3],
                            c->lens[i + 3]);
        uint64_t   seq = (uint64_t) num(c, i + 4);
        size_t     vals = i + 5, x = 0, pv;
        char       res;
        int        first = 1;

        for (j = 0; j < ntouched; j++) {
            if (touched[j] == h) {
                first = 0;
            }
        }
        (void) wrote_in_call;
        i = vals + tp->nv;
        if (kind == 'D') {
            size_t  nc = (size_t) num(c, i), checks = i + 1, xs, v = 1;
            long   *cnt[CA_AW_CHECKS_MAX], by[CA_AW_CHECKS_MAX];
            size_t  ncnt = 0;

            i = checks + 7 * nc;
            xs = i + 1;
            i = xs + (size_t) num(c, i) * tp->nx;
            for (j = 0; j < nc; j++) {
                size_t  p = checks + 7 * j;
                char    k[256];

                /* a hash field counts as a key of its own here */
                snprintf(k, sizeof(k), "%.*s/%.*s", (int) c->lens[p + 1],
                         c->argv[p + 1], (int) c->lens[p + 2],
                         c->argv[p + 2]);
                if (c->argv[p][0] == 'E') {
                    if (counter(c->argv[p + 1], c->lens[p + 1], 0)) {
                        v = (size_t) num(c, p + 6);
                        break;
                    }
                } else {
                    long *u = counter(k, strlen(k), 1);

                    by[ncnt] = num(c, p + 3);
                    cnt[ncnt++] = u;
                    *u += num(c, p + 3);
                    if (*u > num(c, p + 4)) {
                        v = (size_t) num(c, p + 6);
                        break;
                    }
                }
            }
            if (v != 1) {
                for (j = 0; j < ncnt; j++) {
                    *cnt[j] -= by[j];
                }
            }
            if (!first && *h + 1 != seq) {
                res = 'g';
            } else {
                res = (char) ('0' + v);
                x = xs + (v - 1) * tp->nx;
            }
        } else if (seq <= *h) {
            res = 'd';
        } else if (seq == *h + 1 || (kind == 'F' && first)) {
            res = 'w';
        } else {
            res = 'g';
        }
        if (res != 'd' && res != 'g') {
            sentry *e = &R.e[R.n++];

            assert_true(R.n < MAX_ENTRIES);
            e->n = tp->nf;
            pv = vals;
            for (j = 0; j < tp->nf; j++) {
                size_t  a = tp->mask[j] == 'f' ? tp->fixed[j]
                            : tp->mask[j] == 'v' ? pv++ : x++;

                e->name[j] = dupn(c->argv[tp->name[j]],
                                  c->lens[tp->name[j]]);
                e->value[j] = dupn(c->argv[a], c->lens[a]);
                e->len[j] = c->lens[a];
            }
            *h = seq;
            touched[ntouched] = h;
            touched_seq[ntouched++] = seq;
        }
        reply[k] = res;
    }
    (void) touched_seq;
    assert_int_equal(i, (size_t) c->argc);
    reply[n] = '\0';
    return reply;
}

static void
redis_reset(void)
{
    for (size_t i = 0; i < R.n; i++) {
        sentry_clear(&R.e[i]);
    }
    for (size_t i = 0; i < R.nh; i++) {
        free(R.hkey[i]);
    }
    for (size_t i = 0; i < R.nk; i++) {
        free(R.key[i]);
    }
    memset(&R, 0, sizeof(R));
}

/* Every chain of the stream intact (as credit-audit verify says). */
static void
assert_intact(void)
{
    ca_av  *v = ca_av_new(pub);

    for (size_t i = 0; i < R.n; i++) {
        snprintf(R.e[i].id, sizeof(R.e[i].id), "1-%zu", i);
        assert_int_equal(sentry_feed(v, &R.e[i]), 0);
    }
    assert_int_equal(ca_av_finish(v), 0);
    for (size_t i = 0; i < ca_av_nchains(v); i++) {
        const ca_av_chain *c = ca_av_chain_at(v, i);

        for (size_t j = 0; j < c->nfindings; j++) {
            print_error("%s: %s seq %llu: %s\n", c->chain,
                        ca_av_kind_name(c->findings[j].kind),
                        (unsigned long long) c->findings[j].seq,
                        c->findings[j].detail);
        }
    }
    assert_int_equal(ca_av_breaks(v), 0);
    ca_av_free(v);
}

/* --- the writer's side ------------------------------------------------- */

typedef struct {
    int        outcome;
    ca_reason  reason;
    int        calls;
} owner;

static char  logged[4096];

static void
settled(void *o, int outcome, ca_reason reason)
{
    owner *ow = o;

    ow->outcome = outcome;
    ow->reason = reason;
    ow->calls++;
}

static void
logger(void *ctx, int level, const char *msg)
{
    size_t  l = strlen(logged);

    snprintf(logged + l, sizeof(logged) - l, "%d %s\n", level, msg);
}

static char    spool_path[512];
/* Most tests need several commands out at once (orderings a full batch
 * can produce in production); the group-commit test sets it to 0. */
static size_t  calls_max = 4;

static ca_aw *
writer(const char *prefix, uint64_t spool_max, int with_spool)
{
    char        err[256];
    ca_aw_conf  conf = {
        .gw = "gw-1", .prefix = prefix, .stream = "credit:audit",
        .max_lanes = 4, .spool_max = spool_max, .key = key,
        .settled = settled, .log = logger, .calls_max = calls_max,
    };
    ca_aw      *aw;

    /* "gw-1/<pid>/<start>": the spool is named after the pid */
    snprintf(spool_path, sizeof(spool_path), "%s/worker-%ld.spool", dir,
             strtol(strchr(prefix, '/') + 1, NULL, 10));
    conf.spool_file = with_spool ? spool_path : NULL;
    aw = ca_aw_new(&conf, err, sizeof(err));
    assert_non_null(aw);
    return aw;
}

static void
refusal(ca_entry *e, const char *rid)
{
    ca_entry_init(e, "decision", 1795800000123, "gw-1");
    ca_entry_add(e, "rid", rid, strlen(rid));
    ca_entry_add(e, "bank", "BANK001", 7);
    ca_entry_add(e, "consent", "", 0);
    ca_entry_add(e, "decision", "deny", 4);
    ca_entry_add(e, "reason", "token_missing", 13);
    ca_entry_add(e, "policy", "p1 abc", 6);
}

static void
outcome_entry(ca_entry *e, const char *rid)
{
    ca_entry_init(e, "outcome", 1795800000200, "gw-1");
    ca_entry_add(e, "rid", rid, strlen(rid));
    ca_entry_add(e, "status", "200", 3);
}

static void
allow(ca_entry *e, const char *rid)
{
    ca_entry_init(e, "decision", 1795800000100, "gw-1");
    ca_entry_add(e, "rid", rid, strlen(rid));
    ca_entry_add(e, "bank", "BANK001", 7);
    ca_entry_add(e, "consent", "jti-1", 5);
    ca_entry_add(e, "decision", "allow", 5);
    ca_entry_add(e, "reason", "", 0);
    ca_entry_add(e, "policy", "p1 abc", 6);
}

static ca_aw_check  checks[] = {
    { 'E', "credit:revoked:jti-1", NULL, 0, 0, 0, CA_CONSENT_REVOKED },
    { 'C', "credit:uses:jti-1", NULL, 1, 2, 1900000000,
      CA_CONSENT_EXHAUSTED },
};

/* Sends what is queued and answers it with the stand-in. */
static void
turn(ca_aw *aw)
{
    ca_aw_cmd  *c;
    ca_aw_rep   rep;

    while ((c = ca_aw_flush(aw, 1)) != NULL) {
        rep.type = CA_AW_REPLY_STRING;
        rep.str = run(c);
        rep.len = strlen(rep.str);
        ca_aw_reply(aw, c, &rep);
    }
}

static int
replay_all(ca_aw *aw)
{
    ca_aw_cmd  *c;
    ca_aw_rep   rep;
    int         rounds = 0;

    while ((c = ca_aw_replay(aw)) != NULL) {
        rep.type = CA_AW_REPLY_STRING;
        rep.str = run(c);
        rep.len = strlen(rep.str);
        ca_aw_reply(aw, c, &rep);
        rounds++;
    }
    return rounds;
}

static size_t
count_rid(const char *rid, const char *decision, const char *reason)
{
    size_t  n = 0;

    for (size_t i = 0; i < R.n; i++) {
        const char *r = sentry_get(&R.e[i], "rid");

        if (r && strcmp(r, rid) == 0
            && (decision == NULL
                || strcmp(sentry_get(&R.e[i], "decision"), decision) == 0)
            && (reason == NULL
                || strcmp(sentry_get(&R.e[i], "reason"), reason) == 0))
        {
            n++;
        }
    }
    return n;
}

static int
setup(void **state)
{
    redis_reset();
    logged[0] = '\0';
    return 0;
}

/* --- tests ------------------------------------------------------------- */

/* Decisions of several lanes and chain-0 entries in one call; the checks
 * choose the variant; the next decision on a lane follows the variant
 * written. */
static void
test_group_commit_and_variants(void **state)
{
    ca_aw      *aw = writer("gw-1/100/1", 1 << 20, 1);
    ca_entry    e;
    owner       o[6] = { { 0 } };
    ca_aw_cmd  *c;
    ca_aw_rep   rep;

    allow(&e, "a1");
    assert_int_equal(ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL),
                     CA_AW_QUEUED);
    allow(&e, "a2");
    assert_int_equal(ca_aw_decide(aw, &e, "deny", checks, 2, &o[1], NULL),
                     CA_AW_QUEUED);
    refusal(&e, "r1");
    assert_int_equal(ca_aw_final(aw, &e, 1, &o[2], NULL), CA_AW_QUEUED);
    allow(&e, "a3");        /* max_uses 2: the third is exhausted */
    assert_int_equal(ca_aw_decide(aw, &e, "deny", checks, 2, &o[3], NULL),
                     CA_AW_QUEUED);

    c = ca_aw_flush(aw, 1);
    assert_non_null(c);
    assert_null(ca_aw_flush(aw, 1));      /* one call for all four */
    rep.type = CA_AW_REPLY_STRING;
    rep.str = run(c);
    rep.len = strlen(rep.str);
    assert_string_equal(rep.str, "11w3");
    ca_aw_reply(aw, c, &rep);

    assert_int_equal(o[0].outcome, CA_AW_ACKED);
    assert_int_equal(o[0].reason, CA_OK);
    assert_int_equal(o[2].outcome, CA_AW_ACKED);
    assert_int_equal(o[3].outcome, CA_AW_ACKED);
    assert_int_equal(o[3].reason, CA_CONSENT_EXHAUSTED);
    assert_int_equal(count_rid("a3", "deny", "consent_exhausted"), 1);

    /* revoked now: the refusal variant, on a lane that moved on */
    R.key[R.nk] = strdup("credit:revoked:jti-1");
    R.count[R.nk++] = 1;
    allow(&e, "a4");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[4], NULL);
    allow(&e, "a5");
    ca_aw_decide(aw, &e, "report", checks, 2, &o[5], NULL);
    turn(aw);
    assert_int_equal(o[4].reason, CA_CONSENT_REVOKED);
    assert_int_equal(count_rid("a4", "deny", "consent_revoked"), 1);
    assert_int_equal(count_rid("a5", "report", "consent_revoked"), 1);
    /* refusals do not count: still 2 uses */
    assert_int_equal(*counter("credit:uses:jti-1/", 18, 0), 2);

    /* every chain signed, then chain 0 lists the lanes' checkpoints */
    ca_aw_tick(aw, 1795800001000, 1000, 1, 1);
    turn(aw);
    assert_false(ca_aw_idle(aw, 1));
    ca_aw_tick(aw, 1795800001100, 1000, 1, 1);
    turn(aw);
    assert_true(ca_aw_idle(aw, 1));
    assert_intact();
    assert_int_equal(ca_aw_free(aw), 1);
}

/* Counters in a hash (a verification's budget per field), charged by
 * more than one: the first refusing check wins, and a refusal takes back
 * what the checks before it charged. */
static void
test_budget_checks(void **state)
{
    ca_aw       *aw = writer("gw-1/108/1", 1 << 20, 1);
    ca_entry     e;
    owner        o[3] = { { 0 } };
    ca_aw_check  vc[] = {
        { 'E', "credit:revoked:jti-2", NULL, 0, 0, 0, CA_CONSENT_REVOKED },
        { 'C', "credit:uses:jti-2", NULL, 1, 10, 1900000000,
          CA_CONSENT_EXHAUSTED },
        { 'C', "credit:vbudget:jti-2", "tax.a", 2, 3, 1900000000,
          CA_VERIFICATION_BUDGET_EXHAUSTED },
        { 'C', "credit:vbudget:jti-2", "tax.b", 1, 3, 1900000000,
          CA_VERIFICATION_BUDGET_EXHAUSTED },
    };

    allow(&e, "v1");
    ca_aw_decide(aw, &e, "deny", vc, 4, &o[0], NULL);
    turn(aw);
    assert_int_equal(o[0].reason, CA_OK);
    allow(&e, "v2");                    /* tax.a: 2 + 2 > 3 */
    ca_aw_decide(aw, &e, "deny", vc, 4, &o[1], NULL);
    turn(aw);
    assert_int_equal(o[1].reason, CA_VERIFICATION_BUDGET_EXHAUSTED);
    assert_int_equal(count_rid("v2", "deny",
                               "verification_budget_exhausted"), 1);
    /* nothing of the refused request was spent */
    assert_int_equal(*counter("credit:uses:jti-2/", 18, 0), 1);
    assert_int_equal(*counter("credit:vbudget:jti-2/tax.a", 26, 0), 2);
    assert_int_equal(*counter("credit:vbudget:jti-2/tax.b", 26, 0), 1);

    vc[2].by = 1;                       /* tax.a: 2 + 1 fits */
    allow(&e, "v3");
    ca_aw_decide(aw, &e, "deny", vc, 4, &o[2], NULL);
    turn(aw);
    assert_int_equal(o[2].reason, CA_OK);
    assert_int_equal(*counter("credit:vbudget:jti-2/tax.a", 26, 0), 3);
    assert_intact();
    ca_aw_free(aw);
}


/* No reply: final entries go to the spool; a decision is lost (503), its
 * position spooled as the deny the bank got, and its lane retired. */
static void
test_lost_reply(void **state)
{
    ca_aw        *aw = writer("gw-1/101/1", 1 << 20, 1);
    ca_entry      e;
    owner         o[4] = { { 0 } };
    ca_aw_cmd    *c;
    const char   *chain_before;
    char          lane_chain[96];

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    snprintf(lane_chain, sizeof(lane_chain), "%s",
             ca_entry_get(&e, "chain", NULL));
    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);

    c = ca_aw_flush(aw, 1);
    ca_aw_reply(aw, c, NULL);
    assert_int_equal(o[0].outcome, CA_AW_LOST);
    assert_int_equal(o[0].reason, CA_AUDIT_UNAVAILABLE);
    assert_int_equal(o[1].outcome, CA_AW_SPOOLED);
    assert_non_null(strstr(logged, "fate is unknown"));

    /* behind the spool: chain order */
    outcome_entry(&e, "r1");
    assert_int_equal(ca_aw_final(aw, &e, 1, &o[2], NULL), CA_AW_SPOOLED);

    replay_all(aw);
    assert_int_equal(count_rid("d1", "deny", "audit_unavailable"), 1);
    assert_int_equal(count_rid("r1", NULL, NULL), 2);
    assert_int_equal(ca_aw_spool_bytes(aw, &(int64_t) { 0 }), 0);

    /* the next decision starts a new chain */
    allow(&e, "d2");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[3], NULL);
    chain_before = ca_entry_get(&e, "chain", NULL);
    assert_string_not_equal(chain_before, lane_chain);
    turn(aw);
    assert_int_equal(o[3].outcome, CA_AW_ACKED);
    assert_intact();
    ca_aw_free(aw);
}

/* A definite refusal (-OOM of a full noeviction Redis): nothing was
 * written, so the lane keeps its chain (no "fate unknown"), the bank's
 * deny goes to chain 0 through the spool, and a run of refusals is said
 * once, then counted; the end of it is said once too. */
static void
test_oom_refusal_keeps_the_lane(void **state)
{
    ca_aw        *aw = writer("gw-1/131/1", 1 << 20, 1);
    ca_entry      e;
    owner         o[6] = { { 0 } };
    ca_aw_cmd    *c;
    ca_aw_rep     rep;
    char          lane_chain[96], rid[8];
    const char   *oom = "OOM command not allowed when used memory > "
                        "'maxmemory'. script: 0123, on @user_script:42.";
    const ca_aw_stats *st;

    allow(&e, "d0");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    snprintf(lane_chain, sizeof(lane_chain), "%s",
             ca_entry_get(&e, "chain", NULL));
    turn(aw);
    assert_int_equal(o[0].outcome, CA_AW_ACKED);

    rep.type = CA_AW_REPLY_ERROR;
    rep.str = oom;
    rep.len = strlen(oom);
    for (int i = 1; i <= 3; i++) {
        snprintf(rid, sizeof(rid), "d%d", i);
        allow(&e, rid);
        ca_aw_decide(aw, &e, "deny", checks, 2, &o[i], NULL);
        /* the same lane, the same chain: its next entry */
        assert_string_equal(ca_entry_get(&e, "chain", NULL), lane_chain);
        assert_string_equal(ca_entry_get(&e, "seq", NULL), "2");
        c = ca_aw_flush(aw, 1);
        ca_aw_reply(aw, c, &rep);
        assert_int_equal(o[i].outcome, CA_AW_REFUSED);
        assert_int_equal(o[i].reason, CA_AUDIT_UNAVAILABLE);
    }
    /* the lane's checkpoint (and chain 0's) refused too: signed later */
    ca_aw_tick(aw, 1795800009000, 1000, 1, 1);
    while ((c = ca_aw_flush(aw, 1)) != NULL) {
        ca_aw_reply(aw, c, &rep);
    }
    assert_null(strstr(logged, "fate is unknown"));
    assert_non_null(strstr(logged, "redis refused audit entries: OOM"));
    assert_null(strstr(strstr(logged, "refused audit entries") + 1,
                       "refused audit entries"));
    st = ca_aw_get_stats(aw);
    assert_true(st->refused >= 4);
    assert_int_equal(st->lost, 0);
    assert_true(ca_aw_spool_bytes(aw, &(int64_t) { 0 }) > 0);

    /* memory again: the denies replay, the lane goes on where it was */
    assert_true(replay_all(aw) > 0);
    for (int i = 1; i <= 3; i++) {
        snprintf(rid, sizeof(rid), "d%d", i);
        assert_int_equal(count_rid(rid, "deny", "audit_unavailable"), 1);
    }
    assert_non_null(strstr(logged, "takes audit entries again ("));
    allow(&e, "d4");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[4], NULL);
    assert_string_equal(ca_entry_get(&e, "chain", NULL), lane_chain);
    turn(aw);
    assert_int_equal(o[4].outcome, CA_AW_ACKED);
    ca_aw_tick(aw, 1795800019000, 1000, 1, 1);
    turn(aw);
    replay_all(aw);
    assert_null(strstr(logged, "fate is unknown"));
    assert_intact();
    ca_aw_free(aw);
}

/* The original decision was written after all: the spooled deny is a
 * duplicate and the stream keeps the original only. */
static void
test_duplicate_replay(void **state)
{
    ca_aw       *aw = writer("gw-1/102/1", 1 << 20, 1);
    ca_entry     e;
    owner        o[2] = { { 0 } };
    ca_aw_cmd   *c;
    const ca_aw_stats *st;

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    c = ca_aw_flush(aw, 1);
    (void) run(c);                      /* Redis ran it; the reply is lost */
    ca_aw_reply(aw, c, NULL);
    assert_int_equal(o[0].outcome, CA_AW_LOST);
    assert_int_equal(R.n, 2);

    replay_all(aw);
    assert_int_equal(R.n, 2);           /* both duplicates */
    assert_int_equal(count_rid("d1", "allow", NULL), 1);
    st = ca_aw_get_stats(aw);
    assert_int_equal(st->replayed, 2);
    assert_int_equal(ca_aw_spool_bytes(aw, &(int64_t) { 0 }), 0);
    assert_intact();
    ca_aw_free(aw);
}

/* Group commit with the production default (one command out): what
 * queues while a command is out waits for its reply and goes in one next
 * command; only a full batch goes out beside it. */
static void
test_group_commit_waits_for_reply(void **state)
{
    ca_aw       *aw;
    ca_entry     e;
    owner        o[CA_AW_BATCH_MAX + 3];
    ca_aw_cmd   *c1, *c2, *c3;
    ca_aw_rep    rep;
    char         rid[16];
    size_t       i;

    memset(o, 0, sizeof(o));
    calls_max = 0;
    aw = writer("gw-1/111/1", 1 << 20, 1);
    calls_max = 4;

    refusal(&e, "g0");
    ca_aw_final(aw, &e, 1, &o[0], NULL);
    c1 = ca_aw_flush(aw, 1);
    assert_non_null(c1);
    refusal(&e, "g1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    refusal(&e, "g2");
    ca_aw_final(aw, &e, 1, &o[2], NULL);
    assert_null(ca_aw_flush(aw, 1));            /* waits for c1 */
    assert_int_equal(o[1].calls, 0);

    rep.type = CA_AW_REPLY_STRING;
    rep.str = run(c1);
    rep.len = strlen(rep.str);
    ca_aw_reply(aw, c1, &rep);
    assert_int_equal(o[0].outcome, CA_AW_ACKED);

    c2 = ca_aw_flush(aw, 1);                    /* both, in one command */
    assert_non_null(c2);
    assert_null(ca_aw_flush(aw, 1));
    for (i = 3; i < CA_AW_BATCH_MAX + 3; i++) { /* a full batch meanwhile */
        snprintf(rid, sizeof(rid), "g%zu", i);
        refusal(&e, rid);
        ca_aw_final(aw, &e, 1, &o[i], NULL);
    }
    c3 = ca_aw_flush(aw, 1);                    /* goes out beside c2 */
    assert_non_null(c3);
    assert_null(ca_aw_flush(aw, 1));            /* the rest waits */

    rep.str = run(c2);
    rep.len = strlen(rep.str);
    assert_string_equal(rep.str, "ww");
    ca_aw_reply(aw, c2, &rep);
    rep.str = run(c3);
    rep.len = strlen(rep.str);
    ca_aw_reply(aw, c3, &rep);
    turn(aw);
    for (i = 0; i < CA_AW_BATCH_MAX + 3; i++) {
        assert_int_equal(o[i].outcome, CA_AW_ACKED);
    }
    assert_int_equal(R.n, CA_AW_BATCH_MAX + 3);
    assert_intact();
    ca_aw_free(aw);
}

/* A batch refused (Redis loading) while the next one runs: the next one's
 * chain-0 entries meet a gap, are refused and follow into the spool; the
 * replay writes them all in order. */
static void
test_gap_refusal(void **state)
{
    ca_aw       *aw = writer("gw-1/103/1", 1 << 20, 1);
    ca_entry     e;
    owner        o[4] = { { 0 } };
    ca_aw_cmd   *c1, *c2;
    ca_aw_rep    err = { CA_AW_REPLY_ERROR, "LOADING Redis is loading", 24 };
    ca_aw_rep    rep;
    int64_t      oldest;

    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[0], NULL);
    c1 = ca_aw_flush(aw, 1);
    refusal(&e, "r2");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    refusal(&e, "r3");
    ca_aw_final(aw, &e, 1, &o[2], NULL);
    c2 = ca_aw_flush(aw, 1);

    ca_aw_reply(aw, c1, &err);          /* not run */
    rep.type = CA_AW_REPLY_STRING;
    rep.str = run(c2);
    rep.len = strlen(rep.str);
    assert_string_equal(rep.str, "gg");
    ca_aw_reply(aw, c2, &rep);
    assert_int_equal(R.n, 0);
    assert_int_equal(o[1].outcome, CA_AW_SPOOLED);
    assert_non_null(strstr(logged, "LOADING"));
    assert_true(ca_aw_spool_bytes(aw, &oldest) > 0);
    assert_int_equal(oldest, 1795800000123);

    replay_all(aw);
    assert_int_equal(R.n, 3);
    assert_string_equal(sentry_get(&R.e[0], "rid"), "r1");
    assert_string_equal(sentry_get(&R.e[2], "rid"), "r3");
    assert_int_equal(ca_aw_spool_bytes(aw, &oldest), 0);
    assert_int_equal(oldest, 0);
    assert_intact();
    ca_aw_free(aw);
}

/* Chain-0 entries reach the spool in seal order even when a younger
 * batch fails first (declined: too many commands in flight) or a younger
 * entry is sealed while an older batch is still out: they wait for the
 * older batch's fate, then follow it into the spool. */
static void
test_spool_keeps_seal_order(void **state)
{
    ca_aw       *aw = writer("gw-1/109/1", 1 << 20, 1);
    ca_entry     e;
    owner        o[6] = { { 0 } };
    ca_aw_cmd   *c1, *c2;
    ca_aw_rep    err = { CA_AW_REPLY_ERROR, "LOADING Redis is loading", 24 };

    refusal(&e, "k1");
    ca_aw_final(aw, &e, 1, &o[0], NULL);
    refusal(&e, "k2");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    c1 = ca_aw_flush(aw, 1);                    /* in flight */
    refusal(&e, "n1");
    ca_aw_final(aw, &e, 1, &o[2], NULL);
    c2 = ca_aw_flush(aw, 1);
    ca_aw_reply(aw, c2, NULL);                  /* declined, not sent */
    assert_int_equal(o[2].calls, 0);            /* waits for c1 */
    assert_null(ca_aw_replay(aw));
    refusal(&e, "n2");                          /* behind them */
    assert_int_equal(ca_aw_final(aw, &e, 1, &o[3], NULL), CA_AW_QUEUED);
    assert_false(ca_aw_idle(aw, 1));

    ca_aw_reply(aw, c1, &err);                  /* c1 fails too */
    assert_int_equal(o[0].outcome, CA_AW_SPOOLED);
    assert_int_equal(o[2].outcome, CA_AW_SPOOLED);
    assert_int_equal(o[3].outcome, CA_AW_SPOOLED);
    refusal(&e, "n3");                          /* nothing in flight */
    assert_int_equal(ca_aw_final(aw, &e, 1, &o[4], NULL), CA_AW_SPOOLED);

    replay_all(aw);
    assert_int_equal(R.n, 5);
    assert_string_equal(sentry_get(&R.e[0], "rid"), "k1");
    assert_string_equal(sentry_get(&R.e[1], "rid"), "k2");
    assert_string_equal(sentry_get(&R.e[2], "rid"), "n1");
    assert_string_equal(sentry_get(&R.e[3], "rid"), "n2");
    assert_string_equal(sentry_get(&R.e[4], "rid"), "n3");
    assert_intact();
    assert_int_equal(ca_aw_free(aw), 1);
}


/* A full spool: the entry is refused and not sealed (no hole in the
 * chain); once there is room the chain goes on where it was. */
static void
test_full_spool(void **state)
{
    ca_aw      *aw = writer("gw-1/104/1", 700, 1);
    ca_entry    e;
    owner       o = { 0 };
    int         i, spooled = 0, lost = 0;

    for (i = 0; i < 6; i++) {
        refusal(&e, "r");
        switch (ca_aw_final(aw, &e, 0, &o, NULL)) {
        case CA_AW_SPOOLED: spooled++; break;
        case CA_AW_LOST: lost++; break;
        }
    }
    assert_true(spooled >= 1 && lost >= 1);
    assert_non_null(strstr(logged, "is full"));
    assert_int_equal(ca_aw_get_stats(aw)->lost, (uint64_t) lost);

    replay_all(aw);
    assert_int_equal(R.n, (size_t) spooled);
    refusal(&e, "after");
    assert_int_equal(ca_aw_final(aw, &e, 1, &o, NULL), CA_AW_QUEUED);
    turn(aw);
    assert_int_equal(R.n, (size_t) spooled + 1);
    assert_intact();

    /* without a spool, offline is no audit at all */
    ca_aw_free(aw);
    aw = writer("gw-1/105/1", 0, 0);
    refusal(&e, "r");
    assert_int_equal(ca_aw_final(aw, &e, 0, &o, NULL), CA_AW_LOST);
    ca_aw_free(aw);
}

static long
dead_pid(void)
{
    pid_t  p = fork();

    if (p == 0) {
        _exit(0);
    }
    waitpid(p, NULL, 0);
    return (long) p;
}

/* A worker that died with entries of every kind in its spool (refusal,
 * outcome, checkpoint, failed decision): another adopts and replays them
 * in order; a spool of another version is kept aside, not dropped. */
static void
test_adoption(void **state)
{
    char        prefix[64], path[600], foreign[600];
    long        pid = dead_pid();
    ca_aw      *old, *aw;
    ca_entry    e;
    owner       o[4] = { { 0 } };
    ca_aw_cmd  *c;
    ca_spool   *sp;
    char        err[128];
    const char *argv[3] = { "EVALSHA", "abc", "1" };
    size_t      lens[3] = { 7, 3, 1 };
    struct stat st;

    snprintf(prefix, sizeof(prefix), "gw-1/%ld/1", pid);
    old = writer(prefix, 1 << 20, 1);
    snprintf(path, sizeof(path), "%s", spool_path);
    allow(&e, "d1");
    ca_aw_decide(old, &e, "deny", checks, 2, &o[0], NULL);
    refusal(&e, "r1");
    ca_aw_final(old, &e, 1, &o[1], NULL);
    c = ca_aw_flush(old, 1);
    ca_aw_reply(old, c, NULL);          /* decision lost, refusal spooled */
    outcome_entry(&e, "r1");
    ca_aw_final(old, &e, 0, &o[2], NULL);
    ca_aw_tick(old, 1795800001000, 1000, 1, 0);   /* chain 0 checkpoint */
    assert_int_equal(ca_aw_free(old), 0);          /* file left */
    assert_int_equal(stat(path, &st), 0);

    /* another version's spool next to it */
    snprintf(foreign, sizeof(foreign), "%s/worker-%ld.spool", dir,
             dead_pid());
    sp = ca_spool_open(foreign, 1 << 20, err, sizeof(err));
    assert_non_null(sp);
    assert_int_equal(ca_spool_append(sp, 1, NULL, 0, 3, argv, lens), 0);
    ca_spool_close(sp);

    aw = writer("gw-1/200/1", 1 << 20, 1);
    ca_aw_adopt_dir(aw, dir, 200);
    assert_int_not_equal(stat(path, &st), 0);      /* taken */
    assert_non_null(strstr(logged, "another module version"));
    strcat(foreign, ".foreign");
    assert_int_equal(stat(foreign, &st), 0);       /* kept aside */
    unlink(foreign);

    replay_all(aw);
    assert_int_equal(R.n, 4);
    assert_string_equal(sentry_get(&R.e[0], "reason"), "audit_unavailable");
    assert_string_equal(sentry_get(&R.e[1], "rid"), "r1");
    assert_string_equal(sentry_get(&R.e[2], "event"), "outcome");
    assert_string_equal(sentry_get(&R.e[3], "event"), "checkpoint");
    assert_int_equal(ca_aw_get_stats(aw)->replayed, 4);
    assert_intact();
    assert_int_equal(ca_aw_free(aw), 1);
}

/* A spool under our own name is an earlier process's (its pid came round
 * again): adopted at start, never taken for ours; one of another version
 * is set aside. */
static void
test_spool_of_an_earlier_process_with_our_pid(void **state)
{
    ca_aw       *aw;
    ca_entry     e;
    owner        o = { 0 };
    char         path[600], aside[700];
    ca_spool    *sp;
    char         err[128];
    const char  *argv[1] = { "EVALSHA" };
    size_t       lens[1] = { 7 };
    struct stat  st;
    DIR         *d;
    struct dirent *de;

    aw = writer("gw-1/300/1", 1 << 20, 1);
    refusal(&e, "old1");
    assert_int_equal(ca_aw_final(aw, &e, 0, &o, NULL), CA_AW_SPOOLED);
    assert_int_equal(ca_aw_free(aw), 0);

    aw = writer("gw-1/300/2", 1 << 20, 1);      /* same pid, new start */
    assert_non_null(strstr(logged, "adopted audit spool"));
    replay_all(aw);
    assert_int_equal(count_rid("old1", NULL, NULL), 1);
    assert_intact();
    assert_int_equal(ca_aw_free(aw), 1);

    /* another version's records under our name */
    snprintf(path, sizeof(path), "%s/worker-301.spool", dir);
    sp = ca_spool_open(path, 1 << 20, err, sizeof(err));
    assert_int_equal(ca_spool_append(sp, 2, NULL, 0, 1, argv, lens), 0);
    ca_spool_close(sp);
    aw = writer("gw-1/301/1", 1 << 20, 1);
    assert_non_null(strstr(logged, "another module version"));
    assert_int_equal(ca_aw_spool_bytes(aw, &(int64_t) { 0 }), 0);
    assert_int_equal(ca_aw_free(aw), 1);
    aside[0] = '\0';
    d = opendir(dir);
    while ((de = readdir(d)) != NULL) {
        if (strstr(de->d_name, "worker-301-") && strstr(de->d_name,
                                                         ".foreign"))
        {
            snprintf(aside, sizeof(aside), "%s/%s", dir, de->d_name);
        }
    }
    closedir(d);
    assert_int_equal(stat(aside, &st), 0);      /* kept, not dropped */
    unlink(aside);
}


/* Replay in order, stopping at the first entry not taken; an error holds
 * the replay off for a while, then it resumes where it stopped. */
static void
test_replay_order(void **state)
{
    ca_aw      *aw = writer("gw-1/106/1", 1 << 20, 1);
    ca_entry    e;
    owner       o = { 0 };
    char        rid[8];
    int         i;
    ca_aw_cmd  *c;
    ca_aw_rep   err = { CA_AW_REPLY_ERROR, "READONLY", 8 };
    ca_aw_rep   odd = { CA_AW_REPLY_OTHER, NULL, 0 };

    for (i = 0; i < CA_AW_REPLAY_MAX + 10; i++) {
        snprintf(rid, sizeof(rid), "r%03d", i);
        refusal(&e, rid);
        assert_int_equal(ca_aw_final(aw, &e, 0, &o, NULL), CA_AW_SPOOLED);
    }
    c = ca_aw_replay(aw);
    assert_non_null(c);
    assert_null(ca_aw_replay(aw));      /* one at a time */
    ca_aw_reply(aw, c, &err);
    assert_null(ca_aw_replay(aw));      /* held off */
    for (i = 0; i < 10; i++) {
        ca_aw_tick(aw, 0, 1000000, 0, 1);
    }
    c = ca_aw_replay(aw);
    assert_non_null(c);
    ca_aw_reply(aw, c, &odd);
    assert_non_null(strstr(logged, "unexpected reply"));
    assert_int_equal(ca_aw_get_stats(aw)->unexpected, 1);
    assert_int_equal(ca_aw_get_stats(aw)->replay_failed, 2);
    for (i = 0; i < 10; i++) {
        ca_aw_tick(aw, 0, 1000000, 0, 1);
    }
    assert_int_equal(replay_all(aw), 2);
    assert_int_equal(R.n, CA_AW_REPLAY_MAX + 10);
    for (i = 0; i < CA_AW_REPLAY_MAX + 10; i++) {
        snprintf(rid, sizeof(rid), "r%03d", i);
        assert_string_equal(sentry_get(&R.e[i], "rid"), rid);
    }
    assert_intact();
    ca_aw_free(aw);
}

/* Exit: every chain gets its final checkpoint through the same path;
 * what is still queued when the writer goes is spooled, and the spool
 * file stays for the next worker. */
static void
test_exit_flush(void **state)
{
    ca_aw      *aw = writer("gw-1/107/1", 1 << 20, 1);
    ca_entry    e;
    owner       o[3] = { { 0 } };
    struct stat st;
    size_t      i, cps = 0;
    sentry     *last[3];
    char        want[128];

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    turn(aw);
    assert_false(ca_aw_idle(aw, 1));    /* unsigned */

    ca_aw_tick(aw, 1795800002000, 60000, 1, 1);
    assert_false(ca_aw_idle(aw, 1));    /* queued */
    turn(aw);
    /* the lane's final checkpoint is not listed by chain 0 yet */
    assert_false(ca_aw_idle(aw, 1));
    ca_aw_tick(aw, 1795800002100, 60000, 1, 1);
    turn(aw);
    assert_true(ca_aw_idle(aw, 1));
    for (i = 0; i < R.n; i++) {
        if (strcmp(sentry_get(&R.e[i], "event"), "checkpoint") == 0) {
            last[cps < 3 ? cps : 2] = &R.e[i];
            cps++;
        }
    }
    /* chain 0 (listing the decision), the lane (listing chain 0's
     * checkpoint once acknowledged: not yet), chain 0 again listing the
     * lane's checkpoint */
    assert_int_equal(cps, 3);
    assert_string_equal(sentry_get(last[0], "chain"), "gw-1/107/1/0");
    snprintf(want, sizeof(want), "1 1 %s\n", sentry_get(&R.e[0], "hash"));
    assert_string_equal(sentry_get(last[0], "heads"), want);
    assert_string_equal(sentry_get(last[1], "chain"), "gw-1/107/1/1");
    assert_string_equal(sentry_get(last[1], "heads"), "");
    assert_string_equal(sentry_get(last[2], "chain"), "gw-1/107/1/0");
    snprintf(want, sizeof(want), "1 2 %s\n", sentry_get(last[1], "hash"));
    assert_string_equal(sentry_get(last[2], "heads"), want);
    assert_intact();

    /* something queued at the very end goes to the spool, kept */
    outcome_entry(&e, "d1");
    ca_aw_final(aw, &e, 1, &o[2], NULL);
    assert_int_equal(ca_aw_free(aw), 0);
    assert_int_equal(o[2].outcome, CA_AW_SPOOLED);
    assert_int_equal(stat(spool_path, &st), 0);
    assert_true(st.st_size > 0);
    unlink(spool_path);
}


/* --- loss detection on reconnect (auditloss.c) ------------------------- */

/* HGETALL <key> of the stand-in, checked against the writer's heads. */
static long
heads_check(ca_aw *aw, char *expected, char *found)
{
    const char  *key = ca_aw_heads_key(aw);
    const char  *f[MAX_KEYS], *v[MAX_KEYS];
    size_t       fl[MAX_KEYS], vl[MAX_KEYS], n = 0, kl = strlen(key);
    static char  num_[MAX_KEYS][24];

    for (size_t i = 0; i < R.nh; i++) {
        if (strncmp(R.hkey[i], key, kl) == 0 && R.hkey[i][kl] == '\n') {
            f[n] = R.hkey[i] + kl + 1;
            fl[n] = strlen(f[n]);
            snprintf(num_[n], sizeof(num_[n]), "%llu",
                     (unsigned long long) R.hseq[i]);
            v[n] = num_[n];
            vl[n] = strlen(v[n]);
            n++;
        }
    }
    return ca_aw_heads_check(aw, n, f, fl, v, vl, expected, found, 1024);
}

static uint64_t *
head_of(ca_aw *aw, const char *lane)
{
    const char  *key = ca_aw_heads_key(aw);

    return head(key, strlen(key), lane, strlen(lane));
}

/* Nothing acknowledged (a first connect), or everything still there: no
 * loss; a chain behind or gone is, once. */
static void
test_heads_lost_on_reconnect(void **state)
{
    ca_aw      *aw = writer("gw-1/120/1", 1 << 20, 1);
    ca_entry    e;
    owner       o[4] = { { 0 } };
    char        exp[1024], fnd[1024];

    assert_string_equal(ca_aw_heads_key(aw), "credit:chains:gw-1/120/1");
    assert_int_equal(heads_check(aw, exp, fnd), 0);     /* first connect */

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    outcome_entry(&e, "d1");
    ca_aw_final(aw, &e, 1, &o[2], NULL);
    turn(aw);
    assert_int_equal(o[0].outcome, CA_AW_ACKED);
    assert_int_equal(heads_check(aw, exp, fnd), 0);
    assert_string_equal(exp, "");

    /* a failover to a replica that had chain 0 up to seq 1, and no lane */
    *head_of(aw, "0") = 1;
    *head_of(aw, "1") = 0;
    assert_int_equal(heads_check(aw, exp, fnd), 2);
    assert_string_equal(exp, "0:2,1:1");
    assert_string_equal(fnd, "0:1,1:0");
    assert_int_equal(heads_check(aw, exp, fnd), 0);     /* reported once */

    /* the hash itself gone */
    allow(&e, "d2");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[3], NULL);
    turn(aw);
    assert_int_equal(o[3].outcome, CA_AW_ACKED);
    redis_reset();
    assert_int_equal(heads_check(aw, exp, fnd), 2);
    assert_string_equal(exp, "0:1,1:2");
    assert_string_equal(fnd, "0:-,1:-");
    ca_aw_free(aw);
}

/* What was never acknowledged is no loss: a reply that never came (the
 * entry may or may not be in Redis), entries in the spool. */
static void
test_heads_unknown_fate_is_no_loss(void **state)
{
    ca_aw      *aw = writer("gw-1/121/1", 1 << 20, 1);
    ca_entry    e;
    owner       o[3] = { { 0 } };
    ca_aw_cmd  *c;
    char        exp[1024], fnd[1024];

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    refusal(&e, "r1");
    ca_aw_final(aw, &e, 1, &o[1], NULL);
    c = ca_aw_flush(aw, 1);
    ca_aw_reply(aw, c, NULL);               /* fate unknown, spooled */
    assert_int_equal(o[1].outcome, CA_AW_SPOOLED);
    outcome_entry(&e, "r1");
    assert_int_equal(ca_aw_final(aw, &e, 0, &o[2], NULL), CA_AW_SPOOLED);
    assert_int_equal(heads_check(aw, exp, fnd), 0);

    /* replayed: acknowledged now, and then expected */
    replay_all(aw);
    assert_int_equal(heads_check(aw, exp, fnd), 0);
    *head_of(aw, "0") = 0;
    assert_int_equal(heads_check(aw, exp, fnd), 1);
    assert_string_equal(exp, "0:2");
    ca_aw_free(aw);
}

/* The list in the entry is bounded: 16 chains, then a count. */
static void
test_heads_listed_bounded(void **state)
{
    char        err[256], exp[1024], fnd[1024];
    ca_aw_conf  conf = {
        .gw = "gw-1", .prefix = "gw-1/122/1", .stream = "credit:audit",
        .max_lanes = 24, .key = key, .settled = settled, .log = logger,
    };
    ca_aw      *aw = ca_aw_new(&conf, err, sizeof(err));
    ca_entry    e;
    owner       o[20] = { { 0 } };
    char        r[16];
    long        n;

    assert_non_null(aw);
    for (int i = 0; i < 20; i++) {
        snprintf(r, sizeof(r), "d%d", i);
        allow(&e, r);
        assert_int_equal(ca_aw_decide(aw, &e, "deny", checks, 0, &o[i],
                                      NULL), CA_AW_QUEUED);
    }
    turn(aw);
    redis_reset();
    n = heads_check(aw, exp, fnd);
    assert_int_equal(n, 20);
    assert_non_null(strstr(exp, ",+4 more"));
    assert_non_null(strstr(fnd, ",+4 more"));
    assert_true(strlen(exp) < 16 * 12);
    ca_aw_free(aw);
}

/* A lane whose entry's fate is unknown ends its chain: chain 0's next
 * checkpoint lists that chain's last acknowledged head (never the entry
 * whose fate was unknown), once, and lists nothing more when nothing
 * moved. */
static void
test_ended_lane_is_listed(void **state)
{
    ca_aw        *aw = writer("gw-1/109/1", 1 << 20, 1);
    ca_entry      e;
    owner         o[2] = { { 0 } };
    ca_aw_cmd    *c;
    const sentry *cp = NULL;
    char          want[128];
    size_t        i, cps = 0;

    allow(&e, "d1");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[0], NULL);
    turn(aw);
    assert_int_equal(o[0].outcome, CA_AW_ACKED);
    snprintf(want, sizeof(want), "1 1 %s\n", sentry_get(&R.e[0], "hash"));
    allow(&e, "d2");
    ca_aw_decide(aw, &e, "deny", checks, 2, &o[1], NULL);
    c = ca_aw_flush(aw, 1);
    ca_aw_reply(aw, c, NULL);               /* lane 1 ends at seq 1 */
    assert_int_equal(o[1].outcome, CA_AW_LOST);
    replay_all(aw);                         /* its seq 2: the deny */

    ca_aw_tick(aw, 1795800001000, 1000, 0, 1);
    turn(aw);
    ca_aw_tick(aw, 1795800002000, 1000, 0, 1);
    turn(aw);
    assert_true(ca_aw_idle(aw, 1));
    for (i = 0; i < R.n; i++) {
        if (strcmp(sentry_get(&R.e[i], "event"), "checkpoint") == 0) {
            cp = &R.e[i];
            cps++;
        }
    }
    assert_int_equal(cps, 1);               /* chain 0's, once */
    assert_string_equal(sentry_get(cp, "chain"), "gw-1/109/1/0");
    assert_string_equal(sentry_get(cp, "heads"), want);
    assert_intact();
    ca_aw_free(aw);
}

/* More lanes moved than one checkpoint lists: chain 0 writes several in
 * a row, each in ascending lane order, together listing every lane. */
static void
test_many_lanes_listed(void **state)
{
    char        err[256], rid[16];
    ca_aw_conf  conf = {
        .gw = "gw-1", .prefix = "gw-1/110/1", .stream = "credit:audit",
        .max_lanes = 80, .key = key, .settled = settled, .log = logger,
    };
    ca_aw      *aw = ca_aw_new(&conf, err, sizeof(err));
    ca_entry    e;
    owner       o[70];
    size_t      i, cps = 0, lines = 0, last;
    const char *h;

    assert_non_null(aw);
    memset(o, 0, sizeof(o));
    for (i = 0; i < 70; i++) {
        snprintf(rid, sizeof(rid), "m%zu", i);
        allow(&e, rid);
        assert_int_equal(ca_aw_decide(aw, &e, "deny", checks, 1, &o[i],
                                      NULL), CA_AW_QUEUED);
    }
    turn(aw);
    ca_aw_tick(aw, 1795800001000, 1000, 0, 1);   /* only chain 0 moves */
    ca_aw_tick(aw, 1795800002000, 1000, 0, 1);
    turn(aw);
    for (i = 0; i < R.n; i++) {
        if (strcmp(sentry_get(&R.e[i], "event"), "checkpoint") != 0
            || strcmp(sentry_get(&R.e[i], "chain"), "gw-1/110/1/0") != 0)
        {
            continue;
        }
        cps++;
        last = 0;
        for (h = sentry_get(&R.e[i], "heads"); *h; h = strchr(h, '\n') + 1) {
            size_t lane = strtoul(h, NULL, 10);

            assert_true(lane > last);
            last = lane;
            lines++;
        }
    }
    assert_int_equal(cps, 2);                   /* 64 + 6 */
    assert_int_equal(lines, 70);
    assert_intact();
    ca_aw_free(aw);
}

/* The batch command is formatted by ca_resp_format(), not by hiredis: the
 * same bytes as hiredis's own formatter, for any arguments. */
static void
test_resp_format_matches_hiredis(void **state)
{
    static char  data[48][300];
    const char  *argv[48];
    size_t       lens[48], n, i, j;
    char        *h, *m;
    int          t, argc, hl;

    (void) state;
    srand(11);
    for (t = 0; t < 2000; t++) {
        argc = 1 + rand() % 48;
        for (i = 0; i < (size_t) argc; i++) {
            lens[i] = (size_t) rand() % (i % 7 == 0 ? 300 : 12);
            for (j = 0; j < lens[i]; j++) {
                data[i][j] = (char) rand();
            }
            argv[i] = data[i];
        }
        hl = redisFormatCommandArgv(&h, argc, argv, lens);
        assert_true(hl > 0);
        m = malloc(ca_resp_size(argc, lens));
        assert_non_null(m);
        n = ca_resp_format(m, argc, argv, lens);
        assert_true(n <= ca_resp_size(argc, lens));
        assert_int_equal(n, (size_t) hl);
        assert_memory_equal(m, h, n);
        free(m);
        redisFreeCommand(h);
    }
}

/* Integers enter entries without printf: same text as printf. */
static void
test_entry_integers(void **state)
{
    ca_entry     e;
    size_t       len;
    const char  *v;

    (void) state;
    e.n = 0;
    e.used = 0;
    assert_int_equal(ca_entry_add_int(&e, "a", INT64_MIN), 0);
    assert_int_equal(ca_entry_add_int(&e, "b", -7), 0);
    assert_int_equal(ca_entry_add_uint(&e, "c", UINT64_MAX), 0);
    assert_int_equal(ca_entry_add_uint(&e, "d", 0), 0);
    v = ca_entry_get(&e, "a", &len);
    assert_string_equal(v, "-9223372036854775808");
    assert_int_equal(len, 20);
    assert_string_equal(ca_entry_get(&e, "b", NULL), "-7");
    assert_string_equal(ca_entry_get(&e, "c", NULL), "18446744073709551615");
    assert_string_equal(ca_entry_get(&e, "d", NULL), "0");
}

/* A withdrawn consent: a revocation entry built from the schema, sealed
 * into chain 0 and settled like a refusal, spooled while Redis is away. */
static void
test_revocation_entry(void **state)
{
    static const char *const want[] = {
        "v", "event", "ts", "gw", "enterprise", "consent", "by", "chain",
        "seq", "prev", "hash"
    };
    ca_aw          *aw = writer("gw-1/109/1", 1 << 20, 1);
    ca_entry        e;
    owner           o[3] = { { 0 } };
    ca_aw_revoked   rv = { 1795800000500, "91350100M000100Y43", "c-42",
                           "enterprise" };
    const sentry   *r;

    refusal(&e, "r1");
    assert_int_equal(ca_aw_final(aw, &e, 1, &o[0], NULL), CA_AW_QUEUED);
    assert_int_equal(ca_aw_revocation(aw, &rv, 1, &o[1], NULL),
                     CA_AW_QUEUED);
    turn(aw);
    assert_int_equal(o[1].outcome, CA_AW_ACKED);
    assert_int_equal(R.n, 2);
    r = &R.e[1];
    assert_int_equal(r->n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < r->n; i++) {
        assert_string_equal(r->name[i], want[i]);
    }
    assert_string_equal(sentry_get(r, "event"), "revocation");
    assert_string_equal(sentry_get(r, "v"), CA_AUDIT_VERSION);
    assert_string_equal(sentry_get(r, "ts"), "1795800000500");
    assert_string_equal(sentry_get(r, "gw"), "gw-1");
    assert_string_equal(sentry_get(r, "enterprise"), "91350100M000100Y43");
    assert_string_equal(sentry_get(r, "consent"), "c-42");
    assert_string_equal(sentry_get(r, "by"), "enterprise");
    assert_string_equal(sentry_get(r, "seq"), "2");     /* after r1 */

    /* by the platform, Redis away: spooled, replayed in order; a jti made
     * of a mobile number is written as its digest, as in a decision */
    rv.by = "platform";
    rv.jti = "13912345678";
    assert_int_equal(ca_aw_revocation(aw, &rv, 0, &o[2], NULL),
                     CA_AW_SPOOLED);
    replay_all(aw);
    assert_int_equal(R.n, 3);
    assert_string_equal(sentry_get(&R.e[2], "by"), "platform");
    assert_memory_equal(sentry_get(&R.e[2], "consent"), "sha256:", 7);
    assert_null(strstr(sentry_get(&R.e[2], "consent"), "13912345678"));

    /* what may not be written is not */
    rv.by = "someone";
    assert_int_equal(ca_aw_revocation(aw, &rv, 1, NULL, NULL), CA_AW_LOST);
    rv.by = "enterprise";
    rv.enterprise = "91350100M000100Y44";           /* bad check digit */
    assert_int_equal(ca_aw_revocation(aw, &rv, 1, NULL, NULL), CA_AW_LOST);
    rv.enterprise = "91350100M000100Y43";
    rv.jti = "";
    assert_int_equal(ca_aw_revocation(aw, &rv, 1, NULL, NULL), CA_AW_LOST);
    turn(aw);
    assert_int_equal(R.n, 3);

    ca_aw_tick(aw, 1795800001000, 1000, 1, 1);
    turn(aw);
    assert_intact();
    ca_aw_free(aw);
}


/* An entry poisoned by a value too large stays poisoned: a small value
 * after it is refused, not written past the field arrays (auditfate.c
 * rebuilds entries field by field). */
static void
test_entry_poisoned_stays_poisoned(void **state)
{
    static ca_entry  e;
    static char      big[CA_ENTRY_BYTES + 1];

    (void) state;
    e.n = 0;
    e.used = 0;
    memset(big, 'x', sizeof(big));
    assert_int_equal(ca_entry_add(&e, "a", "1", 1), 0);
    assert_int_equal(ca_entry_add(&e, "big", big, sizeof(big)), -1);
    assert_true(e.n > CA_ENTRY_FIELDS);
    assert_int_equal(ca_entry_add(&e, "b", "2", 1), -1);
    assert_int_equal(e.n, CA_ENTRY_FIELDS + 1);
    assert_int_equal(e.used, 2);
    assert_string_equal(e.value[0], "1");
}

int
main(void)
{
    EVP_PKEY_CTX *kc;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resp_format_matches_hiredis),
        cmocka_unit_test(test_entry_integers),
        cmocka_unit_test(test_entry_poisoned_stays_poisoned),
        cmocka_unit_test_setup(test_group_commit_and_variants, setup),
        cmocka_unit_test_setup(test_budget_checks, setup),
        cmocka_unit_test_setup(test_lost_reply, setup),
        cmocka_unit_test_setup(test_oom_refusal_keeps_the_lane, setup),
        cmocka_unit_test_setup(test_ended_lane_is_listed, setup),
        cmocka_unit_test_setup(test_many_lanes_listed, setup),
        cmocka_unit_test_setup(test_duplicate_replay, setup),
        cmocka_unit_test_setup(test_group_commit_waits_for_reply, setup),
        cmocka_unit_test_setup(test_gap_refusal, setup),
        cmocka_unit_test_setup(test_spool_keeps_seal_order, setup),
        cmocka_unit_test_setup(test_full_spool, setup),
        cmocka_unit_test_setup(test_adoption, setup),
        cmocka_unit_test_setup(test_spool_of_an_earlier_process_with_our_pid,
                               setup),
        cmocka_unit_test_setup(test_replay_order, setup),
        cmocka_unit_test_setup(test_exit_flush, setup),
        cmocka_unit_test_setup(test_heads_lost_on_reconnect, setup),
        cmocka_unit_test_setup(test_heads_unknown_fate_is_no_loss, setup),
        cmocka_unit_test_setup(test_heads_listed_bounded, setup),
        cmocka_unit_test_setup(test_revocation_entry, setup),
    };
    int  rc;

    if (mkdtemp(dir) == NULL) {
        return 1;
    }
    kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY_keygen_init(kc);
    EVP_PKEY_keygen(kc, &key);
    EVP_PKEY_CTX_free(kc);
    pub = key;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    redis_reset();
    EVP_PKEY_free(key);
    rmdir(dir);
    return rc;
}
