/*
 * conn.c -- connections: read, frame, hand messages to the app, write, close.
 *
 * Lifetime rules (Redis connhelpers, libevent incref/decref): a connection
 * starts with one reference for being open; every call into the app and every
 * stay on the flush list holds another. Closing drops the "open" reference;
 * the memory goes only when the last one does, so a callback that closes its
 * own connection never pulls the struct from under the code that called it.
 * After every callback the caller re-checks LS_CONN_CLOSING / LS_CONN_CLOSED.
 */
#include "net/conn.h"
#include "core/log.h"
#include "core/mempool.h"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_STOPPED (LS_CONN_CLOSING | LS_CONN_CLOSED)
#define CONN_HELD (LS_CONN_PAUSED | LS_CONN_WAITING) /* no reading */

static void conn_on_read(evutil_socket_t fd, short what, void *arg);
static void conn_unstage(ls_conn_t *c);
static void conn_stage_end(ls_conn_t *c);
static void conn_touch(ls_conn_t *c);
static void conn_on_write(evutil_socket_t fd, short what, void *arg);
static void conn_shutdown(ls_conn_t *c);
static void conn_read_event(ls_conn_t *c);

/* The app's side of every connection (ls_conn_set_events). */
const ls_conn_events_t *ls_conn_events;

void
ls_conn_set_events(const ls_conn_events_t *ev)
{
    ls_conn_events = ev;
}

/*
 * Tell the app; a callback that raised closes this connection (after
 * flushing what was already sent) and nothing else: CONTRACT section 6.
 * The reference keeps c while the close runs, whatever the callback did.
 */
#define CONN_TELL(c, call)                                                  \
    do {                                                                    \
        ls_conn_incref(c);                                                  \
        if ((call) == LS_EV_ERROR)                                          \
            ls_conn_close(c);                                               \
        ls_conn_decref(c);                                                  \
    } while (0)

/* Freed connection structs, for the next accept (mempool.c). */
static ls_cache_t conn_cache = LS_CACHE(ls_conn_t, 256);

ls_conn_t *
ls_conn_new(ls_server_t *srv, int fd, const struct sockaddr *sa,
            socklen_t salen)
{
    ls_conn_t *c = ls_cache_get(&conn_cache);
    if (c == NULL)
        return NULL;
    c->srv = srv;
    c->proto = srv->proto;
    c->fd = fd;
    c->id = ++ls_worker->next_conn_id;
    c->refs = 1;
    if (sa != NULL && salen <= sizeof(c->peer))
        memcpy(&c->peer, sa, salen);
    event_assign(&c->rev, ls_worker->base, fd, EV_READ | EV_PERSIST,
                 conn_on_read, c);
    event_assign(&c->wev, ls_worker->base, fd, EV_WRITE | EV_PERSIST,
                 conn_on_write, c);
    if (ls_conn_events->open(c) < 0) {
        ls_cache_put(&conn_cache, c);
        return NULL;
    }
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    c->active = c->born = ls_loop_time();
    srv->total_conns++;
    return c;
}

void
ls_conn_incref(ls_conn_t *c)
{
    c->refs++;
}

void
ls_conn_decref(ls_conn_t *c)
{
    if (--c->refs > 0)
        return;
    free(c->in.data);
    if (c->out)
        evbuffer_free(c->out);
    if (c->flags & LS_CONN_OUTBOUND)
        free(c->srv);
    ls_cache_put(&conn_cache, c);
}

/* onError(conn, code, text) for a failure the protocol handles itself
 * (an HTTP error reply, a timeout): the connection is the caller's to end. */
void
ls_conn_report_error(ls_conn_t *c, int code, const char *text)
{
    CONN_TELL(c, ls_conn_events->error(c, code, text));
}

/* onBufferFull, for output a protocol holds back itself (WebSocket frames
 * queued in wslay during a callback). */
void
ls_conn_report_full(ls_conn_t *c)
{
    CONN_TELL(c, ls_conn_events->buffer(c, 1));
}

/* onDrain, for a graceful stop of a protocol without a drain of its own:
 * the app may say goodbye and close; an error in it closes. */
