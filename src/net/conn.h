/*
 * conn.h -- a client connection owned by C: socket, events, buffers, framing,
 * reference count. The layer above (Lua) keeps a handle of its own for each
 * connection and hears of what happens through ls_conn_events_t.
 */
#ifndef LS_CONN_H
#define LS_CONN_H

#include "net/loop.h"
#include "net/proto.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

enum {
    LS_CONN_CLOSING = 1 << 0,   /* close once the output is written */
    LS_CONN_CLOSED = 1 << 1,    /* socket gone, onClose fired */
    LS_CONN_FLUSHQ = 1 << 2,    /* on the worker's flush list */
    LS_CONN_WARMED = 1 << 3,    /* write event added */
    LS_CONN_FULL = 1 << 4,      /* send buffer limit hit, not yet drained */
    LS_CONN_PAUSED = 1 << 5,    /* pauseRecv() */
    LS_CONN_READING = 1 << 6,   /* reading: read event added (or about to be) */
    LS_CONN_CONNECTING = 1 << 7, /* outbound, not connected yet */
    LS_CONN_OUTBOUND = 1 << 8,  /* made by luaserv.connect; owns its srv */
    LS_CONN_RESUMED = 1 << 9,   /* offer buffered input before reading */
    LS_CONN_IDLED = 1 << 10,    /* idleTimeout acted on it (counted once) */
    LS_CONN_WAITING = 1 << 11,  /* the app's callback for it waits: held */
    LS_CONN_TLS_LEAN = 1 << 12, /* TLS buffers given back (net/tls.c) */
};

/* onError codes, exported to Lua as luaserv.errors. */
enum {
    LS_ERR_PACKAGE_TOO_BIG = 1,
    LS_ERR_BAD_INPUT = 2,
    LS_ERR_SEND_FAIL = 3,
    LS_ERR_CONNECT_FAIL = 4,
    LS_ERR_TIMEOUT = 5,         /* headerTimeout, bodyTimeout, sendTimeout */
};

typedef struct ls_buf {
    char *data;
    size_t off, len, cap;
} ls_buf_t;

typedef struct ls_conn {
    struct ls_conn *next, *prev;   /* server's list */
    struct ls_conn *flush_next;    /* worker's flush list */
    ls_server_t *srv;
    uint64_t id;
    int fd;
    unsigned flags;
    int refs;
    int lua_ref;                   /* the Lua layer's: pins its box */
    void *box;                     /* the Lua layer's box while open */
    struct event rev, wev;
    ls_buf_t in;                   /* unframed input, allocated on demand */
    size_t scan;                   /* delimiter search resumes here */
    const ls_proto_t *proto;       /* srv->proto, until an upgrade switches */
    void *pstate;                  /* the protocol's per-connection state */
    struct evbuffer *out;          /* allocated on first send */
    double active;                 /* last traffic (loop time), for idleTimeout */
    double born;                   /* accepted or connected (loop time) */
    uint64_t bytes_in, bytes_out;  /* for `luaserv APP connections` */
    struct event *timer;           /* outbound: connect timeout */
    struct ssl_st *tls;            /* TLS (net/tls.c), or NULL: plain */
    const struct ls_conn_io *io;   /* the transport if not the plain
                                      socket (set with tls), or NULL */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
    /* after peer (4-aligned, 28 bytes): in the middle it cost 8 bytes of
     * padding, enough to put the struct in the next malloc size class */
    int lowat;                     /* SO_RCVLOWAT set (0: the default, 1) */
} ls_conn_t;

/*
 * A transport over the socket (TLS: net/tls.c sets c->io once its
 * handshake is done): conn.c reads, writes and ends a connection through
 * it instead of read(2) / write(2).
 */
typedef struct ls_conn_io {
    ssize_t (*read)(ls_conn_t *c, char *p, size_t n);
    ssize_t (*write)(ls_conn_t *c, const char *p, size_t n);
    int (*write_buffer)(ls_conn_t *c, struct evbuffer *b);
    int (*pending)(const ls_conn_t *c);  /* bytes read ahead, not yet taken */
    void (*shutdown)(ls_conn_t *c);      /* say goodbye (close_notify) */
    void (*release)(ls_conn_t *c);       /* free its state; c->io = NULL */
} ls_conn_io_t;

ls_conn_t *ls_conn_new(ls_server_t *srv, int fd, const struct sockaddr *sa,
                       socklen_t salen);
void ls_conn_start(ls_conn_t *c);
struct evbuffer *ls_conn_outbuf(ls_conn_t *c);
int ls_conn_commit(ls_conn_t *c);
void ls_conn_refused(ls_conn_t *c);
char *ls_conn_stage(ls_conn_t *c, size_t n);
int ls_conn_staged(ls_conn_t *c, size_t n);
void ls_conn_stage_add(ls_conn_t *c, size_t n);
ls_conn_t *ls_conn_stage_begin(ls_conn_t *c);
void ls_conn_stage_end(ls_conn_t *c, ls_conn_t *outer);
void ls_conn_stage_write(ls_conn_t *c);

