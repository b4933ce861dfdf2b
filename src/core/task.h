/*
 * task.h -- the task queue between workers and task workers
 * (luaserv.task / luaserv.onTask).
 *
 * The master makes, before it forks, one unix datagram socketpair (the
 * queue: every worker sends tasks into one end, every task worker takes
 * them from the other, each task reaching exactly one of them) and a small
 * shared region: the count of tasks waiting (bounded by taskQueue) and a
 * cell per task worker naming the task it runs, so that the master can fail
 * that task when the task worker dies. Results go back to the process that
 * asked, by pid, to a datagram socket it binds in the abstract namespace.
 */
#ifndef LS_TASK_H
#define LS_TASK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LS_TASK_MAX ((size_t)1 << 20)   /* bytes of a task or a result */
#define LS_TASK_CELLS 1024              /* task workers alive at once */

enum { LS_TASK_OK, LS_TASK_FAILED, LS_TASK_DIED };

typedef struct ls_task_cell {
    volatile uint32_t busy;  /* running the task below */
    volatile int32_t pid;    /* who asked */
    volatile uint64_t reqid;
} ls_task_cell_t;

/* Master: the queue and region (once), and the queue's bound (each
 * generation). -1 with err. */
int ls_task_setup(int limit, char *err, size_t errlen);
int ls_task_ready(void);                 /* the queue exists */
/* Tasks waiting for a task worker now, and the bound (lock-free). */
void ls_task_depth(unsigned *waiting, unsigned *limit);
/* Master: a cell for a task worker (index + 1), or 0; give it back. */
int ls_task_cell_take(void);
void ls_task_cell_drop(int cell);
ls_task_cell_t *ls_task_cell(int cell);  /* NULL for 0 */
/* Master: the task worker of cell died; fail its task if it ran one.
 * Returns 1 if it did. */
int ls_task_orphan(int cell);

/* Worker: queue a task (pid = this process): 0, or -1 with errno
 * (EAGAIN: the queue is full). */
int ls_task_submit(uint64_t reqid, const void *data, size_t len);
/* Task worker: the queue's receiving end; take one task (buf of
 * LS_TASK_MAX bytes): its length, or -1 with errno (EAGAIN: none). */
int ls_task_queue_fd(void);
ssize_t ls_task_take(pid_t *pid, uint64_t *reqid, char *buf);
/* A result (or failure text) to process pid; waits up to wait_ms for room
 * in its queue. 0, or -1 with errno (ECONNREFUSED: it is gone). */
int ls_task_reply(pid_t pid, uint64_t reqid, int status, const void *data,
                  size_t len, int wait_ms);
/* Worker: this process's result socket (bound on first use), or -1. */
int ls_task_reply_fd(void);
ssize_t ls_task_reply_recv(uint64_t *reqid, int *status, char *buf);

#endif
