/*
 * A request as a person reads it: its decision entry joined with its
 * outcome entry by rid (the outcome is written after the response, so
 * later in the stream, often behind other requests' entries).
 *
 * Entries are given in stream order; each comes out once, in the order
 * given, with its outcome when one was seen.  A decision that expects an
 * outcome (allow, report) holds back what follows it until the outcome
 * arrives or JOIN_WINDOW_MS of stream time (or JOIN_MAX held entries)
 * has passed: memory stays bounded by that window, not by the stream.
 * A decision that comes out without its outcome is counted in
 * `unjoined`: its outcome came later than that, or not yet.
 */
#ifndef CA_TOOLS_AUDIT_JOIN_H
#define CA_TOOLS_AUDIT_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "audit_tool.h"

#define JOIN_WINDOW_MS (10 * 60 * 1000)
#define JOIN_MAX       100000

/* out: the outcome, or NULL */
typedef void (*join_emit)(const entry *e, const entry *out, void *data);

typedef struct {
    entry    *e, *out;
    int       waiting;          /* for its outcome */
    int       tentative;        /* shown only if its outcome confirms */
    int64_t   at;               /* stream time (ms) it was added */
} join_item;

typedef struct {
    join_item *ring;
    size_t     cap, head, n;
    uint64_t   first;           /* serial of ring[head] */
    strmap     rid;             /* rid -> 1 + serial of a waiting item */
    join_emit  emit;
    void      *data;
    size_t     unjoined;
} request_join;

void join_init(request_join *j, join_emit emit, void *data);
/* An entry to show.  waiting: a decision whose outcome should be joined;
 * tentative: shown only if join_outcome() confirms it. */
void join_add(request_join *j, const entry *e, int waiting, int tentative);
/* An outcome: joined to its waiting decision, if any; confirm: it makes a
 * tentative decision shown. */
void join_outcome(request_join *j, const entry *e, int confirm);
/* Everything still held comes out; then j is empty and freed. */
void join_finish(request_join *j);

/* An entry copied out of a Redis reply (one allocation; free() it). */
entry *entry_copy(const entry *e);

#endif
