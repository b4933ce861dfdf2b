/*
 * worker.c -- the life of a worker process: a fresh event loop and Lua state
 * after the fork, accepting on the listening socket the master opened,
 * flushing output after every event, and stopping (fast, or gracefully within
 * stopTimeout) on the master's signal or when the master disappears.
 */
#include "worker/worker.h"
#include "core/log.h"
#include "core/mail.h"
#include "core/stats.h"
#include "http/http.h"
#include "http/ws.h"
#include "lua/lua_connect.h"
#include "lua/lua_core.h"
#include "lua/lua_events.h"
#include "lua/lua_mail.h"
#include "lua/lua_proto.h"
#include "lua/lua_shdict.h"
#include "lua/lua_task.h"
#include "lua/lua_timer.h"
#include "lua/lua_udp_listener.h"
#include "lua/vm.h"
#include "net/conn.h"
#include "net/server.h"
#include "net/udp.h"
#include "net/tls.h"
#include "net/tls_pem.h"
#include "worker/mailbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void worker_stop(ls_worker_t *w, int how);
static void worker_notify(ls_worker_t *w, const char *msg);
static void worker_exit(ls_worker_t *w, int code) __attribute__((noreturn));


/* Summaries of rate-limited log lines are due a second after the first
 * suppressed one, even if no further line of that cause comes. */
static void
worker_on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    double next = ls_log_flush_suppressed(0);
    (void)fd;
    (void)what;

    if (next >= 0) {
        struct timeval tv = {(time_t)next,
                             (suseconds_t)((next - (double)(time_t)next) *
                                           1e6) + 10000};
        evtimer_add(&w->log_ev, &tv);
    }
}

static void
worker_log_suppressing(void)
{
    struct timeval tv = {1, 10000};

    if (ls_worker != NULL && !evtimer_pending(&ls_worker->log_ev, NULL))
        evtimer_add(&ls_worker->log_ev, &tv);
}

static void
worker_on_stop_timeout(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)fd;
    (void)what;
    ls_log(LS_LOG_WARN, 0, "stopTimeout (%g s) reached with %zu connection(s) "
           "open; closing them", w->stop_timeout, w->srv.nconns);
    worker_stop(w, LS_STOP_FAST);
}

/*
 * Stop accepting; fast: close every connection now; graceful: let them end
 * by themselves until stopTimeout. The loop ends when none is left.
 */
static void
worker_stop(ls_worker_t *w, int how)
{
    ls_server_t *srv = &w->srv;

    if (w->stopping >= how)
        return;
    if (w->delaying) {
        event_del(&w->delay_ev);
        w->delaying = 0;
    }
    if (w->vm != NULL) /* "reload", when it came first, stays */
        ls_lua_core_set_stopping(w->vm, "stop");
    if (!w->stopping) {
        ls_server_unlisten(w);
        ls_mailbox_stop(w); /* queued messages wait for the next one */
        w->stopping = how;
        ls_lua_events_worker(w->vm, "onWorkerStop", NULL);
        ls_conn_flush_all();
    }
    w->stopping = how;
    if (how == LS_STOP_FAST) {
        ls_server_destroy_all(srv);
    } else if (srv->nconns > 0 || w->app_waiting > 0) {
        struct timeval tv;
        ls_server_drain_all(srv);
        ls_conn_flush_all();    /* what onDrain sent */
        tv.tv_sec = (time_t)w->stop_timeout;
        tv.tv_usec = (suseconds_t)((w->stop_timeout - (double)tv.tv_sec) * 1e6);
        evtimer_assign(&w->stop_ev, w->base, worker_on_stop_timeout, w);
        evtimer_add(&w->stop_ev, &tv);
        ls_log(LS_LOG_INFO, 0, "stopping gracefully: waiting up to %g s for "
               "%zu connection(s) and %d waiting callback(s)",
               w->stop_timeout, srv->nconns, w->app_waiting);
    }
    ls_server_check_done(w);
}

