/*
 * lua_udp.c -- luaserv.udp(): a connected datagram cosocket (OpenResty's
 * ngx.socket.udp).
 *
 *   local u = luaserv.udp()
 *   u:settimeout(ms)                          -- receive's timeout (60 s)
 *   u:setpeername(host, port) / ("unix:/path") -> 1 | nil, err
 *   u:send(data)                              -> 1 | nil, err
 *   u:receive([size])                         -> datagram | nil, err
 *   u:close()                                 -> 1 | nil, err
 *
 * A name is resolved by evdns (the call waits); receive waits for the next
 * datagram from the peer (at most size bytes, default and at most 65536).
 * One coroutine waits on a socket at a time ("socket busy").
 */
#include "lua/lua_udp.h"
#include "lua/binding.h"
#include "lua/co.h"

#include "lua/compat.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define UDP_MT "luaserv.udp"
#define UDP_MAX 65536
#define UDP_TIMEOUT 60.0

typedef struct udp {
    int fd;
    int connected;
    ls_co_t *waiter;
    int resolving;
    size_t want;                /* receive: at most that many bytes */
    double timeout;
    struct event ev;
    char host[256];
    struct evdns_getaddrinfo_request *dns;
    int in_lookup, sync_r;
    char err[300];
} udp_t;

static int
udp_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static const char *
udp_errstr(int e, char *buf, size_t n)
{
    snprintf(buf, n, "%s", strerror(e));
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

static void
udp_shut(udp_t *u)
{
    if (u->dns != NULL) {
        evdns_getaddrinfo_cancel(u->dns);
        u->dns = NULL;
    }
    event_del(&u->ev);
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    u->connected = 0;
}

/* 1 connected, -1 failed (u->err). */
static int
udp_connect_to(udp_t *u, const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);

    if (fd < 0 || connect(fd, sa, len) < 0) {
        udp_errstr(errno, u->err, sizeof(u->err));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    u->fd = fd;
    u->connected = 1;
    return 1;
}

static void
udp_wake(udp_t *u, int nres)
{
    ls_co_t *co = u->waiter;

    u->waiter = NULL;
    ls_co_resume(co, nres);
    ls_conn_flush_all();
}

static void
udp_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    udp_t *u = arg;
    int r;

    if (result == EVUTIL_EAI_CANCEL) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    u->dns = NULL;
    u->resolving = 0;
    if (result != 0 || res == NULL) {
        snprintf(u->err, sizeof(u->err), "%.200s could not be resolved (%.60s)",
                 u->host, result == EVUTIL_EAI_NONAME
                              ? "host not found"
                              : evutil_gai_strerror(result));
        r = -1;
    } else {
        r = udp_connect_to(u, res->ai_addr, (socklen_t)res->ai_addrlen);
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (u->in_lookup) {
        u->in_lookup = 0;
        u->sync_r = r;
        return;
    }
    if (r < 0) {
        lua_pushnil(u->waiter->L);
        lua_pushstring(u->waiter->L, u->err);
        udp_wake(u, 2);
    } else {
        lua_pushinteger(u->waiter->L, 1);
        udp_wake(u, 1);
    }
}

/* u:setpeername(host, port) / u:setpeername("unix:/path") -> 1 | nil, err */
static int
udp_setpeername(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);
    const char *host = luaL_checkstring(L, 2);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int port = 0;

    ls_co_check(L, "udp:setpeername");
    if (u->waiter != NULL)
        return udp_fail(L, "socket busy");
    udp_shut(u);
    memset(&ss, 0, sizeof(ss));
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        size_t n = strlen(host + 5);
        luaL_argcheck(L, n > 0 && n < sizeof(sun->sun_path), 2,
                      "bad unix socket path");
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, host + 5, n + 1);
        len = sizeof(*sun);
    } else {
        lua_Integer p = luaL_checkinteger(L, 3);
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        luaL_argcheck(L, p > 0 && p < 65536, 3, "port from 1 to 65535");
        luaL_argcheck(L, strlen(host) > 0 && strlen(host) < sizeof(u->host),
                      2, "bad host");
        port = (int)p;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)port);
            len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            len = sizeof(*in6);
        }
    }
    if (len == 0) {
        struct evdns_base *dns = ls_loop_dns();
        struct evutil_addrinfo hints;
        char ports[16];

        if (dns == NULL)
            return udp_fail(L, "no resolver");
        snprintf(u->host, sizeof(u->host), "%s", host);
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_protocol = IPPROTO_UDP;
        snprintf(ports, sizeof(ports), "%d", port);
        u->resolving = 1;
        u->in_lookup = 1;
        u->dns = evdns_getaddrinfo(dns, host, ports, &hints, udp_on_resolved,
                                   u);
        if (u->in_lookup) {
            u->in_lookup = 0;
            u->waiter = ls_co_running(L);
            return lua_yield(L, 0);
        }
        u->dns = NULL;
        if (u->sync_r < 0)
            return udp_fail(L, u->err);
        lua_pushinteger(L, 1);
        return 1;
    }
    if (udp_connect_to(u, (struct sockaddr *)&ss, len) < 0)
        return udp_fail(L, u->err);
    lua_pushinteger(L, 1);
    return 1;
}

