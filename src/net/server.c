/*
 * server.c -- the listener a worker serves: accepting (in small batches, with
 * a reserve descriptor for EMFILE), options on the listening socket, the
 * idleTimeout sweep, maxConnections, and the ends of a stop: unlisten, drain
 * or destroy every connection.
 */
#include "net/server.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Small batches: with a shared listening socket, a worker that grabs many
 * connections per wake-up starves its siblings (measured 94/6 splits). */
#define ACCEPT_BATCH 4
#define ACCEPT_PAUSE_MS 100


static void
server_conn_closed(ls_worker_t *w)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("maxConnections", 0);
    ls_server_t *srv = &w->srv;

    ls_server_check_done(w);
    if (srv->full && !w->stopping &&
        srv->nconns + ls_tls_handshakes() <
            (size_t)srv->conf.max_connections) {
        srv->full = 0;
        ls_log_limited(&lim, LS_LOG_INFO, 0, "below maxConnections (%d) "
                       "again; accepting", srv->conf.max_connections);
        event_add(&srv->accept_ev, NULL);
    }
}

/* Close connections idle for idleTimeout: the least recently active are at
 * the tail of the list. */
static void
server_on_idle_sweep(evutil_socket_t fd, short what, void *arg)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("idle closes", 0);
    ls_worker_t *w = arg;
    ls_server_t *srv = &w->srv;
    double limit = ls_loop_time() - srv->conf.idle_timeout;
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
    ls_conn_flush_all();
}

static void
server_accept_resume(evutil_socket_t fd, short what, void *arg)
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
server_accept_pause(ls_worker_t *w)
{
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

    event_del(&w->srv.accept_ev);
    evtimer_add(&w->accept_pause_ev, &tv);
}

static void
server_accept_emfile(ls_worker_t *w, int err)
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
    server_accept_pause(w);
}

/*
 * TCP_NODELAY on the listening socket: Linux copies it into every accepted
 * socket, which saves a setsockopt() per connection. Should that fail, each
 * accepted socket gets it instead.
 */
static void
server_listen_nodelay(ls_server_t *srv)
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
server_listen_defer(ls_server_t *srv)
{
    int v = srv->conf.defer_accept ? 1 : 0;

    if (srv->conf.addr.family == AF_UNIX)
        return;
    if (setsockopt(srv->fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &v, sizeof(v)) < 0)
        ls_log(LS_LOG_INFO, errno, "TCP_DEFER_ACCEPT on the listening "
               "socket");
}

static void
server_on_accept(evutil_socket_t lfd, short what, void *arg)
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
                server_accept_emfile(w, errno);
            else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* ENOBUFS, ENOMEM...: the listening socket stays readable,
                 * so pause rather than spin on it */
                ls_log_limited(&lim_err, LS_LOG_ERROR, errno,
                               "accept4() failed; pausing accepting for %d ms",
                               ACCEPT_PAUSE_MS);
                server_accept_pause(w);
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
        if (srv->conf.tls != NULL) {
            /* a connection once its handshake is done (net/tls.c) */
            ls_tls_accept(srv, fd, (struct sockaddr *)&ss, len);
        } else {
            c = ls_conn_new(srv, fd, (struct sockaddr *)&ss, len);
            if (c == NULL) {
                ls_log(LS_LOG_ERROR, ENOMEM, "cannot allocate a connection");
                close(fd);
                continue;
            }
            ls_conn_start(c);
        }
        if (srv->conf.max_connections > 0 &&
            srv->nconns + ls_tls_handshakes() >=
                (size_t)srv->conf.max_connections &&
            !w->stopping && !srv->full) {
            srv->full = 1;
            event_del(&srv->accept_ev);
            ls_log_limited(&lim_full, LS_LOG_WARN, 0, "maxConnections (%d) "
                           "reached; not accepting until one closes",
                           srv->conf.max_connections);
            break;
        }
    }
    ls_conn_flush_all();
}

