/*
 * udp.h -- a udp:// listener as a worker serves it: datagrams read in
 * batches from the socket the master opened, handed one by one to the
 * layer above through ls_udp_events_t, and answers sent back on the same
 * socket. There are no connections: each datagram stands alone.
 */
#ifndef LS_UDP_H
#define LS_UDP_H

#include "net/loop.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Datagrams asked of one recvmmsg(), and read per wake-up at most, so that
 * a busy socket cannot keep the loop from its other events. */
#define LS_UDP_BATCH 16
#define LS_UDP_BUDGET 64

/* Who sent a datagram, and (on a socket bound to a wildcard address) to
 * which of this host's addresses: the answer leaves from that one, as the
 * sender expects, not from whichever the route would pick. */
typedef struct ls_udp_peer {
    struct sockaddr_storage sa;
    socklen_t salen;
    int local_family;       /* AF_INET, AF_INET6, or 0: none known */
    unsigned local_ifindex; /* IPv6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } local;
} ls_udp_peer_t;

typedef struct ls_udp_events {
    /* One datagram from peer: the app's onMessage. */
    void (*message)(ls_server_t *srv, const ls_udp_peer_t *peer,
                    const char *p, size_t n);
} ls_udp_events_t;

typedef struct ls_udp {
    int fd;                 /* the master's socket; kept until the exit */
    size_t bufsize;         /* bytes per datagram buffer */
    char *bufs;             /* LS_UDP_BATCH buffers */
    uint64_t dropped;       /* over maxPackageSize */
    int pktinfo;            /* wildcard address: learn each local one */
} ls_udp_t;

extern ls_udp_t *ls_udp;    /* this worker's, or NULL: not a udp worker */

void ls_udp_set_events(const ls_udp_events_t *ev);
/* Serve srv (whose fd is the datagram socket): read events on
 * srv->accept_ev, so that ls_server_unlisten stops the reading; the socket
 * itself stays open for the answers of callbacks that wait. */
int ls_udp_listen(ls_worker_t *w);
/* "1.2.3.4" or "::1", and the port, of an inet address; -1 otherwise. */
int ls_udp_addr(const struct sockaddr *sa, char *ip, size_t iplen, int *port);
/* One datagram to peer, from the local address it wrote to if known: 0, or
 * -1 with errno (EAGAIN: it would block). */
int ls_udp_send(const ls_udp_peer_t *peer, const char *p, size_t n);

#endif
