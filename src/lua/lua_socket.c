/*
 * lua_socket.c -- cosockets: luaserv.tcp(), outbound TCP and unix-socket
 * connections that a callback uses in straight-line code (OpenResty's
 * ngx.socket.tcp). A call that must wait (connect, a send the socket does
 * not take at once, a receive with too little buffered) yields the
 * callback's coroutine; the socket's event resumes it with the results.
 *
 *   local sock = luaserv.tcp()
 *   sock:settimeout(ms) / sock:settimeouts(connect_ms, send_ms, read_ms)
 *   sock:connect(host, port [, {pool = name}]) / ("unix:/path" [, opts])
 *                                           -> 1 | nil, err
 *   sock:send(data)                        -> bytes | nil, err
 *   sock:receive("*l" | "*a" | n)           -> data | nil, err, partial
 *   sock:receiveuntil(pattern)              -> it; it() -> data | nil, err, partial
 *   sock:setkeepalive(idle_ms, pool_size)   -> 1 | nil, err
 *   sock:getreusedtimes()                   -> n | nil, err
 *   sock:sslhandshake(reused_session, server_name, verify)
 *                                           -> session | true | nil, err
 *   sock:close()                            -> 1 | nil, err
 *
 * Failures are nil plus a short lower-case text ("timeout", "closed",
 * "connection refused", "socket busy"); misuse raises: a wrong argument,
 * or a call that would wait where nothing may (ls_co_check). A socket is
 * used by one coroutine at a time: another one gets nil, "socket busy". A
 * read timeout leaves the socket open (what arrived is the partial); any
 * other failure closes it. Names are resolved by evdns, never blocking.
 *
 * The keep-alive pool keeps idle connections per "host:port" (or unix
 * path) for this worker; one that the peer closes, or that sends anything,
 * while idle is dropped, and so is one idle for longer than idle_ms. A TLS
 * connection goes into the pool with its TLS state, and comes out of it
 * speaking TLS (sslhandshake on it returns at once).
 *
 * The connection itself is a link of lua/sockpool.c: descriptor, TLS
 * state, read buffer and one edge-triggered event for its whole life,
 * handed to the pool and back as it is, so that a request on a pooled
 * connection allocates nothing and makes no epoll_ctl: its syscalls are
 * the send and the read of the answer, as in nginx. The waiter's timeout
 * is a timer of the socket's own.
 */
#include "lua/lua_socket.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "lua/lua_tls.h"
#include "lua/sockpool.h"

#include "lua/compat.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK_MT "luaserv.tcp"
#define SOCK_TIMEOUT 60.0          /* s, each phase, as OpenResty's default */
#define SOCK_LINE_MAX (4 << 20)    /* "*l" and receiveuntil: longest record */
#define SOCK_READ 16384            /* bytes asked of one read(), at least */
#define SOCK_POOL_SIZE 30          /* setkeepalive's default pool_size */
#define SOCK_KEY_MAX 300

enum { S_NEW, S_RESOLVING, S_CONNECTING, S_CONNECTED, S_CLOSED };
enum { OP_NONE, OP_CONNECT, OP_SEND, OP_RECV, OP_HANDSHAKE };
enum { RX_LINE, RX_ALL, RX_N, RX_UNTIL };
enum { T_CONNECT, T_SEND, T_READ };

typedef struct sock_dns sock_dns_t;

/* The userdata: what the app holds. The connection itself (descriptor,
 * TLS, read buffer, event) is its link, which setkeepalive gives to the
 * pool and a connect takes back (lua/sockpool.c). */
typedef struct sock {
    const void *tag;            /* &sock_tag: what sock_check looks at */
    int state;
    int op;                     /* what the waiter waits for */
    ls_co_t *waiter;
    ls_sockpool_link_t *link;   /* the connection (connecting, connected) */
    ls_sockpool_key_t *key;     /* pool key of the last connect, or NULL */
    struct event tmr;           /* the timeout of what the waiter waits for */
    double tmo[3];              /* T_*: seconds; 0: none */
    double deadline;            /* a connect after a lookup: by then */
    const char *sp;             /* a send in progress */
    size_t slen, soff;
    int sref;                   /* pins the string being sent */
    int rx;                     /* a receive in progress: RX_* */
    size_t rn;                  /* RX_N: bytes wanted */
    const char *pat;            /* RX_UNTIL: the pattern */
    size_t plen;
    int pref;                   /* pins the pattern */
    int ssl_ret;                /* sslhandshake returns: 1 the session */
    sock_dns_t *dns;            /* a name being looked up */
} sock_t;

