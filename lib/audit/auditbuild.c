/*
 * The entries built from the audit schema (auditschema.h): what each
 * field holds, taken from what the gateway knows (the facts).
 * The rules that keep personal data out of the trail (contract §7: a path only
 * once it matched a route, a purpose only once the policy knows it, a jti
 * that looks personal only as its digest) live here, with the fields.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "auditschema.h"
#include "core/core.h"
#include "json/json.h"
#include "jws/jws.h"

typedef int (*fill_pt)(ca_entry *e, const char *name, unsigned event,
                       const ca_audit_facts *f);

enum { V_HEADER, V_SEALED, V_TEXT, V_STR, V_NUM, V_DERIVED };

typedef struct {
    int         kind;
    size_t      at;             /* offset of the fact */
    fill_pt     fill;
} value_of;

/* A fill function adds the field, or returns ABSENT where its event's
 * entries may lack it. */
#define ABSENT  1

/* ---- derived values ---------------------------------------------------- */

static int
add_text(ca_entry *e, const char *name, const char *s)
{
    return ca_entry_add(e, name, s ? s : "", s ? strlen(s) : 0);
}

static int
fill_cert(ca_entry *e, const char *name, unsigned ev, const ca_audit_facts *f)
{
    char  hex[65];

    if (f->cert_sha256 == NULL) {
        return ca_entry_add(e, name, "", 0);
    }
    ca_hex(f->cert_sha256, 32, hex);
    return ca_entry_add(e, name, hex, 64);
}

/* Never a personal identifier in the audit (contract §7): a path is recorded
 * only once it matched a route (literal segments and a valid USCC). */
static int
fill_path(ca_entry *e, const char *name, unsigned ev, const ca_audit_facts *f)
{
    if (f->category == NULL || f->enterprise == NULL || !f->enterprise[0]
        || f->path.s == NULL)
    {
        return ca_entry_add(e, name, "", 0);
    }
    return ca_entry_add(e, name, f->path.s, f->path.len);
}

/* ... and a purpose only once the policy knows it. */
static int
fill_purpose(ca_entry *e, const char *name, unsigned ev,
             const ca_audit_facts *f)
{
    if (f->purpose.s == NULL || f->purpose.len == 0
        || f->purpose.len > CA_CODE_MAX)
    {
        return ca_entry_add(e, name, "", 0);
    }
    return add_text(e, name, f->purpose_code && f->purpose_code[0]
                             ? f->purpose_code : "(unknown)");
}

static int
fill_consent(ca_entry *e, const char *name, unsigned ev,
             const ca_audit_facts *f)
{
    char    id[CA_CONSENT_ID_MAX + 1];

    if (f->jti.s == NULL) {
        return ca_entry_add(e, name, "", 0);
    }
    return ca_entry_add(e, name, id,
                        ca_audit_consent_id(f->jti.s, f->jti.len, id));
}

static int
fill_mode(ca_entry *e, const char *name, unsigned ev, const ca_audit_facts *f)
{
    return add_text(e, name, f->verify ? "verify" : "query");
}

static int
fill_detail(ca_entry *e, const char *name, unsigned ev,
            const ca_audit_facts *f)
{
    return add_text(e, name, f->raw ? "raw" : "masked");
}

static int
fill_decision(ca_entry *e, const char *name, unsigned ev,
              const ca_audit_facts *f)
{
    return add_text(e, name, f->report ? "report"
                             : f->reason == CA_OK ? "allow" : "deny");
}

/* A decision's reason ("" for an allow); an outcome's only when the
 * answer was refused after the decision allowed it. */
static int
fill_reason(ca_entry *e, const char *name, unsigned ev,
            const ca_audit_facts *f)
{
    if (ev == CA_EV_OUTCOME) {
        if (f->refused == CA_OK) {
            return ABSENT;
        }
        return add_text(e, name, ca_reason_name(f->refused));
    }
    return add_text(e, name, ca_reason_name(f->reason));
}

/*
 * A verification's checks (contract §7): "<path> <op>" per check, in the
 * order asked, joined by ",".  The path is the policy's verify path (a
 * selector [k=v] written [], as the policy writes it): policy paths hold
 * neither space nor comma, ops are eq ne gt ge lt le, so the list reads
 * back unambiguously; the operands, and the selector values the bank
 * chose, are never written.
 */
