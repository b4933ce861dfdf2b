/*
 * sockpool.h -- the connections under cosockets (lua/lua_socket.c) and the
 * worker's keep-alive pool of them.
 *
 * A link is one outbound connection from its connect to its close: the
 * descriptor, its TLS state, its read buffer and its one event. It belongs
 * to a socket (luaserv.tcp()) while in use and to its key's list in the
 * pool while idle; setkeepalive and the next connect to the same key hand
 * it over as it is, so a pooled request allocates nothing and registers
 * nothing with epoll.
 */
#ifndef LS_SOCKPOOL_H
#define LS_SOCKPOOL_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>

/* A link's read buffer: what it is made with, and what it keeps (a larger
 * one, grown for a long record, is freed when the link goes idle). */
#define LS_SOCKPOOL_BUF 32768

struct ssl_st;
typedef struct ls_sockpool_key ls_sockpool_key_t;

/* What a link's event means to its owner: what has EV_READ / EV_WRITE. */
typedef void (*ls_sockpool_io_fn)(void *owner, short what);

typedef struct ls_sockpool_link {
    int fd;
    struct ssl_st *ssl;         /* its TLS state, or NULL */
    /* EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, added once when
     * the link is made and deleted when it closes. Edge-triggered: an edge
     * that comes while nobody waits is remembered in ready, never lost. */
    struct event ev;
    int ready;                  /* readable: a plain read may find data */
    int rdhup;                  /* the peer's FIN is in: reads end in EOF */
    int reused;                 /* times taken from the pool */
    void *owner;                /* the socket using it; NULL while idle */
    ls_sockpool_io_fn io;       /* the owner's handler */
    char *buf;                  /* read and not yet taken: buf[off..+len] */
    size_t off, len, cap;
    ls_sockpool_key_t *key;     /* while idle: the key it is pooled under */
    struct ls_sockpool_link *next, *prev; /* the key's idle list */
} ls_sockpool_link_t;

/* A link for connected (or connecting) descriptor fd, its event added; it
 * is owner's, whose io gets its events. NULL when the event cannot be
 * added (logged); fd is still the caller's then. */
ls_sockpool_link_t *ls_sockpool_link_new(int fd, void *owner,
                                         ls_sockpool_io_fn io);
/* Close the connection (TLS close_notify, event, descriptor); the link
 * goes to a short free list, with its read buffer if that has the usual
 * LS_SOCKPOOL_BUF bytes. */
void ls_sockpool_link_close(ls_sockpool_link_t *l);

/* The key ("host:port", "unix:/path" or a pool name) of len bytes, made
 * if new: a reference the caller drops with ls_sockpool_key_unref. NULL
 * when out of memory. */
ls_sockpool_key_t *ls_sockpool_key(const char *name, size_t len);
void ls_sockpool_key_unref(ls_sockpool_key_t *k);
const char *ls_sockpool_key_name(const ls_sockpool_key_t *k);

/* The newest idle link of key k, now owner's; or NULL. */
ls_sockpool_link_t *ls_sockpool_take(ls_sockpool_key_t *k, void *owner,
                                     ls_sockpool_io_fn io);
/* Give link l (no unread input in its buffer) to the pool under k, for at
 * most idle_ms (0: no limit); the oldest of k goes if k already has size
 * idle. One that has input waiting or was closed by the peer is closed
 * instead. */
void ls_sockpool_put(ls_sockpool_key_t *k, ls_sockpool_link_t *l,
                     long long idle_ms, long long size);

/* The worker ends: idle links close. */
void ls_sockpool_close_all(void);

#endif
