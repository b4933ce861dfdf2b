/*
 * lua_core.c -- luaopen_luaserv_core: listen, settings, log, connections,
 * timers, and the worker table.
 *
 * listen() and settings() validate their options once, when the script's top
 * level runs, and raise errors that point at the script's line. The same code
 * runs in the validator (which only records what was declared) and in a
 * worker (which also keeps the table of the listener it serves).
 */
#include "lua/lua_core.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "lua/lua_conn.h"
#include "lua/lua_connect.h"
#include "lua/lua_mail.h"
#include "lua/lua_shdict.h"
#include "lua/lua_socket.h"
#include "lua/lua_task.h"
#include "lua/lua_udp.h"
#include "lua/lua_udp_listener.h"
#include "lua/lua_timer.h"
#include "lua/lua_tls.h"
#include "net/conn.h"

#include "lua/compat.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static const char listeners_key; /* registry: name -> listener table */

/* luaserv.worker.stopping = why ("stop" or "reload"); the first reason
 * stays. Called by the worker when its stop begins. */
void
ls_lua_core_set_stopping(ls_vm_t *vm, const char *why)
{
    lua_State *L = vm->L;
    int top = lua_gettop(L);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &ls_lua_worker_key);      /* worker */
    if (lua_istable(L, -1) &&
        lua_getfield(L, -1, "stopping") != LUA_TSTRING) { /* worker old */
        lua_pushstring(L, why);                          /* worker old why */
        lua_setfield(L, top + 1, "stopping");            /* worker old */
    }
    lua_settop(L, top);
}

/* A printable string of at most max-1 bytes without tabs or newlines. */
static int
core_is_clean(const char *s, size_t len, size_t max)
{
    if (len == 0 || len >= max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (iscntrl((unsigned char)s[i]))
            return 0;
    return 1;
}

static lua_Integer
core_opt_int(lua_State *L, const char *key, lua_Integer min, lua_Integer max)
{
    lua_Integer v;
    int isint = 0;

    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > max)
        luaL_error(L, "bad option '%s' (integer from " LS_FMT_INT " to "
                   LS_FMT_INT " expected, got %s)", key, LS_FMT_INT_ARG(min),
                   LS_FMT_INT_ARG(max), luaL_tolstring(L, -1, NULL));
    return v;
}

static double
core_opt_seconds(lua_State *L, const char *key)
{
    lua_Number v = lua_tonumber(L, -1);
    if (!lua_isnumber(L, -1) || !(v >= 0 && v <= 86400 * 365))
        luaL_error(L, "bad option '%s' (seconds from 0 to 31536000 expected, "
                   "got %s)", key, luaL_tolstring(L, -1, NULL));
    return v;
}

static int
core_opt_bool(lua_State *L, const char *key)
{
    if (!lua_isboolean(L, -1))
        luaL_error(L, "bad option '%s' (boolean expected, got %s)", key,
                   luaL_typename(L, -1));
    return lua_toboolean(L, -1);
}

static const char *
core_opt_string(lua_State *L, const char *key, size_t max)
{
    size_t len;
    const char *s;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "bad option '%s' (string expected, got %s)", key,
                   luaL_typename(L, -1));
    s = lua_tolstring(L, -1, &len);
    if (!core_is_clean(s, len, max))
        luaL_error(L, "bad option '%s' (1 to %d printable characters "
                   "expected)", key, (int)max - 1);
    return s;
}

/* luaMemoryLimit (settings or a listener): 0, or at least 1 MiB. */
static int64_t
core_opt_lua_memory(lua_State *L, const char *key, const char *what)
{
    lua_Integer v = lua_tointeger(L, -1);
    if (!lua_isinteger(L, -1) ||
        !(v == 0 || (v >= 1 << 20 && v <= (lua_Integer)1 << 44)))
        luaL_error(L, "bad %s '%s' (0 for no limit, or bytes from "
                   "1048576 expected)", what, key);
    return (int64_t)v;
}

/* callbackTimeout (settings or a listener) and watchdogTimeout. */
static double
core_opt_callback_timeout(lua_State *L, const char *key, const char *what)
{
    lua_Number v = lua_tonumber(L, -1);
    double min = strcmp(key, "watchdogTimeout") == 0 ? 1 : 0.01;
    if (!lua_isnumber(L, -1) || !(v == 0 || (v >= min && v <= 86400)))
        luaL_error(L, "bad %s '%s' (0 to disable, or seconds from %f "
                   "to 86400 expected)", what, key, (lua_Number)min);
    return v;
}

