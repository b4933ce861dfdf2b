/*
 * udp.c -- serving a udp:// listener: recvmmsg() in batches of
 * LS_UDP_BATCH, at most LS_UDP_BUDGET datagrams per wake-up (the socket is
 * level-triggered: what is left wakes the loop again after the other
 * events), each datagram handed to the layer above; datagrams over
 * maxPackageSize are dropped, counted and logged (rate-limited); answers go
 * out with one non-blocking sendmsg() each, which never waits. On a socket
 * bound to a wildcard address (0.0.0.0, ::) each datagram's local address
 * comes with it (IP_PKTINFO, IPV6_RECVPKTINFO) and its answer leaves from
 * that address: a client that wrote to 192.0.2.7 expects the answer from
 * 192.0.2.7, not from whichever address the route prefers (nginx's
 * "listen ... udp" does the same).
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
#include <netinet/ip.h>
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

/* Room for either kind of pktinfo. */
#define UDP_CTL_SIZE (CMSG_SPACE(sizeof(struct in6_pktinfo)) + \
                      CMSG_SPACE(sizeof(struct in_pktinfo)))

/* The datagram's local address from its control messages, if any. */
static void
udp_local(ls_udp_peer_t *peer, struct msghdr *h)
{
    peer->local_family = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm != NULL;
         cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            /* ipi_spec_dst: the address to answer from (for a broadcast,
             * the one the route gives, not the broadcast address) */
            peer->local_family = AF_INET;
            peer->local.v4 = pi.ipi_spec_dst;
        } else if (cm->cmsg_level == IPPROTO_IPV6 &&
                   cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr))
                continue;
            peer->local_family = AF_INET6;
            peer->local.v6 = pi.ipi6_addr;
            peer->local_ifindex = pi.ipi6_ifindex;
        }
    }
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
    ls_udp_peer_t from[LS_UDP_BATCH];
    char ctl[LS_UDP_BATCH][UDP_CTL_SIZE]
        __attribute__((aligned(__alignof__(struct cmsghdr))));
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
            msgs[i].msg_hdr.msg_name = &from[i].sa;
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i].sa);
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            if (u->pktinfo) {
                msgs[i].msg_hdr.msg_control = ctl[i];
                msgs[i].msg_hdr.msg_controllen = sizeof(ctl[i]);
            }
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
            ls_udp_peer_t *peer = &from[i];
            size_t len = msgs[i].msg_len;

            if (len > srv->conf.max_package_size || len > u->bufsize) {
                udp_drop(srv, (const struct sockaddr *)&peer->sa, len);
                continue;
            }
            peer->salen = msgs[i].msg_hdr.msg_namelen;
            peer->local_family = 0;
            if (u->pktinfo)
                udp_local(peer, &msgs[i].msg_hdr);
            ls_server_took_message(srv);
            srv->bytes_in += len;
            udp_events->message(srv, peer, (const char *)iov[i].iov_base,
                                len);
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

/* Bound to 0.0.0.0 or ::? Then ask for each datagram's local address
 * (both kinds on an IPv6 socket: IPv4 senders reach it as ::ffff:a.b.c.d
 * and come with IP_PKTINFO). */
static int
udp_wildcard(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int on = 1, any = 0;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        any = ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
              htonl(INADDR_ANY);
    else if (ss.ss_family == AF_INET6)
        any = IN6_IS_ADDR_UNSPECIFIED(
            &((struct sockaddr_in6 *)&ss)->sin6_addr);
    if (!any)
        return 0;
    if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on)) < 0 &&
        ss.ss_family == AF_INET) {
        ls_log(LS_LOG_WARN, errno, "udp: setsockopt(IP_PKTINFO) failed; "
               "answers leave from the address the route picks");
        return 0;
    }
    if (ss.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on)) < 0) {
        ls_log(LS_LOG_WARN, errno, "udp: setsockopt(IPV6_RECVPKTINFO) "
               "failed; answers leave from the address the route picks");
        return 0;
    }
    return 1;
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
    u->pktinfo = udp_wildcard(u->fd);
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
ls_udp_send(const ls_udp_peer_t *peer, const char *p, size_t n)
{
    ls_server_t *srv = &ls_worker->srv;
    char ctl[UDP_CTL_SIZE]
        __attribute__((aligned(__alignof__(struct cmsghdr))));
    struct iovec iov = {(void *)p, n};
    struct msghdr h;
    ssize_t r;

    memset(&h, 0, sizeof(h));
    h.msg_name = (void *)&peer->sa;
    h.msg_namelen = peer->salen;
    h.msg_iov = &iov;
    h.msg_iovlen = 1;
    if (peer->local_family != 0) {
        struct cmsghdr *cm;
        memset(ctl, 0, sizeof(ctl));
        h.msg_control = ctl;
        if (peer->local_family == AF_INET) {
            struct in_pktinfo pi;
            memset(&pi, 0, sizeof(pi));
            pi.ipi_spec_dst = peer->local.v4;
            h.msg_controllen = CMSG_SPACE(sizeof(pi));
            cm = CMSG_FIRSTHDR(&h);
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        } else {
            struct in6_pktinfo pi;
            memset(&pi, 0, sizeof(pi));
            pi.ipi6_addr = peer->local.v6;
            pi.ipi6_ifindex = peer->local_ifindex;
            h.msg_controllen = CMSG_SPACE(sizeof(pi));
            cm = CMSG_FIRSTHDR(&h);
            cm->cmsg_level = IPPROTO_IPV6;
            cm->cmsg_type = IPV6_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        }
    }
    do
        r = sendmsg(ls_udp->fd, &h, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1; /* the app is told (peer:send's nil, err) */
    srv->msgs_out++;
    srv->bytes_out += (uint64_t)r;
    return 0;
}
