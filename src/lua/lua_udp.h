/*
 * lua_udp.h -- luaserv.udp(): datagram cosockets.
 */
#ifndef LS_LUA_UDP_H
#define LS_LUA_UDP_H

struct lua_State;

void ls_lua_udp_register(struct lua_State *L); /* adds udp to the table */

#endif