static void
worker_on_stop_delay(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)fd;
    (void)what;
    w->delaying = 0;
    worker_stop(w, LS_STOP_GRACEFUL);
}

/*
 * A graceful stop of the instance (SIGQUIT). With stopDelay the worker
 * first serves on, accepting included, for that long with
 * luaserv.worker.stopping set, so that a load balancer's health check
 * sees the host going (HAProxy's own "grace") before connections are
 * refused; then it stops accepting and drains. A worker not serving yet
 * stops at once.
 */
static void
worker_stop_graceful(ls_worker_t *w)
{
    struct timeval tv;

    if (w->stopping || w->delaying)
        return;
    if (w->stop_delay <= 0 || !w->serving) {
        worker_stop(w, LS_STOP_GRACEFUL);
        return;
    }
    ls_lua_core_set_stopping(w->vm, "stop");
    w->delaying = 1;
    tv.tv_sec = (time_t)w->stop_delay;
    tv.tv_usec = (suseconds_t)((w->stop_delay - (double)tv.tv_sec) * 1e6);
    evtimer_assign(&w->delay_ev, w->base, worker_on_stop_delay, w);
    evtimer_add(&w->delay_ev, &tv);
    ls_log(LS_LOG_INFO, 0, "stopping gracefully in %g s (stopDelay); "
           "serving until then", w->stop_delay);
}

static void
worker_on_signal(evutil_socket_t signo, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)what;

    switch (signo) {
    case SIGTERM:
        worker_stop(w, LS_STOP_FAST);
        break;
    case SIGQUIT:
        worker_stop_graceful(w);
        break;
    case SIGUSR2:
        ls_log_reopen();
        break;
    }
}

static long
worker_rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One status line for the master: figures taken now, not from a file. */
static void
worker_send_status(ls_worker_t *w)
{
    ls_server_t *srv = &w->srv;
    char buf[512], when[32];
    struct tm tm;
    int n;

    localtime_r(&w->started_wall, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(buf, sizeof(buf),
                 "status %7zu %9llu %10llu %10llu %12llu %12llu %9zu %9ld "
                 "%8llu %8llu %8llu %8llu %8llu %s",
                 srv->nconns, (unsigned long long)srv->total_conns,
                 (unsigned long long)srv->msgs_in,
                 (unsigned long long)srv->msgs_out,
                 (unsigned long long)srv->bytes_in,
                 (unsigned long long)srv->bytes_out, w->vm->mem / 1024,
                 worker_rss_kb(),
                 (unsigned long long)w->timeouts[LS_TMO_HEADER],
                 (unsigned long long)w->timeouts[LS_TMO_BODY],
                 (unsigned long long)w->timeouts[LS_TMO_SEND],
                 (unsigned long long)w->timeouts[LS_TMO_IDLE],
                 (unsigned long long)w->emfile_count, when);
    if (n > 0)
        send(w->chan, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf),
             MSG_NOSIGNAL);
}

/*
 * `luaserv APP connections`: a line per open connection, newest first,
 * at most CONNS_MAX_BYTES of them (then how many more), in one message.
 */
#define CONNS_MAX_BYTES 60000

static void
worker_send_connections(ls_worker_t *w)
{
    static char buf[CONNS_MAX_BYTES + 256];
    double now = ls_loop_time();
    size_t n = (size_t)snprintf(buf, sizeof(buf), "conns ");
    size_t more = 0;

    for (ls_conn_t *c = w->srv.conns; c != NULL; c = c->next) {
        char ip[64], line[256];
        int port, r;
        const char *state = (c->flags & LS_CONN_CLOSING) ? "closing"
                            : (c->flags & LS_CONN_WAITING) ? "waiting"
                            : (c->flags & LS_CONN_PAUSED) ? "paused"
                            : (c->flags & LS_CONN_FULL) ? "full"
                                                         : "open";
        if (ls_conn_peer(c, ip, sizeof(ip), &port) < 0 || !ip[0]) {
            snprintf(ip, sizeof(ip), "unix");
            port = 0;
        }
        r = snprintf(line, sizeof(line), "%d %llu %s:%d %.1f %llu %llu %s "
                     "%s\n", w->id, (unsigned long long)c->id, ip, port,
                     now - c->born, (unsigned long long)c->bytes_in,
                     (unsigned long long)c->bytes_out, state,
                     c->proto->name);
        if (r <= 0 || n + (size_t)r > CONNS_MAX_BYTES) {
            more++;
            continue;
        }
        memcpy(buf + n, line, (size_t)r);
        n += (size_t)r;
    }
    if (more > 0)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%d ... %zu more\n",
                              w->id, more);
    if (send(w->chan, buf, n, MSG_NOSIGNAL) < 0)
        ls_log(LS_LOG_WARN, errno, "cannot send the connections to the "
               "master");
}

