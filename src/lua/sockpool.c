/*
 * sockpool.c -- the connections under cosockets and the worker's
 * keep-alive pool of them (see sockpool.h).
 *
 * Each link registers its descriptor with epoll once, edge-triggered for
 * reading and writing, as nginx does, and keeps that event until it
 * closes: moving between a socket and the pool costs no epoll_ctl. Its
 * owner (lua_socket.c) tries a read or write before it waits, so an edge
 * that came while nobody waited is not needed; ready remembers a read edge
 * so that a receive after a short read does not ask the kernel first. A
 * short read drains the socket unless the peer's FIN is in already (then
 * the next read is the EOF, and no edge would tell): EV_CLOSED (epoll's
 * EPOLLRDHUP) says so, as nginx's pending_eof does.
 *
 * An idle link is watched by the same event: an edge then means that the
 * peer closed it or sent what nobody asked for (or, rarely, an edge left
 * over from when it was in use: recv(MSG_PEEK) tells which), and it goes;
 * so does one idle for longer than idle_ms (the event's timeout). Keys are
 * in a hash table, each with its idle links newest first, so a connect or
 * a setkeepalive finds its own among many in one step.
 */
#include "lua/sockpool.h"
#include "core/log.h"
#include "net/loop.h"
#include "net/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_FREE_MAX 16        /* closed links kept for the next connect */

struct ls_sockpool_key {
    uint32_t hash;
    int refs;                   /* sockets using it, and its idle links */
    long long idle;             /* idle links */
    ls_sockpool_link_t *head, *tail; /* newest first */
    struct ls_sockpool_key *chain;
    size_t len;
    char name[];
};

static ls_sockpool_key_t **pool_slots;
static size_t pool_nslots, pool_nkeys;
static ls_sockpool_link_t *pool_free; /* closed links, by next */
static int pool_nfree;

/* FNV-1a */
static uint32_t
pool_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    while (n-- > 0)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h;
}

/* ---- links ------------------------------------------------------------- */

/* Input waiting on l (or the peer's close, or an error): a one-byte peek.
 * Without any, l is not ready. */
static int
link_has_input(ls_sockpool_link_t *l)
{
    char c;
    ssize_t n;

    do {
        n = recv(l->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        l->ready = 0;
        return 0;
    }
    return 1;
}

static void pool_drop(ls_sockpool_link_t *l);

static void
link_on_event(evutil_socket_t fd, short what, void *arg)
{
    ls_sockpool_link_t *l = arg;
    (void)fd;

    if (what & EV_READ)
        l->ready = 1;
    if (what & EV_CLOSED)
        l->rdhup = 1;
    if (l->owner != NULL) {
        l->io(l->owner, what);
        return;
    }
    /* idle: too long, or the peer closed it or spoke out of turn */
    if ((what & EV_TIMEOUT) || ((what & EV_READ) && link_has_input(l)))
        pool_drop(l);
}

ls_sockpool_link_t *
ls_sockpool_link_new(int fd, void *owner, ls_sockpool_io_fn io)
{
    ls_sockpool_link_t *l = pool_free;

    if (l != NULL) {
        pool_free = l->next;
        pool_nfree--;
    } else if ((l = calloc(1, sizeof(*l))) == NULL) {
        ls_log(LS_LOG_ERROR, errno, "cosocket: out of memory for a "
               "connection");
        return NULL;
    }
    l->fd = fd;
    l->ssl = NULL;
    l->ready = 1; /* not known yet */
    l->rdhup = 0;
    l->reused = 0;
    l->owner = owner;
    l->io = io;
    l->off = l->len = 0;
    l->key = NULL;
    l->next = l->prev = NULL;
    event_assign(&l->ev, ls_worker->base, fd,
                 EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST,
                 link_on_event, l);
    if (event_add(&l->ev, NULL) < 0) {
        ls_log(LS_LOG_ERROR, errno, "cosocket: event_add(fd %d) failed", fd);
        l->fd = -1;
        ls_sockpool_link_close(l);
        return NULL;
    }
    return l;
}

void
ls_sockpool_link_close(ls_sockpool_link_t *l)
{
    if (l->fd >= 0) {
        event_del(&l->ev);
        close(l->fd);
    }
    ls_tls_client_close(l->ssl);
    l->ssl = NULL;
    l->fd = -1;
    l->owner = NULL;
    l->off = l->len = 0;
    if (l->cap != LS_SOCKPOOL_BUF) {
        free(l->buf);
        l->buf = NULL;
        l->cap = 0;
    }
    if (pool_nfree >= POOL_FREE_MAX) {
        free(l->buf);
        free(l);
        return;
    }
    l->next = pool_free;
    pool_free = l;
    pool_nfree++;
}

/* ---- keys -------------------------------------------------------------- */

static int
pool_grow(void)
{
    size_t n = pool_nslots ? pool_nslots * 2 : 64;
    ls_sockpool_key_t **slots = calloc(n, sizeof(*slots));

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < pool_nslots; i++) {
        ls_sockpool_key_t *k = pool_slots[i], *next;
        for (; k != NULL; k = next) {
            next = k->chain;
            k->chain = slots[k->hash & (n - 1)];
            slots[k->hash & (n - 1)] = k;
        }
    }
    free(pool_slots);
    pool_slots = slots;
    pool_nslots = n;
    return 0;
}