/* A lookup under way; outlives its socket if that goes first (the
 * canceled callback frees it). */
struct sock_dns {
    sock_t *s;                  /* NULL once the socket gave up on it */
    struct evdns_getaddrinfo_request *req; /* once it waits for the answer */
    int in_lookup;              /* inside evdns_getaddrinfo: answered now? */
    int sync_r;                 /* ... how (as sock_connect_to returns) */
    char host[256];             /* as connect got it, for error texts */
    char err[300];
};

static int sock_resume_recv(sock_t *s, lua_State *T);
static void sock_on_io(void *arg, short what);

/* ---- helpers ----------------------------------------------------------- */

static const char sock_tag = 0;

/* Argument idx as a socket: a full userdata of our size whose first word
 * is &sock_tag (Lua code cannot forge a userdata's bytes), as lua_conn.c
 * checks a conn; cheaper than luaL_checkudata's metatable lookup by name
 * for every call. */
static sock_t *
sock_at(lua_State *L, int idx)
{
    sock_t *s = lua_touserdata(L, idx);

    if (s == NULL || lua_type(L, idx) != LUA_TUSERDATA ||
        lua_rawlen(L, idx) != sizeof(*s) || s->tag != &sock_tag)
        luaL_typeerror(L, idx, SOCK_MT);
    return s;
}

static sock_t *
sock_check(lua_State *L)
{
    return sock_at(L, 1);
}

static int
sock_fail(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* strerror, lower-cased ("connection refused") */
static const char *
sock_errstr(int err, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(err));
    if (buf[0])
        buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

static struct timeval *
sock_tv(double secs, struct timeval *tv)
{
    if (!(secs > 0))
        return NULL;
    tv->tv_sec = (time_t)secs;
    tv->tv_usec = (suseconds_t)((secs - (double)tv->tv_sec) * 1e6);
    return tv;
}

/* The waiter's timeout: secs from now (a common timeout of the loop: the
 * same few durations over and over), or none. */
static void
sock_arm(sock_t *s, double secs)
{
    if (secs > 0)
        evtimer_add(&s->tmr, ls_loop_timeout(secs));
    else
        evtimer_del(&s->tmr);
}

static void
sock_unpin(sock_t *s, lua_State *L)
{
    if (s->sref != LUA_NOREF || s->pref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, s->sref);
        luaL_unref(L, LUA_REGISTRYINDEX, s->pref);
        s->sref = s->pref = LUA_NOREF;
    }
    s->sp = s->pat = NULL;
}

/* The connection and the timeout gone (a lookup canceled). Idempotent. */
static void
sock_shut(sock_t *s)
{
    sock_dns_t *d = s->dns;

    if (d != NULL && d->req != NULL) { /* its callback runs, canceled */
        s->dns = NULL;
        d->s = NULL;
        evdns_getaddrinfo_cancel(d->req);
    }
    evtimer_del(&s->tmr);
    if (s->link != NULL) {
        ls_sockpool_link_close(s->link);
        s->link = NULL;
    }
    s->state = S_CLOSED;
}

/* Hand the results pushed on the waiter's stack to it. */
static void
sock_wake(sock_t *s, int nres)
{
    ls_co_t *co = s->waiter;

    evtimer_del(&s->tmr);
    s->waiter = NULL;
    s->op = OP_NONE;
    sock_unpin(s, ls_worker->vm->L);
    ls_co_resume(co, nres);
    ls_conn_flush_all();
}

static void
sock_wake_fail(sock_t *s, const char *err)
{
    lua_State *T = s->waiter->L;

    lua_pushnil(T);
    lua_pushstring(T, err);
    sock_wake(s, 2);
}

static int
sock_wait(lua_State *L, sock_t *s, int op)
{
    s->waiter = ls_co_running(L);
    s->op = op;
    return lua_yield(L, 0);
}

/* ---- connect ----------------------------------------------------------- */

