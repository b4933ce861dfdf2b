/*
 * worker.c -- the life of a worker process: a fresh event loop and Lua state
 * after the fork, accepting on the listening socket the master opened,
 * flushing output after every event, and stopping (fast, or gracefully within
 * stopTimeout) on the master's signal or when the master disappears.
 */
#include "worker.h"
#include "conn.h"
#include "log.h"
#include "lua_core.h"
#include "lua_timer.h"
#include "lua_connect.h"

#include <lauxlib.h>

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

ls_worker_t *ls_worker;

/* Small batches: with a shared listening socket, a worker that grabs many
 * connections per wake-up starves its siblings (measured 94/6 splits). */
#define ACCEPT_BATCH 4
#define ACCEPT_PAUSE_MS 100

static void worker_stop(ls_worker_t *w, int how);
static void worker_notify(ls_worker_t *w, const char *msg);
static void worker_exit(ls_worker_t *w, int code) __attribute__((noreturn));

/* Write every queued output. Called after each event that may have run Lua,
 * so that sends made while handling a batch of messages leave together. */
void
ls_worker_flush(void)
{
    ls_worker_t *w = ls_worker;
    ls_conn_t *c;

    while ((c = w->flush_head) != NULL) {
        w->flush_head = c->flush_next;
        c->flush_next = NULL;
        c->flags &= ~LS_CONN_FLUSHQ;
        ls_conn_flush(c);
        ls_conn_decref(c);
    }
}

/* The loop's cached time: cheap, and exact enough for timeouts. */
double
ls_worker_time(void)
{
    struct timeval tv;
    event_base_gettimeofday_cached(ls_worker->base, &tv);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/*
 * The timeval for a timeout that many connections share (headerTimeout,
 * sendTimeout, ...): libevent keeps the events of a "common timeout" in a
 * queue in the order they were added instead of in its heap, so arming and
 * disarming one per request is O(1). NULL for 0 (no timeout).
 */
const struct timeval *
ls_worker_timeout(double secs)
{
    static struct timeval fallback;
    ls_worker_t *w = ls_worker;
    const size_t n = sizeof(w->tmo) / sizeof(*w->tmo);
    const struct timeval *common;
    struct timeval tv;
    size_t i;

    if (!(secs > 0))
        return NULL;
    for (i = 0; i < n && w->tmo[i].tv != NULL; i++)
        if (w->tmo[i].secs == secs)
            return w->tmo[i].tv;
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    common = event_base_init_common_timeout(w->base, &tv);
    if (common == NULL) {
        fallback = tv; /* a plain heap timeout does the same, slower */
        return &fallback;
    }
    if (i < n) {
        w->tmo[i].secs = secs;
        w->tmo[i].tv = common;
    }
    return common;
}

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

void
ls_worker_conn_closed(ls_worker_t *w)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("maxConnections", 0);
    ls_server_t *srv = &w->srv;

    if (w->stopping && srv->nconns == 0)
        event_base_loopbreak(w->base);
    if (srv->full && !w->stopping &&
        srv->nconns < (size_t)srv->conf.max_connections) {
        srv->full = 0;
        ls_log_limited(&lim, LS_LOG_INFO, 0, "below maxConnections (%d) "
                       "again; accepting", srv->conf.max_connections);
        event_add(&srv->accept_ev, NULL);
    }
}

/* Close connections idle for idleTimeout: the least recently active are at
 * the tail of the list. */
static void
worker_on_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("idle closes", 0);
    ls_worker_t *w = arg;
    ls_server_t *srv = &w->srv;
    double limit = ls_worker_time() - srv->conf.idle_timeout;
    ls_conn_t *c = srv->conns;
    (void)fd;
    (void)what;

    if (c == NULL)
        return;
    while (c->next != NULL)
        c = c->next;
    while (c != NULL && c->active <= limit) {
        ls_conn_t *prev = c->prev;
        if (ls_conn_input_waiting(c)) { /* now at the head: not idle */
            c = prev;
            continue;
        }
        /* onClose may close others, prev among them: hold it. */
        if (prev)
            ls_conn_incref(prev);
        /* A WebSocket's close handshake or HTTP's lingering close take
         * more sweeps: count and log the first. */
        if (!(c->flags & LS_CONN_IDLED)) {
            c->flags |= LS_CONN_IDLED;
            w->timeouts[LS_TMO_IDLE]++;
            ls_log_limited(&lim, LS_LOG_DEBUG, 0, "conn %llu: idle for %g s; "
                           "closing", (unsigned long long)c->id,
                           srv->conf.idle_timeout);
        }
        /* Output that made no progress for that long will not: drop it. */
        if ((c->flags & LS_CONN_CLOSING) ||
            (c->out && evbuffer_get_length(c->out) > 0))
            ls_conn_destroy(c);
        else if (c->proto->idle) /* a WebSocket close frame, ... */
            c->proto->idle(c);
        else
            ls_conn_close(c);
        c = prev;
        if (prev && (prev->flags & LS_CONN_CLOSED)) {
            c = srv->conns; /* start over from the tail */
            while (c != NULL && c->next != NULL)
                c = c->next;
        }
        if (prev)
            ls_conn_decref(prev);
    }
    ls_worker_flush();
}