/*
 * Ask the master for a replacement: it starts one and drains this worker
 * once it is ready, the same new-first path as a reload, so no message is
 * refused meanwhile.
 */
static void
worker_recycle(ls_worker_t *w, const char *why, long rss_kb)
{
    if (w->recycling || w->stopping)
        return;
    w->recycling = 1;
    ls_log(LS_LOG_INFO, 0, "%s reached (%llu messages, %ld KiB RSS); asking "
           "for a replacement", why, (unsigned long long)w->srv.msgs_in,
           rss_kb);
    worker_notify(w, "recycle");
}

/* maxRequests: exact, from the message that reaches it (net/loop.h). */
static void
worker_on_max_requests(ls_worker_t *w)
{
    worker_recycle(w, "maxRequests", worker_rss_kb());
}

/*
 * maxMemory, checked every second: past it (times a per-worker jitter, so
 * that workers started together do not all go at once), recycle.
 */
static void
worker_on_recycle_check(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    long rss;
    (void)fd;
    (void)what;

    if (w->recycling || w->stopping)
        return;
    rss = worker_rss_kb();
    if ((double)rss * 1024 >= (double)w->srv.conf.max_memory * w->jitter)
        worker_recycle(w, "maxMemory", rss);
}

/* The master holds the other end of the channel: EOF means it is gone, and a
 * worker without a master must not keep the port. */
