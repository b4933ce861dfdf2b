/*
 * loop.h -- a worker's event loop and the listener it serves, as the
 * connection layer sees them: the libevent base, the loop's clock, shared
 * timeouts, the list of connections with output to write, and the counters
 * that `status` reports. The worker process (worker/worker.c) creates it;
 * everything below the Lua layer reaches it through ls_worker.
 */
#ifndef LS_LOOP_H
#define LS_LOOP_H

#include "core/config.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <time.h>

struct ls_conn;
struct ls_timer;
struct ls_vm;

/* The listener as served by this worker (or an outbound connection's own
 * context: luaserv.connect). */
typedef struct ls_server {
    ls_listen_conf_t conf;
    const struct ls_proto *proto;
    size_t read_size;         /* bytes asked of one read() */
    int fd;
    struct event accept_ev;
    int accepting;
    int full;                 /* maxConnections reached: not accepting */
    int nodelay_each;         /* set TCP_NODELAY per accepted socket */
    int nodelay_checked;      /* first accepted socket inherited it */
    struct event idle_ev;     /* idleTimeout sweep */
    int lua_ref;              /* the Lua layer's handle of the listener
                                 table (its callbacks); opaque here */
    struct ls_conn *conns;    /* open connections, newest first */
    size_t nconns;
    uint64_t total_conns, msgs_in, msgs_out, bytes_in, bytes_out;
    struct ls_server *onext, *oprev; /* outbound: the worker's list */
} ls_server_t;

/* Connections ended by a timeout, counted per worker for `status`:
 * 408s for headerTimeout / bodyTimeout, sendTimeout, idleTimeout. */
enum { LS_TMO_HEADER, LS_TMO_BODY, LS_TMO_SEND, LS_TMO_IDLE, LS_TMO_N };

typedef struct ls_worker {
    struct event_base *base;
    struct ls_vm *vm;           /* the Lua layer's state; opaque here */
    ls_server_t srv;
    int id;
    int generation;
    double stop_timeout;
    int chan;
    struct event chan_ev;
    struct event *sigs[4];
    struct event stop_ev;
    int stopping;               /* 0, or LS_STOP_GRACEFUL / LS_STOP_FAST */
    double stop_delay;          /* stopDelay: serve on before a stop */
    struct event delay_ev;
    int delaying;               /* in stopDelay: stopping, still accepting */
    int serving;                /* onWorkerStart done, accepting began */
    struct ls_conn *flush_head; /* connections with output to write */
    struct ls_timer *timers;    /* active Lua timers */
    ls_server_t *outbound;      /* luaserv.connect() contexts */
    struct evdns_base *dns;     /* created on first name lookup */
    char *rbuf;                 /* LS_READ_SIZE bytes, shared by all reads */
    /* conn.c: the replies of the connection whose messages are being
     * delivered gather here (LS_STAGE_SIZE bytes) */
    struct ls_conn *stage_conn;
    char *stage;
    size_t stage_len;
    uint64_t next_conn_id;
    int emfile_fd;              /* reserve descriptor for EMFILE */
    struct event accept_pause_ev;
    uint64_t emfile_count;      /* accept4() EMFILE/ENFILE, for status */
    uint64_t emfile_burst;      /* emfile_count when this burst began, + 1 */
    time_t started_wall;
    struct event recycle_ev;    /* maxMemory check, every second */
    double jitter;              /* 1.0 .. 1.25: maxMemory recycles spread out */
    int recycling;              /* asked the master for a replacement */
    struct event log_ev;        /* writes suppressed-lines summaries */
    struct {                    /* libevent common timeouts, by duration */
        double secs;
        const struct timeval *tv;
    } tmo[8];
    volatile uint64_t *heartbeat; /* shared with the master; may be NULL */
    struct ls_stats *stats;     /* metrics cell, shared; may be NULL */
    struct event stats_ev;
    struct event heartbeat_ev;
    uint64_t timeouts[LS_TMO_N]; /* by LS_TMO_*, for status */
    /* A connection of the listener closed (maxConnections, the end of a
     * stop): net/server.c's, set when it starts listening; may be NULL. */
    void (*conn_closed)(struct ls_worker *w);
    int app_waiting;            /* the app's callbacks that wait (lua/co.c) */
    /* os.exit(code) in a callback: what the worker process does about it
     * (worker.c sets it; the Lua layer calls it) */
    void (*os_exit)(struct ls_worker *w, int code);
    /* The listener's maxRequests-th message came in: worker.c asks the
     * master for a replacement. May be NULL. */
    void (*max_requests)(struct ls_worker *w);
} ls_worker_t;

extern ls_worker_t *ls_worker; /* this process's worker; NULL elsewhere */

/* One message (a line, frame, HTTP request, WebSocket message) taken in on
 * srv: counted, and the one that reaches maxRequests starts the recycle,
 * exactly there. Outbound contexts have no maxRequests. */
static inline void
ls_server_took_message(ls_server_t *srv)
{
    if (++srv->msgs_in == srv->conf.max_requests && ls_worker != NULL &&
        ls_worker->max_requests != NULL)
        ls_worker->max_requests(ls_worker);
}

double ls_loop_time(void);
const struct timeval *ls_loop_timeout(double secs);
struct evdns_base *ls_loop_dns(void);

#endif
