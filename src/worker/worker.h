/*
 * worker.h -- one worker process: an event loop (net/loop.h), a Lua state
 * (lua/vm.h), and the one listener it serves, wired together here.
 */
#ifndef LS_WORKER_H
#define LS_WORKER_H

#include "core/config.h"

#include <stdint.h>

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
    struct ls_stats *stats;     /* metrics: this worker's cell, or NULL */
    struct ls_task_cell *task_cell; /* a task worker's (listener NULL) */
} ls_worker_args_t;

void ls_worker_main(const ls_worker_args_t *args) __attribute__((noreturn));
/* A task worker (worker/task_worker.c): runs luaserv.onTask. */
void ls_task_worker_main(const ls_worker_args_t *args)
    __attribute__((noreturn));
/* user and group settings, when started as root (exits if they fail). */
void ls_worker_drop_privileges(const ls_conf_t *conf);

#endif