void
ls_conn_report_drain(ls_conn_t *c)
{
    if (ls_conn_events->drain != NULL &&
        !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)))
        CONN_TELL(c, ls_conn_events->drain(c));
}

/*
 * Accepted (or connected): onConnect, then wait for input. On a deferAccept
 * listener the first bytes are already in, so they are read at once instead
 * of first asking epoll: a short request can be read, answered and closed
 * without the socket ever being registered with epoll (W4: two epoll_ctl
 * calls fewer per connection, ADD and DEL). Only when that read leaves the
 * connection waiting for more is the read event added. Without deferAccept
 * the read would mostly find nothing yet (measured under W4: one wasted
 * read per connection), so the event is added straight away.
 */
void
ls_conn_start(ls_conn_t *c)
{
    ls_conn_incref(c); /* an error in onConnect closes it */
    c->flags |= LS_CONN_READING;  /* event_add below, or after the read */
    if (c->proto->start)
        c->proto->start(c);
    CONN_TELL(c, ls_conn_events->connect(c));
    /* (after a TLS handshake: only if the request came along with it) */
    if (c->srv->conf.defer_accept && !(c->flags & LS_CONN_OUTBOUND) &&
        (c->flags & (CONN_STOPPED | LS_CONN_READING)) == LS_CONN_READING &&
        (c->io == NULL || c->io->pending(c)))
        conn_read_event(c);
    if ((c->flags & (CONN_STOPPED | LS_CONN_READING)) == LS_CONN_READING)
        event_add(&c->rev, NULL);
    ls_conn_decref(c);
}

/* onError(conn, code, text), then close: the stream is no longer in sync. */
void
ls_conn_fail(ls_conn_t *c, int code, const char *text)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("bad or oversized input", 0);

    ls_log_limited(&lim, LS_LOG_WARN, 0, "conn %llu: %s (maxPackageSize %zu); "
                   "closing", (unsigned long long)c->id, text,
                   c->srv->conf.max_package_size);
    ls_conn_incref(c);
    ls_conn_events->error(c, code, text);
    ls_conn_close(c);
    ls_conn_decref(c);
}

/*
 * Deliver a batch of messages (all the whole packets of one read) under one
 * protected call: the per-call cost (lua_pcall's setjmp, the handler, the
 * callback's lookup from the registry) is paid once per read, not once per
 * message. An error in one onMessage ends the batch and, as always, closes
 * the connection, so the messages behind it would not have been delivered
 * anyway. next() stops once the connection is paused or closing.
 */
void
ls_conn_emit_messages(ls_conn_t *c, ls_conn_next_fn next, void *ctx)
{
    ls_conn_t *outer = ls_conn_stage_begin(c);

    CONN_TELL(c, ls_conn_events->messages(c, next, ctx));
    ls_conn_stage_end(c, outer);
}

/* What c sends from here to ls_conn_stage_end is staged (see "Staging"
 * below): a batch of messages, or the HTTP requests of one read. Returns
 * the stage's previous owner, for ls_conn_stage_end. The caller holds c. */
ls_conn_t *
ls_conn_stage_begin(ls_conn_t *c)
{
    ls_conn_t *outer = ls_worker->stage_conn;

    if (outer != NULL) /* a batch inside a batch: the outer one's first */
        conn_unstage(outer);
    ls_worker->stage_conn = c;
    return outer;
}

void
ls_conn_stage_end(ls_conn_t *c, ls_conn_t *outer)
{
    conn_stage_end(c);
    ls_worker->stage_conn = outer;
}

/* Write what c has staged now, before the stage's end (a last response
 * before a close): straight from the stage if nothing older waits; what the
 * socket does not take goes to the output buffer. */
void
ls_conn_stage_write(ls_conn_t *c)
{
    conn_stage_end(c);
}

/* Room for at least need more bytes at the tail of b, growing geometrically
 * so that a large message arriving in small pieces costs linear time. */
