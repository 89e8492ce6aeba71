/*
 * verify/: what a regulator runs on a stream: the chain and checkpoint
 * verifier (auditverify.h) and the step-wise reader built on it for the
 * tools (auditstep.h).  Internal: auditverify_int.h, auditstep_int.h,
 * auditfields.h.  The tools include this file only.
 */
#ifndef CA_VERIFY_H
#define CA_VERIFY_H

#include "auditverify.h"
#include "auditstep.h"

#endif
