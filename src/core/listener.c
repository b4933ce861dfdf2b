/*
 * listener.c -- parse listen addresses and open listening sockets, anet-style:
 * every failure fills err with the syscall and the address.
 */
#include "core/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Protocols the worker can frame today; the others are named so that an app
 * asking for one gets "not supported yet" rather than "unknown". */
static const char *proto_supported[] = {"tcp", "text", "frame", "http",
                                        "websocket", "ws", "udp", NULL};
static const char *proto_planned[] = {"ssl", NULL};

static int
in_list(const char *s, const char **list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

int
ls_listener_parse(const char *url, ls_addr_t *a, char *err, size_t errlen)
{
    const char *sep, *rest, *plus;
    char scheme[16];
    size_t slen;

    memset(a, 0, sizeof(*a));
    if (strlen(url) >= sizeof(a->url)) {
        snprintf(err, errlen, "listen address is too long");
        return -1;
    }
    snprintf(a->url, sizeof(a->url), "%s", url);
    sep = strstr(url, "://");
    if (sep == NULL || sep == url) {
        snprintf(err, errlen,
                 "bad listen address \"%s\" (expected scheme://host:port, "
                 "e.g. text://127.0.0.1:9000)", url);
        return -1;
    }
    slen = (size_t)(sep - url);
    if (slen >= sizeof(scheme)) {
        snprintf(err, errlen, "bad listen address \"%s\" (unknown scheme)",
                 url);
        return -1;
    }
    memcpy(scheme, url, slen);
    scheme[slen] = '\0';
    rest = sep + 3;

    /* "text+unix" names the protocol and the transport; plain "unix" is raw. */
    plus = strchr(scheme, '+');
    if (strcmp(scheme, "unix") == 0 ||
        (plus != NULL && strcmp(plus + 1, "unix") == 0)) {
        if (plus != NULL) {
            *(char *)plus = '\0';
            memcpy(a->proto, scheme, strlen(scheme) + 1);
        } else {
            snprintf(a->proto, sizeof(a->proto), "tcp");
        }
        a->family = AF_UNIX;
        if (*rest == '\0') {
            snprintf(err, errlen, "bad listen address \"%s\" (no socket path)",
                     url);
            return -1;
        }
        if (*rest != '/') {
            char cwd[4096];
            if (getcwd(cwd, sizeof(cwd)) == NULL ||
                strlen(cwd) + 1 + strlen(rest) >= sizeof(a->path)) {
                snprintf(err, errlen, "bad listen address \"%s\" (socket path "
                         "too long)", url);
                return -1;
            }
            size_t cl = strlen(cwd);
            memcpy(a->path, cwd, cl);
            a->path[cl] = '/';
            memcpy(a->path + cl + 1, rest, strlen(rest) + 1);
        } else if (strlen(rest) >= sizeof(a->path)) {
            snprintf(err, errlen, "bad listen address \"%s\" (socket path "
                     "longer than %zu bytes)", url, sizeof(a->path) - 1);
            return -1;
        } else {
            snprintf(a->path, sizeof(a->path), "%s", rest);
        }
    } else if (plus != NULL) {
        snprintf(err, errlen, "bad listen address \"%s\" (unknown transport "
                 "\"%s\"; only \"+unix\" exists)", url, plus + 1);
        return -1;
    } else {
        const char *colon;
        char *end;
        long port;

        memcpy(a->proto, scheme, strlen(scheme) + 1);
        /* https:// and wss:// are http:// and websocket:// with TLS */
        if (strcmp(scheme, "https") == 0 || strcmp(scheme, "wss") == 0) {
            snprintf(a->proto, sizeof(a->proto), "%s",
                     scheme[0] == 'h' ? "http" : "websocket");
            a->tls = 1;
        }
        if (*rest == '[') {
            const char *rb = strchr(rest, ']');
            if (rb == NULL || rb[1] != ':') {
                snprintf(err, errlen, "bad listen address \"%s\" (expected "
                         "[ipv6]:port)", url);
                return -1;
            }
            if ((size_t)(rb - rest - 1) >= sizeof(a->host))
                goto badhost;
            memcpy(a->host, rest + 1, (size_t)(rb - rest - 1));
            colon = rb + 1;
            a->family = AF_INET6;
        } else {
            colon = strrchr(rest, ':');
            if (colon == NULL || colon == rest) {
                snprintf(err, errlen, "bad listen address \"%s\" (expected "
                         "host:port)", url);
                return -1;
            }
            if ((size_t)(colon - rest) >= sizeof(a->host))
                goto badhost;
            memcpy(a->host, rest, (size_t)(colon - rest));
            a->family = AF_INET;
        }
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 ||
            port > 65535) {
            snprintf(err, errlen, "bad listen address \"%s\" (port must be "
                     "1..65535)", url);
            return -1;
        }
        a->port = (int)port;
    }

    if (a->family == AF_UNIX && ls_addr_is_udp(a)) {
        snprintf(err, errlen, "listen address \"%s\": udp is for host:port "
                 "addresses (udp://127.0.0.1:9000), not unix sockets", url);
        return -1;
    }
    if (in_list(a->proto, proto_planned)) {
        snprintf(err, errlen, "listen address \"%s\": protocol \"%s\" is not "
                 "supported yet", url, a->proto);
        return -1;
    }
    if (!in_list(a->proto, proto_supported)) {
        snprintf(err, errlen, "listen address \"%s\": unknown protocol \"%s\" "
                 "(known: tcp, text, frame, http, https, websocket, wss, udp, unix)", url, a->proto);
        return -1;
    }
    return 0;

badhost:
    snprintf(err, errlen, "bad listen address \"%s\" (host too long)", url);
    return -1;
}

