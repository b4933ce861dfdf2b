/*
 * lua_proto.h -- which protocol serves a listener, and protocols written in
 * Lua (a listener's protocol = {input, decode, encode} table).
 */
#ifndef LS_LUA_PROTO_H
#define LS_LUA_PROTO_H

#include "net/loop.h"
#include "net/proto.h"

struct lua_State;

extern const ls_proto_t ls_proto_lua;

void ls_lua_proto_attach(ls_server_t *srv);
int ls_lua_proto_send(struct ls_conn *c, struct lua_State *L, int idx,
                      int raw);

#endif
