/*
 * lua_response.c -- conn:send(value [, raw]) on an http:// connection: the
 * app's value, checked whole, becomes a ls_http_response_t for
 * http/http_send.c (or a part of a streamed response).
 *
 *   conn:send("text")                       200, text/html, that body
 *   conn:send{status = 404, headers = {...}, body = "..."}
 *   conn:send{status = 200, stream = true}  then strings, then {done = true}
 *   conn:send(bytes, true)                  the bytes as they are
 *
 * Everything is checked before anything is queued, so that a bad header
 * raises with the stream still in sync. Header strings are the app's own
 * (the table holds them during the call); numbers are formatted into a
 * buffer of ours, since the strings Lua would make of them could be
 * collected before the response is written.
 */
#include "lua/lua_response.h"
#include "http/http.h"
#include "lua/binding.h"

#include "lua/compat.h"

#include <string.h>

#define RESP_INLINE 32        /* header lines without an allocation */
#define RESP_NUM 48           /* a number as text (LUAI_MAXSHORTLEN is 40) */

typedef char resp_num_t[RESP_NUM];

/* A header value must not be able to start a new line (response splitting). */
static void
resp_check_value(lua_State *L, const char *name, int idx)
{
    size_t n;
    const char *v;
    int t = lua_type(L, idx);

    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad value for header '%s' (string, number or array "
                   "expected, got %s)", name, luaL_typename(L, idx));
    if (t == LUA_TNUMBER)
        return; /* digits, a sign, a point, an exponent */
    v = lua_tolstring(L, idx, &n);
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            luaL_error(L, "bad value for header '%s' (CR, LF or NUL)", name);
}

/* First pass over headers = {...}: raise on anything bad; count the lines
 * (an array value is a line for each element). */
static size_t
resp_check_headers(lua_State *L, int hidx)
{
    size_t count = 0;

    lua_pushnil(L);
    while (lua_next(L, hidx)) {                          /* k v */
        size_t kn;
        const char *k;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad header name (string expected, got %s)",
                       luaL_typename(L, -2));
        k = lua_tolstring(L, -2, &kn);
        for (size_t i = 0; i < kn; i++)
            if (!ls_http_tchar((unsigned char)k[i]))
                luaL_error(L, "bad header name '%s'", k);
        if (kn == 0)
            luaL_error(L, "bad header name (empty)");
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                resp_check_value(L, k, -1);
                lua_pop(L, 1);
            }
            count += (size_t)n;
        } else {
            resp_check_value(L, k, -1);
            count++;
        }
        lua_pop(L, 1);                                   /* k */
    }
    return count;
}

/* The value at the top (a checked string or number) into f. */
static void
resp_value(lua_State *L, ls_http_field_t *f, resp_num_t num)
{
    if (lua_type(L, -1) == LUA_TNUMBER) {
        size_t n;
        const char *s;
        lua_pushvalue(L, -1);
        s = lua_tolstring(L, -1, &n);
        if (n >= RESP_NUM)
            n = RESP_NUM - 1;
        memcpy(num, s, n);
        lua_pop(L, 1);
        f->value = num;
        f->vlen = n;
    } else {
        f->value = lua_tolstring(L, -1, &f->vlen);
    }
}

/* Second pass: the lines, in the table's order. */
static size_t
resp_fill(lua_State *L, int hidx, ls_http_field_t *fields, resp_num_t *nums)
{
    size_t i = 0;

    lua_pushnil(L);
    while (lua_next(L, hidx)) {                          /* k v */
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);

        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer j = 1; j <= n; j++, i++) {
                lua_rawgeti(L, -1, j);
                fields[i].name = k;
                fields[i].nlen = kn;
                fields[i].close = 0;
                resp_value(L, &fields[i], nums[i]);
                lua_pop(L, 1);
            }
        } else {
            fields[i].name = k;
            fields[i].nlen = kn;
            resp_value(L, &fields[i], nums[i]);
            fields[i].close = kn == 10 && strncasecmp(k, "connection", 10) == 0
                              && lua_type(L, -1) == LUA_TSTRING &&
                              strcasestr(fields[i].value, "close") != NULL;
            i++;
        }
        lua_pop(L, 1);                                   /* k */
    }
    return i;
}