static int
fill_checks(ca_entry *e, const char *name, unsigned ev,
            const ca_audit_facts *f)
{
    char    buf[CA_CHECKS_MAX * (CA_PATH_MAX + 4)];
    size_t  n = 0;

    if (!f->verify) {
        return ABSENT;
    }
    for (size_t i = 0; f->checks != NULL && i < f->checks->n; i++) {
        const ca_check *c = &f->checks->items[i];
        const char     *op = ca_op_name(c->op);
        size_t          pl = strlen(c->rule->path), ol = strlen(op);

        if (n + (i > 0) + pl + 1 + ol > sizeof(buf)) {
            e->n = CA_ENTRY_FIELDS + 1;
            return -1;
        }
        if (i > 0) {
            buf[n++] = ',';
        }
        memcpy(buf + n, c->rule->path, pl);
        n += pl;
        buf[n++] = ' ';
        memcpy(buf + n, op, ol);
        n += ol;
    }
    return ca_entry_add(e, name, buf, n);
}

/* A verification's outcome counts its answers (0 each when the answer
 * was refused); other outcomes have none. */
static int
fill_count(ca_entry *e, const char *name, const ca_audit_facts *f,
           unsigned n)
{
    if (!f->verify) {
        return ABSENT;
    }
    return ca_entry_add_uint(e, name, n);
}

static int
fill_matched(ca_entry *e, const char *name, unsigned ev,
             const ca_audit_facts *f)
{
    return fill_count(e, name, f, f->tally.matched);
}

static int
fill_unmatched(ca_entry *e, const char *name, unsigned ev,
               const ca_audit_facts *f)
{
    return fill_count(e, name, f, f->tally.unmatched);
}

static int
fill_absent(ca_entry *e, const char *name, unsigned ev,
            const ca_audit_facts *f)
{
    return fill_count(e, name, f, f->tally.absent);
}


/* ---- each field's value ----------------------------------------------- */

#define HEADER          {V_HEADER, 0, NULL}
#define SEALED          {V_SEALED, 0, NULL}
#define FACT_TEXT(m)    {V_TEXT, offsetof(ca_audit_facts, m), NULL}
#define FACT_STR(m)     {V_STR, offsetof(ca_audit_facts, m), NULL}
#define FACT_NUM(m)     {V_NUM, offsetof(ca_audit_facts, m), NULL}
#define DERIVED(fn)     {V_DERIVED, 0, fn}

#define VALUE(id, name, ev, some, type, hashed, col, sql, value)            \
    [CA_F_##id] = value,
static const value_of  values[CA_F_COUNT] = {
    CA_AUDIT_SCHEMA(VALUE)
};
#undef VALUE


/* ---- building -------------------------------------------------------- */

static int
fill(ca_entry *e, int id, unsigned ev, const ca_audit_facts *f)
{
    const value_of *v = &values[id];
    const char     *name = ca_audit_schema[id].name;
    const char     *at = (const char *) f + v->at;
    int             sometimes = (ca_audit_schema[id].sometimes & ev) != 0;
    const char     *s;

    switch (v->kind) {
    case V_TEXT:
        memcpy(&s, at, sizeof(s));
        if (s == NULL && sometimes) {
            return ABSENT;
        }
        return add_text(e, name, s);
    case V_STR: {
        ca_audit_str str;

        memcpy(&str, at, sizeof(str));
        if (str.s == NULL) {
            return sometimes ? ABSENT : ca_entry_add(e, name, "", 0);
        }
        return ca_entry_add(e, name, str.s, str.len);
    }
    case V_NUM: {
        int64_t n;

        memcpy(&n, at, sizeof(n));
        return ca_entry_add_int(e, name, n);
    }
    case V_DERIVED:
        return v->fill(e, name, ev, f);
    }
    return 0;       /* the head and the seal are written elsewhere */
}

int
ca_audit_build(ca_entry *e, unsigned event, const ca_audit_facts *f)
{
    const char *ev = ca_audit_event_name(event);
    int         rc;

    if (ev == NULL) {
        e->n = CA_ENTRY_FIELDS + 1;
        return -1;
    }
    ca_entry_init(e, ev, f->ts, f->gw ? f->gw : "");
    for (int id = 0; id < CA_F_COUNT; id++) {
        if (!(ca_audit_schema[id].events & event)) {
            continue;
        }
        rc = fill(e, id, event, f);
        if (rc == ABSENT && !(ca_audit_schema[id].sometimes & event)) {
            rc = -1;            /* a field every such entry has */
        }
        if (rc < 0) {
            e->n = CA_ENTRY_FIELDS + 1;
            return -1;
        }
    }
    return e->n > CA_ENTRY_FIELDS ? -1 : 0;
}
