/*
 * redis/: what the engine knows of Redis without a socket: what a server
 * says of itself (redisinfo.h), a GET bounded in Redis (redisget.h) and
 * the sans-I/O session the glue's one hiredis adapter drives (session.h).
 * All are public; the glue and the tools include this file only.
 */
#ifndef CA_REDIS_H
#define CA_REDIS_H

#include "redisinfo.h"
#include "redisget.h"
#include "session.h"

#endif
