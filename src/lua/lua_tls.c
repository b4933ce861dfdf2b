/*
 * lua_tls.c -- the `ssl` listener option:
 *
 *   ssl = { cert = "path", key = "path", protocols = "TLSv1.2 TLSv1.3",
 *           ciphers = "...", sni = { ["host"] = { cert = , key = } } }
 *
 * checked when listen() runs (unknown fields are errors, as for every
 * option), then handed to net/tls.c, which loads the files. The validator
 * records each file's path in its conf, for the worker to read them while
 * still privileged (net/tls_pem.h). And the
 * "luaserv.ssl_session" userdata of sock:sslhandshake: a reference to a
 * connection's session box (net/tls.c), which the server's ticket fills.
 */
#include "lua/lua_tls.h"

#include "lua/compat.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SESSION_MT "luaserv.ssl_session"

/* Keeps the strings conf points to alive: a table at the stack's top. */
typedef struct tls_opts {
    lua_State *L;
    int keep;              /* stack index of the table */
    int nkeep;
    const char *appdir;
    ls_conf_t *record;     /* the validator's: gets each path; or NULL */
    const char *listener;
} tls_opts_t;

#define TLS_PATH_MAX 4096  /* with the NUL */

/* A path field of the table at -1 ("cert" / "key"), relative paths taken
 * from the script's directory. */
static const char *
tls_path(tls_opts_t *o, const char *where, const char *field)
{
    lua_State *L = o->L;
    const char *s;
    size_t n;

    if (lua_getfield(L, -1, field) != LUA_TSTRING)
        luaL_error(L, "bad option '%s' (%s: a file name expected, got %s)",
                   where, field, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &n);
    for (size_t i = 0; i < n; i++)
        if (iscntrl((unsigned char)s[i]))
            n = 0; /* no NUL, tab or newline: the path goes on a line */
    if (n == 0)
        luaL_error(L, "bad option '%s' (%s: a file name expected)", where,
                   field);
    if (s[0] != '/' && o->appdir != NULL && o->appdir[0])
        s = lua_pushfstring(L, "%s/%s", o->appdir, s);
    else
        lua_pushvalue(L, -1);
    if (strlen(s) >= TLS_PATH_MAX)
        luaL_error(L, "bad option '%s' (%s: a file name of at most %d bytes "
                   "expected)", where, field, TLS_PATH_MAX - 1);
    lua_rawseti(L, o->keep, ++o->nkeep);
    lua_pop(L, 1);
    lua_rawgeti(L, o->keep, o->nkeep);
    s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps it */
    if (o->record != NULL && ls_conf_add_file(o->record, o->listener, s) < 0)
        luaL_error(L, "out of memory");
    return s;
}

/* Only the keys in known[] in the table at -1. */
static void
tls_known(lua_State *L, const char *where, const char *const *known,
          const char *list)
{
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        int ok = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (const char *const *k = known; *k; k++)
                if (strcmp(lua_tostring(L, -2), *k) == 0)
                    ok = 1;
        if (!ok)
            luaL_error(L, "bad option '%s' (unknown field '%s'; known: %s)",
                       where,
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                      : "?",
                       list);
        lua_pop(L, 1);
    }
}

static const char *
tls_string(lua_State *L, const char *field)
{
    int t = lua_getfield(L, -1, field);
    const char *s = NULL;

    if (t == LUA_TSTRING)
        s = lua_tostring(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "bad option 'ssl' (%s: string expected, got %s)",
                   field, luaL_typename(L, -1));
    lua_pop(L, 1); /* the ssl table keeps it */
    return s;
}

