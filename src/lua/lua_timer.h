/*
 * lua_timer.h -- luaserv.after / luaserv.every and the "luaserv.timer" handle.
 */
#ifndef LS_LUA_TIMER_H
#define LS_LUA_TIMER_H

#include "net/loop.h"

struct lua_State;

void ls_lua_timer_register(struct lua_State *L); /* adds after/every to the table */
void ls_lua_timer_cancel_all(ls_worker_t *w);

#endif
