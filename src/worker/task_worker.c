/*
 * task_worker.c -- a task worker process: it loads the app as a worker does
 * (so luaserv.onTask is defined), serves no listener, and runs one task at a
 * time from the task queue (core/task.c), sending each result back to the
 * worker that asked. onTask runs in a coroutine, so it may wait
 * (luaserv.sleep, cosockets); the next task is taken once it is done.
 *
 * Before it runs a task it writes who asked into its cell, which the master
 * reads if this process dies: that task then fails with "task worker died".
 * SIGTERM ends it at once (the master fails the task it ran); SIGQUIT, a
 * reload or the master's end: it takes no more tasks, finishes the one it
 * runs, and exits.
 */
#include "worker/worker.h"
#include "core/log.h"
#include "core/task.h"
#include "http/http.h"
#include "lua/lua_core.h"
#include "lua/lua_events.h"
#include "lua/lua_mail.h"
#include "lua/lua_shdict.h"
#include "lua/lua_task.h"
#include "lua/vm.h"
#include "net/conn.h"
#include "net/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TASK_REPLY_WAIT_MS 5000

static struct {
    ls_worker_t *w;
    ls_task_cell_t *cell;
    struct event queue_ev;
    int queue_on;
    int busy;              /* a task runs */
    pid_t asker;
    uint64_t reqid;
    char *buf;             /* LS_TASK_MAX bytes */
    uint64_t taken, done, bytes_in, bytes_out;
} T;

static void
task_queue_arm(int on)
{
    if (on && !T.queue_on && !T.w->stopping)
        event_add(&T.queue_ev, NULL);
    else if (!on && T.queue_on)
        event_del(&T.queue_ev);
    T.queue_on = on && !T.w->stopping;
}

static void
task_on_queue(evutil_socket_t fd, short what, void *arg)
{
    ssize_t n;
    (void)fd;
    (void)what;
    (void)arg;

    if (T.busy || T.w->stopping)
        return;
    n = ls_task_take(&T.asker, &T.reqid, T.buf);
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            ls_log(LS_LOG_ERROR, errno, "recvmsg() of a task failed");
        return;
    }
    if (T.cell != NULL) {
        T.cell->pid = (int32_t)T.asker;
        T.cell->reqid = T.reqid;
        __atomic_store_n(&T.cell->busy, 1, __ATOMIC_RELEASE);
    }
    T.busy = 1;
    T.taken++;
    T.bytes_in += (uint64_t)n;
    task_queue_arm(0);
    ls_lua_task_run(T.w->vm, T.buf, (size_t)n);
    ls_conn_flush_all();
}

/* After each turn of the loop: send the result of a task that is done. */
static void
task_check_done(void)
{
    const char *res;
    size_t len;
    int status;

    if (!T.busy || !ls_lua_task_done(&status, &res, &len))
        return;
    if (ls_task_reply(T.asker, T.reqid, status, res, len,
                      TASK_REPLY_WAIT_MS) < 0 && errno != ECONNREFUSED &&
        errno != ENOENT)
        ls_log(LS_LOG_WARN, errno, "cannot send a task's result to pid %d",
               (int)T.asker);
    if (T.cell != NULL)
        __atomic_store_n(&T.cell->busy, 0, __ATOMIC_RELEASE);
    T.busy = 0;
    T.done++;
    T.bytes_out += len;
    task_queue_arm(1);
}

static void
task_stop(int how)
{
    if (T.w->stopping >= how)
        return;
    T.w->stopping = how;
    task_queue_arm(0);
    if (how == LS_STOP_FAST || !T.busy)
        event_base_loopbreak(T.w->base);
}

static void
task_on_signal(evutil_socket_t signo, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (signo == SIGTERM)
        task_stop(LS_STOP_FAST);
    else if (signo == SIGQUIT)
        task_stop(LS_STOP_GRACEFUL);
    else if (signo == SIGUSR2)
        ls_log_reopen();
}

static void
task_send(const char *msg, size_t len)
{
    if (send(T.w->chan, msg, len, MSG_NOSIGNAL) < 0)
        ls_log(LS_LOG_WARN, errno, "cannot reach the master");
}

/* The status columns of a worker: tasks taken as "total" and "msgs_in",
 * results as "msgs_out". */
