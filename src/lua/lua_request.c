/*
 * lua_request.c -- the req table handed to onMessage: method, url, path,
 * query (decoded), headers (lower-case names, repeats joined), body, version.
 *
 * method, url, path, body and version are plain fields. headers and query
 * are built on first use (as node's IncomingMessage.headers is): most
 * handlers never read them, and building them was half of a hello-world
 * request's cost. Until then the request's url and header bytes wait in a
 * private copy (an untyped userdata under a light-userdata key of req), so
 * req may be kept and read long after the connection's buffer moved on;
 * pairs(req) builds both before it walks the table.
 */
#include "lua/lua_request.h"

#include "lua/compat.h"

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

/* The headers hdrs[0..n) of the bytes at base as a table: names lower-cased
 * in place, repeats joined as nginx and node do. */
static void
http_push_headers(lua_State *L, const ls_http_hdr_t *hdrs, uint32_t n,
                  char *base)
{
    int t;

    lua_createtable(L, 0, (int)n);
    t = lua_gettop(L);
    for (uint32_t i = 0; i < n; i++) {
        const ls_http_hdr_t *hd = &hdrs[i];
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
 * Where headers and query come from until they are built: the url and the
 * header bytes of the request, copied (the connection's buffer moves on
 * once the request is answered), with the header offsets rebased on them.
 */
typedef struct req_src {
    uint32_t nhdrs;
    uint32_t q, qlen;             /* the query (after '?', before '#'); */
    uint8_t built_h, built_q;     /* q is 0 when there is none */
    ls_http_hdr_t hdrs[];         /* then the bytes */
} req_src_t;

static char req_src_key;          /* its key in req: a light userdata */

enum { REQ_HEADERS = 1, REQ_QUERY = 2 };

/*
 * Build req.headers or req.query (which, named by the string at index key)
 * of the req at index req from its source, store it there and push it.
 * Pushes nothing and returns 0 when there is nothing to build: built before
 * (the app may have set the field to nil since, as it may in any table) or
 * not a request of ours.
 */
static int
req_build(lua_State *L, int req, int key, int which)
{
    req_src_t *src;
    uint8_t *built;
    char *bytes;

    if (lua_rawgetp(L, req, &req_src_key) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        return 0;
    }
    src = lua_touserdata(L, -1);                         /* src */
    built = which == REQ_HEADERS ? &src->built_h : &src->built_q;
    if (*built) {
        lua_pop(L, 1);
        return 0;
    }
    /* Marked first: the query is decoded in place, so never twice (an
     * allocation error half way leaves the field nil, not wrong). */
    *built = 1;
    bytes = (char *)(src->hdrs + src->nhdrs);
    if (which == REQ_HEADERS)
        http_push_headers(L, src->hdrs, src->nhdrs, bytes);
    else if (src->q != 0)
        http_push_query(L, bytes + src->q, src->qlen);
    else
        lua_createtable(L, 0, 0);
    lua_pushvalue(L, key);                               /* src t k */
    lua_pushvalue(L, -2);
    lua_rawset(L, req);                                  /* src t */
    if (src->built_h && src->built_q) {
        lua_pushnil(L);
        lua_rawsetp(L, req, &req_src_key);
    }
    lua_remove(L, -2);                                   /* t */
    return 1;
}

/* req.headers and req.query on first use; any other missing key is nil. */
static int
req_index(lua_State *L)
{
    size_t n;
    const char *k;
    int which;

    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    k = lua_tolstring(L, 2, &n);
    if (n == 7 && memcmp(k, "headers", 7) == 0)
        which = REQ_HEADERS;
    else if (n == 5 && memcmp(k, "query", 5) == 0)
        which = REQ_QUERY;
    else
        return 0;
    return req_build(L, 1, 2, which);
}

static int
req_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs(req) sees every field: what is still to build is built first. */
static int
req_pairs(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "headers");                       /* via req_index */
    lua_getfield(L, 1, "query");
    lua_pop(L, 2);
    lua_pushcfunction(L, req_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* The metatable every req shares. */
static void
req_push_metatable(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, req_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, req_pairs);
    lua_setfield(L, -2, "__pairs");
    /* setmetatable(req, mt) would lose headers and query: it raises */
    lua_pushliteral(L, "luaserv.request");
    lua_setfield(L, -2, "__metatable");
}

/*
 * The strings every request uses -- field names, "1.0"/"1.1", method names --
 * made once per state and kept in one registry table indexed by the enum
 * below (then the method number): lua_setfield(req, "method") would hash
 * and look up each C string again for every request. The req metatable
 * is kept there too.
 */
enum {
    K_METHOD = 1, K_URL, K_PATH, K_BODY, K_VERSION,
    K_V10, K_V11, K_SLASH, K_MT, K_METHODS
};

static const char *const req_strings[] = {
    NULL, "method", "url", "path", "body", "version", "1.0", "1.1", "/",
};

static const char req_strings_key; /* the table's registry key */

/* Push the strings table; its stack index is returned. It is found by a
 * key of its own in the registry: L is the coroutine the request's
 * callback runs in, a different one whenever callbacks wait, so nothing
 * may be cached per lua_State * (that made a new table, and leaked a
 * registry ref of the old one, for most requests whose callbacks wait:
 * ~1.4 KB a request). */
static int
http_push_strings(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &req_strings_key) == LUA_TTABLE)
        return lua_gettop(L);
    lua_pop(L, 1);
    lua_createtable(L, K_METHODS + 48, 0);
    for (int i = 1; i < K_MT; i++) {
        lua_pushstring(L, req_strings[i]);
        lua_rawseti(L, -2, i);
    }
    req_push_metatable(L);
    lua_rawseti(L, -2, K_MT);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &req_strings_key);
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

