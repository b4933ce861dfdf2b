/*
 * stats.h -- one worker's figures in memory the master maps before forking
 * (MAP_SHARED): the worker copies its counters there about every half a
 * second, the master reads them for /metrics without asking the worker, so
 * a worker that is stuck still shows (its last figures, and how old they
 * are).
 */
#ifndef LS_STATS_H
#define LS_STATS_H

#include <stdint.h>

enum { LS_STAT_TMO_HEADER, LS_STAT_TMO_BODY, LS_STAT_TMO_SEND,
       LS_STAT_TMO_IDLE, LS_STAT_TMO_N };
/* TLS handshakes by outcome (net/tls.c) */
enum { LS_STAT_TLS_OK, LS_STAT_TLS_RESUMED, LS_STAT_TLS_FAILED,
       LS_STAT_TLS_TIMEOUT, LS_STAT_TLS_N };

typedef struct ls_stats {
    uint64_t seq;              /* odd while the worker writes */
    uint64_t updated_ms;       /* CLOCK_MONOTONIC ms of the last copy */
    uint64_t conns_open, conns_total;
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    uint64_t timeouts[LS_STAT_TMO_N];
    uint64_t emfile;
    uint64_t lua_errors;
    uint64_t lua_mem;          /* bytes */
    uint64_t waiting;          /* callbacks that wait now */
    uint64_t udp_dropped;      /* udp datagrams over maxPackageSize */
    uint64_t tls[LS_STAT_TLS_N];
    uint64_t mail_sent, mail_full, mail_received; /* luaserv.send/broadcast */
} ls_stats_t;

#endif