/* body = string | number | nil, from the table at idx. A body is left on the
 * stack, which keeps the returned pointer valid. */
static const char *
resp_opt_body(lua_State *L, int idx, size_t *n)
{
    int t = lua_getfield(L, idx, "body");

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        *n = 0;
        return "";
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad field 'body' (string expected, got %s)",
                   luaL_typename(L, -1));
    return lua_tolstring(L, -1, n); /* left on the stack */
}

/* The next part of a streamed response, or its end: {done = true}. */
static int
resp_part(ls_conn_t *c, lua_State *L, int idx)
{
    const char *p;
    size_t n;
    int done = 0;

    if (lua_type(L, idx) == LUA_TTABLE) {
        if (lua_getfield(L, idx, "status") != LUA_TNIL)
            luaL_error(L, "the response has begun: send its parts as "
                       "strings and end it with {done = true}");
        lua_pop(L, 1);
        lua_getfield(L, idx, "done");
        done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        p = resp_opt_body(L, idx, &n);
    } else {
        p = lua_tolstring(L, idx, &n);
    }
    return ls_http_send_part(c, p, n, done);
}

/* {status = 200, headers = {...}, body = "...", stream = false} */
static int
resp_table(ls_conn_t *c, lua_State *L, int idx)
{
    ls_http_field_t inline_fields[RESP_INLINE], *fields = inline_fields;
    resp_num_t inline_nums[RESP_INLINE], *nums = inline_nums;
    ls_http_response_t r = {200, 0, NULL, 0, NULL, 0};
    lua_Integer status = 200;
    int hidx = 0, isint = 0;

    if (lua_getfield(L, idx, "status") != LUA_TNIL) {
        status = lua_tointegerx(L, -1, &isint);
        if (!isint || status < 200 || status > 999)
            luaL_error(L, "bad field 'status' (integer from 200 to 999 "
                       "expected, got %s)", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "stream");
    r.stream = lua_toboolean(L, -1);
    lua_pop(L, 1);
    switch (lua_getfield(L, idx, "headers")) {           /* ... hdrs */
    case LUA_TNIL:
        lua_pop(L, 1);
        break;
    case LUA_TTABLE:
        hidx = lua_gettop(L);
        break;
    default:
        luaL_error(L, "bad field 'headers' (table expected, got %s)",
                   luaL_typename(L, -1));
    }
    if (hidx) {
        size_t count = resp_check_headers(L, hidx);
        if (count > RESP_INLINE) {
            /* kept on the stack until the response is written */
            fields = lua_newuserdatauv(L, count * (sizeof(*fields) +
                                                   sizeof(*nums)), 0);
            nums = (resp_num_t *)(fields + count);
        }
        r.fields = fields;
        r.nfields = resp_fill(L, hidx, fields, nums);
    }
    r.status = (int)status;
    r.body = resp_opt_body(L, idx, &r.blen);             /* ... [hdrs] b */
    return ls_http_respond(c, &r);
}

int
ls_lua_response_send(ls_conn_t *c, lua_State *L, int idx, int raw)
{
    int t = lua_type(L, idx);
    const char *p;
    size_t n;

    if (raw) {
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_typeerror(L, idx, "string");
        p = lua_tolstring(L, idx, &n);
        return ls_conn_write(c, p, n);
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TTABLE)
        luaL_typeerror(L, idx, "string or table");
    switch (ls_http_send_state(c)) {
    case LS_HTTP_SEND_GONE:
        return LS_SEND_CLOSED; /* ending: e.g. idleTimeout ended the wait */
    case LS_HTTP_SEND_NONE:
        return luaL_error(L, "no HTTP request is waiting for a response on "
                          "this connection");
    case LS_HTTP_SEND_PART:
        return resp_part(c, L, idx);
    }
    if (t == LUA_TTABLE)
        return resp_table(c, L, idx);
    p = lua_tolstring(L, idx, &n);
    {
        ls_http_response_t r = {200, 0, NULL, 0, p, n};
        return ls_http_respond(c, &r);
    }
}