static void
worker_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)fd;
    (void)what;
    if (!w->stopping && w->srv.accepting && !w->srv.full)
        event_add(&w->srv.accept_ev, NULL);
}

/*
 * Out of descriptors: libevent's own listener would spin here. Give up the
 * reserve descriptor to accept and close one pending connection (so that the
 * client is told rather than left hanging), take the reserve back, and stop
 * accepting for a moment. One log line per second at most, with a count.
 */
static void
worker_accept_pause(ls_worker_t *w)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

    event_del(&w->srv.accept_ev);
    evtimer_add(&w->accept_pause_ev, &tv);
}

static void
worker_accept_emfile(ls_worker_t *w, int err)
{
    static double last_log;
    int fd;

    if (w->emfile_burst == 0)
        w->emfile_burst = w->emfile_count + 1;
    w->emfile_count++;
    if (w->emfile_fd >= 0) {
        close(w->emfile_fd);
        fd = accept4(w->srv.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            close(fd);
        w->emfile_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (ls_now() - last_log >= 1.0) {
        last_log = ls_now();
        ls_log(LS_LOG_WARN, err, "accept4() failed, refusing connections for "
               "%d ms (%llu times so far)", ACCEPT_PAUSE_MS,
               (unsigned long long)w->emfile_count);
    }
    worker_accept_pause(w);
}

/*
 * TCP_NODELAY on the listening socket: Linux copies it into every accepted
 * socket, which saves a setsockopt() per connection. Should that fail, each
 * accepted socket gets it instead.
 */
static void
worker_listen_nodelay(ls_server_t *srv)
{
    int on = 1;

    if (srv->conf.addr.family == AF_UNIX)
        return;
    if (setsockopt(srv->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0) {
        ls_log(LS_LOG_INFO, errno, "TCP_NODELAY on the listening socket; "
               "setting it per connection");
        srv->nodelay_each = 1;
    }
}

/*
 * deferAccept (default for http:// and websocket://): TCP_DEFER_ACCEPT, so
 * that accept() returns a connection once its first bytes are in, and the
 * worker reads them at once instead of registering the socket with epoll
 * and waiting (ls_conn_start). A client that connects and sends nothing is
 * accepted after about a second anyway, then headerTimeout applies. Set
 * (or cleared) by every worker on the shared socket, so a reload that
 * changes the option applies it.
 */
static void
worker_listen_defer(ls_server_t *srv)
{
    int v = srv->conf.defer_accept ? 1 : 0;

    if (srv->conf.addr.family == AF_UNIX)
        return;
    if (setsockopt(srv->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, sizeof(v)) < 0)
        ls_log(LS_LOG_INFO, errno, "TCP_DEFER_ACCEPT on the listening "
               "socket");
}

static void
worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    static ls_log_limit_t lim_err = LS_LOG_LIMIT("accept4() failures", 0);
    static ls_log_limit_t lim_full = LS_LOG_LIMIT("maxConnections", 0);
    ls_worker_t *w = arg;
    ls_server_t *srv = &w->srv;
    (void)what;

    for (int i = 0; i < ACCEPT_BATCH && !w->stopping; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        ls_conn_t *c;
        int fd, on = 1;

        fd = accept4(lfd, (struct sockaddr *)&ss, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                worker_accept_emfile(w, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* ENOBUFS, ENOMEM...: the listening socket stays readable,
                 * so pause rather than spin on it */
                ls_log_limited(&lim_err, LS_LOG_ERROR, errno,
                               "accept4() failed; pausing accepting for %d ms",
                               ACCEPT_PAUSE_MS);
                worker_accept_pause(w);
            }
            break;
        }
        if (w->emfile_burst) {
            ls_log(LS_LOG_INFO, 0, "accepting again after running out of "
                   "descriptors (%llu times in this burst)",
                   (unsigned long long)(w->emfile_count - w->emfile_burst +
                                        1));
            w->emfile_burst = 0;
            if (w->emfile_fd < 0)
                w->emfile_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        }
        if (!srv->nodelay_checked && !srv->nodelay_each &&
            srv->conf.addr.family != AF_UNIX) {
            socklen_t olen = sizeof(on);
            srv->nodelay_checked = 1;
            on = 0;
            if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &olen) < 0 ||
                !on)
                srv->nodelay_each = 1; /* not inherited here */
            on = 1;
        }
        if (srv->nodelay_each)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        c = ls_conn_new(srv, fd, (struct sockaddr *)&ss, len);
        if (c == NULL) {
            ls_log(LS_LOG_ERROR, ENOMEM, "cannot allocate a connection");
            close(fd);
            continue;
        }
        ls_conn_start(c);
        if (srv->conf.max_connections > 0 &&
            srv->nconns >= (size_t)srv->conf.max_connections &&
            !w->stopping && !srv->full) {
            srv->full = 1;
            event_del(&srv->accept_ev);
            ls_log_limited(&lim_full, LS_LOG_WARN, 0, "maxConnections (%d) "
                           "reached; not accepting until one closes",
                           srv->conf.max_connections);
            break;
        }
    }
    ls_worker_flush();
}

