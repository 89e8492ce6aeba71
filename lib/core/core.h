/*
 * core/: the engine's toolbox, below every other component.  Its parts are
 * independent (errors and encodings, USCC, reason codes, ISO times,
 * personal-data patterns, byte scanning, the version), so this header is
 * all of them: the honest boundary of a toolbox is "everything in it".
 * Other components, the glue and the tools include this file only.
 */
#ifndef CA_CORE_H
#define CA_CORE_H

#include "util.h"
#include "uscc.h"
#include "reason.h"
#include "isotime.h"
#include "pii.h"
#include "bytescan.h"
#include "version.h"

#endif