static void
worker_on_chan(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    char buf[512];
    ssize_t n;
    (void)what;

    n = recv(fd, buf, sizeof(buf) - 1, 0);
    if (n > 0) {
        buf[n] = '\0';
        if (strcmp(buf, "status") == 0) {
            worker_send_status(w);
        } else if (strcmp(buf, "connections") == 0) {
            worker_send_connections(w);
        } else if (strcmp(buf, "reload") == 0 && !w->stopping) {
            /* A new generation serves now: this one drains. */
            ls_lua_core_set_stopping(w->vm, "reload");
            ls_lua_events_worker(w->vm, "onWorkerReload", NULL);
            worker_stop(w, LS_STOP_GRACEFUL);
        }
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    ls_log(LS_LOG_WARN, 0, "the master process is gone; stopping");
    event_del(&w->chan_ev);
    worker_stop(w, LS_STOP_GRACEFUL);
}

/*
 * os.exit(code) in a callback (vm.c aborts the callback): the process does
 * not end under its connections; it retires like a recycled worker, so the
 * others finish (within stopTimeout) while a replacement accepts new ones.
 * In onWorkerStart it is a failed start instead: a replacement that exits the
 * same way must go through the master's back-off.
 */
static void
worker_os_exit(ls_worker_t *w, int code)
{
    if (w->stopping) {
        ls_log(LS_LOG_WARN, 0, "os.exit(%d) called in worker while it is "
               "stopping: callback aborted", code);
    } else if (!w->srv.accepting) {
        ls_log(LS_LOG_WARN, 0, "os.exit(%d) called in worker during "
               "onWorkerStart: this worker does not start", code);
    } else if (w->recycling) {
        ls_log(LS_LOG_WARN, 0, "os.exit(%d) called in worker: callback "
               "aborted; this worker is already being replaced", code);
    } else {
        ls_log(LS_LOG_WARN, 0, "os.exit(%d) called in worker: stopping this "
               "worker gracefully, a replacement starts", code);
        w->recycling = 1;
        worker_notify(w, "recycle");
    }
}

/* metrics: this worker's figures into its shared cell, for the master to
 * read without asking (core/stats.h). */
static void
worker_stats_copy(ls_worker_t *w)
{
    ls_stats_t *st = w->stats;
    ls_server_t *srv = &w->srv;
    struct timespec ts;

    __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELEASE);
    st->conns_open = srv->nconns;
    st->conns_total = srv->total_conns;
    st->msgs_in = srv->msgs_in;
    st->msgs_out = srv->msgs_out;
    st->bytes_in = srv->bytes_in;
    st->bytes_out = srv->bytes_out;
    st->timeouts[LS_STAT_TMO_HEADER] = w->timeouts[LS_TMO_HEADER];
    st->timeouts[LS_STAT_TMO_BODY] = w->timeouts[LS_TMO_BODY];
    st->timeouts[LS_STAT_TMO_SEND] = w->timeouts[LS_TMO_SEND];
    st->timeouts[LS_STAT_TMO_IDLE] = w->timeouts[LS_TMO_IDLE];
    st->emfile = w->emfile_count;
    st->lua_errors = w->vm->errors;
    st->lua_mem = w->vm->mem;
    st->waiting = (uint64_t)w->app_waiting;
    st->udp_dropped = ls_udp != NULL ? ls_udp->dropped : 0;
    st->tls[LS_STAT_TLS_OK] = ls_tls_stats.handshakes - ls_tls_stats.resumed;
    st->tls[LS_STAT_TLS_RESUMED] = ls_tls_stats.resumed;
    st->tls[LS_STAT_TLS_FAILED] = ls_tls_stats.failed;
    st->tls[LS_STAT_TLS_TIMEOUT] = ls_tls_stats.timeouts;
    st->mail_sent = ls_mail_stats.sent;
    st->mail_full = ls_mail_stats.full;
    st->mail_received = ls_mail_stats.received;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    st->updated_ms = (uint64_t)ts.tv_sec * 1000 +
                     (uint64_t)ts.tv_nsec / 1000000;
    __atomic_add_fetch(&st->seq, 1, __ATOMIC_RELEASE);
}

static void
worker_on_stats(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_stats_copy(arg);
}

/* watchdogTimeout: proof for the master that this loop still turns. */
static void
worker_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)fd;
    (void)what;
    __atomic_add_fetch(w->heartbeat, 1, __ATOMIC_RELAXED);
}

void
ls_worker_drop_privileges(const ls_conf_t *conf)
{
    struct passwd *pw = NULL;
    struct group *gr = NULL;
    gid_t gid;

    if (geteuid() != 0 || (!conf->user[0] && !conf->group[0]))
        return;
    if (conf->user[0] && (pw = getpwnam(conf->user)) == NULL) {
        ls_log(LS_LOG_CRIT, 0, "unknown user \"%s\"", conf->user);
        exit(LS_WEXIT_STARTUP);
    }
    if (conf->group[0] && (gr = getgrnam(conf->group)) == NULL) {
        ls_log(LS_LOG_CRIT, 0, "unknown group \"%s\"", conf->group);
        exit(LS_WEXIT_STARTUP);
    }
    gid = gr ? gr->gr_gid : pw->pw_gid;
    if (setgid(gid) < 0 ||
        (pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) < 0 ||
        (pw && setuid(pw->pw_uid) < 0)) {
        ls_log(LS_LOG_CRIT, errno, "cannot switch to user \"%s\" group \"%s\"",
               conf->user, conf->group);
        exit(LS_WEXIT_STARTUP);
    }
}

static void
worker_exit(ls_worker_t *w, int code)
{
    ls_log_flush_suppressed(1);
    ls_lua_connect_close_all(w);
    ls_lua_timer_cancel_all(w);
    ls_vm_free(w->vm);
    w->vm = NULL;
    for (size_t i = 0; i < sizeof(w->sigs) / sizeof(*w->sigs); i++)
        if (w->sigs[i])
            event_free(w->sigs[i]);
    event_base_free(w->base);
    free(w->rbuf);
    free(w->stage);
    exit(code);
}