/* 1: connected; 0: under way (the link's event tells); -1: failed (err). */
static int
sock_connect_to(sock_t *s, const struct sockaddr *sa, socklen_t len,
                char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    int r;

    s->state = S_CLOSED;
    if (fd < 0) {
        sock_errstr(errno, err, errlen);
        return -1;
    }
    if (sa->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    if ((r = connect(fd, sa, len)) < 0 && errno != EINPROGRESS) {
        sock_errstr(errno, err, errlen);
        close(fd);
        return -1;
    }
    if ((s->link = ls_sockpool_link_new(fd, s, sock_on_io)) == NULL) {
        snprintf(err, errlen, "out of memory");
        close(fd);
        return -1;
    }
    if (r == 0) {
        s->state = S_CONNECTED;
        return 1;
    }
    s->state = S_CONNECTING;
    if (s->deadline > 0 && s->tmo[T_CONNECT] > 0) {
        /* after a lookup, what is left of the connect timeout */
        struct timeval tv;
        double t = s->deadline - ls_loop_time();
        evtimer_add(&s->tmr, sock_tv(t < 0.001 ? 0.001 : t, &tv));
    } else {
        sock_arm(s, s->tmo[T_CONNECT]);
    }
    return 0;
}

static void
sock_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    sock_dns_t *d = arg;
    sock_t *s = d->s;
    char err[sizeof(d->err)];
    int r;

    if (result == EVUTIL_EAI_CANCEL || s == NULL) { /* closed meanwhile */
        if (res)
            evutil_freeaddrinfo(res);
        free(d);
        return;
    }
    d->req = NULL;
    evtimer_del(&s->tmr); /* the lookup's share of the connect timeout */
    if (result != 0 || res == NULL) {
        /* "example.invalid could not be resolved (host not found)" */
        snprintf(d->err, sizeof(d->err), "%.200s could not be resolved "
                 "(%.60s)", d->host, result == EVUTIL_EAI_NONAME
                                         ? "host not found"
                                         : evutil_gai_strerror(result));
        s->state = S_CLOSED;
        r = -1;
    } else {
        r = sock_connect_to(s, res->ai_addr, (socklen_t)res->ai_addrlen,
                            d->err, sizeof(d->err));
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (d->in_lookup) { /* answered before evdns_getaddrinfo returned */
        d->sync_r = r;
        d->in_lookup = 0;
        return;
    }
    s->dns = NULL;
    memcpy(err, d->err, sizeof(err));
    free(d);
    if (r < 0) {
        sock_wake_fail(s, err);
    } else if (r > 0) {
        lua_pushinteger(s->waiter->L, 1);
        sock_wake(s, 1);
    }
}

/* Look host up, then connect (sock_connect's end for a name). */
static int
sock_lookup(lua_State *L, sock_t *s, const char *host, int port)
{
    struct evdns_base *base = ls_loop_dns();
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;
    sock_dns_t *d;
    char ports[16];
    int r;

    if (base == NULL)
        return sock_fail(L, "no resolver");
    if ((d = calloc(1, sizeof(*d))) == NULL)
        return sock_fail(L, "out of memory");
    d->s = s;
    snprintf(d->host, sizeof(d->host), "%s", host);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    snprintf(ports, sizeof(ports), "%d", port);
    s->state = S_RESOLVING;
    s->dns = d;
    if (s->tmo[T_CONNECT] > 0)
        s->deadline = ls_loop_time() + s->tmo[T_CONNECT];
    sock_arm(s, s->tmo[T_CONNECT]);
    d->in_lookup = 1;
    req = evdns_getaddrinfo(base, host, ports, &hints, sock_on_resolved, d);
    if (d->in_lookup) { /* asked: wait for the answer */
        d->in_lookup = 0;
        d->req = req;
        return sock_wait(L, s, OP_CONNECT);
    }
    /* answered at once (/etc/hosts, a failure) */
    s->dns = NULL;
    r = d->sync_r;
    if (r < 0)
        lua_pushstring(L, d->err);
    free(d);
    if (r < 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (r > 0) {
        lua_pushinteger(L, 1);
        return 1;
    }
    return sock_wait(L, s, OP_CONNECT);
}

/* sock:connect(host, port [, opts]) / sock:connect("unix:/path" [, opts])
 *   -> 1 | nil, err */
static int
sock_connect(lua_State *L)
{
    sock_t *s = sock_check(L);
    const char *host = luaL_checkstring(L, 2);
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char err[256], key[SOCK_KEY_MAX];
    size_t klen;
    ls_sockpool_key_t *k;
    int r, port = 0, popt;

    ls_co_check(L, "sock:connect");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    if (s->state != S_NEW && s->state != S_CLOSED)
        sock_shut(s); /* connect again: the old connection goes */
    s->deadline = 0;
    memset(&ss, 0, sizeof(ss));
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
        const char *path = host + 5;
        if (strlen(path) == 0 || strlen(path) >= sizeof(sun->sun_path))
            return luaL_argerror(L, 2, "bad unix socket path");
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1);
        len = sizeof(*sun);
        klen = strlen(host);
        memcpy(key, host, klen + 1);
        popt = 3;
    } else {
        lua_Integer p = luaL_checkinteger(L, 3);
        size_t hl = strlen(host);
        char digits[8], *d = digits + sizeof(digits);
        int v;
        luaL_argcheck(L, p > 0 && p < 65536, 3, "port from 1 to 65535");
        luaL_argcheck(L, hl > 0 && hl < 256, 2, "bad host");
        port = v = (int)p;
        /* "host:port" (snprintf costs more than the rest of connect) */
        do {
            *--d = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        memcpy(key, host, hl);
        key[hl] = ':';
        memcpy(key + hl + 1, d, (size_t)(digits + sizeof(digits) - d));
        klen = hl + 1 + (size_t)(digits + sizeof(digits) - d);
        popt = 4;
    }
    /* {pool = name}: the keep-alive pool to take from and give back to
     * (connections set up differently, say another Redis db, apart) */
    if (!lua_isnoneornil(L, popt)) {
        const char *pool;
        luaL_checktype(L, popt, LUA_TTABLE);
        if (lua_getfield(L, popt, "pool") != LUA_TNIL) {
            pool = luaL_checklstring(L, -1, &klen);
            luaL_argcheck(L, klen > 0 && klen < sizeof(key), popt,
                          "bad pool name");
            memcpy(key, pool, klen);
        }
        lua_pop(L, 1);
    }
    if ((k = ls_sockpool_key(key, klen)) == NULL)
        return sock_fail(L, "out of memory");
    ls_sockpool_key_unref(s->key);
    s->key = k;
    if ((s->link = ls_sockpool_take(k, s, sock_on_io)) != NULL) {
        s->state = S_CONNECTED;
        lua_pushinteger(L, 1);
        return 1;
    }
    if (len == 0) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
            in4->sin_family = AF_INET;
            in4->sin_port = htons((uint16_t)port);
            len = sizeof(*in4);
        } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons((uint16_t)port);
            len = sizeof(*in6);
        } else {
            return sock_lookup(L, s, host, port);
        }
    }
    r = sock_connect_to(s, (struct sockaddr *)&ss, len, err, sizeof(err));
    if (r < 0)
        return sock_fail(L, err);
    if (r > 0) {
        lua_pushinteger(L, 1);
        return 1;
    }
    return sock_wait(L, s, OP_CONNECT);
}

