/*
 * Least-necessary filtering (contract §6).  The output is written fresh as the
 * allowlist tree is walked alongside the document: nothing from the
 * upstream reaches the bank unless a listed path leads to it, so an
 * unexpected member, a changed shape or a value a treatment cannot handle
 * is withheld, never passed.
 *
 * The filter reads the upstream body once, as text (jsonscan.c), and
 * writes the disclosed document as it goes: a withheld member is
 * validated and skipped without building anything, a kept value is copied
 * as the bytes it was written with (numbers included: no conversion, no
 * precision loss), and only a value that takes a treatment is decoded, for
 * treat.c.  Any fault in the input fails the whole document, so nothing
 * malformed is half-disclosed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "json/json.h"
#include "treat.h"

#define TRACE_PATH_MAX 1024
#define MEMO_DEPTH     8
#define MEMO_MEMBERS   16

#define MEMO_HEAD_MAX  32

_Static_assert(MEMO_MEMBERS <= 16, "memo_set keeps a bit per member");

/*
 * The k-th member of an object under `node` at some depth, the last time
 * one was seen: rows of an array repeat their keys in the same order, so
 * a key is mostly looked up once per record, not once per row.  Rows
 * written by one program also repeat the bytes before each value
 * (indentation, the quoted key, the colon): when the next row has the
 * same bytes there, they are the same valid key, compared at once
 * instead of scanned.
 */
typedef struct {
    const ca_node *node;
    const char    *key;             /* in the input */
    size_t         klen;
    const ca_node *child;           /* NULL: unlisted */
    const char    *head;            /* the member's bytes up to its ':' */
    size_t         hlen;            /* 0: none kept (> MEMO_HEAD_MAX) */
} memo_t;

typedef struct {
    ca_jscan              s;
    const char           *in;
    const ca_filter_opts *opts;
    ca_filter_report     *rep;
    const ca_field       *fields;   /* to index the report flags */
    ca_jout               out;      /* the disclosed document */
    ca_jout               treated;  /* a treated value before it is sent */
    size_t                plen;
    /* Which memo entries hold something: the table itself is not cleared
     * for every answer (7 KiB against a 1 KiB record). */
    uint16_t              memo_set[MEMO_DEPTH];
    /* Left uninitialised (ca_filter_text): */
    memo_t                memo[MEMO_DEPTH][MEMO_MEMBERS];
    /* The concrete path, maintained only when tracing. */
    char                  path[TRACE_PATH_MAX];
} walk_t;

static int
failed(walk_t *w)
{
    return w->s.err || w->out.err;
}

/* Extends the traced document path; returns the length to pop back to. */
static size_t
path_push(walk_t *w, const char *fmt, ...)
{
    size_t  old = w->plen;
    int     n;
    va_list ap;

    if (w->opts->trace == NULL) {
        return old;
    }
    va_start(ap, fmt);
    n = vsnprintf(w->path + old, sizeof(w->path) - old, fmt, ap);
    va_end(ap);
    w->plen = n < 0 ? old : old + (size_t) n;
    if (w->plen >= sizeof(w->path)) {
        w->plen = sizeof(w->path) - 1;
    }
    return old;
}

static void
path_pop(walk_t *w, size_t old)
{
    if (w->opts->trace == NULL) {
        return;
    }
    w->plen = old;
    w->path[old] = '\0';
}

static void
trace(walk_t *w, const ca_field *f, const ca_treatment *t, ca_trace_what what)
{
    if (w->opts->trace) {
        w->opts->trace(w->opts->trace_ctx, w->path, f, t, what);
    }
}

/* The value at the cursor is not sent: validated, skipped, counted. */
static void
withhold(walk_t *w, int depth, const ca_field *f, const ca_treatment *t,
         ca_trace_what what)
{
    ca_js_value(&w->s, depth, NULL);
    trace(w, f, t, what);
    if (w->rep) {
        w->rep->withheld++;
    }
}

/* The policy's children are sorted by strcmp; k holds no NUL (the
 * scanner refuses \u0000), so ck's NUL ends a common prefix. */
