/*
 * lua_udp_listener.h -- udp:// listeners as the app sees them: the options
 * that apply, the callbacks that do not, onMessage(peer, datagram) and the
 * "luaserv.udp_peer" userdata (peer:send, peer.address, peer.port).
 */
#ifndef LS_LUA_UDP_LISTENER_H
#define LS_LUA_UDP_LISTENER_H

#include "net/loop.h"

struct lua_State;
struct ls_listen_conf;

/* listen(): the options at idx that a udp:// listener l cannot take are
 * errors (a no-op for other listeners).   [-0, +0, e] */
void ls_lua_udp_listener_check(struct lua_State *L, int idx,
                               const struct ls_listen_conf *l);
/* listen(): the listener table on top refuses stream callbacks (onConnect,
 * onClose, ...) with an error naming the script line.   [-0, +0, e] */
void ls_lua_udp_listener_table(struct lua_State *L,
                               const struct ls_listen_conf *l);
/* The worker serves a udp:// listener: datagrams to srv.onMessage. */
int ls_lua_udp_listener_start(ls_worker_t *w);

#endif
