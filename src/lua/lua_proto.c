/*
 * lua_proto.c -- which protocol serves a listener, and custom protocols
 * written in Lua (Workerman's contract):
 *
 *   P.input(buffer, conn)  -> n > 0: a whole packet of n bytes is at the head
 *                             0: need more; nil, err: bad input (onError,
 *                             then close)
 *   P.decode(packet, conn) -> the message handed to onMessage (optional)
 *   P.encode(msg, conn)    -> the bytes conn:send writes (optional)
 *
 * P is the `protocol` field of the listener (or connect options) table,
 * looked up at each call. Once input() has announced a length n, it is not
 * called again until n bytes are there, so a large packet arriving in small
 * pieces costs linear time. maxPackageSize applies to n, and to a buffer
 * that input() keeps answering 0 for.
 */
#include "lua/lua_proto.h"
#include "core/log.h"
#include "http/http.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "net/conn.h"

#include "lua/compat.h"

#include <string.h>

/* Push P.<field> (may be nil); the connection's protocol table is found
 * through its server's table. */
static int
plua_push(ls_conn_t *c, const char *field)
{
    lua_State *L = ls_vm_L(ls_worker->vm);

    lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->lua_ref);  /* srv */
    if (lua_getfield(L, -1, "protocol") != LUA_TTABLE) { /* srv P */
        lua_pop(L, 2);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_getfield(L, -1, field);                          /* srv P f */
    lua_replace(L, -3);                                  /* f P */
    lua_pop(L, 1);                                       /* f */
    return lua_type(L, -1);
}

/* onMessage(conn, msg), pushed on L, in a coroutine: it may wait, and the
 * connection's next packets wait for it (the loop below sees it held). */
static void
plua_deliver(ls_conn_t *c, lua_State *L)
{
    ls_co_t *co = ls_co_get();

    if (co == NULL) {
        lua_pop(L, 3);
        ls_conn_close(c);
        return;
    }
    lua_xmove(L, co->L, 3);
    if (ls_co_start(co, 2, "onMessage", c, LS_CO_HOLD) == LS_EV_ERROR)
        ls_conn_close(c);
}

static size_t
plua_input(ls_conn_t *c, const char *buf, size_t len)
{
    lua_State *L = ls_vm_L(ls_worker->vm);
    size_t off = 0, max = c->srv->conf.max_package_size;

    ls_conn_incref(c);
    while (off < len && ls_conn_receiving(c)) {
        size_t avail = len - off;
        lua_Integer n;
        int isnum;

        if (c->scan > 0 && avail < c->scan)
            break; /* the announced packet is not complete yet */
        if (c->scan == 0) {
            if (plua_push(c, "input") != LUA_TFUNCTION) {
                lua_pop(L, 1);
                ls_conn_fail(c, LS_ERR_BAD_INPUT,
                             "protocol.input is not a function");
                break;
            }
            lua_pushlstring(L, buf + off, avail);
            lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);
            if (ls_vm_call(ls_worker->vm, 2, 2, "protocol input", c->id) !=
                LUA_OK) {
                ls_conn_close(c);
                break;
            }
            if (lua_isnil(L, -2)) {
                const char *err = lua_tostring(L, -1);
                char msg[256];
                snprintf(msg, sizeof(msg), "bad input: %s",
                         err ? err : "(no reason given)");
                lua_pop(L, 2);
                ls_conn_fail(c, LS_ERR_BAD_INPUT, msg);
                break;
            }
            n = lua_tointegerx(L, -2, &isnum);
            lua_pop(L, 2);
            if (!isnum || n < 0) {
                ls_conn_fail(c, LS_ERR_BAD_INPUT, "protocol.input must "
                             "return a length, 0, or nil and an error");
                break;
            }
            if (n == 0) {
                if (avail > max)
                    ls_conn_fail(c, LS_ERR_PACKAGE_TOO_BIG, "package too big");
                break;
            }
            if ((size_t)n > max) {
                ls_conn_fail(c, LS_ERR_PACKAGE_TOO_BIG, "package too big");
                break;
            }
            c->scan = (size_t)n;
            if (avail < c->scan)
                break;
        }
        n = (lua_Integer)c->scan;
        c->scan = 0;
        ls_server_took_message(c->srv);
        if (ls_lua_callback_push(L, c, "onMessage")) { /* onMessage conn */
            if (plua_push(c, "decode") == LUA_TFUNCTION) {
                lua_pushlstring(L, buf + off, (size_t)n);
                lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);
                if (ls_vm_call(ls_worker->vm, 2, 1, "protocol decode",
                               c->id) != LUA_OK) {
                    lua_pop(L, 2);
                    ls_conn_close(c);
                    break;
                }
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, buf + off, (size_t)n);
            }
            off += (size_t)n;
            plua_deliver(c, L);
        } else {
            off += (size_t)n;
        }
    }
    ls_conn_decref(c);
    return (c->flags & LS_CONN_CLOSED) ? len : off;
}

static size_t
plua_missing(ls_conn_t *c, const char *buf, size_t len)
{
    (void)buf;
    return c->scan > len ? c->scan - len : 0;
}

/* conn:send(msg [, raw]): bytes from P.encode(msg, conn), or msg itself. */
int
ls_lua_proto_send(ls_conn_t *c, lua_State *L, int idx, int raw)
{
    const char *p;
    size_t n;
    int t;

    idx = lua_absindex(L, idx);
    if (!raw && plua_push(c, "encode") == LUA_TFUNCTION) {
        lua_pushvalue(L, idx);
        lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);
        lua_call(L, 2, 1); /* inside conn:send: errors go to its caller */
        t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "protocol.encode must return a string, got "
                              "%s", lua_typename(L, t));
        lua_replace(L, idx);
    } else if (!raw) {
        lua_pop(L, 1);
    }
    t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_typeerror(L, idx, "string");
    p = lua_tolstring(L, idx, &n);
    return ls_conn_write(c, p, n);
}

/* From C (no Lua value to encode): the bytes as they are. */
static int
plua_send_bytes(ls_conn_t *c, const char *p, size_t n, int raw)
{
    (void)raw;
    return ls_conn_write(c, p, n);
}

const ls_proto_t ls_proto_lua = {
    .name = "lua",
    .kind = LS_PROTO_CUSTOM,
    .input = plua_input,
    .missing = plua_missing,
    .send = plua_send_bytes,
};

/* ---- which protocol serves a listener ------------------------------------ */

/* By its options: a protocol table, else the scheme (a WebSocket starts as
 * an HTTP request: ws.c takes it over), else the stream protocols. */
static const ls_proto_t *
proto_for(const ls_listen_conf_t *l)
{
    const char *name = l->addr.proto;

    if (l->framing.kind == LS_FRAMING_CUSTOM)
        return &ls_proto_lua;
    if (strcmp(name, "http") == 0 || strcmp(name, "websocket") == 0 ||
        strcmp(name, "ws") == 0)
        return &ls_proto_http;
    return &ls_proto_stream;
}

/* Pick srv's protocol from its options, and how much one read() asks for:
 * a raw chunk is a message, so it never reads more than maxPackageSize. */
void
ls_lua_proto_attach(ls_server_t *srv)
{
    srv->proto = proto_for(&srv->conf);
    srv->read_size = LS_READ_SIZE;
    if (srv->conf.framing.kind == LS_FRAMING_RAW &&
        srv->conf.max_package_size < LS_READ_SIZE)
        srv->read_size = srv->conf.max_package_size;
}
