/*
 * jws/: enterprise keys (a JWKS file, the Redis key registry), compact
 * JWS and the claims of consent tokens and withdrawals.  Every header of
 * jws/ is public: keys.h, keyreg.h, token.h.  Other components, the glue
 * and the tools include this file only.
 */
#ifndef CA_JWS_H
#define CA_JWS_H

#include "keys.h"
#include "keyreg.h"
#include "token.h"

#endif
