/*
 * lua_udp_listener.c -- udp:// listeners in Lua.
 *
 *   local u = luaserv.listen("udp://127.0.0.1:9000", { count = 2 })
 *   function u.onMessage(peer, datagram)
 *       peer:send(datagram)        -- true | nil, "would block" | err
 *   end                            -- peer.address, peer.port, tostring(peer)
 *
 * Each datagram is one onMessage, in a coroutine of its own (co.c), so it
 * may wait (luaserv.sleep, cosockets) while the next datagrams are served:
 * there is no connection whose order would have to be kept. peer:send()
 * answers from the listener's socket, at once, never waiting: a socket
 * buffer that is full gives nil, "would block". A peer may be kept and
 * used later (a timer): it is only an address.
 *
 * There are no connections, so onConnect, onClose, onError, onBufferFull,
 * onBufferDrain, onWebSocketConnect and onDrain do not apply: assigning
 * one to a udp:// listener table is an error at the script's line (the
 * validator fails, as for a bad option), rather than a callback silently
 * never called. The stream options (idleTimeout, backlog, protocol, ...) are
 * refused in the same way.
 */
#include "lua/lua_udp_listener.h"
#include "core/config.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "net/udp.h"

#include "lua/compat.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PEER_MT "luaserv.udp_peer"

static const char peer_mt_key; /* registry: the peer metatable */

typedef ls_udp_peer_t peer_t;

/* ---- listen() ----------------------------------------------------------- */

/* The options a udp:// listener takes (the others are about streams). */
static const char *const udpl_options[] = {
    "name", "count", "reusePort", "maxPackageSize", "maxRequests",
    "maxMemory", "luaMemoryLimit", "callbackTimeout", NULL};

static const char *const udpl_stream_callbacks[] = {
    "onConnect", "onClose", "onError", "onBufferFull", "onBufferDrain",
    "onWebSocketConnect", "onDrain", NULL};

void
ls_lua_udp_listener_check(lua_State *L, int idx, const ls_listen_conf_t *l)
{
    if (!ls_addr_is_udp(&l->addr) || !lua_istable(L, idx))
        return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {                           /* ... k v */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : "?";
        int ok = 0;
        for (int i = 0; udpl_options[i] != NULL && !ok; i++)
            ok = strcmp(k, udpl_options[i]) == 0;
        if (!ok)
            luaL_error(L, "option '%s' does not apply to udp:// listeners "
                       "(they take name, count, reusePort, maxPackageSize, "
                       "maxRequests, maxMemory, luaMemoryLimit, "
                       "callbackTimeout)", k);
        lua_pop(L, 1);                                   /* ... k */
    }
    if (l->max_package_size > 65535)
        luaL_error(L, "bad option 'maxPackageSize' (a udp datagram has at "
                   "most 65535 bytes; 1 to 65535 expected, got %I)",
                   (lua_Integer)l->max_package_size);
}

/* srv.<key> = v on a udp:// listener table   [-0, +0, e] */
static int
ludpl_newindex(lua_State *L)
{
    const char *k = lua_tostring(L, 2);

    if (lua_type(L, 2) == LUA_TSTRING && !lua_isnil(L, 3))
        for (int i = 0; udpl_stream_callbacks[i] != NULL; i++)
            if (strcmp(k, udpl_stream_callbacks[i]) == 0) {
                lua_getfield(L, 1, "address");
                luaL_where(L, 1);
                lua_pushfstring(L, "%s does not apply to udp:// listeners "
                                "(%s: there are no connections; each "
                                "datagram comes to onMessage(peer, "
                                "datagram))", k, lua_tostring(L, -2));
                lua_concat(L, 2);
                return lua_error(L);
            }
    lua_rawset(L, 1);
    return 0;
}

void
ls_lua_udp_listener_table(lua_State *L, const ls_listen_conf_t *l)
{
    if (!ls_addr_is_udp(&l->addr))
        return;
    lua_createtable(L, 0, 1);                            /* srv mt */
    lua_pushcfunction(L, ludpl_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);                             /* srv */
}

/* ---- peers ----------------------------------------------------------- */

