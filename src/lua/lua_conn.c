/*
 * lua_conn.c -- "luaserv.conn": what Lua sees of a connection.
 *
 * The userdata boxes a pointer (luv style). While the socket is open a
 * registry reference pins the box; on close the pointer is cleared and the
 * reference dropped, so a conn kept by the app afterwards gets
 * false, "closed" from its methods instead of touching freed memory.
 */
#include "lua/lua_conn.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/lua_proto.h"
#include "lua/lua_response.h"
#include "lua/lua_ws.h"

#include "lua/compat.h"

#include <string.h>

#define CONN_MT "luaserv.conn"

static const char lconn_tag = 0;  /* ls_conn_box_t.tag of every conn */

/*
 * Argument 1 as a conn box: a full userdata of a box's size whose tag is
 * ours (a light userdata has no length). Cheaper than luaL_checkudata's
 * registry lookup by name, and than fetching and comparing the metatable:
 * this runs for every conn:send().
 */
static ls_conn_box_t *
lconn_box(lua_State *L)
{
    ls_conn_box_t *box = lua_touserdata(L, 1);

    if (box != NULL && lua_rawlen(L, 1) == sizeof(*box) &&
        box->tag == &lconn_tag)
        return box;
    luaL_typeerror(L, 1, CONN_MT);
    return NULL;
}

/* The open connection behind argument 1, or NULL when it is closed. */
static ls_conn_t *
lconn_open(lua_State *L)
{
    ls_conn_t *c = lconn_box(L)->c;
    if (c == NULL || (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)))
        return NULL;
    return c;
}

static int
lconn_closed(lua_State *L)
{
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "closed");
    return 2;
}

/*
 * The value at index 2 as a message of c's protocol: each kind of protocol
 * has its adapter from Lua values to its C calls (net/proto.h knows no
 * Lua). Raises on a value the protocol cannot send; returns LS_SEND_*.
 */
static inline int
lconn_send_value(ls_conn_t *c, lua_State *L, int raw)
{
    const char *p;
    size_t n;

    switch (c->proto->kind) {
    case LS_PROTO_STREAM:
        if ((p = lua_tolstring(L, 2, &n)) == NULL) /* a string or a number */
            luaL_typeerror(L, 2, "string");
        return ls_proto_stream_send(c, p, n, raw);
    case LS_PROTO_HTTP:
        return ls_lua_response_send(c, L, 2, raw);
    case LS_PROTO_WS:
        return ls_lua_ws_send(c, L, 2);
    default:
        return ls_lua_proto_send(c, L, 2, raw);
    }
}

/* conn:send(data [, raw]) -> true | false, "closed" | "buffer full"
 * [-1..2, +1..2, e] */
static int
lconn_send(lua_State *L)
{
    ls_conn_t *c = lconn_open(L);
    int top = lua_gettop(L);
    int raw = top >= 3 && lua_toboolean(L, 3);

    if (top < 2)
        luaL_checkany(L, 2);
    if (c == NULL)
        return lconn_closed(L);
    if (c->flags & LS_CONN_FULL) {
        ls_conn_refused(c);
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "buffer full");
        return 2;
    }
    switch (lconn_send_value(c, L, raw)) {
    case LS_SEND_OK:
        lua_pushboolean(L, 1);
        return 1;
    case LS_SEND_FULL:
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "buffer full");
        return 2;
    default:
        return lconn_closed(L);
    }
}

/* conn:close([data]) -> true | false, "closed"   [-0..1, +1..2, e]
 * (the protocol may take other arguments: WebSocket's close code) */