ls_sockpool_key_t *
ls_sockpool_key(const char *name, size_t len)
{
    uint32_t h = pool_hash(name, len);
    ls_sockpool_key_t *k;

    if (pool_nslots > 0)
        for (k = pool_slots[h & (pool_nslots - 1)]; k != NULL; k = k->chain)
            if (k->hash == h && k->len == len &&
                memcmp(k->name, name, len) == 0) {
                k->refs++;
                return k;
            }
    if (pool_nkeys >= pool_nslots && pool_grow() < 0)
        return NULL;
    if ((k = calloc(1, sizeof(*k) + len + 1)) == NULL)
        return NULL;
    k->hash = h;
    k->refs = 1;
    k->len = len;
    memcpy(k->name, name, len);
    k->chain = pool_slots[h & (pool_nslots - 1)];
    pool_slots[h & (pool_nslots - 1)] = k;
    pool_nkeys++;
    return k;
}

void
ls_sockpool_key_unref(ls_sockpool_key_t *k)
{
    ls_sockpool_key_t **pp;

    if (k == NULL || --k->refs > 0)
        return;
    for (pp = &pool_slots[k->hash & (pool_nslots - 1)]; *pp != k;
         pp = &(*pp)->chain)
        ;
    *pp = k->chain;
    pool_nkeys--;
    free(k);
}

const char *
ls_sockpool_key_name(const ls_sockpool_key_t *k)
{
    return k ? k->name : "";
}

/* ---- the pool ---------------------------------------------------------- */

/* l leaves its key's idle list (its key reference is the caller's now). */
static void
pool_unlink(ls_sockpool_link_t *l)
{
    ls_sockpool_key_t *k = l->key;

    if (l->prev)
        l->prev->next = l->next;
    else
        k->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        k->tail = l->prev;
    l->next = l->prev = NULL;
    l->key = NULL;
    k->idle--;
}

/* An idle link goes: closed, and its key unless still used. */
static void
pool_drop(ls_sockpool_link_t *l)
{
    ls_sockpool_key_t *k = l->key;

    pool_unlink(l);
    ls_sockpool_link_close(l);
    ls_sockpool_key_unref(k);
}

ls_sockpool_link_t *
ls_sockpool_take(ls_sockpool_key_t *k, void *owner, ls_sockpool_io_fn io)
{
    ls_sockpool_link_t *l = k->head;

    if (l == NULL)
        return NULL;
    pool_unlink(l);
    ls_sockpool_key_unref(k); /* the caller holds one too: k stays */
    event_remove_timer(&l->ev);
    l->owner = owner;
    l->io = io;
    l->reused++;
    return l;
}

void
ls_sockpool_put(ls_sockpool_key_t *k, ls_sockpool_link_t *l,
                long long idle_ms, long long size)
{
    /* an edge since the last short read (or TLS, whose reads do not keep
     * ready): input may be there, and no edge will come for it */
    if ((l->ready || l->ssl != NULL) && link_has_input(l)) {
        ls_sockpool_link_close(l);
        return;
    }
    while (k->idle >= size && k->tail != NULL)
        pool_drop(k->tail); /* the oldest of that key */
    if (l->cap != LS_SOCKPOOL_BUF) {
        free(l->buf);
        l->buf = NULL;
        l->cap = 0;
    }
    l->owner = NULL;
    l->off = l->len = 0;
    l->key = k;
    k->refs++;
    l->prev = NULL;
    l->next = k->head;
    if (k->head)
        k->head->prev = l;
    else
        k->tail = l;
    k->head = l;
    k->idle++;
    /* added already: this sets only the timeout, a common one of the
     * loop (the same idle_ms over and over: a queue, not the heap) */
    if (idle_ms > 0)
        event_add(&l->ev, ls_loop_timeout((double)idle_ms / 1000.0));
}

void
ls_sockpool_close_all(void)
{
    for (size_t i = 0; i < pool_nslots; i++) {
        ls_sockpool_key_t *k = pool_slots[i], *next;
        for (; k != NULL; k = next) {
            long long n = k->idle;
            next = k->chain;
            while (n-- > 0)
                pool_drop(k->head); /* the last may free k */
        }
    }
}