/* Call listener.<name>(worker); returns the ls_vm_call status. */
static int
worker_emit(ls_worker_t *w, const char *name)
{
    lua_State *L = w->vm->L;

    lua_rawgeti(L, LUA_REGISTRYINDEX, w->srv.lua_ref);   /* srv */
    if (lua_getfield(L, -1, name) != LUA_TFUNCTION) {   /* srv f */
        lua_pop(L, 2);
        return LUA_OK;
    }
    lua_remove(L, -2);                                   /* f */
    ls_lua_core_push_worker(L);                          /* f worker */
    return ls_vm_call(w->vm, 1, 0, name, 0);
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
    if (!w->stopping) {
        if (srv->accepting) {
            event_del(&srv->accept_ev);
            event_del(&w->accept_pause_ev);
            srv->accepting = 0;
        }
        if (srv->fd >= 0) {
            close(srv->fd);
            srv->fd = -1;
        }
        w->stopping = how;
        worker_emit(w, "onWorkerStop");
        ls_worker_flush();
    }
    w->stopping = how;
    if (how == LS_STOP_FAST) {
        ls_conn_t *c;
        while ((c = srv->conns) != NULL) {
            if (c->proto->stop) /* a WebSocket's close 1001 */
                c->proto->stop(c);
            ls_conn_destroy(c);
        }
    } else if (srv->nconns > 0) {
        struct timeval tv;
        for (ls_conn_t *c = srv->conns, *next; c != NULL; c = next) {
            next = c->next;
            if (c->proto->drain)
                c->proto->drain(c);
        }
        tv.tv_sec = (time_t)w->stop_timeout;
        tv.tv_usec = (suseconds_t)((w->stop_timeout - (double)tv.tv_sec) * 1e6);
        evtimer_assign(&w->stop_ev, w->base, worker_on_stop_timeout, w);
        evtimer_add(&w->stop_ev, &tv);
        ls_log(LS_LOG_INFO, 0, "stopping gracefully: waiting up to %g s for "
               "%zu connection(s)", w->stop_timeout, srv->nconns);
    }
    if (srv->nconns == 0)
        event_base_loopbreak(w->base);
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
        worker_stop(w, LS_STOP_GRACEFUL);
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
 * maxRequests / maxMemory: past either (times a per-worker jitter, so that
 * workers started together do not all go at once), ask the master for a
 * replacement; it starts one and drains this worker once it is ready, the
 * same new-first path as a reload.
 */
static void
worker_on_recycle_check(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    const ls_listen_conf_t *l = &w->srv.conf;
    const char *why = NULL;
    long rss = 0;
    (void)fd;
    (void)what;

    if (w->recycling || w->stopping)
        return;
    if (l->max_requests &&
        (double)w->srv.msgs_in >= (double)l->max_requests * w->jitter)
        why = "maxRequests";
    if (why == NULL && l->max_memory &&
        (double)(rss = worker_rss_kb()) * 1024 >=
            (double)l->max_memory * w->jitter)
        why = "maxMemory";
    if (why == NULL)
        return;
    w->recycling = 1;
    ls_log(LS_LOG_INFO, 0, "%s reached (%llu messages, %ld KiB RSS); asking "
           "for a replacement", why, (unsigned long long)w->srv.msgs_in, rss);
    worker_notify(w, "recycle");
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
        } else if (strcmp(buf, "reload") == 0 && !w->stopping) {
            /* A new generation serves now: this one drains. */
            worker_emit(w, "onWorkerReload");
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
void
ls_worker_os_exit(ls_worker_t *w, int code)
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

/* watchdogTimeout: proof for the master that this loop still turns. */
static void
worker_on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    ls_worker_t *w = arg;
    (void)fd;
    (void)what;
    __atomic_add_fetch(w->heartbeat, 1, __ATOMIC_RELAXED);
}

static void
worker_drop_privileges(const ls_conf_t *conf)
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
    ls_outbound_close_all(w);
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

    ls_worker = w;
    memset(w, 0, sizeof(*w));
    w->id = a->id;
    w->generation = a->generation;
    w->chan = a->chan;
    w->stop_timeout = a->conf->stop_timeout;
    w->started_wall = time(NULL);
    w->emfile_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    snprintf(role, sizeof(role), "worker %d [%s]", a->id, a->listener->name);
    ls_log_set_role(role);
    signal(SIGINT, SIG_IGN);  /* Ctrl+C reaches the master, which stops us */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    worker_drop_privileges(a->conf);

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
    evtimer_assign(&w->accept_pause_ev, w->base, worker_accept_resume, w);
    evtimer_assign(&w->log_ev, w->base, worker_on_log_flush, w);
    ls_log_set_suppress_hook(worker_log_suppressing);

    /* A fresh Lua state loads the app: every changed file is picked up. */
    w->vm = ls_vm_new(LS_VM_WORKER, a->app, err, sizeof(err));
    if (w->vm == NULL) {
        ls_log(LS_LOG_CRIT, 0, "%s", err);
        exit(LS_WEXIT_STARTUP);
    }
    w->vm->worker = w;
    ls_vm_set_limits(w->vm, a->conf->lua_memory_limit,
                     a->conf->callback_timeout);
    snprintf(w->vm->serve_name, sizeof(w->vm->serve_name), "%s",
             a->listener->name);
    if (ls_vm_load_app(w->vm, err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "cannot load the app: %s", err);
        exit(LS_WEXIT_STARTUP);
    }
    if (w->vm->serve_ref == LUA_NOREF) {
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
    ls_proto_attach(&w->srv);

    if (worker_emit(w, "onWorkerStart") != LUA_OK) {
        ls_log(LS_LOG_ERROR, 0, "onWorkerStart failed; this worker exits");
        exit(LS_WEXIT_STARTUP);
    }
    ls_worker_flush();
    if (!w->stopping) {
        worker_listen_nodelay(&w->srv);
        worker_listen_defer(&w->srv);
        event_assign(&w->srv.accept_ev, w->base, w->srv.fd,
                     EV_READ | EV_PERSIST, worker_on_accept, w);
        event_add(&w->srv.accept_ev, NULL);
        w->srv.accepting = 1;
        if (w->srv.conf.idle_timeout > 0) {
            double iv = w->srv.conf.idle_timeout / 4;
            struct timeval tv;
            iv = iv < 0.05 ? 0.05 : iv > 1.0 ? 1.0 : iv;
            tv.tv_sec = (time_t)iv;
            tv.tv_usec = (suseconds_t)((iv - (double)tv.tv_sec) * 1e6);
            event_assign(&w->srv.idle_ev, w->base, -1, EV_PERSIST,
                         worker_on_idle_sweep, w);
            event_add(&w->srv.idle_ev, &tv);
        }
        if (w->srv.conf.max_requests || w->srv.conf.max_memory) {
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
        worker_notify(w, "ready");
        event_base_dispatch(w->base);
    }
    ls_log(LS_LOG_DEBUG, 0, "stopped");
    worker_exit(w, LS_WEXIT_OK);
}