static int
buf_reserve(ls_buf_t *b, size_t need)
{
    size_t cap;
    char *p;

    if (b->cap - b->off - b->len >= need)
        return 0;
    if (b->off > 0 && b->cap - b->len >= need && b->len <= b->cap / 2) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return 0;
    }
    cap = b->cap ? b->cap : 4096;
    while (cap - b->len < need)
        cap *= 2;
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
    }
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static void
buf_release(ls_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/*
 * Traffic: note the time and move the connection to the head of its
 * server's list, which is thereby ordered by last activity, so the idle
 * sweep only looks at the tail.
 */
static void
conn_touch(ls_conn_t *c)
{
    ls_server_t *srv = c->srv;

    c->active = ls_loop_time();
    if (srv->conns == c)
        return;
    c->prev->next = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = srv->conns;
    srv->conns->prev = c;
    srv->conns = c;
}

/*
 * read(2) with the outcomes sorted out: > 0 bytes; 0 when the connection is
 * finished (EOF or error, already handled); -1 when there is nothing now.
 */
static ssize_t
conn_read_some(ls_conn_t *c, char *p, size_t n)
{
    ssize_t r;

    do {
        r = c->io ? c->io->read(c, p, n) : read(c->fd, p, n);
    } while (r < 0 && errno == EINTR);
    if (r > 0) {
        c->srv->bytes_in += (size_t)r;
        c->bytes_in += (size_t)r;
        conn_touch(c);
        return r;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return -1;
    if (r < 0 && errno != ECONNRESET) {
        static ls_log_limit_t lim = LS_LOG_LIMIT("read() failures", 0);
        ls_log_limited(&lim, LS_LOG_INFO, errno, "conn %llu: read() failed",
                       (unsigned long long)c->id);
    }
    /* EOF: answer what was asked before closing (a client that half-closes
     * after its request still gets the reply). */
    if (r == 0 && c->out && evbuffer_get_length(c->out) > 0)
        ls_conn_close(c);
    else
        conn_shutdown(c);
    return 0;
}

/*
 * A large framed message arriving in small pieces: with SO_RCVLOWAT the
 * kernel wakes us once a good part of what is still missing has arrived
 * (or on EOF), instead of once per piece, so the message is read in few
 * large read()s whatever the sender's write size. Reset once the message
 * is complete. Only for the length framings of the stream protocols, where
 * the missing length is known exactly.
 */
#define CONN_LOWAT_MIN (64 * 1024)
#define CONN_LOWAT_MAX (256 * 1024)

static void
conn_lowat(ls_conn_t *c)
{
    const ls_buf_t *b = &c->in;
    size_t want = 0;
    int v;

    if (c->proto != &ls_proto_stream || c->fd < 0 || c->io ||
        (c->flags & CONN_STOPPED))
        return;
    if (b->len > 0)
        want = ls_framing_missing(&c->srv->conf.framing, b->data + b->off,
                                  b->len);
    v = want < CONN_LOWAT_MIN ? 0
        : want > CONN_LOWAT_MAX ? CONN_LOWAT_MAX : (int)want;
    if (v == c->lowat)
        return;
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &(int){v ? v : 1},
                   sizeof(int)) < 0) {
        ls_log(LS_LOG_DEBUG, errno, "conn %llu: SO_RCVLOWAT",
               (unsigned long long)c->id);
        return;
    }
    c->lowat = v;
}

/*
 * For the idle sweep: with SO_RCVLOWAT set, bytes may have arrived that we
 * were not woken for. Counts as traffic (the connection is touched); 1 then.
 */
int
ls_conn_input_waiting(ls_conn_t *c)
{
    int n = 0;

    if (c->lowat == 0 || c->fd < 0 || ioctl(c->fd, FIONREAD, &n) < 0 ||
        n <= 0)
        return 0;
    conn_touch(c);
    return 1;
}