/* protocol = { delimiter = "..." } or { length = {...} }: framing in C. */
static void
core_opt_protocol(lua_State *L, ls_listen_conf_t *l)
{
    ls_framing_t *f = &l->framing;
    int t;

    luaL_argexpected(L, lua_istable(L, -1), 2, "table for option 'protocol'");
    t = lua_getfield(L, -1, "delimiter");                /* P d */
    if (t != LUA_TNIL) {
        size_t n;
        const char *d = lua_tolstring(L, -1, &n);
        if (t != LUA_TSTRING || n == 0 || n > sizeof(f->delim))
            luaL_error(L, "bad protocol field 'delimiter' (1 to %d bytes "
                       "expected)", (int)sizeof(f->delim));
        memset(f, 0, sizeof(*f));
        f->kind = LS_FRAMING_DELIM;
        memcpy(f->delim, d, n);
        f->dlen = n;
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    t = lua_getfield(L, -1, "length");                   /* P len */
    if (t == LUA_TTABLE) {
        lua_Integer v;
        memset(f, 0, sizeof(*f));
        f->kind = LS_FRAMING_LENGTH;
        lua_getfield(L, -1, "offset");
        f->offset = lua_isnil(L, -1) ? 0
                                     : (size_t)core_opt_int(L, "length.offset",
                                                            0, 65535);
        lua_pop(L, 1);
        lua_getfield(L, -1, "size");
        v = core_opt_int(L, "length.size", 1, 8);
        if (v != 1 && v != 2 && v != 4 && v != 8)
            luaL_error(L, "bad option 'length.size' (1, 2, 4 or 8 expected)");
        f->size = (int)v;
        lua_pop(L, 1);
        lua_getfield(L, -1, "endian");
        if (lua_isnil(L, -1) || strcmp(lua_tostring(L, -1), "big") == 0)
            f->big_endian = 1;
        else if (lua_type(L, -1) == LUA_TSTRING &&
                 strcmp(lua_tostring(L, -1), "little") == 0)
            f->big_endian = 0;
        else
            luaL_error(L, "bad option 'length.endian' (\"big\" or \"little\" "
                       "expected)");
        lua_pop(L, 1);
        lua_getfield(L, -1, "includesHeader");
        f->includes_header = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, -1, "adjust");
        f->adjust = lua_isnil(L, -1) ? 0
                                     : core_opt_int(L, "length.adjust",
                                                    -(1LL << 40), 1LL << 40);
        lua_pop(L, 1);
        f->strip = f->offset + (size_t)f->size;
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    t = lua_getfield(L, -1, "input");                    /* P input */
    if (t == LUA_TFUNCTION) {
        static const char *const opt[] = {"decode", "encode"};
        for (int i = 0; i < 2; i++) {
            t = lua_getfield(L, -2, opt[i]);
            if (t != LUA_TNIL && t != LUA_TFUNCTION)
                luaL_error(L, "bad protocol field '%s' (function expected, "
                           "got %s)", opt[i], lua_typename(L, t));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        memset(f, 0, sizeof(*f));
        f->kind = LS_FRAMING_CUSTOM;
        return;
    }
    luaL_error(L, "bad option 'protocol' (a table with 'delimiter', "
               "'length' or an 'input' function expected)");
}

/* Defaults for a parsed address: limits, and the framing its scheme names. */
void
ls_lua_core_defaults(ls_listen_conf_t *l)
{
    l->count = 1;
    l->backlog = LS_DEFAULT_BACKLOG;
    l->max_package_size = ls_addr_is_udp(&l->addr) ? LS_DEFAULT_UDP_MAX_PACKAGE
                                                    : LS_DEFAULT_MAX_PACKAGE;
    l->max_send_buffer_size = LS_DEFAULT_MAX_SEND_BUFFER;
    l->max_header_size = LS_DEFAULT_MAX_HEADER;
    l->connect_timeout = LS_DEFAULT_CONNECT_TIMEOUT;
    l->send_timeout = LS_DEFAULT_SEND_TIMEOUT;
    l->header_timeout = LS_DEFAULT_HEADER_TIMEOUT;
    l->body_timeout = LS_DEFAULT_BODY_TIMEOUT;
    l->lua_memory_limit = -1;
    l->callback_timeout = -1;
    l->handshake_timeout = LS_DEFAULT_HANDSHAKE_TIMEOUT;
    /* The client speaks first in HTTP and WebSocket: wake the worker once
     * the request is there, not for the bare handshake (nginx's
     * "listen ... deferred"). */
    l->defer_accept = strcmp(l->addr.proto, "http") == 0 ||
                      strcmp(l->addr.proto, "websocket") == 0;
    if (strcmp(l->addr.proto, "text") == 0)
        ls_framing_init_text(&l->framing);
    else if (strcmp(l->addr.proto, "frame") == 0)
        ls_framing_init_frame(&l->framing);
    else
        ls_framing_init_raw(&l->framing);
}

/*
 * The options table at idx, for listen() or (outbound) connect(). Unknown
 * keys are errors, so that a typo does not silently leave a default; for
 * connect() the table also carries the callbacks (keys starting with "on").
 */
void
ls_lua_core_options(lua_State *L, int idx, ls_listen_conf_t *l, int outbound)
{
    const char *fn = outbound ? "connect" : "listen";

    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {                           /* ... k v */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : "?";
        if (!outbound && strcmp(k, "name") == 0)
            snprintf(l->name, sizeof(l->name), "%s",
                     core_opt_string(L, k, LS_NAME_MAX));
        else if (!outbound && strcmp(k, "count") == 0)
            l->count = (int)core_opt_int(L, k, 1, LS_MAX_WORKERS);
        else if (!outbound && strcmp(k, "reusePort") == 0)
            l->reuseport = core_opt_bool(L, k);
        else if (!outbound && strcmp(k, "deferAccept") == 0)
            l->defer_accept = core_opt_bool(L, k);
        else if (!outbound && strcmp(k, "backlog") == 0)
            l->backlog = (int)core_opt_int(L, k, 1, 65535);
        else if (strcmp(k, "maxPackageSize") == 0)
            l->max_package_size =
                (size_t)core_opt_int(L, k, 1, (lua_Integer)1 << 40);
        else if (strcmp(k, "maxSendBufferSize") == 0)
            l->max_send_buffer_size =
                (size_t)core_opt_int(L, k, 1, (lua_Integer)1 << 40);
        else if (!outbound && strcmp(k, "maxHeaderSize") == 0)
            l->max_header_size =
                (size_t)core_opt_int(L, k, 1, (lua_Integer)1 << 30);
        else if (!outbound && strcmp(k, "maxBodySize") == 0)
            l->max_body_size =
                (size_t)core_opt_int(L, k, 1, (lua_Integer)1 << 40);
        else if (strcmp(k, "protocol") == 0)
            core_opt_protocol(L, l);
        else if (!outbound && strcmp(k, "idleTimeout") == 0)
            l->idle_timeout = core_opt_seconds(L, k);
        else if (!outbound && strcmp(k, "maxConnections") == 0)
            l->max_connections = (int)core_opt_int(L, k, 1, 10000000);
        else if (!outbound && strcmp(k, "maxRequests") == 0)
            l->max_requests = (uint64_t)core_opt_int(L, k, 1, LUA_MAXINTEGER);
        else if (!outbound && strcmp(k, "maxMemory") == 0)
            l->max_memory = (size_t)core_opt_int(L, k, 1 << 20,
                                                 (lua_Integer)1 << 44);
        else if (!outbound && strcmp(k, "luaMemoryLimit") == 0)
            l->lua_memory_limit = core_opt_lua_memory(L, k, "option");
        else if (!outbound && strcmp(k, "callbackTimeout") == 0)
            l->callback_timeout = core_opt_callback_timeout(L, k, "option");
        else if (outbound && strcmp(k, "connectTimeout") == 0)
            l->connect_timeout = core_opt_seconds(L, k);
        else if (strcmp(k, "sendTimeout") == 0)
            l->send_timeout = core_opt_seconds(L, k);
        else if (!outbound && strcmp(k, "headerTimeout") == 0)
            l->header_timeout = core_opt_seconds(L, k);
        else if (!outbound && strcmp(k, "bodyTimeout") == 0)
            l->body_timeout = core_opt_seconds(L, k);
        else if (!outbound && strcmp(k, "handshakeTimeout") == 0)
            l->handshake_timeout = core_opt_seconds(L, k);
        else if (!outbound && strcmp(k, "ssl") == 0)
            ; /* checked by listen() (core_listen_tls) */
        else if (outbound && strncmp(k, "on", 2) == 0 &&
                 lua_isfunction(L, -1))
            ; /* a callback */
        else if (outbound)
            luaL_error(L, "unknown option '%s' in connect() (known: "
                       "connectTimeout, sendTimeout, maxPackageSize, "
                       "maxSendBufferSize, protocol, and callbacks onConnect, onMessage, ...)",
                       k);
        else
            luaL_error(L, "unknown option '%s' in %s() (known: name, count, "
                       "reusePort, backlog, deferAccept, maxPackageSize, "
                       "maxSendBufferSize, maxHeaderSize, maxBodySize, "
                       "idleTimeout, sendTimeout, headerTimeout, "
                       "bodyTimeout, maxConnections, maxRequests, maxMemory, "
                       "protocol, luaMemoryLimit, callbackTimeout, ssl, "
                       "handshakeTimeout)", k, fn);
        lua_pop(L, 1);                                   /* ... k */
    }
}

/*
 * The ssl option (and https:// / wss://, which require it): checked
 * everywhere; the certificates are loaded by the validator (so that a
 * missing, unreadable or mismatched file fails the start or the reload,
 * and the old generation keeps serving; it records the paths, which the
 * worker reads before it drops privileges) and by the worker that serves
 * the listener, which keeps them. TLS listeners defer accepting by default:
 * the client speaks first.
 */
static void
core_listen_tls(lua_State *L, ls_vm_t *vm, ls_listen_conf_t *l)
{
    char dir[sizeof(vm->app)];
    char *slash;
    int serves, build;
    ls_tls_t *t;

    if (!lua_istable(L, 2) || lua_getfield(L, 2, "ssl") == LUA_TNIL) {
        if (lua_istable(L, 2))
            lua_pop(L, 1);
        if (l->addr.tls)
            luaL_error(L, "%s needs the 'ssl' option (ssl = { cert = "
                       "\"cert.pem\", key = \"key.pem\" })", l->addr.url);
        return;
    }
    if (lua_getfield(L, 2, "deferAccept") == LUA_TNIL)
        l->defer_accept = 1;
    lua_pop(L, 1);
    l->tls_http = strcmp(l->addr.proto, "http") == 0 ||
                  strcmp(l->addr.proto, "websocket") == 0 ||
                  strcmp(l->addr.proto, "ws") == 0;
    snprintf(dir, sizeof(dir), "%s", vm->app);
    slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    else
        dir[0] = '\0';
    serves = vm->mode == LS_VM_WORKER && strcmp(l->name, vm->serve_name) == 0;
    build = vm->mode == LS_VM_VALIDATE || serves;
    t = ls_lua_tls_server(L, -1, dir, l->tls_http, build,
                          vm->mode == LS_VM_VALIDATE ? &vm->conf : NULL,
                          l->name);
    lua_pop(L, 1);
    if (serves)
        l->tls = t;
    else
        ls_tls_free(t);
}

/* settings.sslTrustedCertificate: a PEM file of CA certificates that
 * sock:sslhandshake(..., verify) trusts besides the system's (a relative
 * path from the script's directory); read now, so a bad one fails here. */
static void
core_setting_trusted(lua_State *L, ls_vm_t *vm)
{
    const char *v = core_opt_string(L, "sslTrustedCertificate", 4000);
    char path[8192], err[LS_ERRLEN];
    const char *slash = strrchr(vm->app, '/');

    if (v[0] != '/' && slash != NULL)
        snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - vm->app),
                 vm->app, v);
    else
        snprintf(path, sizeof(path), "%s", v);
    if (ls_tls_client_trust(path, err, sizeof(err)) < 0)
        luaL_error(L, "bad setting %s", err);
}

