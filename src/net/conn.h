/*
 * conn.h -- a client connection owned by C: socket, events, buffers, framing,
 * reference count. Lua sees a box that points here while the socket is open.
 */
#ifndef LS_CONN_H
#define LS_CONN_H

#include "proto.h"
#include "worker.h"

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
    int lua_ref;                   /* pins the Lua box while open */
    struct ls_conn_box *box;
    struct event rev, wev;
    ls_buf_t in;                   /* unframed input, allocated on demand */
    size_t scan;                   /* delimiter search resumes here */
    const ls_proto_t *proto;       /* srv->proto, until an upgrade switches */
    int lowat;                     /* SO_RCVLOWAT set (0: the default, 1) */
    void *pstate;                  /* the protocol's per-connection state */
    struct evbuffer *out;          /* allocated on first send */
    double active;                 /* last traffic (loop time), for idleTimeout */
    struct event *timer;           /* outbound: connect timeout */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;
} ls_conn_t;

/* The Lua userdata: a pointer that is cleared when the socket closes. tag
 * is the address of a static in lua_conn.c: what lua_conn.c checks to know
 * that a userdata is a conn (Lua code cannot forge a userdata's bytes), in
 * place of comparing metatables on every conn:send(). The 24 bytes take
 * the same 16-byte size class in the Lua allocator as 16 did. */
typedef struct ls_conn_box {
    const void *tag;
    ls_conn_t *c;
    uint64_t id;
} ls_conn_box_t;

ls_conn_t *ls_conn_new(ls_server_t *srv, int fd, const struct sockaddr *sa,
                       socklen_t salen);
void ls_conn_start(ls_conn_t *c);
struct evbuffer *ls_conn_outbuf(ls_conn_t *c);
int ls_conn_commit(ls_conn_t *c);
void ls_conn_refused(ls_conn_t *c);
char *ls_conn_stage(ls_conn_t *c, size_t n);
int ls_conn_staged(ls_conn_t *c, size_t n);
int ls_conn_push_callback(ls_conn_t *c, const char *name);
int ls_conn_call(ls_conn_t *c, const char *name, int nextra);
void ls_conn_emit(ls_conn_t *c, const char *name);
/* The next message for onMessage: 1 with *p, *n set; 0 when there is none
 * (ls_conn_emit_messages). */
typedef int (*ls_conn_next_fn)(ls_conn_t *c, void *ctx, const char **p,
                               size_t *n);
void ls_conn_emit_messages(ls_conn_t *c, ls_conn_next_fn next, void *ctx);
void ls_conn_fail(ls_conn_t *c, int code, const char *text);
void ls_conn_close(ls_conn_t *c);
void ls_conn_destroy(ls_conn_t *c);
void ls_conn_pause(ls_conn_t *c);
void ls_conn_resume(ls_conn_t *c);
void ls_conn_flush(ls_conn_t *c);
int ls_conn_input_waiting(ls_conn_t *c);
void ls_conn_incref(ls_conn_t *c);
void ls_conn_decref(ls_conn_t *c);
int ls_conn_connect(ls_conn_t *c, const struct sockaddr *sa, socklen_t len,
                    char *err, size_t errlen);
void ls_conn_connect_fail(ls_conn_t *c, const char *msg);
int ls_conn_peer(const ls_conn_t *c, char *ip, size_t iplen, int *port);
int ls_conn_local(const ls_conn_t *c, char *ip, size_t iplen, int *port);

/* Still taking messages: not paused, closing or closed. */
static inline int
ls_conn_receiving(const ls_conn_t *c)
{
    return !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED | LS_CONN_PAUSED));
}

/* Send results */
#define LS_SEND_OK 0
#define LS_SEND_CLOSED -1
#define LS_SEND_FULL -2

#endif
