/*
 * lua_events.c -- what happens on a connection, told to the app: each event
 * of ls_conn_events_t and ls_http_events_t becomes a call of the listener's
 * callback (srv.onConnect, srv.onMessage, ...) through ls_vm_call, which
 * logs an error with its traceback and enforces callbackTimeout and the
 * memory limit. What an error does to the connection is the caller's
 * choice (net/conn.c, http/): nothing here closes one. The callbacks are
 * found and called as binding.c does.
 */
#include "lua/lua_events.h"
#include "lua/binding.h"
#include "lua/lua_conn.h"
#include "lua/lua_core.h"
#include "lua/lua_request.h"

#include <lauxlib.h>

static inline lua_State *
ev_L(void)
{
    return ls_worker->vm->L;
}

/* srv.<name>(conn) */
static int
ev_emit(ls_conn_t *c, const char *name)
{
    if (!ls_lua_callback_push(c, name))
        return LS_EV_NONE;
    return ls_lua_callback_call(c, name, 0, 0);
}

static int
ev_open(ls_conn_t *c)
{
    return ls_lua_conn_attach(ev_L(), c);
}

static int
ev_connect(ls_conn_t *c)
{
    return ev_emit(c, "onConnect");
}

typedef struct ev_batch {
    ls_conn_t *c;
    ls_conn_next_fn next;
    void *ctx;
} ev_batch_t;

/* Under ls_vm_call: onMessage(conn, msg) for each message next() yields.
 * srv.onMessage is looked up for each, so that a reassignment is seen at
 * once. */
static int
ev_deliver(lua_State *L)
{
    ev_batch_t *b = lua_touserdata(L, 1);
    ls_conn_t *c = b->c;
    ls_vm_t *vm = ls_worker->vm;
    const char *p;
    size_t n;

    lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->lua_ref);  /* b srv */
    ls_vm_push_name(vm, "onMessage");                    /* b srv name */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);       /* b srv name conn */
    while (b->next(c, b->ctx, &p, &n)) {
        c->srv->msgs_in++;
        lua_pushvalue(L, 3);
        if (lua_gettable(L, 2) != LUA_TFUNCTION) {       /* ... f */
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, 4);
        lua_pushlstring(L, p, n);                        /* ... f conn msg */
        ls_vm_next_callback(vm);
        lua_call(L, 2, 0);
    }
    return 0;
}

/*
 * A batch of messages (all the whole packets of one read) under one
 * protected call: the per-call cost (lua_pcall's setjmp, the handler, the
 * callback's lookup from the registry) is paid once per read, not once per
 * message. An error in one onMessage ends the batch; the caller closes the
 * connection, so the messages behind it would not have been delivered
 * anyway. next() stops once the connection is paused or closing.
 */
static int
ev_messages(ls_conn_t *c, ls_conn_next_fn next, void *ctx)
{
    lua_State *L = ev_L();
    ev_batch_t b = {c, next, ctx};

    lua_pushcfunction(L, ev_deliver);
    lua_pushlightuserdata(L, &b);
    return ls_vm_call(ls_worker->vm, 1, 0, "onMessage", c->id) == LUA_OK
               ? LS_EV_OK
               : LS_EV_ERROR;
}

static int
ev_message(ls_conn_t *c, const char *p, size_t n)
{
    if (!ls_lua_callback_push(c, "onMessage"))           /* f conn */
        return LS_EV_NONE;
    lua_pushlstring(ev_L(), p, n);
    return ls_lua_callback_call(c, "onMessage", 1, 0);
}

static int
ev_error(ls_conn_t *c, int code, const char *text)
{
    if (!ls_lua_callback_push(c, "onError"))
        return LS_EV_NONE;
    lua_pushinteger(ev_L(), code);
    lua_pushstring(ev_L(), text);
    return ls_lua_callback_call(c, "onError", 2, 0);
}

static int
ev_buffer(ls_conn_t *c, int full)
{
    return ev_emit(c, full ? "onBufferFull" : "onBufferDrain");
}

static void
ev_close(ls_conn_t *c)
{
    ev_emit(c, "onClose");
    ls_lua_conn_detach(ev_L(), c);
}

static void
ev_server_gone(ls_server_t *srv)
{
    luaL_unref(ev_L(), LUA_REGISTRYINDEX, srv->lua_ref);
    srv->lua_ref = LUA_NOREF;
}

static int
ev_handles(ls_conn_t *c, const char *callback)
{
    if (!ls_lua_callback_push(c, callback))
        return 0;
    lua_pop(ev_L(), 2);
    return 1;
}

const ls_conn_events_t ls_lua_conn_events = {
    .open = ev_open,
    .connect = ev_connect,
    .messages = ev_messages,
    .message = ev_message,
    .error = ev_error,
    .buffer = ev_buffer,
    .close = ev_close,
    .server_gone = ev_server_gone,
    .handles = ev_handles,
};

/* ---- HTTP ------------------------------------------------------------- */

/* onMessage(conn, req) */
static int
ev_request(ls_conn_t *c, ls_http_t *h, char *base)
{
    if (!ls_lua_callback_push(c, "onMessage"))           /* f conn */
        return LS_EV_NONE;
    ls_lua_request_push(ev_L(), h, base);                /* f conn req */
    return ls_lua_callback_call(c, "onMessage", 1, 0);
}

/* onWebSocketConnect(conn, req): false refuses with 403, a status from
 * 400 to 599 with that status; anything else accepts. */
static int
ev_ws_connect(ls_conn_t *c, ls_http_t *h, const char *base, int *refuse)
{
    lua_State *L = ev_L();
    int top = lua_gettop(L), status;

    *refuse = 0;
    if (!ls_lua_callback_push(c, "onWebSocketConnect"))  /* f conn */
        return LS_EV_NONE;
    ls_lua_request_push(L, h, (char *)base);             /* f conn req */
    status = ls_lua_callback_call(c, "onWebSocketConnect", 1, 1);
    if (status == LS_EV_OK) {
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            *refuse = 403;
        else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 400 &&
                 lua_tointeger(L, -1) <= 599)
            *refuse = (int)lua_tointeger(L, -1);
    }
    lua_settop(L, top);
    return status;
}

const ls_http_events_t ls_lua_http_events = {
    .request = ev_request,
    .ws_connect = ev_ws_connect,
};

/* ---- the worker ---------------------------------------------------- */

/* listener.<name>(worker) (onWorkerStart, onWorkerStop, onWorkerReload):
 * 0, or -1 when it raised (logged). */
int
ls_lua_events_worker(ls_vm_t *vm, const char *name)
{
    lua_State *L = vm->L;

    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->serve_ref);    /* srv */
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {   /* srv f */
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);                                   /* f */
    ls_lua_core_push_worker(L);                          /* f worker */
    return ls_vm_call(vm, 1, 0, name, 0) == LUA_OK ? 0 : -1;
}