/* ---- send -------------------------------------------------------------- */

/* Write what is left of the send. 1: all sent; 0: the socket is full;
 * -1: failed (the socket closed, err set). */
static int
sock_write(sock_t *s, char *err, size_t errlen)
{
    ls_sockpool_link_t *l = s->link;

    while (s->soff < s->slen) {
        ssize_t n = l->ssl ? ls_tls_swrite(l->ssl, s->sp + s->soff,
                                           s->slen - s->soff)
                           : send(l->fd, s->sp + s->soff, s->slen - s->soff,
                                  MSG_NOSIGNAL);
        if (n > 0) {
            s->soff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            snprintf(err, errlen, "closed");
        else
            sock_errstr(errno, err, errlen);
        sock_shut(s);
        return -1;
    }
    return 1;
}

static void sock_handshake_step(sock_t *s);
static void sock_on_readable(sock_t *s, short what);

/* The connect under way: done, failed, or not yet. */
static void
sock_on_connected(sock_t *s, short what)
{
    char err[128];
    int e = 0;
    socklen_t len = sizeof(e);

    if (getsockopt(s->link->fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    if (e != 0) {
        sock_shut(s);
        sock_wake_fail(s, sock_errstr(e, err, sizeof(err)));
        return;
    }
    if (!(what & EV_WRITE))
        return;
    s->state = S_CONNECTED;
    lua_pushinteger(s->waiter->L, 1);
    sock_wake(s, 1);
}

/* The rest of a send the socket did not take at once. */
static void
sock_on_writable(sock_t *s, short what)
{
    char err[128];
    size_t before = s->soff;

    if (!(what & EV_WRITE))
        return;
    switch (sock_write(s, err, sizeof(err))) {
    case 1:
        lua_pushinteger(s->waiter->L, (lua_Integer)s->slen);
        sock_wake(s, 1);
        break;
    case 0:
        if (s->soff > before)
            sock_arm(s, s->tmo[T_SEND]);
        break;
    default:
        sock_wake_fail(s, err);
    }
}

/* The link's event: on with what the waiter waits for. Edges that come
 * while it waits for nothing (or for another side) are the link's ready,
 * or nothing: every operation tries before it waits. */
static void
sock_on_io(void *arg, short what)
{
    sock_t *s = arg;

    switch (s->op) {
    case OP_CONNECT:
        sock_on_connected(s, what);
        break;
    case OP_SEND:
        sock_on_writable(s, what);
        break;
    case OP_RECV:
        sock_on_readable(s, what);
        break;
    case OP_HANDSHAKE:
        sock_handshake_step(s);
        break;
    }
}

/* The waiter's timeout: a receive's leaves the socket open (what arrived
 * is the partial); any other closes it. */
static void
sock_on_timer(evutil_socket_t fd, short what, void *arg)
{
    sock_t *s = arg;
    lua_State *T = s->waiter ? s->waiter->L : NULL;
    ls_sockpool_link_t *l = s->link;
    (void)fd;
    (void)what;

    if (T == NULL)
        return;
    if (s->op != OP_RECV) {
        sock_shut(s);
        sock_wake_fail(s, "timeout");
        return;
    }
    lua_pushnil(T);
    lua_pushliteral(T, "timeout");
    lua_pushlstring(T, l->buf ? l->buf + l->off : "", l->len);
    l->off = l->len = 0;
    sock_wake(s, 3);
}

/* sock:send(data) -> bytes | nil, err; data: a string, a number or an
 * array of them (sent as one). */
static int
sock_send(lua_State *L)
{
    sock_t *s = sock_check(L);
    char err[128];
    size_t n;
    int t = lua_type(L, 2);

    if (t == LUA_TTABLE) {
        luaL_Buffer b;
        lua_Integer k = (lua_Integer)lua_rawlen(L, 2);
        luaL_buffinit(L, &b);
        for (lua_Integer i = 1; i <= k; i++) {
            int et = lua_rawgeti(L, 2, i);
            if (et != LUA_TSTRING && et != LUA_TNUMBER)
                return luaL_error(L, "bad argument #1 to 'send' (element %d "
                                  "is a %s, a string expected)", (int)i,
                                  lua_typename(L, et));
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, 2);
    } else if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        return luaL_typeerror(L, 2, "string or array of strings");
    }
    ls_co_check(L, "sock:send");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    if (s->state != S_CONNECTED)
        return sock_fail(L, s->state == S_NEW ? "not connected" : "closed");
    s->sp = lua_tolstring(L, 2, &n);
    s->slen = n;
    s->soff = 0;
    switch (sock_write(s, err, sizeof(err))) {
    case 1:
        s->sp = NULL;
        lua_pushinteger(L, (lua_Integer)n);
        return 1;
    case -1:
        s->sp = NULL;
        return sock_fail(L, err);
    }
    lua_pushvalue(L, 2);
    s->sref = luaL_ref(L, LUA_REGISTRYINDEX);
    sock_arm(s, s->tmo[T_SEND]);
    return sock_wait(L, s, OP_SEND);
}

/* ---- receive ----------------------------------------------------------- */

/* What the receive in progress asks for, if the buffer has it: pushes the
 * result on T and returns how many values; 0 when more is needed. eof:
 * nothing more will come. */
static int
sock_take(sock_t *s, lua_State *T, int eof)
{
    ls_sockpool_link_t *l = s->link;
    const char *p = l->buf ? l->buf + l->off : "", *e;
    size_t n;

    switch (s->rx) {
    case RX_LINE:
        e = l->len ? memchr(p, '\n', l->len) : NULL;
        if (e != NULL) {
            n = (size_t)(e - p);
            lua_pushlstring(T, p, n > 0 && p[n - 1] == '\r' ? n - 1 : n);
            l->off += n + 1;
            l->len -= n + 1;
            return 1;
        }
        break;
    case RX_N:
        if (l->len >= s->rn) {
            lua_pushlstring(T, p, s->rn);
            l->off += s->rn;
            l->len -= s->rn;
            return 1;
        }
        break;
    case RX_UNTIL:
        e = l->len >= s->plen ? memmem(p, l->len, s->pat, s->plen) : NULL;
        if (e != NULL) {
            n = (size_t)(e - p);
            lua_pushlstring(T, p, n);
            l->off += n + s->plen;
            l->len -= n + s->plen;
            return 1;
        }
        break;
    case RX_ALL:
        if (eof) {
            lua_pushlstring(T, p, l->len);
            l->off = l->len = 0;
            return 1;
        }
        return 0;
    }
    if ((s->rx == RX_LINE || s->rx == RX_UNTIL) && l->len > SOCK_LINE_MAX) {
        lua_pushnil(T);
        lua_pushfstring(T, "line too long (more than %d bytes without %s)",
                        SOCK_LINE_MAX, s->rx == RX_LINE ? "a newline"
                                                        : "the pattern");
        lua_pushlstring(T, p, l->len);
        sock_shut(s); /* no way back into step with the stream */
        return 3;
    }
    if (eof) {
        lua_pushnil(T);
        lua_pushliteral(T, "closed");
        lua_pushlstring(T, p, l->len);
        sock_shut(s);
        return 3;
    }
    return 0;
}

/* Read what the socket has. 1: read some; 0: nothing now; -1: the peer
 * closed (or a read error: err). A plain socket is not asked while not
 * ready: its last read came back short (no FIN in), and no edge came
 * since. */
static int
sock_fill(sock_t *s, char *err, size_t errlen)
{
    ls_sockpool_link_t *l = s->link;
    size_t want;
    ssize_t n;

    if (l->ssl == NULL && !l->ready)
        return 0;
    if (l->off > 0 && l->len == 0)
        l->off = 0;
    if (l->cap - l->off - l->len < SOCK_READ) {
        if (l->off > 0) {
            memmove(l->buf, l->buf + l->off, l->len);
            l->off = 0;
        }
        if (l->cap - l->len < SOCK_READ) {
            size_t cap = l->cap ? l->cap * 2 : LS_SOCKPOOL_BUF;
            char *b;
            while (cap - l->len < SOCK_READ)
                cap *= 2;
            if ((b = realloc(l->buf, cap)) == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            l->buf = b;
            l->cap = cap;
        }
    }
    want = l->cap - l->off - l->len;
    do {
        n = l->ssl ? ls_tls_sread(l->ssl, l->buf + l->off + l->len, want)
                   : read(l->fd, l->buf + l->off + l->len, want);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        l->len += (size_t)n;
        if ((size_t)n < want && !l->rdhup)
            l->ready = 0; /* drained: the next arrival is an edge */
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        l->ready = 0;
        return 0;
    }
    if (n < 0 && errno != ECONNRESET)
        sock_errstr(errno, err, errlen);
    else
        snprintf(err, errlen, "closed");
    return -1;
}

/* Satisfy the receive from the buffer and the socket; results on T, or 0
 * when it must wait for more. */
static int
sock_resume_recv(sock_t *s, lua_State *T)
{
    char err[128];
    int r;

    for (;;) {
        if ((r = sock_take(s, T, 0)) > 0)
            return r;
        switch (sock_fill(s, err, sizeof(err))) {
        case 1:
            continue;
        case 0:
            return 0;
        default:
            if (strcmp(err, "closed") == 0)
                return sock_take(s, T, 1);
            lua_pushnil(T);
            lua_pushstring(T, err);
            lua_pushlstring(T, s->link->buf ? s->link->buf + s->link->off
                                            : "", s->link->len);
            sock_shut(s);
            return 3;
        }
    }
}

/* The receive waiting: done, or wait on (the read timeout again after
 * each arrival, as before between two reads). */
static void
sock_on_readable(sock_t *s, short what)
{
    int r;

    if (!(what & EV_READ))
        return;
    if ((r = sock_resume_recv(s, s->waiter->L)) > 0) {
        sock_wake(s, r);
        return;
    }
    sock_arm(s, s->tmo[T_READ]);
}

/* Start the receive set up in s; returns its results or yields. */
static int
sock_recv(lua_State *L, sock_t *s)
{
    int r;

    if (s->state != S_CONNECTED) {
        sock_unpin(s, L);
        return sock_fail(L, s->state == S_NEW ? "not connected" : "closed");
    }
    if ((r = sock_resume_recv(s, L)) > 0) {
        sock_unpin(s, L);
        return r;
    }
    sock_arm(s, s->tmo[T_READ]);
    return sock_wait(L, s, OP_RECV);
}

/* sock:receive([pattern]) -> data | nil, err, partial */
static int
sock_receive(lua_State *L)
{
    sock_t *s = sock_check(L);

    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Integer n = luaL_checkinteger(L, 2);
        luaL_argcheck(L, n >= 0, 2, "a byte count must not be negative");
        s->rx = RX_N;
        s->rn = (size_t)n;
    } else {
        const char *p = luaL_optstring(L, 2, "*l");
        if (strcmp(p, "*l") == 0 || strcmp(p, "l") == 0)
            s->rx = RX_LINE;
        else if (strcmp(p, "*a") == 0 || strcmp(p, "a") == 0)
            s->rx = RX_ALL;
        else
            return luaL_argerror(L, 2, "\"*l\", \"*a\" or a byte count "
                                 "expected");
    }
    ls_co_check(L, "sock:receive");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    return sock_recv(L, s);
}

/* The iterator of sock:receiveuntil(pattern): upvalues sock, pattern. */
static int
sock_until_iter(lua_State *L)
{
    sock_t *s = sock_at(L, lua_upvalueindex(1));

    ls_co_check(L, "sock:receiveuntil");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    s->rx = RX_UNTIL;
    s->pat = lua_tolstring(L, lua_upvalueindex(2), &s->plen);
    lua_pushvalue(L, lua_upvalueindex(2));
    s->pref = luaL_ref(L, LUA_REGISTRYINDEX);
    return sock_recv(L, s);
}

/* sock:receiveuntil(pattern) -> iterator */
static int
sock_receiveuntil(lua_State *L)
{
    size_t n;

    sock_check(L);
    luaL_checklstring(L, 2, &n);
    luaL_argcheck(L, n > 0, 2, "the pattern must not be empty");
    lua_settop(L, 2);
    lua_pushcclosure(L, sock_until_iter, 2);
    return 1;
}

/* ---- close, the pool, timeouts ----------------------------------------- */

static int
sock_close(lua_State *L)
{
    sock_t *s = sock_check(L);

    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    if (s->state == S_CLOSED || s->state == S_NEW)
        return sock_fail(L, "closed");
    sock_shut(s);
    lua_pushinteger(L, 1);
    return 1;
}

/* sock:setkeepalive([idle_ms [, pool_size]]) -> 1 | nil, err */
static int
sock_setkeepalive(lua_State *L)
{
    sock_t *s = sock_check(L);
    lua_Integer idle = luaL_optinteger(L, 2, 60000);
    lua_Integer size = luaL_optinteger(L, 3, SOCK_POOL_SIZE);
    ls_sockpool_link_t *l = s->link;

    luaL_argcheck(L, idle >= 0, 2, "idle_ms must not be negative");
    luaL_argcheck(L, size > 0, 3, "pool_size must be positive");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    if (s->state != S_CONNECTED)
        return sock_fail(L, s->state == S_NEW ? "not connected" : "closed");
    if (l->len > 0) {
        sock_shut(s);
        return sock_fail(L, "unread data in buffer");
    }
    s->link = NULL;
    s->state = S_CLOSED;
    ls_sockpool_put(s->key, l, (long long)idle, (long long)size);
    lua_pushinteger(L, 1);
    return 1;
}

static int
sock_getreusedtimes(lua_State *L)
{
    sock_t *s = sock_check(L);

    if (s->state != S_CONNECTED)
        return sock_fail(L, s->state == S_NEW ? "not connected" : "closed");
    lua_pushinteger(L, s->link->reused);
    return 1;
}

/* ---- TLS --------------------------------------------------------------- */

/* sslhandshake's result on T: the session object (the connection's
 * session box, which fills once the server's ticket arrives), or true. */
static int
sock_ssl_result(sock_t *s, lua_State *T)
{
    if (!s->ssl_ret) {
        lua_pushboolean(T, 1);
        return 1;
    }
    ls_lua_tls_session_push(T, ls_tls_client_session(s->link->ssl));
    return 1;
}

/* Go on with the handshake: done, failed (the socket closes), or wait
 * again for the side OpenSSL wants (the link's event tells of both). */
static void
sock_handshake_step(sock_t *s)
{
    lua_State *T = s->waiter->L;
    char err[300];
    int r = ls_tls_client_step(s->link->ssl, err, sizeof(err));

    if (r == 1) {
        sock_wake(s, sock_ssl_result(s, T));
        return;
    }
    if (r < 0) {
        sock_shut(s);
        sock_wake_fail(s, err);
        return;
    }
    sock_arm(s, s->tmo[T_CONNECT]);
}

/* sock:sslhandshake([reused_session [, server_name [, verify]]])
 *   -> session | true | nil, err                  [-1..4, +1..2, -]
 * reused_session: a session from an earlier sslhandshake (resumed if the
 * server takes it), nil, or false (then the result is true). server_name:
 * SNI and, with verify, the name the certificate must match. verify:
 * check the chain against the system's CA store (and
 * sslTrustedCertificate). On a TLS connection from the pool: at once. */
static int
sock_sslhandshake(lua_State *L)
{
    sock_t *s = sock_check(L);
    ls_tls_session_t *reuse = NULL, *box;
    const char *name = luaL_optstring(L, 3, NULL);
    int verify = lua_toboolean(L, 4);
    ls_sockpool_link_t *l;
    char err[300];
    int r;

    if (!lua_isnoneornil(L, 2) && !(lua_isboolean(L, 2) &&
                                    !lua_toboolean(L, 2)))
        reuse = ls_lua_tls_session_check(L, 2);
    luaL_argcheck(L, name == NULL || (strlen(name) > 0 && strlen(name) < 256),
                  3, "bad server name");
    ls_co_check(L, "sock:sslhandshake");
    if (s->waiter != NULL)
        return sock_fail(L, "socket busy");
    if (s->state != S_CONNECTED)
        return sock_fail(L, s->state == S_NEW ? "not connected" : "closed");
    l = s->link;
    s->ssl_ret = !(lua_isboolean(L, 2) && !lua_toboolean(L, 2));
    if (l->ssl != NULL) /* already: from the pool, or a second call */
        return sock_ssl_result(s, L);
    l->ssl = ls_tls_client_new(l->fd, name, verify, reuse, &box, err,
                               sizeof(err));
    if (l->ssl == NULL) {
        sock_shut(s);
        return sock_fail(L, err);
    }
    r = ls_tls_client_step(l->ssl, err, sizeof(err));
    if (r == 1)
        return sock_ssl_result(s, L);
    if (r < 0) {
        sock_shut(s);
        return sock_fail(L, err);
    }
    sock_arm(s, s->tmo[T_CONNECT]);
    return sock_wait(L, s, OP_HANDSHAKE);
}

static double
sock_ms(lua_State *L, int idx)
{
    lua_Number ms = luaL_checknumber(L, idx);

    luaL_argcheck(L, ms == ms && ms >= 0 && ms < 1e12, idx,
                  "milliseconds from 0 (no timeout) up");
    return ms / 1000.0;
}

static int
sock_settimeout(lua_State *L)
{
    sock_t *s = sock_check(L);
    double t = sock_ms(L, 2);

    s->tmo[T_CONNECT] = s->tmo[T_SEND] = s->tmo[T_READ] = t;
    return 0;
}

static int
sock_settimeouts(lua_State *L)
{
    sock_t *s = sock_check(L);

    s->tmo[T_CONNECT] = sock_ms(L, 2);
    s->tmo[T_SEND] = sock_ms(L, 3);
    s->tmo[T_READ] = sock_ms(L, 4);
    return 0;
}

static int
sock_gc(lua_State *L)
{
    sock_t *s = sock_at(L, 1);

    sock_shut(s);
    sock_unpin(s, L);
    ls_sockpool_key_unref(s->key);
    s->key = NULL;
    return 0;
}

static int
sock_tostring(lua_State *L)
{
    sock_t *s = sock_check(L);
    static const char *const names[] = {"new", "resolving", "connecting",
                                        "connected", "closed"};

    lua_pushfstring(L, "luaserv.tcp (%s%s%s)", names[s->state],
                    s->key ? " " : "", ls_sockpool_key_name(s->key));
    return 1;
}

/* luaserv.tcp() -> sock; upvalue 1: the metatable (no lookup by name) */
static int
sock_new(lua_State *L)
{
    sock_t *s;

    if (ls_worker == NULL || ls_vm_of(L)->mode != LS_VM_WORKER)
        return luaL_error(L, "luaserv.tcp: sockets are for workers (a "
                          "callback, a timer or onWorkerStart), not the top "
                          "level of the script");
    s = lua_newuserdatauv(L, sizeof(*s), 0);
    memset(s, 0, sizeof(*s));
    s->tag = &sock_tag;
    s->sref = s->pref = LUA_NOREF;
    s->tmo[T_CONNECT] = s->tmo[T_SEND] = s->tmo[T_READ] = SOCK_TIMEOUT;
    evtimer_assign(&s->tmr, ls_worker->base, sock_on_timer, s);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setmetatable(L, -2);
    return 1;
}

static const luaL_Reg sock_methods[] = {
    {"connect", sock_connect},
    {"send", sock_send},
    {"receive", sock_receive},
    {"receiveuntil", sock_receiveuntil},
    {"close", sock_close},
    {"setkeepalive", sock_setkeepalive},
    {"getreusedtimes", sock_getreusedtimes},
    {"settimeout", sock_settimeout},
    {"settimeouts", sock_settimeouts},
    {"sslhandshake", sock_sslhandshake},
    {NULL, NULL},
};

void
ls_lua_socket_register(lua_State *L)
{
    if (luaL_newmetatable(L, SOCK_MT)) {                 /* t mt */
        luaL_newlib(L, sock_methods);                    /* t mt methods */
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, sock_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, sock_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    ls_lua_tls_register(L);                              /* t mt */
    lua_pushcclosure(L, sock_new, 1);                    /* t new */
    lua_setfield(L, -2, "tcp");
}

/* The worker ends: idle pooled connections close. */
void
ls_lua_socket_close_pool(void)
{
    ls_sockpool_close_all();
}