static void
task_send_status(void)
{
    char buf[512], when[32];
    struct tm tm;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    localtime_r(&T.w->started_wall, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(buf, sizeof(buf),
                 "status %7d %9llu %10llu %10llu %12llu %12llu %9zu %9ld "
                 "%8d %8d %8d %8d %8d %s", T.busy,
                 (unsigned long long)T.taken, (unsigned long long)T.taken,
                 (unsigned long long)T.done, (unsigned long long)T.bytes_in,
                 (unsigned long long)T.bytes_out, T.w->vm->mem / 1024,
                 rss * (sysconf(_SC_PAGESIZE) / 1024), 0, 0, 0, 0, 0, when);
    if (n > 0)
        task_send(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
}

static void
task_on_chan(evutil_socket_t fd, short what, void *arg)
{
    char buf[512];
    ssize_t n;
    (void)what;
    (void)arg;

    n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) {
        buf[n] = '\0';
        if (strcmp(buf, "status") == 0)
            task_send_status();
        else if (strcmp(buf, "connections") == 0)
            task_send("conns ", 6);
        else if (strcmp(buf, "reload") == 0)
            task_stop(LS_STOP_GRACEFUL);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ls_log(LS_LOG_WARN, 0, "the master process is gone; stopping");
    event_del(&T.w->chan_ev);
    task_stop(LS_STOP_GRACEFUL);
}

static void
task_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    __atomic_add_fetch(T.w->heartbeat, 1, __ATOMIC_RELAXED);
}

void
ls_task_worker_main(const ls_worker_args_t *a)
{
    static ls_worker_t worker;
    static const int signos[] = {SIGTERM, SIGQUIT, SIGUSR2};
    ls_worker_t *w = &worker;
    char role[64], err[LS_ERRLEN * 8];
    struct event heartbeat_ev;

    ls_worker = w;
    memset(w, 0, sizeof(*w));
    T.w = w;
    T.cell = a->task_cell;
    w->id = a->id;
    w->generation = a->generation;
    w->chan = a->chan;
    w->stop_timeout = a->conf->stop_timeout;
    w->started_wall = time(NULL);
    w->emfile_fd = -1;
    snprintf(role, sizeof(role), "task worker %d", a->id);
    ls_log_set_role(role);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    ls_worker_drop_privileges(a->conf);

    w->base = event_base_new();
    w->rbuf = malloc(LS_READ_SIZE);
    w->stage = malloc(LS_STAGE_SIZE);
    T.buf = malloc(LS_TASK_MAX);
    if (w->base == NULL || w->rbuf == NULL || w->stage == NULL ||
        T.buf == NULL) {
        ls_log(LS_LOG_CRIT, 0, "cannot create the event loop");
        exit(LS_WEXIT_STARTUP);
    }
    for (size_t i = 0; i < sizeof(signos) / sizeof(*signos); i++) {
        w->sigs[i] = evsignal_new(w->base, signos[i], task_on_signal, w);
        event_add(w->sigs[i], NULL);
    }
    evutil_make_socket_nonblocking(w->chan);
    event_assign(&w->chan_ev, w->base, w->chan, EV_READ | EV_PERSIST,
                 task_on_chan, w);
    event_add(&w->chan_ev, NULL);

    w->vm = ls_vm_new(LS_VM_WORKER, a->app, err, sizeof(err));
    if (w->vm == NULL) {
        ls_log(LS_LOG_CRIT, 0, "%s", err);
        exit(LS_WEXIT_STARTUP);
    }
    w->vm->worker = w;
    ls_lua_shdict_use(a->conf);
    ls_lua_mail_use(-1, 0);
    ls_lua_task_use(-1);
    ls_lua_core_install(w->vm);
    ls_conn_set_events(&ls_lua_conn_events);
    ls_http_set_events(&ls_lua_http_events);
    ls_vm_set_limits(w->vm, a->conf->lua_memory_limit,
                     a->conf->callback_timeout);
    w->vm->serve_name[0] = '\0'; /* no listener */
    if (ls_vm_load_app(w->vm, err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "cannot load the app: %s", err);
        exit(LS_WEXIT_STARTUP);
    }
    if (ls_lua_task_worker_init(w->vm, err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "%s", err);
        exit(LS_WEXIT_STARTUP);
    }
    if (a->heartbeat != NULL && a->conf->watchdog_timeout > 0) {
        double iv = a->conf->watchdog_timeout / 8;
        struct timeval tv;
        iv = iv > 1.0 ? 1.0 : iv;
        tv.tv_sec = (time_t)iv;
        tv.tv_usec = (suseconds_t)((iv - (double)tv.tv_sec) * 1e6);
        w->heartbeat = a->heartbeat;
        event_assign(&heartbeat_ev, w->base, -1, EV_PERSIST,
                     task_on_heartbeat, w);
        event_add(&heartbeat_ev, &tv);
    }
    event_assign(&T.queue_ev, w->base, ls_task_queue_fd(),
                 EV_READ | EV_PERSIST, task_on_queue, NULL);
    task_queue_arm(1);
    task_send("ready", 5);
    while (!(w->stopping == LS_STOP_FAST) &&
           !(w->stopping && !T.busy)) {
        if (event_base_loop(w->base, EVLOOP_ONCE) < 0)
            break;
        task_check_done();
        ls_conn_flush_all();
    }
    ls_log(LS_LOG_DEBUG, 0, "stopped");
    exit(LS_WEXIT_OK);
}