ls_tls_t *
ls_lua_tls_server(lua_State *L, int idx, const char *appdir, int alpn_http,
                  int build, ls_conf_t *record, const char *listener)
{
    static const char *const fields[] = {"cert", "key", "protocols",
                                         "ciphers", "sni", NULL};
    static const char *const pair[] = {"cert", "key", NULL};
    ls_tls_conf_t conf;
    tls_opts_t o;
    char err[LS_ERRLEN];
    ls_tls_t *t;

    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        luaL_error(L, "bad option 'ssl' (table expected, got %s)",
                   luaL_typename(L, idx));
    memset(&conf, 0, sizeof(conf));
    lua_newtable(L);                                     /* keep */
    o.L = L;
    o.keep = lua_gettop(L);
    o.nkeep = 0;
    o.appdir = appdir;
    o.record = record;
    o.listener = listener;
    lua_pushvalue(L, idx);                               /* keep ssl */
    tls_known(L, "ssl", fields, "cert, key, protocols, ciphers, sni");
    conf.cert = tls_path(&o, "ssl", "cert");
    conf.key = tls_path(&o, "ssl", "key");
    conf.protocols = tls_string(L, "protocols");
    conf.ciphers = tls_string(L, "ciphers");
    conf.alpn_http = alpn_http;
    if (lua_getfield(L, -1, "sni") != LUA_TNIL) {        /* keep ssl sni */
        if (!lua_istable(L, -1))
            luaL_error(L, "bad option 'ssl' (sni: a table of host = "
                       "{cert=, key=} expected, got %s)",
                       luaL_typename(L, -1));
        lua_pushnil(L);
        while (lua_next(L, -2)) {                        /* ... sni h v */
            const char *host = NULL; /* luaL_error does not return */
            size_t n = 0;
            if (lua_type(L, -2) != LUA_TSTRING ||
                (host = lua_tolstring(L, -2, &n), n == 0 || n > 255 ||
                 strlen(host) != n || strchr(host, ' ') != NULL))
                luaL_error(L, "bad option 'ssl' (sni: host names as keys "
                           "expected)");
            if (!lua_istable(L, -1))
                luaL_error(L, "bad option 'ssl' (sni[\"%s\"]: {cert=, key=} "
                           "expected, got %s)", host, luaL_typename(L, -1));
            if (conf.nsni == LS_TLS_SNI_MAX)
                luaL_error(L, "bad option 'ssl' (sni: at most %d hosts)",
                           LS_TLS_SNI_MAX);
            lua_pushfstring(L, "ssl.sni[\"%s\"]", host); /* ... h v where */
            lua_insert(L, -2);                           /* ... h where v */
            tls_known(L, lua_tostring(L, -2), pair, "cert, key");
            conf.sni[conf.nsni].host = host; /* a key of sni: kept */
            conf.sni[conf.nsni].cert = tls_path(&o, lua_tostring(L, -2),
                                                "cert");
            conf.sni[conf.nsni].key = tls_path(&o, lua_tostring(L, -2),
                                               "key");
            conf.nsni++;
            lua_pop(L, 2);                               /* ... sni h */
        }
    }
    lua_pop(L, 1);                                       /* keep ssl */
    if (!build) {
        lua_pop(L, 2);
        return NULL;
    }
    t = ls_tls_new(&conf, err, sizeof(err));
    if (t == NULL)
        luaL_error(L, "%s", err);
    lua_pop(L, 2);
    return t;
}

void
ls_lua_tls_session_push(lua_State *L, ls_tls_session_t *box)
{
    ls_tls_session_t **u = lua_newuserdatauv(L, sizeof(*u), 0);

    *u = ls_tls_session_ref(box);
    luaL_setmetatable(L, SESSION_MT);
}

ls_tls_session_t *
ls_lua_tls_session_check(lua_State *L, int idx)
{
    return *(ls_tls_session_t **)luaL_checkudata(L, idx, SESSION_MT);
}

static int
lsession_gc(lua_State *L)
{
    ls_tls_session_t **u = luaL_checkudata(L, 1, SESSION_MT);

    ls_tls_session_unref(*u);
    *u = NULL;
    return 0;
}

void
ls_lua_tls_register(lua_State *L)
{
    if (luaL_newmetatable(L, SESSION_MT)) {              /* mt */
        lua_pushcfunction(L, lsession_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
