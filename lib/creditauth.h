/* libcreditauth: the consent gateway's engine, free of nginx. */
#ifndef CREDITAUTH_H
#define CREDITAUTH_H

#include "reason.h"
#include "util.h"
#include "uscc.h"
#include "keys.h"
#include "keyreg.h"
#include "token.h"
#include "banks.h"
#include "policy.h"
#include "filter.h"
#include "checks.h"
#include "audit.h"
#include "spool.h"
#include "auditwriter.h"
#include "pii.h"
#include "redisinfo.h"

#endif
