/*
 * worker.h -- one worker process: an event loop, a Lua state, and the one
 * listener it serves.
 */
#ifndef LS_WORKER_H
#define LS_WORKER_H

#include "config.h"
#include "vm.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <time.h>

struct ls_conn;
struct ls_timer;

/* The listener as served by this worker. */
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
    int lua_ref;              /* the listener table (callbacks) */
    struct ls_conn *conns;    /* open connections, newest first */
    size_t nconns;
    uint64_t total_conns, msgs_in, msgs_out, bytes_in, bytes_out;
    struct ls_server *onext, *oprev; /* outbound: the worker's list */
} ls_server_t;

/* What the master hands a freshly forked worker. */
typedef struct ls_worker_args {
    const char *app;
    const ls_conf_t *conf;      /* settings */
    const ls_listen_conf_t *listener;
    int listen_fd;
    int id;
    int generation;
    int chan;                   /* worker end of the master channel */
    volatile uint64_t *heartbeat; /* watchdogTimeout: bumped by the loop */
} ls_worker_args_t;

/* Connections ended by a timeout, counted per worker for `status`:
 * 408s for headerTimeout / bodyTimeout, sendTimeout, idleTimeout. */
enum { LS_TMO_HEADER, LS_TMO_BODY, LS_TMO_SEND, LS_TMO_IDLE, LS_TMO_N };

typedef struct ls_worker {
    struct event_base *base;
    ls_vm_t *vm;
    ls_server_t srv;
    int id;
    int generation;
    double stop_timeout;
    int chan;
    struct event chan_ev;
    struct event *sigs[4];
    struct event stop_ev;
    int stopping;               /* 0, or LS_STOP_GRACEFUL / LS_STOP_FAST */
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
    struct event recycle_ev;    /* maxRequests / maxMemory check */
    double jitter;              /* 1.0 .. 1.25: workers do not recycle at once */
    int recycling;              /* asked the master for a replacement */
    struct event log_ev;        /* writes suppressed-lines summaries */
    struct {                    /* libevent common timeouts, by duration */
        double secs;
        const struct timeval *tv;
    } tmo[8];
    volatile uint64_t *heartbeat; /* shared with the master; may be NULL */
    struct event heartbeat_ev;
    uint64_t timeouts[LS_TMO_N]; /* by LS_TMO_*, for status */
} ls_worker_t;

enum { LS_STOP_GRACEFUL = 1, LS_STOP_FAST = 2 };

extern ls_worker_t *ls_worker; /* this process's worker; NULL elsewhere */

void ls_worker_main(const ls_worker_args_t *args) __attribute__((noreturn));
void ls_worker_flush(void);
void ls_worker_conn_closed(ls_worker_t *w);
double ls_worker_time(void);
const struct timeval *ls_worker_timeout(double secs);
void ls_worker_os_exit(ls_worker_t *w, int code);

#endif
