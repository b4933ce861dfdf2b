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
#include "core/log.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "lua/lua_conn.h"
#include "lua/lua_request.h"

#include "lua/compat.h"

static inline lua_State *
ev_L(void)
{
    return ls_vm_L(ls_worker->vm);
}

/* srv.<name>(conn, ...) in a coroutine: push the callback and conn on
 * co->L; 0 when there is no such callback (co goes back). */
static ls_co_t *
ev_prepare(ls_conn_t *c, const char *name)
{
    ls_co_t *co = ls_co_get();

    if (co == NULL)
        return NULL;
    if (!ls_lua_callback_push(co->L, c, name)) {
        ls_co_put(co);
        return NULL;
    }
    return co;
}

/* srv.<name>(conn) */
static int
ev_emit(ls_conn_t *c, const char *name, int flags)
{
    ls_co_t *co = ev_prepare(c, name);

    if (co == NULL)
        return LS_EV_NONE;
    return ls_co_start(co, 1, name, c, flags);
}

static int
ev_open(ls_conn_t *c)
{
    return ls_lua_conn_attach(ls_worker->vm->L, c);
}

/* onConnect may wait; the connection's messages wait for it. */
static int
ev_connect(ls_conn_t *c)
{
    return ev_emit(c, "onConnect", LS_CO_HOLD);
}

typedef struct ev_batch {
    ls_conn_t *c;
    ls_conn_next_fn next;
    void *ctx;
#if LS_LUAJIT
    ls_co_t *co;                /* the coroutine delivering it */
    struct ev_batch *prev;      /* a batch of another connection, nested */
#endif
} ev_batch_t;

/* The next message of batch b, counted; 0 at the end of the batch. Both
 * ways of delivering a batch take their messages here. */
static inline int
ev_take(ev_batch_t *b, const char **p, size_t *n)
{
    if (!b->next(b->c, b->ctx, p, n))
        return 0;
    ls_server_took_message(b->c->srv);
    return 1;
}

#if !LS_LUAJIT

/* After an onMessage of the batch waited: the batch is over (the messages
 * behind it wait in the input buffer, the connection held, and come in a
 * batch of their own once this one is done). */
static int
ev_deliver_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 0;
}

/* In a coroutine: onMessage(conn, msg) for each message next() yields.
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
    ls_vm_push_name(vm, L, "onMessage");                 /* b srv name */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);       /* b srv name conn */
    while (ev_take(b, &p, &n)) {
        lua_pushvalue(L, 3);
        if (lua_gettable(L, 2) != LUA_TFUNCTION) {       /* ... f */
            lua_pop(L, 1);
            continue;
        }
        lua_pushvalue(L, 4);
        lua_pushlstring(L, p, n);                        /* ... f conn msg */
        ls_vm_next_callback(vm);
        lua_callk(L, 2, 0, 0, ev_deliver_k);
    }
    return 0;
}

/* Push what ls_co_start runs for batch b. */
static int
ev_push_deliver(lua_State *L, ev_batch_t *b)
{
    lua_pushcfunction(L, ev_deliver);
    lua_pushlightuserdata(L, b);
    return 1;
}

#define ev_batch_begin(b) ((void)0)
#define ev_batch_end(b) ((void)0)

#else /* LuaJIT */

/*
 * LuaJIT has no lua_callk: a C function cannot call a Lua function that
 * yields. So the loop is Lua code, and the C side is a function it calls
 * for each message, ev_next. The batch lives on ev_messages' C stack: it is
 * the current one (ev_batch) only while ev_messages runs, that is until
 * the coroutine is done or first waits. Once an onMessage of the batch
 * waited, ev_next finds that the batch it is asked for is no longer current
 * (the coroutine is another's, or there is none) and ends the loop: the
 * messages behind wait in the input buffer, the connection held, and come
 * in a batch of their own once this one is done, as in 5.4.
 */
static ev_batch_t *ev_batch;
static const char ev_deliver_key;
static const char ev_deliver_src[] =
    "local nextmsg = ...\n"
    "return function(srv, name, conn)\n"
    "    while true do\n"
    "        local msg = nextmsg()\n"
    "        if msg == nil then return end\n"
    "        local f = srv[name]\n"
    "        if type(f) == 'function' then f(conn, msg) end\n"
    "    end\n"
    "end\n";

/* nextmsg() -> the next message of the current batch, or nil */
static int
ev_next(lua_State *L)
{
    ev_batch_t *b = ev_batch;
    const char *p;
    size_t n;

    if (b == NULL || b->co != ls_co_running(L) || !ev_take(b, &p, &n))
        return 0;
    lua_pushlstring(L, p, n);
    ls_vm_next_callback(ls_worker->vm);
    return 1;
}

/* Push the deliver function (made once per state), srv, the name and
 * conn: 3 arguments. 0 (nothing pushed) if it cannot be made. */
static int
ev_push_deliver(lua_State *L, ev_batch_t *b)
{
    ls_conn_t *c = b->c;

    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ev_deliver_key) !=
        LUA_TFUNCTION) {
        lua_pop(L, 1);
        if (luaL_loadbuffer(L, ev_deliver_src, sizeof(ev_deliver_src) - 1,
                            "=luaserv.deliver") != LUA_OK) {
            ls_log(LS_LOG_ERROR, 0, "onMessage: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return 0;
        }
        lua_pushcfunction(L, ev_next);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
            ls_log(LS_LOG_ERROR, 0, "onMessage: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return 0;
        }
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &ev_deliver_key); /* f */
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->srv->lua_ref);  /* f srv */
    ls_vm_push_name(ls_worker->vm, L, "onMessage");      /* f srv name */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);       /* f srv name conn */
    return 3;
}