/* A unix socket path left behind by a dead server may be reused; a live one
 * or a file that is not a socket may not. */
static int
listener_unix_stale(const ls_addr_t *a, char *err, size_t errlen)
{
    struct stat st;
    struct sockaddr_un sun;
    int fd, r;

    if (lstat(a->path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "bind(%s): path exists and is not a socket",
                 a->path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX) failed: %s", strerror(errno));
        return -1;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
    r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (r == 0) {
        snprintf(err, errlen, "bind(%s): a server is already listening there",
                 a->path);
        return -1;
    }
    unlink(a->path);
    return 0;
}

/*
 * Open, bind and listen. Returns the non-blocking, close-on-exec fd, or -1
 * with err set ("bind(127.0.0.1:80): Permission denied"). A udp:// address
 * gets a bound datagram socket (no listen), without SO_REUSEADDR: on Linux
 * that would let a second server bind the same UDP port and take a share
 * of its datagrams.
 */
int
ls_listener_open(const ls_addr_t *a, int reuseport, int backlog, char *err,
                 size_t errlen)
{
    int fd = -1, on = 1;
    int type = ls_addr_is_udp(a) ? SOCK_DGRAM : SOCK_STREAM;

    if (a->family == AF_UNIX) {
        struct sockaddr_un sun;
        if (listener_unix_stale(a, err, errlen) < 0)
            return -1;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket(AF_UNIX) failed: %s",
                     strerror(errno));
            return -1;
        }
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            snprintf(err, errlen, "bind(%s) failed: %s", a->path,
                     strerror(errno));
            goto fail;
        }
    } else {
        struct addrinfo hints, *res = NULL;
        char port[16];
        int rc;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = a->family == AF_INET6 ? AF_INET6 : AF_UNSPEC;
        hints.ai_socktype = type;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        snprintf(port, sizeof(port), "%d", a->port);
        rc = getaddrinfo(strcmp(a->host, "*") == 0 ? NULL : a->host, port,
                         &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "getaddrinfo(%s) failed: %s", a->host,
                     gai_strerror(rc));
            return -1;
        }
        fd = socket(res->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket() failed: %s", strerror(errno));
            freeaddrinfo(res);
            return -1;
        }
        if (type == SOCK_STREAM)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (reuseport &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) {
            snprintf(err, errlen, "setsockopt(SO_REUSEPORT) failed: %s",
                     strerror(errno));
            freeaddrinfo(res);
            goto fail;
        }
        if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
            snprintf(err, errlen, "bind(%s:%d) failed: %s", a->host, a->port,
                     strerror(errno));
            freeaddrinfo(res);
            goto fail;
        }
        freeaddrinfo(res);
    }
    if (type == SOCK_STREAM && listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen(%s) failed: %s", a->url,
                 strerror(errno));
        goto fail;
    }
    return fd;

fail:
    if (fd >= 0)
        close(fd);
    return -1;
}

void
ls_listener_unlink(const ls_addr_t *a)
{
    if (a->family == AF_UNIX)
        unlink(a->path);
}
