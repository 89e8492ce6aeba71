/* libcreditauth: the consent gateway's engine, free of nginx. */
#ifndef CREDITAUTH_H
#define CREDITAUTH_H

#include "core/reason.h"
#include "core/util.h"
#include "core/uscc.h"
#include "jws/keys.h"
#include "jws/keyreg.h"
#include "jws/token.h"
#include "policy/banks.h"
#include "policy/policy.h"
#include "policy/filter.h"
#include "policy/checks.h"
#include "audit/audit.h"
#include "audit/auditschema.h"
#include "audit/spool.h"
#include "audit/auditwriter.h"
#include "core/pii.h"
#include "redis/redisinfo.h"
#include "redis/redisget.h"

#endif
