/*
 * redis/: what the engine knows of Redis without a socket: what a server
 * says of itself (redisinfo.h) and a GET bounded in Redis (redisget.h).
 * Both are public; the glue and the tools include this file only.
 */
#ifndef CA_REDIS_H
#define CA_REDIS_H

#include "redisinfo.h"
#include "redisget.h"

#endif