/* Copy what headers and query are built from into req's private source. */
static void
http_set_source(lua_State *L, int req, ls_http_t *h, const char *base,
                const char *q, const char *end)
{
    size_t lo = h->url, hi = h->url + h->ulen, hsize;
    req_src_t *src;

    /* an empty value's offset is where its name first ended: a name
     * split over reads may end after it */
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        if (hd->value + hd->vlen > hi)
            hi = hd->value + hd->vlen;
        if (hd->name + hd->nlen > hi)
            hi = hd->name + hd->nlen;
    }
    hsize = sizeof(*src) + h->nhdrs * sizeof(ls_http_hdr_t);
    src = lua_newuserdatauv(L, hsize + (hi - lo), 0);
    src->nhdrs = h->nhdrs;
    src->built_h = src->built_q = 0;
    if (q) { /* after the '?', so never 0 */
        const char *hash = memchr(q, '#', (size_t)(end - q));
        src->q = (uint32_t)(q + 1 - (base + lo));
        src->qlen = (uint32_t)((hash ? hash : end) - q - 1);
    } else {
        src->q = src->qlen = 0;
    }
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        src->hdrs[i] = h->hdrs[i];
        src->hdrs[i].name -= (uint32_t)lo;
        src->hdrs[i].value -= (uint32_t)lo;
    }
    memcpy((char *)src + hsize, base + lo, hi - lo);
    lua_rawsetp(L, req, &req_src_key);
}

/* Push req for the request whose bytes start at base. */
void
ls_lua_request_push(lua_State *L, ls_http_t *h, char *base)
{
    char *url = base + h->url, *path = url, *q, *end = url + h->ulen;
    size_t plen;
    int strings = http_push_strings(L), req;

    lua_createtable(L, 0, 6);
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
    http_key(L, strings, K_BODY);
    lua_pushlstring(L, base + h->body, h->blen);
    lua_rawset(L, req);
    http_key(L, strings, K_VERSION);
    lua_rawgeti(L, strings, h->parser.http_minor == 0 ? K_V10 : K_V11);
    lua_rawset(L, req);
    http_set_source(L, req, h, base, q, end);
    lua_rawgeti(L, strings, K_MT);
    lua_setmetatable(L, req);
    lua_remove(L, strings);                              /* req */
}