#define ev_batch_begin(b) ((b)->prev = ev_batch, ev_batch = (b))
#define ev_batch_end(b) (ev_batch = (b)->prev)

#endif

/*
 * A batch of messages (all the whole packets of one read) in one coroutine:
 * the per-call cost (lua_resume, the callback's lookup from the registry)
 * is paid once per read, not once per message. An error in one onMessage
 * ends the batch; the caller closes the connection, so the messages behind
 * it would not have been delivered anyway. next() stops once the
 * connection is paused, held or closing.
 */
static int
ev_messages(ls_conn_t *c, ls_conn_next_fn next, void *ctx)
{
    ls_co_t *co = ls_co_get();
    ev_batch_t b = {.c = c, .next = next, .ctx = ctx};
    int nargs, r;

    if (co == NULL)
        return LS_EV_ERROR;
    if ((nargs = ev_push_deliver(co->L, &b)) == 0) {
        ls_co_put(co);
        return LS_EV_ERROR;
    }
#if LS_LUAJIT
    b.co = co;
#endif
    ev_batch_begin(&b);
    r = ls_co_start(co, nargs, "onMessage", c, LS_CO_HOLD);
    ev_batch_end(&b);
    return r;
}

/* One message (WebSocket): its own coroutine; messages of one connection
 * whose callbacks wait are handled side by side. */
static int
ev_message(ls_conn_t *c, const char *p, size_t n)
{
    ls_co_t *co = ev_prepare(c, "onMessage");            /* f conn */

    if (co == NULL)
        return LS_EV_NONE;
    lua_pushlstring(co->L, p, n);
    return ls_co_start(co, 2, "onMessage", c, 0);
}

static int
ev_error(ls_conn_t *c, int code, const char *text)
{
    ls_co_t *co = ev_prepare(c, "onError");

    if (co == NULL)
        return LS_EV_NONE;
    lua_pushinteger(co->L, code);
    lua_pushstring(co->L, text);
    return ls_co_start(co, 3, "onError", c, 0);
}

static int
ev_buffer(ls_conn_t *c, int full)
{
    return ev_emit(c, full ? "onBufferFull" : "onBufferDrain", 0);
}

static int
ev_drain(ls_conn_t *c)
{
    return ev_emit(c, "onDrain", 0);
}

static void
ev_close(ls_conn_t *c)
{
    ev_emit(c, "onClose", 0);
    ls_lua_conn_detach(ls_worker->vm->L, c);
}

static void
ev_server_gone(ls_server_t *srv)
{
    luaL_unref(ls_worker->vm->L, LUA_REGISTRYINDEX, srv->lua_ref);
    srv->lua_ref = LUA_NOREF;
}

static int
ev_handles(ls_conn_t *c, const char *callback)
{
    lua_State *L = ev_L();

    if (!ls_lua_callback_push(L, c, callback))
        return 0;
    lua_pop(L, 2);
    return 1;
}

const ls_conn_events_t ls_lua_conn_events = {
    .open = ev_open,
    .connect = ev_connect,
    .messages = ev_messages,
    .message = ev_message,
    .error = ev_error,
    .buffer = ev_buffer,
    .drain = ev_drain,
    .close = ev_close,
    .server_gone = ev_server_gone,
    .handles = ev_handles,
};

/* ---- HTTP ------------------------------------------------------------- */

/* onMessage(conn, req): it may wait; the response comes when it sends. */
static int
ev_request(ls_conn_t *c, ls_http_t *h, char *base)
{
    ls_co_t *co = ev_prepare(c, "onMessage");            /* f conn */

    if (co == NULL)
        return LS_EV_NONE;
    ls_lua_request_push(co->L, h, base);                 /* f conn req */
    return ls_co_start(co, 2, "onMessage", c, LS_CO_HTTP);
}

/* onWebSocketConnect(conn, req): false refuses with 403, a status from
 * 400 to 599 with that status; anything else accepts. Its answer is
 * needed now: it may not wait. */
static int
ev_ws_connect(ls_conn_t *c, ls_http_t *h, const char *base, int *refuse)
{
    lua_State *L = ev_L();
    int top = lua_gettop(L), status;

    *refuse = 0;
    if (!ls_lua_callback_push(L, c, "onWebSocketConnect"))  /* f conn */
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
 * 0, -1 when it raised (logged), or 1 when it waits: then *done (if not
 * NULL) becomes 1 or -1 once it is done. */
int
ls_lua_events_worker(ls_vm_t *vm, const char *name, int *done)
{
    int r;
    ls_co_t *co = ls_co_get();
    lua_State *L;

    if (co == NULL)
        return -1;
    L = co->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->serve_ref);    /* srv */
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {   /* srv f */
        ls_co_put(co);
        return 0;
    }
    lua_remove(L, -2);                                   /* f */
    ls_lua_push_worker(L);                          /* f worker */
    co->done = done;
    r = ls_co_start(co, 1, name, NULL, 0);
    return r == LS_EV_ERROR ? -1 : r == LS_EV_WAIT ? 1 : 0;
}
