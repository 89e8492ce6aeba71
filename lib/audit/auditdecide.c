/*
 * Allow decisions: the entry sealed once per variant on an idle lane (the
 * allow, and one per refusal its checks can produce), and the checks the
 * script runs to choose among them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auditbatch.h"
#include "auditschema.h"
#include "core/core.h"


static size_t
ca_aw_field(const ca_entry *e, const char *name)
{
    size_t  i;

    for (i = 0; i < e->n; i++) {
        if (strcmp(e->name[i], name) == 0) {
            return i;
        }
    }
    return (size_t) -1;
}


/* A check's number as the script reads it (out: 24 bytes). */
static void
ca_aw_num(char *out, int64_t v)
{
    if (v < 0) {
        *out++ = '-';
        (void) ca_u64_str((uint64_t) 0 - (uint64_t) v, out);
        return;
    }
    (void) ca_u64_str((uint64_t) v, out);
}


/* Seals e on a copy of the lane's chain with the decision and reason of
 * variant v; e is left sealed with it. */
static int
ca_aw_seal_variant(ca_aw *aw, size_t slot, ca_entry *e, size_t base_n,
                   size_t base_used, size_t dpos, const EVP_MD_CTX *prefix,
                   const ca_aw_variant *v, char hash[65])
{
    ca_chain     ch = aw->lanes[slot].chain;
    const char  *why = v->reason == CA_OK ? "" : ca_reason_name(v->reason);

    e->n = base_n;
    e->used = base_used;
    e->value[dpos] = v->decision;
    e->len[dpos] = strlen(v->decision);
    e->value[dpos + 1] = why;
    e->len[dpos + 1] = strlen(why);
    if (ca_chain_seal_prefixed(&ch, e, prefix, dpos) != 0) {
        return -1;
    }
    memcpy(hash, e->value[e->n - 1], 65);
    return 0;
}


int
ca_aw_decide(ca_aw *aw, ca_entry *e, const char *refusal,
             const ca_aw_check *checks, size_t n, void *owner,
             ca_aw_job **out)
{
    char          *p;
    size_t         i, k, dpos, base_n, base_used, keys, nvar;
    size_t         vof[CA_AW_CHECKS_MAX];
    ca_aw_job     *job;
    ca_aw_variant  var[CA_AW_VARIANTS_MAX];
    size_t         slot;
    EVP_MD_CTX    *prefix;

    dpos = ca_aw_field(e, CA_AUDIT_NAME(DECISION));
    if (n > CA_AW_CHECKS_MAX || dpos == (size_t) -1 || dpos + 1 >= e->n
        || strcmp(e->name[dpos + 1], CA_AUDIT_NAME(REASON)) != 0
        || e->len[dpos] >= sizeof(var[0].decision)
        || strlen(refusal) >= sizeof(var[0].decision))
    {
        return CA_AW_LOST;
    }

    /* the variants: as given, then one per distinct refusal */
    memset(var, 0, sizeof(var));
    memcpy(var[0].decision, e->value[dpos], e->len[dpos]);
    var[0].reason = CA_OK;
    nvar = 1;
    keys = 0;
    for (i = 0; i < n; i++) {
        for (k = 1; k < nvar; k++) {
            if (var[k].reason == checks[i].reason) {
                break;
            }
        }
        if (k == nvar) {
            if (nvar == CA_AW_VARIANTS_MAX) {
                return CA_AW_LOST;
            }
            memcpy(var[k].decision, refusal, strlen(refusal) + 1);
            var[k].reason = checks[i].reason;
            nvar++;
        }
        vof[i] = k;
        keys += strlen(checks[i].key) + 1
                + (checks[i].field ? strlen(checks[i].field) : 0) + 1;
    }

    slot = ca_aw_lane_get(aw);
    if (slot == 0) {
        ca_aw_log(aw, CA_AW_LOG_ERR, "no audit lane free");
        return CA_AW_LOST;
    }

    /* the fields before the decision are hashed once for all variants */
    prefix = ca_entry_digest_prefix(e, dpos);
    if (prefix == NULL) {
        ca_aw_lane_release(aw, slot);
        ca_aw_log(aw, CA_AW_LOG_ERR, "out of memory");
        return CA_AW_LOST;
    }

    /* variant 0 last, so that e ends up sealed as the allow */
    base_n = e->n;
    base_used = e->used;
    for (k = nvar; k-- > 0; ) {
        if (ca_aw_seal_variant(aw, slot, e, base_n, base_used, dpos, prefix,
                               &var[k], var[k].hash)
            != 0)
        {
            ca_aw_lane_release(aw, slot);
            ca_aw_log(aw, CA_AW_LOG_ALERT, "audit entry too large");
            return CA_AW_LOST;
        }
    }

    job = ca_aw_job_new(e->n, e->name, e->value, e->len, n, keys);
    if (job == NULL) {
        ca_aw_lane_release(aw, slot);
        return CA_AW_LOST;
    }
    job->kind = CA_AW_KIND_DECISION;
    job->slot = slot;
    job->owner = owner;
    job->xpos[0] = dpos;
    job->xpos[1] = dpos + 1;
    job->xpos[2] = e->n - 1;
    job->nvar = nvar;
    memcpy(job->var, var, sizeof(var));
    job->ncheck = n;
    p = n ? job->check[0].key : NULL;
    for (i = 0; i < n; i++) {
        ca_aw_jcheck  *c = &job->check[i];
        const char    *f = checks[i].field ? checks[i].field : "";

        c->key = p;
        p = stpcpy(p, checks[i].key) + 1;
        c->field = p;
        p = stpcpy(p, f) + 1;
        c->op = checks[i].op;
        ca_aw_num(c->by, checks[i].by);
        ca_aw_num(c->max, checks[i].max);
        ca_aw_num(c->expire, checks[i].expire_at);
        /* at most CA_AW_VARIANTS_MAX */
        (void) ca_u64_str(vof[i] + 1, c->variant);
    }

    ca_aw_enqueue(aw, job);
    if (out) {
        *out = job;
    }
    return CA_AW_QUEUED;
}