/* luaserv.listen(address [, options]) -> listener table   [-1..2, +1, e] */
static int
lcore_listen(lua_State *L)
{
    ls_vm_t *vm = ls_vm_of(L);
    const char *url = luaL_checkstring(L, 1);
    char err[LS_ERRLEN];
    ls_listen_conf_t l;

    if (!vm->loading)
        return luaL_error(L, "luaserv.listen() must be called at the top level "
                          "of the script (the master learns the listeners "
                          "from there)");
    memset(&l, 0, sizeof(l));
    if (ls_listener_parse(url, &l.addr, err, sizeof(err)) < 0)
        return luaL_error(L, "%s", err);
    if (!core_is_clean(url, strlen(url), LS_URL_MAX))
        return luaL_error(L, "bad listen address (control characters)");
    {   /* the default name is the address (cut to fit) */
        size_t n = strlen(url);
        if (n >= sizeof(l.name))
            n = sizeof(l.name) - 1;
        memcpy(l.name, url, n);
        l.name[n] = '\0';
    }
    ls_lua_core_defaults(&l);

    ls_lua_core_options(L, 2, &l, 0);
    ls_lua_udp_listener_check(L, 2, &l);
    if (l.max_body_size == 0) /* http: unless set, as large as a message */
        l.max_body_size = l.max_package_size;
    if (l.reuseport && l.addr.family == AF_UNIX)
        return luaL_error(L, "reusePort is for TCP addresses, not \"%s\"",
                          url);
    if (ls_conf_add_listener(&vm->conf, &l, err, sizeof(err)) < 0)
        return luaL_error(L, "%s", err);
    core_listen_tls(L, vm, &l);

    /* The listener table: its settings, and the app's callbacks later. */
    lua_createtable(L, 0, 12);                           /* srv */
    lua_pushstring(L, l.name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, url);
    lua_setfield(L, -2, "address");
    lua_pushinteger(L, l.count);
    lua_setfield(L, -2, "count");
    lua_pushboolean(L, l.reuseport);
    lua_setfield(L, -2, "reusePort");
    lua_pushinteger(L, (lua_Integer)l.max_package_size);
    lua_setfield(L, -2, "maxPackageSize");
    lua_pushinteger(L, (lua_Integer)l.max_send_buffer_size);
    lua_setfield(L, -2, "maxSendBufferSize");
    lua_pushnumber(L, l.idle_timeout);
    lua_setfield(L, -2, "idleTimeout");
    lua_pushinteger(L, l.max_connections);
    lua_setfield(L, -2, "maxConnections");
    ls_lua_udp_listener_table(L, &l);  /* udp: refuses stream callbacks */
    if (lua_istable(L, 2) && lua_getfield(L, 2, "protocol") == LUA_TTABLE)
        lua_setfield(L, -2, "protocol"); /* custom protocols are looked up here */
    else if (lua_istable(L, 2))
        lua_pop(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &listeners_key);  /* srv list */
    lua_pushvalue(L, -2);                                /* srv list srv */
    lua_setfield(L, -2, l.name);                         /* srv list */
    lua_pop(L, 1);                                       /* srv */
    if (vm->mode == LS_VM_WORKER && strcmp(l.name, vm->serve_name) == 0) {
        vm->serve = l;
        lua_pushvalue(L, -1);
        vm->serve_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    return 1;
}

/* luaserv.settings{...}   [-1, +0, e] */
static int
lcore_settings(lua_State *L)
{
    ls_vm_t *vm = ls_vm_of(L);
    ls_conf_t *c = &vm->conf;

    if (!vm->loading) /* read once, from the top level: later ones are lost */
        return luaL_error(L, "luaserv.settings() must be called at the top "
                          "level of the script (settings take effect at "
                          "start and reload)");
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                       : "?";
        if (strcmp(k, "name") == 0) {
            snprintf(c->name, sizeof(c->name), "%s",
                     core_opt_string(L, k, sizeof(c->name)));
        } else if (strcmp(k, "pidFile") == 0) {
            snprintf(c->pid_file, sizeof(c->pid_file), "%s",
                     core_opt_string(L, k, sizeof(c->pid_file)));
        } else if (strcmp(k, "logFile") == 0) {
            snprintf(c->log_file, sizeof(c->log_file), "%s",
                     core_opt_string(L, k, sizeof(c->log_file)));
        } else if (strcmp(k, "user") == 0) {
            snprintf(c->user, sizeof(c->user), "%s",
                     core_opt_string(L, k, sizeof(c->user)));
        } else if (strcmp(k, "group") == 0) {
            snprintf(c->group, sizeof(c->group), "%s",
                     core_opt_string(L, k, sizeof(c->group)));
        } else if (strcmp(k, "stopTimeout") == 0) {
            lua_Number v = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(v >= 0 && v <= 86400))
                luaL_error(L, "bad setting 'stopTimeout' (seconds from 0 to "
                           "86400 expected)");
            c->stop_timeout = v;
        } else if (strcmp(k, "stopDelay") == 0) {
            lua_Number v = lua_tonumber(L, -1);
            if (!lua_isnumber(L, -1) || !(v >= 0 && v <= 3600))
                luaL_error(L, "bad setting 'stopDelay' (seconds from 0 to "
                           "3600 expected)");
            c->stop_delay = v;
        } else if (strcmp(k, "logLevel") == 0) {
            int lv = lua_type(L, -1) == LUA_TSTRING
                         ? ls_log_level_from_name(lua_tostring(L, -1))
                         : -1;
            if (lv < 0 || lv > LS_LOG_ERROR)
                luaL_error(L, "bad setting 'logLevel' (\"debug\", \"info\", "
                           "\"warn\" or \"error\" expected)");
            c->log_level = lv;
            ls_log_set_level(lv);
        } else if (strcmp(k, "luaMemoryLimit") == 0) {
            c->lua_memory_limit = (size_t)core_opt_lua_memory(L, k, "setting");
        } else if (strcmp(k, "callbackTimeout") == 0) {
            c->callback_timeout = core_opt_callback_timeout(L, k, "setting");
        } else if (strcmp(k, "watchdogTimeout") == 0) {
            c->watchdog_timeout = core_opt_callback_timeout(L, k, "setting");
        } else if (strcmp(k, "metrics") == 0) {
            /* "host:port" of the master's /metrics */
            const char *v = core_opt_string(L, k, sizeof(c->metrics) - 8);
            char url[LS_URL_MAX + 8], err[LS_ERRLEN] = "";
            ls_addr_t a;
            snprintf(url, sizeof(url), "tcp://%s", v);
            if (ls_listener_parse(url, &a, err, sizeof(err)) < 0 ||
                a.family == AF_UNIX)
                luaL_error(L, "bad setting 'metrics' (\"host:port\" "
                           "expected, e.g. \"127.0.0.1:9145\"): %s", err);
            snprintf(c->metrics, sizeof(c->metrics), "%s", v);
        } else if (strcmp(k, "sslTrustedCertificate") == 0) {
            core_setting_trusted(L, ls_vm_of(L));
        } else if (strcmp(k, "shared") == 0) {
            ls_lua_shdict_setting(L, c);
        } else if (strcmp(k, "taskWorkers") == 0) {
            c->task_workers = (int)core_opt_int(L, k, 0, LS_MAX_WORKERS);
        } else if (strcmp(k, "taskQueue") == 0) {
            c->task_queue = (int)core_opt_int(L, k, 1, 1000000);
        } else {
            return luaL_error(L, "unknown setting '%s' (known: name, pidFile, "
                              "logFile, user, group, stopTimeout, stopDelay, "
                              "logLevel, "
                              "luaMemoryLimit, callbackTimeout, "
                              "watchdogTimeout, metrics, "
                              "sslTrustedCertificate, shared, taskWorkers, "
                              "taskQueue)", k);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* luaserv.log(level, message)   [-2, +0, e] (formatting is done in Lua) */
static int
lcore_log(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    int level = ls_log_level_from_name(name);

    if (level < 0 || level > LS_LOG_ERROR)
        return luaL_argerror(L, 1, "\"debug\", \"info\", \"warn\" or "
                             "\"error\" expected");
    ls_log(level, 0, "%s", msg);
    return 0;
}

static int
lcore_conn_iter(lua_State *L)
{
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
    for (;;) {
        ls_conn_box_t *box;
        i++;
        if (lua_rawgeti(L, lua_upvalueindex(1), i) == LUA_TNIL)
            return 1;
        box = lua_touserdata(L, -1);
        if (box->c != NULL && !(box->c->flags & LS_CONN_CLOSED)) {
            lua_pushinteger(L, i);
            lua_replace(L, lua_upvalueindex(2));
            return 1;
        }
        lua_pop(L, 1);
    }
}

/*
 * luaserv.connections(listener) -> iterator over this worker's open
 * connections of that listener. It walks a snapshot, skipping connections
 * that close meanwhile, so a loop body may send, close or accept freely.
 */
static int
lcore_connections(lua_State *L)
{
    ls_worker_t *w = ls_worker;
    int n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_newtable(L);                                     /* srv snap */
    if (w != NULL && w->srv.lua_ref != LUA_NOREF && w->srv.lua_ref != 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, w->srv.lua_ref); /* srv snap mine */
        if (lua_rawequal(L, 1, -1)) {
            for (ls_conn_t *c = w->srv.conns; c != NULL; c = c->next) {
                if (c->flags & LS_CONN_CLOSED)
                    continue;
                lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);
                lua_rawseti(L, -3, ++n);
            }
        }
        lua_pop(L, 1);                                   /* srv snap */
    }
    lua_pushinteger(L, 0);                               /* srv snap 0 */
    lua_pushcclosure(L, lcore_conn_iter, 2);             /* srv iter */
    return 1;
}

