/*
 * lua_core.h -- the "luaserv.core" module.
 */
#ifndef LS_LUA_CORE_H
#define LS_LUA_CORE_H

struct lua_State;
struct ls_listen_conf;
struct ls_vm;

int luaopen_luaserv_core(struct lua_State *L);
void ls_lua_core_install(struct ls_vm *vm);
void ls_lua_core_set_stopping(struct ls_vm *vm, const char *why);

void ls_lua_core_defaults(struct ls_listen_conf *l);
void ls_lua_core_options(struct lua_State *L, int idx,
                         struct ls_listen_conf *l, int outbound);

#endif
