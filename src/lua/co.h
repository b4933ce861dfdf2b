/*
 * co.h -- every callback runs in a coroutine from a per-worker pool, so that
 * it may wait (luaserv.sleep, cosockets) while the worker serves others.
 */
#ifndef LS_CO_H
#define LS_CO_H

#include "net/conn.h"

#include <lua.h>

/* A waiting callback holds its connection's input: no further message of
 * that connection is delivered until it is done (stream protocols). */
#define LS_CO_HOLD 1
/* It answers an HTTP request: an error after it waited is answered 500. */
#define LS_CO_HTTP 2
/* It runs for a client without a connection (a udp datagram): its errors
 * are rate-limited as a connection's are. */
#define LS_CO_CLIENT 4

typedef struct ls_co {
    lua_State *L;               /* the coroutine */
    int ref;                    /* anchors it in the registry */
    int flags;                  /* LS_CO_* */
    const char *what;           /* for its error lines: "onMessage" */
    ls_conn_t *c;               /* the connection it runs for, or NULL */
    uint64_t conn_id;
    struct event timer;         /* luaserv.sleep */
    int timer_set;
    int *done;                  /* set to 1 (ok) or -1 (failed) when a
                                   callback that waited is done; or NULL */
    struct ls_co *next;         /* the pool's free list, or the waiting */
    struct ls_co *prev;         /* the waiting list */
} ls_co_t;

/* A coroutine to run a callback in: push the function and its arguments
 * on co->L, then ls_co_start. ls_co_put gives back one not started. */
ls_co_t *ls_co_get(void);
void ls_co_put(ls_co_t *co);
int ls_co_start(ls_co_t *co, int nargs, const char *what, ls_conn_t *c,
                int flags);

/* Go on with a waiting coroutine; nargs values pushed on co->L become the
 * results of what it waited in. */
void ls_co_resume(ls_co_t *co, int nargs);

/* The coroutine L is, if it is one of ours and running now; else NULL (the
 * main thread, or a coroutine the app made itself). */
ls_co_t *ls_co_running(lua_State *L);
/* For a C function that is about to wait: the running ls_co_t, or raise
 * "<what>: cannot wait here (...)". */
ls_co_t *ls_co_check(lua_State *L, const char *what);

/* Coroutines waiting now (a stop lets them finish). */
int ls_co_waiting(void);

void ls_co_register(lua_State *L); /* luaserv.sleep */

#endif
