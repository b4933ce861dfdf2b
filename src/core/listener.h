/*
 * listener.h -- listen addresses: parsing "text://host:port" and opening the
 * listening socket. No event loop here; the master opens, workers accept.
 */
#ifndef LS_LISTENER_H
#define LS_LISTENER_H

#include "core/luaserv.h"

#include <sys/socket.h>
#include <sys/un.h>

typedef struct ls_addr {
    char url[LS_URL_MAX];  /* as written by the app */
    char proto[16];        /* application protocol: "tcp", "text", "frame" */
    int tls;               /* https:// or wss://: the ssl option is required */
    int family;            /* AF_INET, AF_INET6 or AF_UNIX */
    char host[256];        /* inet: as written, without brackets */
    int port;              /* inet */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix */
} ls_addr_t;

#include <string.h>

/* udp://: a datagram socket, served by net/udp.c rather than accepted. */
static inline int
ls_addr_is_udp(const ls_addr_t *a)
{
    return strcmp(a->proto, "udp") == 0;
}

int ls_listener_parse(const char *url, ls_addr_t *a, char *err, size_t errlen);
int ls_listener_open(const ls_addr_t *a, int reuseport, int backlog, char *err,
                     size_t errlen);
void ls_listener_unlink(const ls_addr_t *a);

#endif