static void
conn_read(ls_conn_t *c)
{
    ls_buf_t *b = &c->in;
    size_t used, want;
    ssize_t n;

    if (b->len == 0) {
        /* Fast path: parse straight out of the shared buffer and keep only
         * an incomplete tail. */
        n = conn_read_some(c, ls_worker->rbuf, c->srv->read_size);
        if (n <= 0)
            return;
        used = c->proto->input(c, ls_worker->rbuf, (size_t)n);
        if (used < (size_t)n && !(c->flags & CONN_STOPPED)) {
            if (buf_reserve(b, (size_t)n - used) < 0)
                goto oom;
            memcpy(b->data, ls_worker->rbuf + used, (size_t)n - used);
            b->len = (size_t)n - used;
        }
        return;
    }

    /* Just resumed: offer what waits before reading, so that an EOF read
     * now cannot cut off requests that arrived before it. */
    if (c->flags & LS_CONN_RESUMED) {
        c->flags &= ~LS_CONN_RESUMED;
        used = c->proto->input(c, b->data + b->off, b->len);
        if (c->flags & CONN_STOPPED)
            return;
        b->off += used;
        b->len -= used;
        if (b->len == 0) {
            buf_release(b);
            return;
        }
        if (c->flags & CONN_HELD)
            return;
    }

    /* Slow path: read into the connection's own buffer, behind what waits
     * (nothing is read while paused; resumeRecv() brings us here). */
    if (!(c->flags & CONN_HELD)) {
        want = c->proto->missing
                   ? c->proto->missing(c, b->data + b->off, b->len)
                   : 0;
        if (want < c->srv->read_size)
            want = c->srv->read_size;
        if (buf_reserve(b, want) < 0)
            goto oom;
        n = conn_read_some(c, b->data + b->off + b->len, want);
        if (n == 0)
            return;
        if (n > 0)
            b->len += (size_t)n;
    }
    used = c->proto->input(c, b->data + b->off, b->len);
    if (c->flags & CONN_STOPPED)
        return;
    b->off += used;
    b->len -= used;
    if (b->len == 0)
        buf_release(b);
    return;

oom:
    ls_log(LS_LOG_ERROR, ENOMEM, "conn %llu: input buffer",
           (unsigned long long)c->id);
    conn_shutdown(c);
}

/* Readable (or assumed so, right after accept). The caller holds a
 * reference. */
static void
conn_read_event(ls_conn_t *c)
{
    if (c->flags & CONN_STOPPED)
        return;
    conn_read(c);
    if (c->lowat || c->in.len > 0)
        conn_lowat(c);
    /* records OpenSSL read ahead of what fitted: epoll will not tell */
    if (c->io && (c->flags & (CONN_STOPPED | LS_CONN_READING)) ==
                     LS_CONN_READING && c->io->pending(c))
        event_active(&c->rev, EV_READ, 0);
}

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    (void)fd;
    (void)what;

    ls_conn_incref(c);
    conn_read_event(c);
    ls_conn_decref(c);
    ls_conn_flush_all();
}

static void
conn_queue_flush(ls_conn_t *c)
{
    if (c->flags & LS_CONN_FLUSHQ)
        return;
    c->flags |= LS_CONN_FLUSHQ;
    ls_conn_incref(c);
    c->flush_next = ls_worker->flush_head;
    ls_worker->flush_head = c;
}

/*
 * Staging. While the messages of one read are delivered, what the app sends
 * back on that connection through the stream protocols is gathered in the
 * worker's stage and goes to the output buffer in one piece when the batch
 * ends: one evbuffer_add() per read instead of one per message. Whatever
 * else touches the output buffer moves the staged bytes there first
 * (ls_conn_outbuf, ls_conn_close, ls_conn_flush), so the order of the bytes
 * never changes; a connection that shuts down drops them with the rest of
 * its output.
 */
static void
conn_unstage_from(ls_conn_t *c, size_t off)
{
    ls_worker_t *w = ls_worker;
    size_t n = w->stage_len - off;

    w->stage_len = 0;
    if (c->out == NULL)
        c->out = evbuffer_new();
    if (c->out == NULL || evbuffer_add(c->out, w->stage + off, n) < 0) {
        ls_log(LS_LOG_ERROR, ENOMEM, "conn %llu: output buffer; closing",
               (unsigned long long)c->id);
        conn_shutdown(c);
    }
}

