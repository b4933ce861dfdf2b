/*
 * lua_shdict.h -- luaserv.shared.NAME (shared dicts) and the `shared`
 * setting that declares them.
 */
#ifndef LS_LUA_SHDICT_H
#define LS_LUA_SHDICT_H

#include "core/config.h"

struct lua_State;

/* The worker's configuration from the master, whose dicts are mapped;
 * before the app loads. Without it luaserv.shared is empty (validator). */
void ls_lua_shdict_use(const ls_conf_t *conf);
/* core.shared and the "luaserv.shdict" metatable; the core table on top. */
void ls_lua_shdict_register(struct lua_State *L);
/* settings{ shared = {...} }: the table on top of the stack into c. */
void ls_lua_shdict_setting(struct lua_State *L, ls_conf_t *c);

#endif
