/*
 * lua_connect.c -- luaserv.connect(address [, options]).
 *
 * The call returns a connection at once, in the "connecting" state: sends
 * are queued, and onConnect fires when the connection is up. Names are
 * resolved without blocking (evdns); refusal, an unknown host and the
 * connect timeout each end in onError(conn, luaserv.errors.CONNECT_FAIL,
 * message) and then onClose. Each outbound connection has its own small
 * server context: its options, its protocol, and its callback table (the
 * options table itself), freed with the connection.
 */
#include "lua/lua_connect.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/lua_core.h"
#include "lua/lua_proto.h"

#include "lua/compat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static void
outbound_start(ls_conn_t *c, const struct sockaddr *sa, socklen_t len)
{
    char err[256], msg[LS_URL_MAX + 300];

    if (ls_conn_connect(c, sa, len, err, sizeof(err)) < 0) {
        snprintf(msg, sizeof(msg), "connect to %s failed: %s",
                 c->srv->conf.addr.url, err);
        ls_conn_connect_fail(c, msg);
    }
}

static void
outbound_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    char msg[600];
    (void)fd;
    (void)what;

    snprintf(msg, sizeof(msg), "connect to %s timed out after %g s",
             c->srv->conf.addr.url, c->srv->conf.connect_timeout);
    ls_conn_connect_fail(c, msg);
    ls_conn_flush_all();
}

static void
outbound_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    ls_conn_t *c = arg;
    char msg[600];

    if (!(c->flags & LS_CONN_CLOSED)) {
        if (result != 0 || res == NULL) {
            snprintf(msg, sizeof(msg), "cannot resolve \"%s\": %s",
                     c->srv->conf.addr.host, evutil_gai_strerror(result));
            ls_conn_connect_fail(c, msg);
        } else {
            outbound_start(c, res->ai_addr, (socklen_t)res->ai_addrlen);
        }
    }
    if (res)
        evutil_freeaddrinfo(res);
    ls_conn_decref(c); /* the lookup's reference */
    if (ls_worker)
        ls_conn_flush_all();
}

/* Deferred start for addresses that need no lookup: failures must reach
 * onError after connect() has returned the connection to the app. */
static void
outbound_on_begin(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    const ls_addr_t *a = &c->srv->conf.addr;
    struct timeval tv;
    (void)fd;
    (void)what;

    tv.tv_sec = (time_t)c->srv->conf.connect_timeout;
    tv.tv_usec = (suseconds_t)((c->srv->conf.connect_timeout -
                                (double)tv.tv_sec) * 1e6);
    event_free(c->timer);
    c->timer = evtimer_new(ls_worker->base, outbound_on_timeout, c);
    if (c->srv->conf.connect_timeout > 0)
        evtimer_add(c->timer, &tv);

    if (a->family == AF_UNIX) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
        outbound_start(c, (struct sockaddr *)&sun, sizeof(sun));
    } else {
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        memset(&in4, 0, sizeof(in4));
        memset(&in6, 0, sizeof(in6));
        if (inet_pton(AF_INET, a->host, &in4.sin_addr) == 1) {
            in4.sin_family = AF_INET;
            in4.sin_port = htons((uint16_t)a->port);
            outbound_start(c, (struct sockaddr *)&in4, sizeof(in4));
        } else if (inet_pton(AF_INET6, a->host, &in6.sin6_addr) == 1) {
            in6.sin6_family = AF_INET6;
            in6.sin6_port = htons((uint16_t)a->port);
            outbound_start(c, (struct sockaddr *)&in6, sizeof(in6));
        } else {
            struct evutil_addrinfo hints;
            char port[16];
            struct evdns_base *dns = ls_loop_dns();

            memset(&hints, 0, sizeof(hints));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            hints.ai_protocol = IPPROTO_TCP;
            hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
            snprintf(port, sizeof(port), "%d", a->port);
            ls_conn_incref(c);
            if (dns == NULL) {
                outbound_on_resolved(EVUTIL_EAI_FAIL, NULL, c);
            } else {
                /* The callback may run before this returns. */
                evdns_getaddrinfo(dns, a->host, port, &hints,
                                  outbound_on_resolved, c);
            }
        }
    }
    ls_conn_flush_all();
}

/* luaserv.connect(address [, options]) -> conn   [-1..2, +1, e] */
int
ls_lua_connect(lua_State *L)
{
    ls_vm_t *vm = ls_vm_of(L);
    ls_worker_t *w = ls_worker;
    const char *url = luaL_checkstring(L, 1);
    char err[LS_ERRLEN];
    ls_listen_conf_t conf;
    ls_server_t *srv;
    ls_conn_t *c;

    if (vm->mode != LS_VM_WORKER || vm->loading || w == NULL)
        return luaL_error(L, "luaserv.connect() works in workers only: call "
                          "it in onWorkerStart or a callback, not at the top "
                          "level of the script");
    if (w->stopping)
        return luaL_error(L, "luaserv.connect(): this worker is stopping");
    /* Everything that may raise comes before the first allocation. */
    memset(&conf, 0, sizeof(conf));
    if (ls_listener_parse(url, &conf.addr, err, sizeof(err)) < 0)
        return luaL_error(L, "%s", err);
    if (ls_addr_is_udp(&conf.addr))
        return luaL_error(L, "luaserv.connect(): udp:// has no connections "
                          "(use luaserv.udp() to send datagrams)");
    if (strcmp(conf.addr.proto, "http") == 0 || /* server-only protocols */
        strcmp(conf.addr.proto, "websocket") == 0 ||
        strcmp(conf.addr.proto, "ws") == 0)
        return luaL_error(L, "luaserv.connect(): %s:// is not supported "
                          "for outbound connections yet (use tcp://)",
                          conf.addr.proto);
    ls_lua_core_defaults(&conf);
    ls_lua_core_options(L, 2, &conf, 1);
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return luaL_error(L, "out of memory");
    srv->conf = conf;
    snprintf(srv->conf.name, sizeof(srv->conf.name), "connect");
    srv->fd = -1;
    ls_lua_proto_attach(srv);
    if (lua_istable(L, 2))
        lua_pushvalue(L, 2);
    else
        lua_newtable(L);
    srv->lua_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    c = ls_conn_new(srv, -1, NULL, 0);
    if (c == NULL) {
        luaL_unref(L, LUA_REGISTRYINDEX, srv->lua_ref);
        free(srv);
        return luaL_error(L, "out of memory");
    }
    c->flags |= LS_CONN_OUTBOUND | LS_CONN_CONNECTING;
    srv->onext = w->outbound;
    if (w->outbound)
        w->outbound->oprev = srv;
    w->outbound = srv;
    c->timer = evtimer_new(w->base, outbound_on_begin, c);
    if (c->timer == NULL) {
        ls_conn_destroy(c);
        return luaL_error(L, "out of memory");
    }
    event_active(c->timer, EV_TIMEOUT, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->lua_ref);
    return 1;
}

/* The worker is exiting: close what it opened. */
void
ls_lua_connect_close_all(ls_worker_t *w)
{
    while (w->outbound != NULL) {
        ls_server_t *srv = w->outbound;
        if (srv->conns != NULL)
            ls_conn_destroy(srv->conns);
        if (w->outbound == srv) /* not unlinked: drop it from the list */
            w->outbound = srv->onext;
    }
    if (w->dns) {
        evdns_base_free(w->dns, 1);
        w->dns = NULL;
    }
}
