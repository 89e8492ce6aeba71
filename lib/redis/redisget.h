/*
 * A GET that never reads more than it will accept (issue 19): the size
 * is looked at in Redis, before anything is sent, so that a value written
 * huge by mistake or malice costs the gateway neither the time to read it
 * nor the memory to hold it.
 */
#ifndef CA_REDISGET_H
#define CA_REDISGET_H

/*
 * EVALSHA <sha> 1 <key> <max>: the value (a bulk string) when it is at
 * most <max> bytes, nil when the key does not exist, or its length (an
 * integer) when it is longer; a key of another type is an error reply
 * (WRONGTYPE).  The script is loaded on every connect (SCRIPT LOAD).
 */
const char *ca_redis_get_script(void);
const char *ca_redis_get_script_sha(void);

#endif