static void
conn_unstage(ls_conn_t *c)
{
    if (ls_worker->stage_conn == c && ls_worker->stage_len > 0)
        conn_unstage_from(c, 0);
}

/*
 * The batch is over. With nothing older waiting in the output buffer, the
 * replies are written straight from the stage (what the socket does not
 * take goes to the buffer); else they join the buffer, which
 * ls_conn_flush_all() writes. Errors are left to ls_conn_flush().
 */
static void
conn_stage_end(ls_conn_t *c)
{
    ls_worker_t *w = ls_worker;
    ssize_t n;

    if (w->stage_conn != c || w->stage_len == 0)
        return;
    if ((c->out != NULL && evbuffer_get_length(c->out) > 0) ||
        (c->flags & (LS_CONN_CLOSED | LS_CONN_CONNECTING))) {
        conn_unstage(c);
        return;
    }
    n = c->io ? c->io->write(c, w->stage, w->stage_len)
               : write(c->fd, w->stage, w->stage_len);
    if (n <= 0) {
        conn_unstage(c);
        return;
    }
    c->srv->bytes_out += (size_t)n;
    c->bytes_out += (size_t)n;
    conn_touch(c);
    if ((size_t)n < w->stage_len)
        conn_unstage_from(c, (size_t)n);
    else
        w->stage_len = 0;
}

/* Room for n bytes at the end of c's output in the stage, or NULL: c is
 * not the connection being delivered to, or n is large (then
 * ls_conn_outbuf). Fill it, then ls_conn_staged(c, n). */
char *
ls_conn_stage(ls_conn_t *c, size_t n)
{
    ls_worker_t *w = ls_worker;

    if (w->stage_conn != c || (c->flags & CONN_STOPPED) ||
        n > LS_STAGE_SIZE / 4)
        return NULL;
    if (LS_STAGE_SIZE - w->stage_len < n) {
        conn_unstage(c);
        if (c->flags & CONN_STOPPED)
            return NULL;
    }
    return w->stage + w->stage_len;
}

int
ls_conn_staged(ls_conn_t *c, size_t n)
{
    ls_worker->stage_len += n;
    return ls_conn_commit(c);
}

/* n bytes filled in at ls_conn_stage's pointer; the caller commits. */
void
ls_conn_stage_add(ls_conn_t *c, size_t n)
{
    (void)c;
    ls_worker->stage_len += n;
}

/* The output buffer, created on first use; NULL once closing. */
struct evbuffer *
ls_conn_outbuf(ls_conn_t *c)
{
    if (c->flags & CONN_STOPPED)
        return NULL;
    if (c->out == NULL)
        c->out = evbuffer_new();
    conn_unstage(c);
    return c->out;
}

/* Bytes waiting to be written: the output buffer and the stage. */
static size_t
conn_out_len(const ls_conn_t *c)
{
    size_t n = c->out ? evbuffer_get_length(c->out) : 0;

    if (ls_worker->stage_conn == c)
        n += ls_worker->stage_len;
    return n;
}

/*
 * A message was added to the output buffer or the stage. Nothing is
 * written here: the worker writes every connection's queue once the current
 * event has been handled (a batch's staged replies, when the batch ends), so
 * that many sends from one batch of messages leave in one write. Crossing
 * maxSendBufferSize (buffer and stage together) fires onBufferFull once;
 * sends are then refused until the buffer has drained (onBufferDrain).
 */
int
ls_conn_commit(ls_conn_t *c)
{
    c->srv->msgs_out++;
    conn_queue_flush(c);
    if (conn_out_len(c) >= c->srv->conf.max_send_buffer_size &&
        !(c->flags & LS_CONN_FULL)) {
        c->flags |= LS_CONN_FULL;
        ls_log(LS_LOG_DEBUG, 0, "conn %llu: send buffer full (%zu bytes)",
               (unsigned long long)c->id, conn_out_len(c));
        CONN_TELL(c, ls_conn_events->buffer(c, 1));
    }
    return LS_SEND_OK;
}