static const luaL_Reg lcore_funcs[] = {
    {"connect", ls_lua_connect},
    {"connections", lcore_connections},
    {"listen", lcore_listen},
    {"log", lcore_log},
    {"settings", lcore_settings},
    {NULL, NULL},
};

/* require "luaserv.core" in the state, as luaserv's own lua/luaserv/init.lua
 * does. Called by the state's creator (the worker, the validator) before
 * the app loads. */
void
ls_lua_core_install(ls_vm_t *vm)
{
    lua_State *L = vm->L;

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
    lua_pushcfunction(L, luaopen_luaserv_core);          /* preload open */
    lua_setfield(L, -2, "luaserv.core");                 /* preload */
    lua_pop(L, 1);
}

int
luaopen_luaserv_core(lua_State *L)
{
    ls_vm_t *vm = ls_vm_of(L);

    ls_lua_conn_register(L);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &listeners_key);
    luaL_newlib(L, lcore_funcs);                         /* core */
    ls_lua_timer_register(L);
    ls_co_register(L);
    ls_lua_socket_register(L);
    ls_lua_udp_register(L);
    ls_lua_shdict_register(L);
    ls_lua_mail_register(L);
    ls_lua_task_register(L);
    lua_pushlightuserdata(L, NULL);                      /* luaserv.null */
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, LUASERV_VERSION);
    lua_setfield(L, -2, "version");

    lua_createtable(L, 0, 3);                            /* core errors */
    lua_pushinteger(L, LS_ERR_PACKAGE_TOO_BIG);
    lua_setfield(L, -2, "PACKAGE_TOO_BIG");
    lua_pushinteger(L, LS_ERR_BAD_INPUT);
    lua_setfield(L, -2, "BAD_INPUT");
    lua_pushinteger(L, LS_ERR_SEND_FAIL);
    lua_setfield(L, -2, "SEND_FAIL");
    lua_pushinteger(L, LS_ERR_CONNECT_FAIL);
    lua_setfield(L, -2, "CONNECT_FAIL");
    lua_pushinteger(L, LS_ERR_TIMEOUT);
    lua_setfield(L, -2, "TIMEOUT");
    lua_setfield(L, -2, "errors");                       /* core */

    /* luaserv.worker exists in workers; the validator has none, so top-level
     * code cannot depend on which worker it runs in. */
    if (vm->mode == LS_VM_WORKER && vm->worker != NULL) {
        ls_worker_t *w = vm->worker;
        lua_createtable(L, 0, 6);                        /* core worker */
        lua_pushinteger(L, w->id);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, (lua_Integer)getpid());
        lua_setfield(L, -2, "pid");
        lua_pushstring(L, vm->serve_name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, vm->serve_name);
        lua_setfield(L, -2, "listener");
        lua_pushinteger(L, w->generation);
        lua_setfield(L, -2, "generation");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "stopping");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &ls_lua_worker_key);
        lua_setfield(L, -2, "worker");                   /* core */
    }
    return 1;
}