static const ca_node *
find_child(const ca_node *n, const char *k, size_t klen)
{
    size_t lo = 0, hi = n->n_children;

    while (lo < hi) {
        size_t               mid = lo + (hi - lo) / 2, i = 0;
        const unsigned char *a = (const unsigned char *) k;
        const unsigned char *b = (const unsigned char *) n->children[mid].key;
        int                  c;

        while (i < klen && a[i] == b[i]) {
            i++;
        }
        c = i < klen ? a[i] - b[i] : -(b[i] != 0);
        if (c == 0) {
            return &n->children[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/*
 * The k-th member of an object under n at this depth, from the cursor
 * (after '{' or ','): its key read (raw, rawlen as written; key, klen
 * decoded) and kept for the duplicate check, the cursor past its ':'.
 * Returns its allowlist node, NULL when it is unlisted; w->s.err on a
 * fault.  Through the memo when it can.
 */
static const ca_node *
member(walk_t *w, const ca_node *n, int depth, size_t k, const char **raw,
       size_t *rawlen, const char **key, size_t *klen)
{
    const char    *start = w->s.p;
    memo_t        *m = NULL;
    const ca_node *c;

    if (depth < MEMO_DEPTH && k < MEMO_MEMBERS) {
        m = &w->memo[depth][k];
        if (!(w->memo_set[depth] >> k & 1)) {
            m->node = NULL;
            m->hlen = 0;
        }
        if (m->node == n && m->hlen && w->s.end - start >= MEMO_HEAD_MAX
            && w->s.nkeys < w->s.capkeys
            && ca_bs_same_prefix(start, m->head, m->hlen, MEMO_HEAD_MAX))
        {
            ca_jkey *jk = &w->s.keys[w->s.nkeys++];

            /* the same bytes as the kept member's: its key, here */
            *key = jk->p = start + (m->key - m->head);
            *klen = jk->len = m->klen;
            *raw = *key - 1;
            *rawlen = m->klen + 2;
            w->s.p = start + m->hlen;
            return m->child;
        }
    }
    ca_js_key(&w->s, raw, rawlen, key, klen);
    if (w->s.err) {
        return NULL;
    }
    if (m && m->node == n && m->klen == *klen
        && ca_js_same(m->key, *key, *klen))
    {
        c = m->child;
    } else {
        c = find_child(n, *key, *klen);
    }
    if (m && *key >= w->in && *key < w->s.end) {    /* not a decoded key */
        w->memo_set[depth] |= (uint16_t) (1u << k);
        m->node = n;
        m->key = *key;
        m->klen = *klen;
        m->child = c;
        m->head = start;
        m->hlen = (size_t) (w->s.p - start) <= MEMO_HEAD_MAX
                  ? (size_t) (w->s.p - start) : 0;
    }
    return c;
}

/* The scalar at the cursor through treatment t, sent as a string; 0 when
 * it cannot take it. */
static int
treat(walk_t *w, const ca_treatment *t)
{
    ca_scalar v;
    size_t    kmark = w->s.klen, off;
    int       ok;

    memset(&v, 0, sizeof(v));
    switch (*w->s.p) {
    case '"':
        v.kind = CA_SCALAR_STRING;
        ca_js_string(&w->s, &off, &v.len);
        if (w->s.err) {
            return 0;
        }
        v.s = w->s.kbuf + off;
        break;
    case 't':
    case 'f':
    case 'n':
        v.kind = CA_SCALAR_OTHER;
        ca_js_value(&w->s, 1, NULL);
        break;
    default:
        v.kind = CA_SCALAR_NUMBER;
        ca_js_number(&w->s, &v.num);
        break;
    }
    if (w->s.err) {
        return 0;
    }
    w->treated.len = 0;
    ok = ca_treat_scalar(t, &v, w->opts, &w->treated);
    w->s.klen = kmark;
    if (w->treated.err) {
        w->s.err = 1;
        return 0;
    }
    if (ok && ca_treat_is_plain(t)) {
        ca_jout_putc(&w->out, '"');
        ca_jout_put(&w->out, w->treated.s, w->treated.len);
        ca_jout_putc(&w->out, '"');
    } else if (ok) {
        ca_jout_string(&w->out, w->treated.s, w->treated.len);
    }
    return ok;
}

static int node_value(walk_t *w, const ca_node *n, int depth);

/* A listed field: its treatment at this level.  1 if something was sent. */
static int
field_value(walk_t *w, const ca_field *f, int depth)
{
    const ca_treatment *t = w->opts->raw ? &f->raw : &f->masked;
    size_t              idx = (size_t) (f - w->fields);

    ca_js_ws(&w->s);
    if (w->s.p >= w->s.end) {
        w->s.err = 1;
        return 0;
    }
    if (t->kind == CA_TREAT_DROP) {
        withhold(w, depth, f, t, CA_TRACE_DROPPED);
        return 0;
    }
    if (t->kind == CA_TREAT_KEEP) {
        ca_js_value(&w->s, depth, &w->out);
        if (failed(w)) {
            return 0;
        }
    } else if (*w->s.p == '{' || *w->s.p == '[') {
        withhold(w, depth, f, t, CA_TRACE_UNFIT);
        return 0;
    } else if (!treat(w, t)) {
        if (!failed(w)) {
            trace(w, f, t, CA_TRACE_UNFIT);
            if (w->rep) {
                w->rep->withheld++;
            }
        }
        return 0;
    }
    trace(w, f, t, CA_TRACE_SENT);
    if (w->rep && idx < w->rep->n_fields) {
        w->rep->disclosed[idx] = 1;
        if (t->kind != CA_TREAT_KEEP) {
            w->rep->masked[idx] = 1;
        }
    }
    return 1;
}

/* An object under an allowlist node: listed members only (a node without
 * children, such as an empty policy root, withholds every member). */
static void
filter_object(walk_t *w, const ca_node *n, int depth)
{
    size_t mark = w->s.nkeys, kmark = w->s.klen, sent = 0, k = 0;

    ca_jout_putc(&w->out, '{');
    if (ca_js_open(&w->s, '}')) {
        ca_jout_putc(&w->out, '}');
        return;
    }
    for (;;) {
        const char    *raw, *key;
        size_t         rawlen, klen, saved, old;
        const ca_node *c;

        c = member(w, n, depth, k++, &raw, &rawlen, &key, &klen);
        if (failed(w)) {
            return;
        }
        old = w->opts->trace ? path_push(w, "%s%.*s", w->plen ? "." : "",
                                         (int) klen, key) : 0;
        if (c == NULL) {
            withhold(w, depth + 1, NULL, NULL, CA_TRACE_UNLISTED);
        } else {
            saved = w->out.len;
            if (sent) {
                ca_jout_putc(&w->out, ',');
            }
            ca_jout_put(&w->out, raw, rawlen);
            ca_jout_putc(&w->out, ':');
            if (node_value(w, c, depth + 1)) {
                sent++;
            } else {
                w->out.len = saved;
            }
        }
        path_pop(w, old);
        if (failed(w) || !ca_js_more(&w->s, '}')) {
            break;
        }
    }
    if (failed(w)) {
        return;
    }
    ca_js_close_keys(&w->s, mark, kmark);
    ca_jout_putc(&w->out, '}');
}

static void
filter_array(walk_t *w, const ca_node *each, int depth)
{
    size_t i, sent = 0, saved, old;

    ca_jout_putc(&w->out, '[');
    if (ca_js_open(&w->s, ']')) {
        ca_jout_putc(&w->out, ']');
        return;
    }
    for (i = 0;; i++) {
        saved = w->out.len;
        if (sent) {
            ca_jout_putc(&w->out, ',');
        }
        old = w->opts->trace ? path_push(w, "[%zu]", i) : 0;
        /* An element that is withheld is left out, not replaced. */
        if (node_value(w, each, depth + 1)) {
            sent++;
        } else {
            w->out.len = saved;
        }
        path_pop(w, old);
        if (failed(w) || !ca_js_more(&w->s, ']')) {
            break;
        }
    }
    ca_jout_putc(&w->out, ']');
}

/* A value under an allowlist node; 1 if something was sent for it. */
static int
node_value(walk_t *w, const ca_node *n, int depth)
{
    if (depth > CA_FILTER_DEPTH_MAX) {
        w->s.err = 1;
        return 0;
    }
    if (n->field) {
        return field_value(w, n->field, depth);
    }
    ca_js_ws(&w->s);
    if (w->s.p < w->s.end && *w->s.p == '{' && n->n_children > 0) {
        filter_object(w, n, depth);
        return !failed(w);
    }
    if (w->s.p < w->s.end && *w->s.p == '[' && n->each) {
        filter_array(w, n->each, depth);
        return !failed(w);
    }
    withhold(w, depth, NULL, NULL, CA_TRACE_UNFIT);
    return 0;
}

char *
ca_filter_text(const ca_category *c, const char *in, size_t len,
               const ca_filter_opts *opts, ca_filter_report *rep,
               size_t *out_len)
{
    static const ca_filter_opts none;
    walk_t                      walk, *w = &walk;
    char                       *out = NULL;

    /* on the stack, and only its head cleared: nothing allocated for the
     * walk's own state */
    memset(w, 0, offsetof(walk_t, memo));
    w->path[0] = '\0';
    w->opts = opts ? opts : &none;
    w->rep = rep;
    w->fields = c->fields;
    w->s.p = w->in = in;
    w->s.end = in + len;
    w->s.copy_depth_max = CA_FILTER_DEPTH_MAX;
    /* Output is mostly no longer than the input: one allocation. */
    ca_jout_grow(&w->out, len + 64);

    ca_js_ws(&w->s);
    if (w->s.p >= w->s.end || *w->s.p != '{') {
        w->s.err = 1;               /* only an object can be filtered */
    } else {
        /* The root is walked as an object even when no field is listed:
         * every member is then unlisted. */
        filter_object(w, &c->tree, 1);
    }
    ca_js_ws(&w->s);
    if (!failed(w) && w->s.p != w->s.end) {
        w->s.err = 1;               /* trailing bytes */
    }
    ca_jout_putc(&w->out, '\0');
    if (!failed(w)) {
        out = w->out.s;
        w->out.s = NULL;
        if (out_len) {
            *out_len = w->out.len - 1;
        }
    }
    free(w->out.s);
    free(w->treated.s);
    ca_js_free(&w->s);
    return out;
}

json_t *
ca_filter_apply(const ca_category *c, json_t *doc, const ca_filter_opts *opts,
                ca_filter_report *rep)
{
    char        *text, *out;
    json_t      *res;
    json_error_t je;

    if (!json_is_object(doc)) {
        return NULL;
    }
    text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL) {
        return NULL;
    }
    out = ca_filter_text(c, text, strlen(text), opts, rep, NULL);
    free(text);
    if (out == NULL) {
        return NULL;
    }
    res = json_loads(out, JSON_REJECT_DUPLICATES, &je);
    free(out);
    return res;
}

/* ---- the report ------------------------------------------------------- */

int
ca_filter_report_init(ca_filter_report *rep, const ca_category *c)
{
    size_t n = c->n_fields ? c->n_fields : 1;

    memset(rep, 0, sizeof(*rep));
    rep->disclosed = calloc(n, 1);
    rep->masked = calloc(n, 1);
    if (rep->disclosed == NULL || rep->masked == NULL) {
        ca_filter_report_free(rep);
        return -1;
    }
    rep->n_fields = c->n_fields;
    return 0;
}

void
ca_filter_report_free(ca_filter_report *rep)
{
    free(rep->disclosed);
    free(rep->masked);
    memset(rep, 0, sizeof(*rep));
}

char *
ca_filter_report_paths(const ca_filter_report *rep, const ca_category *c,
                       int masked)
{
    const unsigned char *flags = masked ? rep->masked : rep->disclosed;
    size_t               len = 1, n = rep->n_fields;
    char                *out, *o;

    if (n > c->n_fields) {
        n = c->n_fields;
    }
    for (size_t i = 0; i < n; i++) {
        if (flags[i]) {
            len += strlen(c->fields[i].path) + 1;
        }
    }
    if ((out = malloc(len)) == NULL) {
        return NULL;
    }
    o = out;
    for (size_t i = 0; i < n; i++) {
        if (flags[i]) {
            size_t l = strlen(c->fields[i].path);
            if (o != out) {
                *o++ = ',';
            }
            memcpy(o, c->fields[i].path, l);
            o += l;
        }
    }
    *o = '\0';
    return out;
}