/* n bytes as they are (conn:send(data, true) on most protocols). */
int
ls_conn_write(ls_conn_t *c, const char *p, size_t n)
{
    struct evbuffer *out = ls_conn_outbuf(c);

    if (out == NULL)
        return LS_SEND_CLOSED;
    if (evbuffer_add(out, p, n) < 0)
        return LS_SEND_FULL;
    return ls_conn_commit(c);
}

/*
 * A send refused because the output is over maxSendBufferSize: the app got
 * false, "buffer full" and the message is gone. An app may mean that (a
 * chat server dropping what a slow reader cannot take), but one that does
 * not look at the result loses data silently: say so, at most once a second
 * per worker plus a count of the rest.
 */
void
ls_conn_refused(ls_conn_t *c)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("refused sends", 1);

    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: send refused, message "
                   "dropped: %zu bytes wait to be written (maxSendBufferSize "
                   "%zu); conn:send returned false, \"buffer full\"",
                   (unsigned long long)c->id, conn_out_len(c),
                   c->srv->conf.max_send_buffer_size);
}

/* Write every queued output. Called after each event that may have run Lua,
 * so that sends made while handling a batch of messages leave together. */
void
ls_conn_flush_all(void)
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

/* Write what is queued; arm the write event for the rest. */
void
ls_conn_flush(ls_conn_t *c)
{
    if (c->flags & (LS_CONN_CLOSED | LS_CONN_CONNECTING))
        return; /* queued output leaves once connected */
    conn_unstage(c);
    while (c->out && evbuffer_get_length(c->out) > 0) {
        int n = ls_conn_write_out(c);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!(c->flags & LS_CONN_WARMED)) {
                    /* sendTimeout: the persistent write event's timeout
                     * restarts each time the socket takes more */
                    event_add(&c->wev,
                              ls_loop_timeout(c->srv->conf.send_timeout));
                    c->flags |= LS_CONN_WARMED;
                }
                return;
            }
            if (errno != EPIPE && errno != ECONNRESET) {
                static ls_log_limit_t lim = LS_LOG_LIMIT("write() failures",
                                                         0);
                ls_log_limited(&lim, LS_LOG_INFO, errno,
                               "conn %llu: write() failed",
                               (unsigned long long)c->id);
            }
            conn_shutdown(c);
            return;
        }
        c->srv->bytes_out += (size_t)n;
        c->bytes_out += (size_t)n;
        conn_touch(c);
    }
    if (c->flags & LS_CONN_WARMED) {
        event_del(&c->wev);
        c->flags &= ~LS_CONN_WARMED;
    }
    if (c->flags & LS_CONN_CLOSING) {
        conn_shutdown(c);
        return;
    }
    if (c->flags & LS_CONN_FULL) {
        c->flags &= ~LS_CONN_FULL;
        CONN_TELL(c, ls_conn_events->buffer(c, 0));
    }
}

static void conn_connected(ls_conn_t *c);

/*
 * sendTimeout: output has been waiting that long and the peer took none of
 * it (a client that stopped reading, or a slow-read attack). onError(conn,
 * TIMEOUT, text) unless the app already closed it, then the connection
 * goes with its output.
 */
static void
conn_send_timeout(ls_conn_t *c)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("send timeouts", 0);
    char text[160];

    if (c->out == NULL || evbuffer_get_length(c->out) == 0)
        return;
    ls_worker->timeouts[LS_TMO_SEND]++;
    snprintf(text, sizeof(text), "sendTimeout (%g s): the peer took none of "
             "%zu pending bytes", c->srv->conf.send_timeout,
             evbuffer_get_length(c->out));
    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: %s; closing",
                   (unsigned long long)c->id, text);
    if (!(c->flags & CONN_STOPPED) &&
        ls_conn_events->error(c, LS_ERR_TIMEOUT, text) == LS_EV_ERROR)
        ls_conn_close(c);
    ls_conn_destroy(c);
}

static void
conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    (void)fd;

    ls_conn_incref(c);
    if (c->flags & LS_CONN_CONNECTING)
        conn_connected(c);
    else if (what == EV_TIMEOUT)
        conn_send_timeout(c);
    else
        ls_conn_flush(c);
    ls_conn_decref(c);
    ls_conn_flush_all();
}