/* Closing or closed: nothing more may be queued. */
static inline int
ls_conn_stopped(const ls_conn_t *c)
{
    return (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)) != 0;
}
/* The next message for onMessage: 1 with *p, *n set; 0 when there is none
 * (ls_conn_emit_messages). */
typedef int (*ls_conn_next_fn)(ls_conn_t *c, void *ctx, const char **p,
                               size_t *n);

/*
 * What the connection and protocol layers tell the app, and the only way
 * they reach it (as Redis's connection layer calls its handlers through
 * ConnectionType): the Lua layer implements these (lua/lua_events.c) and
 * the worker installs them once, before the first connection. Each returns
 * LS_EV_OK, LS_EV_NONE (the app has no such callback), LS_EV_ERROR (the
 * callback raised; the Lua layer has logged it) or LS_EV_WAIT (it waits,
 * and goes on later by itself: a coroutine). None of them closes the
 * connection: what an error means is the caller's to decide (CONTRACT
 * section 6: for most, this connection closes). The connection may be
 * closed or paused on return: callers check its flags.
 */
enum { LS_EV_OK = 0, LS_EV_NONE = 1, LS_EV_WAIT = 2, LS_EV_ERROR = -1 };

typedef struct ls_conn_events {
    /* A new connection: the app's handle of it. -1: out of memory. */
    int (*open)(ls_conn_t *c);
    /* onConnect(conn) */
    int (*connect)(ls_conn_t *c);
    /* onMessage(conn, msg) for every message next() yields, under one
     * protected call (a batch of messages read at once). */
    int (*messages)(ls_conn_t *c, ls_conn_next_fn next, void *ctx);
    /* onMessage(conn, msg) for one message (WebSocket). */
    int (*message)(ls_conn_t *c, const char *p, size_t n);
    /* onError(conn, code, text); code is an LS_ERR_*. */
    int (*error)(ls_conn_t *c, int code, const char *text);
    /* onBufferFull(conn) (full) or onBufferDrain(conn). */
    int (*buffer)(ls_conn_t *c, int full);
    /* onDrain(conn): a graceful stop or reload begins and c's protocol has
     * no way of its own to end the connection (stream protocols). */
    int (*drain)(ls_conn_t *c);
    /* onClose(conn); then the app's handle says "closed". */
    void (*close)(ls_conn_t *c);
    /* An outbound connection's own server context goes. */
    void (*server_gone)(ls_server_t *srv);
    /* Has the app this callback for c's listener ("onWebSocketConnect")? */
    int (*handles)(ls_conn_t *c, const char *callback);
} ls_conn_events_t;

extern const ls_conn_events_t *ls_conn_events;
void ls_conn_set_events(const ls_conn_events_t *ev);

void ls_conn_emit_messages(ls_conn_t *c, ls_conn_next_fn next, void *ctx);
void ls_conn_report_error(ls_conn_t *c, int code, const char *text);
void ls_conn_report_full(ls_conn_t *c);
void ls_conn_report_drain(ls_conn_t *c);
int ls_conn_write(ls_conn_t *c, const char *p, size_t n);
void ls_conn_fail(ls_conn_t *c, int code, const char *text);
void ls_conn_close(ls_conn_t *c);
void ls_conn_destroy(ls_conn_t *c);
void ls_conn_pause(ls_conn_t *c);
void ls_conn_resume(ls_conn_t *c);
void ls_conn_hold(ls_conn_t *c);
void ls_conn_unhold(ls_conn_t *c);
void ls_conn_flush(ls_conn_t *c);
void ls_conn_flush_all(void);
int ls_conn_input_waiting(ls_conn_t *c);
int ls_conn_write_out(ls_conn_t *c);
void ls_conn_shutdown_write(ls_conn_t *c);
void ls_conn_incref(ls_conn_t *c);
void ls_conn_decref(ls_conn_t *c);
int ls_conn_connect(ls_conn_t *c, const struct sockaddr *sa, socklen_t len,
                    char *err, size_t errlen);
void ls_conn_connect_fail(ls_conn_t *c, const char *msg);
int ls_conn_peer(const ls_conn_t *c, char *ip, size_t iplen, int *port);
int ls_conn_local(const ls_conn_t *c, char *ip, size_t iplen, int *port);

/* Still taking messages: not paused, held, closing or closed. */
static inline int
ls_conn_receiving(const ls_conn_t *c)
{
    return !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED | LS_CONN_PAUSED |
                         LS_CONN_WAITING));
}

/* Send results */
#define LS_SEND_OK 0
#define LS_SEND_CLOSED -1
#define LS_SEND_FULL -2

#endif
