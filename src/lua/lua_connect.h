/*
 * outbound.h -- luaserv.connect(): outbound connections with the same
 * callbacks, methods and protocols as accepted ones.
 */
#ifndef LS_OUTBOUND_H
#define LS_OUTBOUND_H

#include "worker.h"

#include <lua.h>

int ls_lua_connect(lua_State *L);
void ls_outbound_close_all(ls_worker_t *w);

#endif