/* Stopping and nothing left to wait for: no connection, and no callback
 * that waits (a graceful stop lets them finish within stopTimeout; a fast
 * one does not wait for them). */
void
ls_server_check_done(ls_worker_t *w)
{
    if (w->stopping && w->srv.nconns == 0 && ls_tls_handshakes() == 0 &&
        (w->stopping == LS_STOP_FAST || w->app_waiting == 0))
        event_base_loopbreak(w->base);
}

/*
 * Serve: TCP_NODELAY and TCP_DEFER_ACCEPT on the listening socket, the
 * accept event, and the idleTimeout sweep (a few times per timeout).
 */
void
ls_server_listen(ls_worker_t *w)
{
    ls_server_t *srv = &w->srv;

    evtimer_assign(&w->accept_pause_ev, w->base, server_accept_resume, w);
    w->conn_closed = server_conn_closed;
    server_listen_nodelay(srv);
    server_listen_defer(srv);
    event_assign(&srv->accept_ev, w->base, srv->fd, EV_READ | EV_PERSIST,
                 server_on_accept, w);
    event_add(&srv->accept_ev, NULL);
    srv->accepting = 1;
    if (srv->conf.idle_timeout > 0) {
        double iv = srv->conf.idle_timeout / 4;
        struct timeval tv;
        iv = iv < 0.05 ? 0.05 : iv > 1.0 ? 1.0 : iv;
        tv.tv_sec = (time_t)iv;
        tv.tv_usec = (suseconds_t)((iv - (double)tv.tv_sec) * 1e6);
        event_assign(&srv->idle_ev, w->base, -1, EV_PERSIST,
                     server_on_idle_sweep, w);
        event_add(&srv->idle_ev, &tv);
    }
}

/* Stop accepting and close the listening socket (the master keeps its
 * copy: the next generation goes on accepting on it). */
void
ls_server_unlisten(ls_worker_t *w)
{
    ls_server_t *srv = &w->srv;

    if (srv->accepting) {
        event_del(&srv->accept_ev);
        event_del(&w->accept_pause_ev);
        srv->accepting = 0;
    }
    if (srv->fd >= 0) {
        close(srv->fd);
        srv->fd = -1;
    }
}

/* A fast stop: each connection gets its protocol's last word (a
 * WebSocket's close 1001), then goes. */
void
ls_server_destroy_all(ls_server_t *srv)
{
    ls_conn_t *c;

    ls_tls_drop_all(); /* handshakes in progress */
    while ((c = srv->conns) != NULL) {
        if (c->proto->stop)
            c->proto->stop(c);
        ls_conn_destroy(c);
    }
}

/*
 * A graceful stop: each connection ends as soon as its protocol allows (an
 * HTTP connection after the response in progress, a WebSocket after its
 * close handshake); on the stream protocols the app's onDrain(conn) may end
 * it. The callbacks may close any connection, so they run over a snapshot
 * whose members are held.
 */
void
ls_server_drain_all(ls_server_t *srv)
{
    size_t n = 0, i;
    ls_conn_t **all;

    if (srv->nconns == 0)
        return;
    all = malloc(srv->nconns * sizeof(*all));
    if (all == NULL) {
        ls_log(LS_LOG_ERROR, errno, "draining %zu connection(s): out of "
               "memory; they are left to stopTimeout", srv->nconns);
        return;
    }
    for (ls_conn_t *c = srv->conns; c != NULL && n < srv->nconns; c = c->next) {
        ls_conn_incref(c);
        all[n++] = c;
    }
    for (i = 0; i < n; i++) {
        ls_conn_t *c = all[i];
        if (c->flags & LS_CONN_CLOSED)
            continue;
        if (c->proto->drain)
            c->proto->drain(c);
        else
            ls_conn_report_drain(c);
    }
    for (i = 0; i < n; i++)
        ls_conn_decref(all[i]);
    free(all);
}