/*
 * The end of a connection: events and socket gone, onClose fired, the Lua box
 * cleared so that a conn kept by the app answers "closed". Idempotent.
 */
static void
conn_shutdown(ls_conn_t *c)
{
    ls_server_t *srv = c->srv;

    if (c->flags & LS_CONN_CLOSED)
        return;
    c->flags |= LS_CONN_CLOSED;
    if (c->flags & LS_CONN_READING)
        event_del(&c->rev);
    if (c->flags & LS_CONN_WARMED)
        event_del(&c->wev);
    c->flags &= ~(LS_CONN_READING | LS_CONN_WARMED);
    if (c->timer) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (c->io) {
        c->io->shutdown(c);
        c->io->release(c);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    srv->nconns--;
    if (ls_worker->stage_conn == c)
        ls_worker->stage_len = 0;  /* dropped, as the output buffer is */

    ls_conn_events->close(c);  /* onClose; the app's handle says "closed" */
    if (c->proto->release)
        c->proto->release(c);
    if (c->flags & LS_CONN_OUTBOUND) {
        /* The outbound context goes with its only connection. */
        if (srv->oprev)
            srv->oprev->onext = srv->onext;
        else
            ls_worker->outbound = srv->onext;
        if (srv->onext)
            srv->onext->oprev = srv->oprev;
        ls_conn_events->server_gone(srv);
    }
    if (ls_worker->conn_closed)
        ls_worker->conn_closed(ls_worker);
    ls_conn_decref(c); /* the "open" reference */
}

/* One write of the head of the output buffer (as evbuffer_write does),
 * through TLS if the connection has it. */
int
ls_conn_write_out(ls_conn_t *c)
{
    if (c->io)
        return c->io->write_buffer(c, c->out);
    return evbuffer_write(c->out, c->fd);
}

/* shutdown(SHUT_WR), after a close_notify on TLS (a lingering close). */
void
ls_conn_shutdown_write(ls_conn_t *c)
{
    if (c->fd < 0)
        return;
    if (c->io)
        c->io->shutdown(c);
    shutdown(c->fd, SHUT_WR);
}

/* conn:close(): stop reading, write what is queued, then shut down. */
void
ls_conn_close(ls_conn_t *c)
{
    /* nothing is staged once closing or closed: what is goes out now if
     * nothing older waits, else joins the output buffer */
    conn_stage_end(c);
    if (c->flags & CONN_STOPPED)
        return;
    c->flags |= LS_CONN_CLOSING;
    if (c->flags & LS_CONN_READING) {
        event_del(&c->rev);
        c->flags &= ~LS_CONN_READING;
    }
    if (c->out && evbuffer_get_length(c->out) > 0)
        conn_queue_flush(c);
    else
        conn_shutdown(c);
}

/* conn:destroy(): now, dropping unsent data. */
void
ls_conn_destroy(ls_conn_t *c)
{
    conn_shutdown(c);
}

void
ls_conn_pause(ls_conn_t *c)
{
    if (c->flags & (CONN_STOPPED | LS_CONN_PAUSED))
        return;
    c->flags |= LS_CONN_PAUSED;
    if (c->flags & LS_CONN_READING) {
        event_del(&c->rev);
        c->flags &= ~LS_CONN_READING;
    }
}

void
ls_conn_resume(ls_conn_t *c)
{
    if ((c->flags & CONN_STOPPED) || !(c->flags & LS_CONN_PAUSED))
        return;
    c->flags &= ~LS_CONN_PAUSED;
    if (c->flags & LS_CONN_WAITING)
        return; /* reading starts when the waiting callback is done */
    event_add(&c->rev, NULL);
    c->flags |= LS_CONN_READING;
    /* Packets that arrived before the pause are delivered from the loop, not
     * from inside the resumeRecv() call. */
    if (c->in.len > 0) {
        c->flags |= LS_CONN_RESUMED;
        event_active(&c->rev, EV_READ, 0);
    } else if (c->io && c->io->pending(c)) {
        event_active(&c->rev, EV_READ, 0);
    }
}

/*
 * The app's callback for c waits (a coroutine that yielded): no further
 * message is delivered, and nothing read, until it is done. What arrived
 * meanwhile waits in the input buffer (and then in the socket).
 */
void
ls_conn_hold(ls_conn_t *c)
{
    if (c->flags & CONN_STOPPED)
        return;
    c->flags |= LS_CONN_WAITING;
    if (c->flags & LS_CONN_READING) {
        event_del(&c->rev);
        c->flags &= ~LS_CONN_READING;
    }
}

/* The waiting callback is done: messages that wait are delivered from the
 * loop, as after resumeRecv(). */
void
ls_conn_unhold(ls_conn_t *c)
{
    if (!(c->flags & LS_CONN_WAITING))
        return;
    c->flags &= ~LS_CONN_WAITING;
    if (c->flags & (CONN_STOPPED | LS_CONN_PAUSED | LS_CONN_CONNECTING))
        return;
    event_add(&c->rev, NULL);
    c->flags |= LS_CONN_READING;
    if (c->in.len > 0) {
        c->flags |= LS_CONN_RESUMED;
        event_active(&c->rev, EV_READ, 0);
    } else if (c->io && c->io->pending(c)) {
        event_active(&c->rev, EV_READ, 0);
    }
}

/* onError(conn, CONNECT_FAIL, msg), then onClose. */
void
ls_conn_connect_fail(ls_conn_t *c, const char *msg)
{
    if (c->flags & LS_CONN_CLOSED)
        return;
    ls_log(LS_LOG_INFO, 0, "conn %llu: %s", (unsigned long long)c->id, msg);
    ls_conn_incref(c);
    ls_conn_events->error(c, LS_ERR_CONNECT_FAIL, msg);
    conn_shutdown(c);
    ls_conn_decref(c);
}

/*
 * Start a non-blocking connect; completion (or failure) arrives as
 * writability. Returns -1 with err when it failed at once.
 */
int
ls_conn_connect(ls_conn_t *c, const struct sockaddr *sa, socklen_t len,
                char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    if (len <= sizeof(c->peer))
        memcpy(&c->peer, sa, len);
    c->fd = fd;
    event_assign(&c->rev, ls_worker->base, fd, EV_READ | EV_PERSIST,
                 conn_on_read, c);
    event_assign(&c->wev, ls_worker->base, fd, EV_WRITE | EV_PERSIST,
                 conn_on_write, c);
    event_add(&c->wev, NULL);
    c->flags |= LS_CONN_WARMED;
    return 0;
}

static void
conn_connected(ls_conn_t *c)
{
    int err = 0, on = 1;
    socklen_t len = sizeof(err);
    char msg[256], ip[64];
    int port;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        ls_conn_peer(c, ip, sizeof(ip), &port);
        snprintf(msg, sizeof(msg), "connect to %s:%d failed: %s", ip, port,
                 strerror(err));
        ls_conn_connect_fail(c, msg);
        return;
    }
    c->flags &= ~LS_CONN_CONNECTING;
    if (c->timer) {
        event_free(c->timer);
        c->timer = NULL;
    }
    /* the write event waited for the connect; output re-arms it (with
     * sendTimeout) */
    event_del(&c->wev);
    c->flags &= ~LS_CONN_WARMED;
    if (c->peer.sa.sa_family != AF_UNIX)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    ls_conn_start(c);
    ls_conn_flush(c); /* what was sent while connecting */
}

static int
conn_format(const struct sockaddr *sa, char *ip, size_t iplen, int *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(s->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(s->sin6_port);
    } else {
        ip[0] = '\0';
        *port = 0;
    }
    return 0;
}

int
ls_conn_peer(const ls_conn_t *c, char *ip, size_t iplen, int *port)
{
    return conn_format(&c->peer.sa, ip, iplen, port);
}

int
ls_conn_local(const ls_conn_t *c, char *ip, size_t iplen, int *port)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        ip[0] = '\0';
        *port = 0;
        return -1;
    }
    return conn_format((struct sockaddr *)&ss, ip, iplen, port);
}
