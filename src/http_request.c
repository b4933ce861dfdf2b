/*
 * http_request.c -- the req table handed to onMessage: method, url, path,
 * query (decoded), headers (lower-case names, repeats joined), body, version.
 *
 * Everything comes from offsets into the request's bytes, which the
 * connection still holds; header names are lower-cased and the query decoded
 * in place there (the bytes are dropped once the request is answered).
 */
#include "http.h"

#include <lauxlib.h>

#include <string.h>

static inline int
http_unhex(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Decode %XX and '+' in place (form encoding); a bad escape stays as is. */
static size_t
http_unescape(char *s, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '+') {
            s[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n &&
                   (hi = http_unhex((unsigned char)s[i + 1])) >= 0 &&
                   (lo = http_unhex((unsigned char)s[i + 2])) >= 0) {
            s[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

/* t[k] = v where t is at tidx and k, v are on top; a key seen before turns
 * into an array of its values. Pops k and v. */
static void
http_set_multi(lua_State *L, int tidx)
{
    lua_pushvalue(L, -2);                                /* k v k */
    switch (lua_rawget(L, tidx)) {                       /* k v old */
    case LUA_TNIL:
        lua_pop(L, 1);                                   /* k v */
        lua_rawset(L, tidx);
        return;
    case LUA_TTABLE:                                     /* k v arr */
        lua_insert(L, -2);                               /* k arr v */
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        return;
    default:                                             /* k v old */
        lua_createtable(L, 2, 0);                        /* k v old arr */
        lua_insert(L, -3);                               /* k arr v old */
        lua_rawseti(L, -3, 1);                           /* k arr v */
        lua_rawseti(L, -2, 2);                           /* k arr */
        lua_rawset(L, tidx);
        return;
    }
}

/* Push the query string q[0..n) decoded into a table. */
static void
http_push_query(lua_State *L, char *q, size_t n)
{
    char *end = q + n;
    int t;

    lua_createtable(L, 0, n > 0 ? 2 : 0);
    t = lua_gettop(L);
    while (q < end) {
        char *amp = memchr(q, '&', (size_t)(end - q));
        char *eq;
        if (amp == NULL)
            amp = end;
        eq = memchr(q, '=', (size_t)(amp - q));
        if ((eq ? eq : amp) > q) {
            lua_pushlstring(L, q, http_unescape(q, (size_t)((eq ? eq : amp) -
                                                            q)));
            if (eq)
                lua_pushlstring(L, eq + 1,
                                http_unescape(eq + 1,
                                              (size_t)(amp - eq - 1)));
            else
                lua_pushboolean(L, 1);
            http_set_multi(L, t);
        }
        q = amp + 1;
    }
}

/* Headers into the table at tidx: names lower-cased in place, repeats
 * joined as nginx and node do. */
static void
http_push_headers(lua_State *L, ls_http_t *h, char *base)
{
    int t;

    lua_createtable(L, 0, (int)h->nhdrs);
    t = lua_gettop(L);
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        char *name = base + hd->name;
        int cookie, setcookie;

        for (uint32_t j = 0; j < hd->nlen; j++)
            if (name[j] >= 'A' && name[j] <= 'Z')
                name[j] |= 0x20;
        cookie = hd->nlen == 6 && memcmp(name, "cookie", 6) == 0;
        setcookie = hd->nlen == 10 && memcmp(name, "set-cookie", 10) == 0;
        lua_pushlstring(L, name, hd->nlen);              /* k */
        if (setcookie) {
            lua_pushlstring(L, base + hd->value, hd->vlen);
            lua_pushvalue(L, -2);                        /* k v k */
            if (lua_rawget(L, t) != LUA_TTABLE) {        /* k v arr|nil */
                lua_pop(L, 1);
                lua_createtable(L, 1, 0);
                lua_pushvalue(L, -3);
                lua_pushvalue(L, -2);                    /* k v arr k arr */
                lua_rawset(L, t);
            }
            lua_insert(L, -2);                           /* k arr v */
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            lua_pop(L, 2);
            continue;
        }
        lua_pushvalue(L, -1);                            /* k k */
        if (lua_rawget(L, t) == LUA_TNIL) {              /* k old */
            lua_pop(L, 1);
            lua_pushlstring(L, base + hd->value, hd->vlen);
        } else {
            if (cookie)
                lua_pushliteral(L, "; ");
            else
                lua_pushliteral(L, ", ");
            lua_pushlstring(L, base + hd->value, hd->vlen);
            lua_concat(L, 3);                            /* k joined */
        }
        lua_rawset(L, t);
    }
}

/*
 * The strings every request uses -- field names, "1.0"/"1.1", method names --
 * made once per state and kept in one registry table indexed by the enum
 * below (then the method number): lua_setfield(req, "method") would hash
 * and look up each C string again for every request.
 */
enum {
    K_METHOD = 1, K_URL, K_PATH, K_QUERY, K_HEADERS, K_BODY, K_VERSION,
    K_V10, K_V11, K_SLASH, K_METHODS
};

static const char *const req_strings[] = {
    NULL, "method", "url", "path", "query", "headers", "body", "version",
    "1.0", "1.1", "/",
};

/* Push the strings table; its stack index is returned. */
static int
http_push_strings(lua_State *L)
{
    static lua_State *strings_L;
    static int strings_ref = LUA_NOREF;

    if (strings_L == L && lua_rawgeti(L, LUA_REGISTRYINDEX, strings_ref) ==
                              LUA_TTABLE)
        return lua_gettop(L);
    if (strings_L == L)
        lua_pop(L, 1);
    lua_createtable(L, K_METHODS + 48, 0);
    for (int i = 1; i < K_METHODS; i++) {
        lua_pushstring(L, req_strings[i]);
        lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    strings_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    strings_L = L;
    return lua_gettop(L);
}

/* Push strings[k]: a field name, before its value (then lua_rawset). */
static inline void
http_key(lua_State *L, int strings, int k)
{
    lua_rawgeti(L, strings, k);
}

/* Push the method's name, from the strings table once seen. */
static void
http_push_method(lua_State *L, int strings, unsigned method)
{
    if (method > 64) {
        lua_pushstring(L, llhttp_method_name((llhttp_method_t)method));
        return;
    }
    if (lua_rawgeti(L, strings, K_METHODS + (int)method) == LUA_TSTRING)
        return;
    lua_pop(L, 1);
    lua_pushstring(L, llhttp_method_name((llhttp_method_t)method));
    lua_pushvalue(L, -1);
    lua_rawseti(L, strings, K_METHODS + (int)method);
}

/* Push req for the request whose bytes start at base. */
void
ls_http_push_request(lua_State *L, ls_http_t *h, char *base)
{
    char *url = base + h->url, *path = url, *q, *end = url + h->ulen;
    size_t plen;
    int strings = http_push_strings(L), req;

    lua_createtable(L, 0, 7);
    req = lua_gettop(L);
    http_key(L, strings, K_METHOD);
    http_push_method(L, strings, h->parser.method);
    lua_rawset(L, req);
    http_key(L, strings, K_URL);
    lua_pushlstring(L, url, h->ulen);
    lua_rawset(L, req);
    /* absolute-form (proxy style): the path starts after the authority */
    if (h->ulen > 0 && url[0] != '/' && url[0] != '*') {
        char *s = memchr(url, ':', h->ulen);
        if (s && end - s > 2 && s[1] == '/' && s[2] == '/') {
            path = memchr(s + 3, '/', (size_t)(end - s - 3));
            if (path == NULL)
                path = end;
        }
    }
    q = memchr(path, '?', (size_t)(end - path));
    plen = (size_t)((q ? q : end) - path);
    http_key(L, strings, K_PATH);
    if (plen == 0 && path == end)
        lua_rawgeti(L, strings, K_SLASH);
    else
        lua_pushlstring(L, path, plen);
    lua_rawset(L, req);
    http_key(L, strings, K_QUERY);
    if (q) {
        char *hash = memchr(q, '#', (size_t)(end - q));
        http_push_query(L, q + 1, (size_t)((hash ? hash : end) - q - 1));
    } else {
        lua_createtable(L, 0, 0);
    }
    lua_rawset(L, req);
    http_key(L, strings, K_HEADERS);
    http_push_headers(L, h, base);
    lua_rawset(L, req);
    http_key(L, strings, K_BODY);
    lua_pushlstring(L, base + h->body, h->blen);
    lua_rawset(L, req);
    http_key(L, strings, K_VERSION);
    lua_rawgeti(L, strings, h->parser.http_minor == 0 ? K_V10 : K_V11);
    lua_rawset(L, req);
    lua_remove(L, strings);                              /* req */
}
