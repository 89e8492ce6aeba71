/* libcreditauth: the consent gateway's engine, free of nginx. */
#ifndef CREDITAUTH_H
#define CREDITAUTH_H

#include "core/core.h"
#include "redis/redis.h"
#include "jws/jws.h"
#include "policy/policy.h"
#include "audit/audit.h"

#endif