static void
worker_notify(ls_worker_t *w, const char *msg)
{
    if (send(w->chan, msg, strlen(msg), MSG_NOSIGNAL) < 0)
        ls_log(LS_LOG_WARN, errno, "cannot reach the master");
}

void
ls_worker_main(const ls_worker_args_t *a)
{
    static ls_worker_t worker;
    static const int signos[] = {SIGTERM, SIGQUIT, SIGUSR2};
    ls_worker_t *w = &worker;
    char role[128], err[LS_ERRLEN * 8];
    int started = 0;          /* onWorkerStart: 1 done, -1 failed */

    ls_worker = w;
    memset(w, 0, sizeof(*w));
    w->id = a->id;
    w->generation = a->generation;
    w->chan = a->chan;
    w->stop_timeout = a->conf->stop_timeout;
    w->stop_delay = a->conf->stop_delay;
    w->started_wall = time(NULL);
    w->emfile_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    snprintf(role, sizeof(role), "worker %d [%s]", a->id, a->listener->name);
    ls_log_set_role(role);
    signal(SIGINT, SIG_IGN);  /* Ctrl+C reaches the master, which stops us */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    /* The ssl option's certificates and keys, read while this process
     * may still be root: the app's listen() takes them from memory once
     * the worker runs as settings.user; a key only root can read is the
     * usual case. Wiped once the app is loaded. */
    for (int i = 0; i < a->conf->nfiles; i++)
        if (strcmp(a->conf->files[i].listener, a->listener->name) == 0)
            ls_tls_pem_keep(a->conf->files[i].path);
    ls_worker_drop_privileges(a->conf);

    /* A fresh loop after the fork; nothing of the master's is reused. */
    w->base = event_base_new();
    w->rbuf = malloc(LS_READ_SIZE);
    w->stage = malloc(LS_STAGE_SIZE);
    if (w->base == NULL || w->rbuf == NULL || w->stage == NULL) {
        ls_log(LS_LOG_CRIT, 0, "cannot create the event loop");
        exit(LS_WEXIT_STARTUP);
    }
    for (size_t i = 0; i < sizeof(signos) / sizeof(*signos); i++) {
        w->sigs[i] = evsignal_new(w->base, signos[i], worker_on_signal, w);
        event_add(w->sigs[i], NULL);
    }
    evutil_make_socket_nonblocking(w->chan);
    event_assign(&w->chan_ev, w->base, w->chan, EV_READ | EV_PERSIST,
                 worker_on_chan, w);
    event_add(&w->chan_ev, NULL);
    evtimer_assign(&w->log_ev, w->base, worker_on_log_flush, w);
    ls_log_set_suppress_hook(worker_log_suppressing);

    /* A fresh Lua state loads the app: every changed file is picked up. */
    w->vm = ls_vm_new(LS_VM_WORKER, a->app, err, sizeof(err));
    if (w->vm == NULL) {
        ls_log(LS_LOG_CRIT, 0, "%s", err);
        exit(LS_WEXIT_STARTUP);
    }
    w->vm->worker = w;
    ls_lua_shdict_use(a->conf); /* the dicts the master mapped */
    {   /* worker ids run on across listeners (luaserv.send) */
        int nids = 0;
        for (int i = 0; i < a->conf->nlisteners; i++)
            nids += a->conf->listeners[i].count;
        ls_lua_mail_use(a->id, nids);
    }
    ls_lua_task_use(a->conf->task_workers);
    ls_lua_core_install(w->vm);
    /* The connection and protocol layers reach the app only through
     * these tables. */
    ls_conn_set_events(&ls_lua_conn_events);
    ls_http_set_events(&ls_lua_http_events);
    ls_ws_init();
    w->os_exit = worker_os_exit;
    ls_vm_set_limits(w->vm, a->conf->lua_memory_limit,
                     a->conf->callback_timeout);
    snprintf(w->vm->serve_name, sizeof(w->vm->serve_name), "%s",
             a->listener->name);
    if (ls_vm_load_app(w->vm, err, sizeof(err)) < 0) {
        ls_tls_pem_forget();
        ls_log(LS_LOG_ERROR, 0, "cannot load the app: %s", err);
        exit(LS_WEXIT_STARTUP);
    }
    ls_tls_pem_forget(); /* listen() has built its contexts */
    if (!ls_vm_serves(w->vm)) {
        ls_log(LS_LOG_ERROR, 0, "%s no longer declares listener \"%s\"",
               a->app, a->listener->name);
        exit(LS_WEXIT_STARTUP);
    }
    w->srv.conf = w->vm->serve;
    if (w->srv.conf.lua_memory_limit >= 0 || w->srv.conf.callback_timeout >= 0)
        ls_vm_set_limits(w->vm, w->srv.conf.lua_memory_limit >= 0
                                    ? (size_t)w->srv.conf.lua_memory_limit
                                    : a->conf->lua_memory_limit,
                         w->srv.conf.callback_timeout >= 0
                             ? w->srv.conf.callback_timeout
                             : a->conf->callback_timeout);
    w->srv.lua_ref = w->vm->serve_ref;
    w->srv.fd = a->listen_fd;
    ls_lua_proto_attach(&w->srv);

    switch (ls_lua_events_worker(w->vm, "onWorkerStart", &started)) {
    case -1:
        started = -1;
        break;
    case 1:
        /* it waits (luaserv.sleep, a cosocket): the worker is not ready,
         * and accepts nothing, until it is done */
        while (started == 0 && !w->stopping)
            event_base_loop(w->base, EVLOOP_ONCE);
        break;
    }
    if (started < 0) {
        ls_log(LS_LOG_ERROR, 0, "onWorkerStart failed; this worker exits");
        exit(LS_WEXIT_STARTUP);
    }
    ls_conn_flush_all();
    if (!w->stopping) {
        if (!ls_addr_is_udp(&w->srv.conf.addr))
            ls_server_listen(w);
        else if (ls_lua_udp_listener_start(w) < 0)
            exit(LS_WEXIT_STARTUP);
        w->serving = 1;
        if (w->srv.conf.max_requests)
            w->max_requests = worker_on_max_requests;
        if (w->srv.conf.max_memory) {
            struct timeval tv = {1, 0};
            srand((unsigned)getpid());
            w->jitter = 1.0 + 0.25 * (double)rand() / RAND_MAX;
            event_assign(&w->recycle_ev, w->base, -1, EV_PERSIST,
                         worker_on_recycle_check, w);
            event_add(&w->recycle_ev, &tv);
        }
        if (a->heartbeat != NULL && a->conf->watchdog_timeout > 0) {
            /* Several beats per timeout; the master only reads them. */
            double iv = a->conf->watchdog_timeout / 8;
            struct timeval tv;
            iv = iv > 1.0 ? 1.0 : iv;
            tv.tv_sec = (time_t)iv;
            tv.tv_usec = (suseconds_t)((iv - (double)tv.tv_sec) * 1e6);
            w->heartbeat = a->heartbeat;
            event_assign(&w->heartbeat_ev, w->base, -1, EV_PERSIST,
                         worker_on_heartbeat, w);
            event_add(&w->heartbeat_ev, &tv);
        }
        if (a->stats != NULL) {
            struct timeval tv = {0, 500000};
            w->stats = a->stats;
            worker_stats_copy(w);
            event_assign(&w->stats_ev, w->base, -1, EV_PERSIST,
                         worker_on_stats, w);
            event_add(&w->stats_ev, &tv);
        }
        ls_mailbox_start(w);
        worker_notify(w, "ready");
        event_base_dispatch(w->base);
    }
    ls_log(LS_LOG_DEBUG, 0, "stopped");
    worker_exit(w, LS_WEXIT_OK);
}
