/*
 * udp.c -- serving a udp:// listener: recvmmsg() in batches of
 * LS_UDP_BATCH, at most LS_UDP_BUDGET datagrams per wake-up (the socket is
 * level-triggered: what is left wakes the loop again after the other
 * events), each datagram handed to the layer above; datagrams over
 * maxPackageSize are dropped, counted and logged (rate-limited); answers go
 * out with one non-blocking sendto() each, which never waits.
 *
 * The socket is the master's (core/listener.c opens it, master.c keeps it
 * across generations, as it keeps the stream listeners'), so what is queued
 * in it during a reload is read by whichever generation reads next: the
 * old one stops reading when it is told to drain, the new one reads from
 * its start. The old one keeps its descriptor until it exits, so that a
 * callback that waits may still answer.
 */
#include "net/udp.h"
#include "core/log.h"
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ls_udp_t *ls_udp;

static ls_udp_t udp_state;
static const ls_udp_events_t *udp_events;

void
ls_udp_set_events(const ls_udp_events_t *ev)
{
    udp_events = ev;
}

/* "1.2.3.4" / "::1" and the port of an inet address; -1 for other kinds. */
int
ls_udp_addr(const struct sockaddr *sa, char *ip, size_t iplen, int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(in->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(in6->sin6_port);
        return 0;
    }
    snprintf(ip, iplen, "?");
    *port = 0;
    return -1;
}

static void
udp_drop(ls_server_t *srv, const struct sockaddr *sa, size_t len)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("udp datagrams over "
                                             "maxPackageSize", 0);
    char ip[INET6_ADDRSTRLEN];
    int port;

    ls_udp->dropped++;
    ls_udp_addr(sa, ip, sizeof(ip), &port);
    ls_log_limited(&lim, LS_LOG_WARN, 0, "udp: dropped a %zu-byte datagram "
                   "from %s:%d (over maxPackageSize, %zu bytes); %llu "
                   "dropped so far", len, ip, port,
                   srv->conf.max_package_size,
                   (unsigned long long)ls_udp->dropped);
}

static void
udp_on_read(evutil_socket_t fd, short what, void *arg)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("udp recvmmsg() errors", 0);
    ls_worker_t *w = arg;
    ls_server_t *srv = &w->srv;
    ls_udp_t *u = ls_udp;
    struct mmsghdr msgs[LS_UDP_BATCH];
    struct iovec iov[LS_UDP_BATCH];
    struct sockaddr_storage from[LS_UDP_BATCH];
    int total = 0;
    (void)what;

    while (total < LS_UDP_BUDGET) {
        unsigned want = LS_UDP_BATCH;
        int n;

        if (want > (unsigned)(LS_UDP_BUDGET - total))
            want = (unsigned)(LS_UDP_BUDGET - total);
        for (unsigned i = 0; i < want; i++) {
            iov[i].iov_base = u->bufs + (size_t)i * u->bufsize;
            iov[i].iov_len = u->bufsize;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_len = 0;
        }
        /* MSG_TRUNC: msg_len is the datagram's real length, so that one
         * larger than the buffer is told apart from one that fits. */
        n = recvmmsg(fd, msgs, want, MSG_DONTWAIT | MSG_TRUNC, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                ls_log_limited(&lim, LS_LOG_WARN, errno, "udp: recvmmsg() "
                               "failed");
            break;
        }
        for (int i = 0; i < n; i++) {
            const struct sockaddr *sa = (const struct sockaddr *)&from[i];
            size_t len = msgs[i].msg_len;

            if (len > srv->conf.max_package_size || len > u->bufsize) {
                udp_drop(srv, sa, len);
                continue;
            }
            ls_server_took_message(srv);
            srv->bytes_in += len;
            udp_events->message(srv, sa, msgs[i].msg_hdr.msg_namelen,
                                (const char *)iov[i].iov_base, len);
        }
        total += n;
        if ((unsigned)n < want)
            break; /* the socket is empty now */
    }
    ls_conn_flush_all(); /* what callbacks sent on stream connections */
}

static void
udp_pause_unused(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

int
ls_udp_listen(ls_worker_t *w)
{
    ls_server_t *srv = &w->srv;
    ls_udp_t *u = &udp_state;
    size_t max = srv->conf.max_package_size;

    /* The largest UDP payload is 65507 bytes over IPv4, 65527 over IPv6:
     * a buffer of 65535 holds any datagram. */
    u->bufsize = max < 65535 ? max : 65535;
    if (u->bufsize == 0)
        u->bufsize = 1;
    u->bufs = malloc(u->bufsize * LS_UDP_BATCH);
    if (u->bufs == NULL) {
        ls_log(LS_LOG_CRIT, 0, "udp: cannot allocate %zu bytes of receive "
               "buffers", u->bufsize * LS_UDP_BATCH);
        return -1;
    }
    u->fd = srv->fd;
    srv->fd = -1; /* ls_server_unlisten stops reading, does not close */
    ls_udp = u;
    /* ls_server_unlisten deletes these two: both must be set up. */
    evtimer_assign(&w->accept_pause_ev, w->base, udp_pause_unused, w);
    event_assign(&srv->accept_ev, w->base, u->fd, EV_READ | EV_PERSIST,
                 udp_on_read, w);
    event_add(&srv->accept_ev, NULL);
    srv->accepting = 1;
    return 0;
}

int
ls_udp_send(const struct sockaddr *sa, socklen_t salen, const char *p,
            size_t n)
{
    ls_server_t *srv = &ls_worker->srv;
    ssize_t r;

    do
        r = sendto(ls_udp->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL, sa, salen);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1; /* the app is told (peer:send's nil, err) */
    srv->msgs_out++;
    srv->bytes_out += (uint64_t)r;
    return 0;
}