/* u:send(data) -> 1 | nil, err: one datagram; a full socket buffer is an
 * error, as for any datagram that cannot be sent now. */
static int
udp_send(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);
    size_t n;
    const char *p = luaL_checklstring(L, 2, &n);
    char err[128];
    ssize_t r;

    if (!u->connected)
        return udp_fail(L, u->fd < 0 && !u->resolving ? "not connected"
                                                      : "socket busy");
    do {
        r = send(u->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return udp_fail(L, errno == EAGAIN || errno == EWOULDBLOCK
                               ? "buffer full"
                               : udp_errstr(errno, err, sizeof(err)));
    lua_pushinteger(L, 1);
    return 1;
}

/* Push one datagram (or nil, err) on T; 0: none there yet. */
static int
udp_take(udp_t *u, lua_State *T)
{
    char buf[UDP_MAX], err[128];
    ssize_t r;

    do {
        r = recv(u->fd, buf, u->want, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
        lua_pushlstring(T, buf, (size_t)r);
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    lua_pushnil(T);
    lua_pushstring(T, errno == ECONNREFUSED ? "connection refused"
                                            : udp_errstr(errno, err,
                                                         sizeof(err)));
    return 2;
}

/* Wait for readability, within the receive timeout. */
static void
udp_arm(udp_t *u)
{
    struct timeval tv, *tvp = NULL;

    if (u->timeout > 0) {
        tv.tv_sec = (time_t)u->timeout;
        tv.tv_usec = (suseconds_t)((u->timeout - (double)tv.tv_sec) * 1e6);
        tvp = &tv;
    }
    event_add(&u->ev, tvp);
}

static void
udp_on_read(evutil_socket_t fd, short what, void *arg)
{
    udp_t *u = arg;
    lua_State *T;
    int r;
    (void)fd;

    if (u->waiter == NULL)
        return;
    T = u->waiter->L;
    if (what & EV_TIMEOUT) {
        lua_pushnil(T);
        lua_pushliteral(T, "timeout");
        udp_wake(u, 2);
        return;
    }
    if ((r = udp_take(u, T)) > 0) {
        udp_wake(u, r);
        return;
    }
    udp_arm(u);
}

/* u:receive([size]) -> datagram | nil, err */
static int
udp_receive(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);
    lua_Integer size = luaL_optinteger(L, 2, UDP_MAX);
    int r;

    luaL_argcheck(L, size > 0 && size <= UDP_MAX, 2,
                  "size from 1 to 65536");
    ls_co_check(L, "udp:receive");
    if (u->waiter != NULL)
        return udp_fail(L, "socket busy");
    if (!u->connected)
        return udp_fail(L, "not connected");
    u->want = (size_t)size;
    if ((r = udp_take(u, L)) > 0)
        return r;
    event_assign(&u->ev, ls_worker->base, u->fd, EV_READ, udp_on_read, u);
    u->waiter = ls_co_running(L);
    udp_arm(u);
    return lua_yield(L, 0);
}

static int
udp_close(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);

    if (u->waiter != NULL)
        return udp_fail(L, "socket busy");
    if (!u->connected)
        return udp_fail(L, "closed");
    udp_shut(u);
    lua_pushinteger(L, 1);
    return 1;
}

static int
udp_settimeout(lua_State *L)
{
    udp_t *u = luaL_checkudata(L, 1, UDP_MT);
    lua_Number ms = luaL_checknumber(L, 2);

    luaL_argcheck(L, ms == ms && ms >= 0 && ms < 1e12, 2,
                  "milliseconds from 0 (no timeout) up");
    u->timeout = ms / 1000.0;
    return 0;
}

static int
udp_gc(lua_State *L)
{
    udp_shut(luaL_checkudata(L, 1, UDP_MT));
    return 0;
}

static int
udp_new(lua_State *L)
{
    udp_t *u;

    if (ls_worker == NULL || ls_vm_of(L)->mode != LS_VM_WORKER)
        return luaL_error(L, "luaserv.udp: sockets are for workers (a "
                          "callback, a timer or onWorkerStart), not the top "
                          "level of the script");
    u = lua_newuserdatauv(L, sizeof(*u), 0);
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    u->timeout = UDP_TIMEOUT;
    event_assign(&u->ev, ls_worker->base, -1, 0, udp_on_read, u);
    luaL_setmetatable(L, UDP_MT);
    return 1;
}

static const luaL_Reg udp_methods[] = {
    {"setpeername", udp_setpeername},
    {"send", udp_send},
    {"receive", udp_receive},
    {"close", udp_close},
    {"settimeout", udp_settimeout},
    {NULL, NULL},
};

void
ls_lua_udp_register(lua_State *L)
{
    if (luaL_newmetatable(L, UDP_MT)) {
        luaL_newlib(L, udp_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, udp_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, udp_new);
    lua_setfield(L, -2, "udp");
}
