/*
 * lua_socket.h -- cosockets: luaserv.tcp().
 */
#ifndef LS_LUA_SOCKET_H
#define LS_LUA_SOCKET_H

struct lua_State;

void ls_lua_socket_register(struct lua_State *L); /* adds tcp to the table */
void ls_lua_socket_close_pool(void);

#endif
