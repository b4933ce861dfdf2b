/*
 * master.h -- the master process: generations of workers, spawn/reap/respawn,
 * hot reload, stop, and the control socket.
 */
#ifndef LS_MASTER_H
#define LS_MASTER_H

#include "core/config.h"

typedef struct ls_master_opts {
    const char *app;       /* absolute path */
    int workers;           /* -w, 0: as declared */
    const char *log_file;  /* -l, NULL: settings, or stderr */
    const char *pid_file;  /* -p, NULL: settings, or the default */
    int daemonize;         /* -d */
} ls_master_opts_t;

int ls_master_run(const ls_master_opts_t *opts);

#endif