static const char *
udpl_errstr(int e, char *buf, size_t n)
{
    if (e == EAGAIN || e == EWOULDBLOCK)
        return "would block";
    if (e == EMSGSIZE)
        return "message too long";
    snprintf(buf, n, "%s", strerror(e));
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

/* peer:send(data) -> true | nil, err   [-2, +1..2, e] */
static int
lpeer_send(lua_State *L)
{
    peer_t *p = luaL_checkudata(L, 1, PEER_MT);
    size_t n;
    const char *data;
    char buf[128];
    int t = lua_type(L, 2);

    luaL_argexpected(L, t == LUA_TSTRING || t == LUA_TNUMBER, 2, "string");
    data = lua_tolstring(L, 2, &n);
    if (ls_udp == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    if (ls_udp_send(p, data, n) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, udpl_errstr(errno, buf, sizeof(buf)));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* peer.address, peer.port, peer:send   [-2, +1, -] */
static int
lpeer_index(lua_State *L)
{
    peer_t *p = luaL_checkudata(L, 1, PEER_MT);
    const char *k = lua_tostring(L, 2);
    char ip[INET6_ADDRSTRLEN];
    int port;

    if (k == NULL || lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);
        return 1;
    }
    if (strcmp(k, "send") == 0) {
        lua_pushcfunction(L, lpeer_send);
        return 1;
    }
    ls_udp_addr((struct sockaddr *)&p->sa, ip, sizeof(ip), &port);
    if (strcmp(k, "address") == 0)
        lua_pushstring(L, ip);
    else if (strcmp(k, "port") == 0)
        lua_pushinteger(L, port);
    else
        lua_pushnil(L);
    return 1;
}

/* tostring(peer) -> "1.2.3.4:5678" / "[::1]:5678" (a key for a table) */
static int
lpeer_tostring(lua_State *L)
{
    peer_t *p = luaL_checkudata(L, 1, PEER_MT);
    char ip[INET6_ADDRSTRLEN];
    int port;

    ls_udp_addr((struct sockaddr *)&p->sa, ip, sizeof(ip), &port);
    if (p->sa.ss_family == AF_INET6)
        lua_pushfstring(L, "[%s]:%d", ip, port);
    else
        lua_pushfstring(L, "%s:%d", ip, port);
    return 1;
}

/* peer == peer: the same address and port */
static int
lpeer_eq(lua_State *L)
{
    peer_t *a = luaL_testudata(L, 1, PEER_MT);
    peer_t *b = luaL_testudata(L, 2, PEER_MT);

    lua_pushboolean(L, a != NULL && b != NULL && a->salen == b->salen &&
                           memcmp(&a->sa, &b->sa, a->salen) == 0);
    return 1;
}

static const luaL_Reg peer_meta[] = {
    {"__eq", lpeer_eq},
    {"__index", lpeer_index},
    {"__tostring", lpeer_tostring},
    {NULL, NULL},
};

static void
udpl_push_peer(lua_State *L, const ls_udp_peer_t *from)
{
    peer_t *p = lua_newuserdatauv(L, sizeof(*p), 0);     /* peer */

    *p = *from;
    if (p->salen > sizeof(p->sa))
        p->salen = sizeof(p->sa);
    /* no stray bytes of the read buffer past the address */
    memset((char *)&p->sa + p->salen, 0, sizeof(p->sa) - p->salen);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &peer_mt_key);     /* peer mt */
    lua_setmetatable(L, -2);                             /* peer */
}

/* ---- datagrams -------------------------------------------------------- */

/* srv.onMessage(peer, datagram) in a coroutine of its own. */
static void
udpl_message(ls_server_t *srv, const ls_udp_peer_t *peer, const char *p,
             size_t n)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("udp: no coroutine", 0);
    ls_vm_t *vm = ls_worker->vm;
    ls_co_t *co = ls_co_get();
    lua_State *L;

    if (co == NULL) {
        ls_log_limited(&lim, LS_LOG_ERROR, 0, "udp: out of memory for a "
                       "coroutine; datagram dropped");
        return;
    }
    L = co->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, srv->lua_ref);     /* srv */
    ls_vm_push_name(vm, L, "onMessage");                 /* srv name */
    if (lua_gettable(L, -2) != LUA_TFUNCTION) {          /* srv f */
        ls_co_put(co);
        return;
    }
    lua_remove(L, -2);                                   /* f */
    udpl_push_peer(L, peer);                             /* f peer */
    lua_pushlstring(L, p, n);                            /* f peer dgram */
    ls_co_start(co, 2, "onMessage", NULL, LS_CO_CLIENT);
}

static const ls_udp_events_t udpl_events = {
    .message = udpl_message,
};

int
ls_lua_udp_listener_start(ls_worker_t *w)
{
    lua_State *L = w->vm->L;

    luaL_newmetatable(L, PEER_MT);                       /* mt */
    luaL_setfuncs(L, peer_meta, 0);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &peer_mt_key);     /* */
    ls_udp_set_events(&udpl_events);
    return ls_udp_listen(w);
}
