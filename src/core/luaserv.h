/*
 * luaserv.h -- limits and small types shared by every layer.
 */
#ifndef LUASERV_H
#define LUASERV_H

#include <stddef.h>
#include <stdint.h>

#define LS_ERRLEN 1024        /* size of the char err[] buffers */
#define LS_NAME_MAX 64        /* listener and app names, with the NUL */
#define LS_URL_MAX 512        /* listen addresses, with the NUL */
#define LS_READ_SIZE 65536    /* bytes asked of one read() */
#define LS_STAGE_SIZE 65536   /* a batch's replies gathered (conn.c) */
#define LS_MAX_WORKERS 1024   /* per listener */

/* Exit codes of the command line (CONTRACT section 1). */
#define LS_EXIT_OK 0
#define LS_EXIT_BROKEN 1   /* the app or its configuration is broken */
#define LS_EXIT_USAGE 2
#define LS_EXIT_NOTRUNNING 3

/*
 * Exit codes of a worker process, read by the master. A worker that exits
 * with LS_WEXIT_STARTUP never became ready (script or onWorkerStart failed).
 */
#define LS_WEXIT_OK 0
#define LS_WEXIT_STARTUP 70

/* How a worker stops (the master asks, the worker does it). */
enum { LS_STOP_GRACEFUL = 1, LS_STOP_FAST = 2 };

double ls_now(void); /* monotonic seconds, in log.c */

#endif