static int
lconn_close(lua_State *L)
{
    ls_conn_t *c = lconn_open(L);

    if (c == NULL)
        return lconn_closed(L);
    if (c->proto->kind == LS_PROTO_WS) {
        ls_lua_ws_close(c, L, 2);
    } else {
        if (!lua_isnoneornil(L, 2))
            lconn_send_value(c, L, 0);
        ls_conn_close(c);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:destroy() -> true | false, "closed"   [-0, +1..2, e] */
static int
lconn_destroy(lua_State *L)
{
    ls_conn_t *c = lconn_box(L)->c;
    if (c == NULL || (c->flags & LS_CONN_CLOSED))
        return lconn_closed(L);
    ls_conn_destroy(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:pauseRecv() -> true | false, "closed" */
static int
lconn_pauseRecv(lua_State *L)
{
    ls_conn_t *c = lconn_open(L);
    if (c == NULL)
        return lconn_closed(L);
    ls_conn_pause(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* conn:resumeRecv() -> true | false, "closed" */
static int
lconn_resumeRecv(lua_State *L)
{
    ls_conn_t *c = lconn_open(L);
    if (c == NULL)
        return lconn_closed(L);
    ls_conn_resume(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* conn.data: a table created on first use, kept in the user value. */
static void
lconn_push_data(lua_State *L)
{
    if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, 1);
    }
}

/*
 * conn.<key>: methods (upvalue 1), then properties. conn:send() comes here
 * once per message: short strings are interned, so its key is recognised
 * by its address (kept in the state's ls_vm_t, the string itself anchored
 * as a key of the methods table); any other key takes the table lookup.
 */
static int
lconn_index(lua_State *L)
{
    ls_conn_box_t *box;
    const char *k = lua_tostring(L, 2);
    char ip[64];
    int port;

    if (k == NULL)
        return 0;
    if (k == ls_vm_of(L)->conn_send_key) {
        lua_pushcfunction(L, lconn_send);
        return 1;
    }
    /* Methods need no look at the box. */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1;
    box = lconn_box(L);
    if (strcmp(k, "id") == 0) {
        lua_pushinteger(L, (lua_Integer)box->id);
        return 1;
    }
    if (strcmp(k, "data") == 0) {
        lconn_push_data(L);
        return 1;
    }
    if (strcmp(k, "remoteIp") == 0 || strcmp(k, "remotePort") == 0 ||
        strcmp(k, "localIp") == 0 || strcmp(k, "localPort") == 0) {
        if (box->c == NULL || (box->c->flags & LS_CONN_CLOSED))
            return luaL_error(L, "connection " LS_FMT_INT " is closed "
                              "(conn.%s is not available after onClose)",
                              LS_FMT_INT_ARG(box->id), k);
        if (k[0] == 'r')
            ls_conn_peer(box->c, ip, sizeof(ip), &port);
        else
            ls_conn_local(box->c, ip, sizeof(ip), &port);
        if (strstr(k, "Ip"))
            lua_pushstring(L, ip);
        else
            lua_pushinteger(L, port);
        return 1;
    }
    return 0;
}

/* conn.data = t is allowed; anything else is a mistake worth raising. */
static int
lconn_newindex(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    (void)lconn_box(L);
    if (strcmp(k, "data") == 0) {
        if (!lua_istable(L, 3) && !lua_isnil(L, 3))
            return luaL_error(L, "conn.data must be a table");
        lua_settop(L, 3);
        lua_setiuservalue(L, 1, 1);
        return 0;
    }
    return luaL_error(L, "cannot set field '%s' of luaserv.conn (keep your "
                      "own values in conn.data)", k);
}

static int
lconn_tostring(lua_State *L)
{
    ls_conn_box_t *box = lconn_box(L);
    char ip[64];
    int port;

    if (box->c == NULL || (box->c->flags & LS_CONN_CLOSED)) {
        lua_pushfstring(L, "luaserv.conn " LS_FMT_INT " (closed)",
                        LS_FMT_INT_ARG(box->id));
    } else {
        ls_conn_peer(box->c, ip, sizeof(ip), &port);
        lua_pushfstring(L, "luaserv.conn " LS_FMT_INT " (%s:%d)",
                        LS_FMT_INT_ARG(box->id), ip[0] ? ip : "unix", port);
    }
    return 1;
}

static const luaL_Reg lconn_methods[] = {
    {"close", lconn_close},
    {"destroy", lconn_destroy},
    {"pauseRecv", lconn_pauseRecv},
    {"resumeRecv", lconn_resumeRecv},
    {"send", lconn_send},
    {NULL, NULL},
};

void
ls_lua_conn_register(lua_State *L)
{
    if (!luaL_newmetatable(L, CONN_MT)) {                /* mt */
        lua_pop(L, 1);
        return;
    }
    luaL_newlibtable(L, lconn_methods);                  /* mt methods */
    luaL_setfuncs(L, lconn_methods, 0);
    lua_pushliteral(L, "send");                          /* mt methods k */
    ls_vm_of(L)->conn_send_key = lua_tostring(L, -1);
    lua_pop(L, 1);
    lua_pushcclosure(L, lconn_index, 1);                 /* mt index */
    lua_setfield(L, -2, "__index");                      /* mt */
    lua_pushcfunction(L, lconn_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, lconn_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "luaserv.conn");
    lua_setfield(L, -2, "__metatable");                  /* mt */
    lua_pop(L, 1);
}

/* Runs under lua_pcall: allocation may raise. Upvalue 1: the metatable. */
static int
lconn_new(lua_State *L)
{
    ls_conn_t *c = lua_touserdata(L, 1);
    ls_conn_box_t *box = lua_newuserdatauv(L, sizeof(*box), 1); /* c box */
    box->tag = &lconn_tag;
    box->c = c;
    box->id = c->id;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);                                /* c box box */
    c->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);         /* c box */
    c->box = box;
    return 0;
}

/* lconn_new with the metatable as upvalue, made once per state: a new
 * connection needs no registry lookup by name. */
static void
lconn_push_new(lua_State *L)
{
    static lua_State *new_L;
    static int new_ref = LUA_NOREF;

    if (new_L == L &&
        lua_rawgeti(L, LUA_REGISTRYINDEX, new_ref) == LUA_TFUNCTION)
        return;
    if (new_L == L)
        lua_pop(L, 1);
    luaL_getmetatable(L, CONN_MT);
    lua_pushcclosure(L, lconn_new, 1);
    lua_pushvalue(L, -1);
    new_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    new_L = L;
}

int
ls_lua_conn_attach(lua_State *L, ls_conn_t *c)
{
    c->lua_ref = LUA_NOREF;
    lconn_push_new(L);
    lua_pushlightuserdata(L, c);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        ls_log(LS_LOG_ERROR, 0, "cannot create a Lua connection object: %s",
               lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

void
ls_lua_conn_detach(lua_State *L, ls_conn_t *c)
{
    if (c->box)
        ((ls_conn_box_t *)c->box)->c = NULL;
    c->box = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, c->lua_ref);
    c->lua_ref = LUA_NOREF;
}
