/*
 * json/: the streaming JSON scanner the response filter runs on, its
 * output, and exact decimal numbers.  Public: the scanner (jsonscan.h,
 * which brings the token layer it is built on) and the decimals
 * (decnum.h).  Internal: the number runs (numrun.h).  Other components,
 * the glue and the tools include this file only.
 */
#ifndef CA_JSON_H
#define CA_JSON_H

#include "jsonscan.h"
#include "decnum.h"

#endif
