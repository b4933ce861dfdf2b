/*
 * http.c -- http://: HTTP/1.1 and 1.0 server connections, parsed by llhttp.
 *
 * ---- user guide (README) ------------------------------------------------
 *
 *   local web = luaserv.listen("http://0.0.0.0:8080", {
 *       maxHeaderSize = 16 * 1024,       -- request line + headers, else 431
 *       maxBodySize = 10 * 1024 * 1024,  -- default: maxPackageSize, else 413
 *       headerTimeout = 10,              -- s until a request head is whole
 *       bodyTimeout = 30,                -- s between two reads of a body
 *   })
 *   function web.onMessage(conn, req) conn:send("<h1>hello</h1>") end
 *
 * The request:
 *   req.method    "GET", "POST", ...
 *   req.url       the request target as sent: "/find?q=a%20b"
 *   req.path      its path, not decoded: "/find"
 *   req.query     the query decoded into a table: {q = "a b"}; a key without
 *                 "=" is true, a repeated key gives an array of its values
 *   req.headers   lower-case names; repeated headers are joined with ", "
 *                 (cookie with "; "); set-cookie is always an array
 *   req.body      the whole body, "" if none (chunked uploads de-chunked)
 *   req.version   "1.1" or "1.0"
 *
 * The response, exactly one per request, at once or later (from a timer):
 *   conn:send("<p>hi</p>")          200, Content-Type: text/html; charset=utf-8
 *   conn:send{status = 404, headers = {["Content-Type"] = "text/plain"},
 *             body = "not here"}     status 200..999 (1xx are luaserv's)
 *   A header value is a string, a number, or an array of them (one header
 *   line each: ["Set-Cookie"] = {"a=1", "b=2"}). luaserv sets Date (unless
 *   the app does) and Content-Length; an app's Content-Length or
 *   Transfer-Encoding is ignored; "Connection: close" from the app closes the
 *   connection after the response. Content-Type defaults as above.
 *   HEAD: answer as for GET; the head goes out with the Content-Length of the
 *   body given, the body does not. 204 and 304 never carry a body.
 *
 * Streaming, when the length is not known up front (chunked in HTTP/1.1; for
 * HTTP/1.0 the body runs until the connection closes):
 *   conn:send{status = 200, headers = {...}, stream = true [, body = part]}
 *   conn:send(part) ...              false, "buffer full": wait for
 *                                    onBufferDrain, then go on
 *   conn:send{done = true [, body = last part]}         ends the response
 *   Closing the connection mid-stream aborts the response (the client sees
 *   it cut short).
 *
 * Order: the requests of one connection reach onMessage one at a time. The
 * next pipelined request is parsed only when the current one has been
 * answered (a whole response, or the done of a stream), so responses always
 * leave in request order, whether the app answers at once or later; reading
 * pauses meanwhile (one request in flight per connection, as in nginx).
 * conn:send when no request is waiting raises an error;
 * conn:send(bytes, true) writes bytes as they are and answers nothing.
 *
 * Keep-alive follows HTTP/1.1 (unless "Connection: close") and HTTP/1.0
 * (only with "Connection: keep-alive"). "Expect: 100-continue" gets
 * "100 Continue" once the head is accepted (or 413 at once when the declared
 * length is too large). WebSocket: a listener whose table has
 * onWebSocketConnect takes "Upgrade: websocket" requests as handshakes
 * (see ws.c; without the hook they are ordinary requests, as are other
 * upgrades); on websocket:// listeners every request must be one.
 * A Lua error in onMessage before the response has begun sends 500, then
 * closes.
 *
 * Bad requests: 400 for malformed input and for what smuggling relies on
 * (Content-Length with Transfer-Encoding, Transfer-Encoding twice or in
 * HTTP/1.0, obs-fold, a space before the colon, bare CR, no Host in 1.1, two
 * Host headers); 405 for CONNECT; 505 for versions other than 1.x; 431 for a
 * head over maxHeaderSize; 413 for a body over maxBodySize (and for a
 * chunked upload taking more than about twice that on the wire). Then
 * onError(conn, code, text) (luaserv.errors.PACKAGE_TOO_BIG for 413/431,
 * BAD_INPUT otherwise) and the connection closes; nothing pipelined behind a
 * bad request runs. The close lingers as nginx's does: the write side is
 * shut once the reply is out, and input is read and dropped until the client
 * closes, has sent nothing for 1 s, or 10 s have passed, so that the client
 * reads the error instead of a reset caused by the bytes it is still sending.
 * The last response of a connection (Connection: close, HTTP/1.0, a 500, a
 * graceful stop) and the timeouts (see "Slow clients") close the same way, so
 * requests pipelined behind it cannot turn the close into a reset either.
 *
 * Graceful stop (SIGQUIT, reload): a request in progress is answered with
 * Connection: close; an idle keep-alive connection closes at once if it was
 * quiet for a second, else it gets one second to send its next request
 * (answered with Connection: close), so a reload under load fails nothing.
 * headerTimeout / bodyTimeout (408) and sendTimeout: see "Slow clients".
 * ------------------------------------------------------------------------
 *
 * How it is done: the bytes of the request being parsed stay in the
 * connection's input buffer (input() reports them unused until the request
 * has been handed to the app), so the URL, header names and values, and the body are
 * offsets into that buffer: nothing is copied or allocated per request except
 * the Lua strings and tables handed to the app. llhttp keeps its own state
 * and is given each byte once (ls_http_t.parsed counts how many it has seen).
 * Those bytes are ours until consumed and llhttp never looks back, so they are
 * edited in place: chunked body data is moved down over the chunk framing,
 * header names lower-cased and the query decoded there.
 */
#include "http/http.h"
#include "http/http_reply.h"
#include "core/log.h"
#include "core/mempool.h"
#include "net/conn.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#define HTTP_STOPPED (LS_CONN_CLOSING | LS_CONN_CLOSED)
#define HTTP_LINGER_QUIET 1.0  /* s without input that end a lingering close */
#define HTTP_LINGER_MAX 10.0   /* s a lingering close lasts at most */
#define HTTP_CHUNK_SLACK (64 * 1024)

/* Flags that outlive one request; the others are cleared when one begins. */
#define HTTP_CONN_FLAGS (LS_HTTP_DRAINING | LS_HTTP_LINGER | LS_HTTP_HELD)

/* The app's side (ls_http_set_events), and the protocol an upgrade
 * switches to (ws.c sets it). */
const ls_http_events_t *ls_http_events;
ls_http_upgrade_fn ls_http_upgrade;

void
ls_http_set_events(const ls_http_events_t *ev)
{
    ls_http_events = ev;
}

static inline ls_http_t *
http_of(llhttp_t *p)
{
    return p->data;
}

static inline size_t
http_max_header(const ls_http_t *h)
{
    return h->c->srv->conf.max_header_size;
}

static inline size_t
http_max_body(const ls_http_t *h)
{
    return h->c->srv->conf.max_body_size;
}

/* Record why the request is refused; the llhttp callback returns this. */
static int
http_refuse(ls_http_t *h, int status, const char *why)
{
    if (h->status == 0) {
        h->status = status;
        h->why = why;
    }
    return HPE_USER;
}

/* ---- llhttp callbacks ---------------------------------------------------- */

static int
http_on_message_begin(llhttp_t *p)
{
    ls_http_t *h = http_of(p);

    h->flags = (h->flags & HTTP_CONN_FLAGS) | LS_HTTP_IN_MSG;
    h->ulen = h->blen = 0;
    h->nhdrs = 0;
    h->hosts = h->tes = 0;
    h->expect = -1;
    h->status = 0;
    h->why = NULL;
    return 0;
}

/* A head that outgrows maxHeaderSize is refused as it arrives. */
static inline int
http_head_check(ls_http_t *h, const char *end)
{
    if ((size_t)(end - h->rbase) > http_max_header(h))
        return http_refuse(h, 431, "request head larger than maxHeaderSize");
    return 0;
}

static int
http_on_url(llhttp_t *p, const char *at, size_t n)
{
    ls_http_t *h = http_of(p);

    if (h->ulen == 0)
        h->url = (size_t)(at - h->rbase);
    h->ulen += n;
    return http_head_check(h, at + n);
}

static int
http_on_header_field(llhttp_t *p, const char *at, size_t n)
{
    ls_http_t *h = http_of(p);
    ls_http_hdr_t *hd;

    if (h->flags & LS_HTTP_HEAD_DONE)
        return 0; /* a chunked trailer: ignored */
    if (h->flags & LS_HTTP_IN_FIELD) {
        h->hdrs[h->nhdrs - 1].nlen += (uint32_t)n;
        return http_head_check(h, at + n);
    }
    if (h->nhdrs == h->hcap) {
        uint32_t cap = h->hcap * 2;
        ls_http_hdr_t *a = h->hdrs == h->inline_hdrs
                               ? malloc(cap * sizeof(*a))
                               : realloc(h->hdrs, cap * sizeof(*a));
        if (a == NULL)
            return http_refuse(h, 503, "out of memory for headers");
        if (h->hdrs == h->inline_hdrs)
            memcpy(a, h->inline_hdrs, sizeof(h->inline_hdrs));
        h->hdrs = a;
        h->hcap = cap;
    }
    hd = &h->hdrs[h->nhdrs++];
    hd->name = (uint32_t)(at - h->rbase);
    hd->nlen = (uint32_t)n;
    hd->value = hd->name + hd->nlen;
    hd->vlen = 0;
    h->flags |= LS_HTTP_IN_FIELD;
    return http_head_check(h, at + n);
}

/*
 * The name is whole: llhttp lets "Host : a" and "X Y: z" through, so every
 * byte must be a tchar. Count what smuggling checks need.
 */
static int
http_on_header_field_complete(llhttp_t *p)
{
    ls_http_t *h = http_of(p);
    const ls_http_hdr_t *hd;
    const char *name;

    if (h->flags & LS_HTTP_HEAD_DONE)
        return 0;
    h->flags &= ~LS_HTTP_IN_FIELD;
    hd = &h->hdrs[h->nhdrs - 1];
    name = h->rbase + hd->name;
    for (uint32_t i = 0; i < hd->nlen; i++)
        if (!ls_http_tchar((unsigned char)name[i]))
            return http_refuse(h, 400, "invalid character in a header name");
    if (hd->nlen == 4 && strncasecmp(name, "host", 4) == 0)
        h->hosts++;
    else if (hd->nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0)
        h->tes++;
    else if (hd->nlen == 6 && strncasecmp(name, "expect", 6) == 0)
        h->expect = (int)h->nhdrs - 1;
    return 0;
}

/*
 * The value of a header continues: llhttp accepts obs-fold (a line starting
 * with a space continues the value before it) and reports the parts as if
 * they were one value. Here the parts of one value must be adjacent bytes, and
 * the first must follow the colon with only spaces between.
 */
static int
http_on_header_value(llhttp_t *p, const char *at, size_t n)
{
    ls_http_t *h = http_of(p);
    ls_http_hdr_t *hd;

    if ((h->flags & LS_HTTP_HEAD_DONE) || n == 0)
        return 0; /* an empty value is reported after its line end */
    hd = &h->hdrs[h->nhdrs - 1];
    if (h->flags & LS_HTTP_IN_VALUE) {
        if ((size_t)(at - h->rbase) != (size_t)hd->value + hd->vlen)
            return http_refuse(h, 400, "obs-fold in a header");
        hd->vlen += (uint32_t)n;
    } else {
        const char *q = at;
        while (q > h->rbase && (q[-1] == ' ' || q[-1] == '\t'))
            q--;
        if (q == h->rbase || q[-1] != ':')
            return http_refuse(h, 400, "obs-fold in a header");
        hd->value = (uint32_t)(at - h->rbase);
        hd->vlen = (uint32_t)n;
        h->flags |= LS_HTTP_IN_VALUE;
    }
    return http_head_check(h, at + n);
}

static int
http_on_header_value_complete(llhttp_t *p)
{
    ls_http_t *h = http_of(p);
    ls_http_hdr_t *hd;
    const char *v;

    if (h->flags & LS_HTTP_HEAD_DONE)
        return 0;
    h->flags &= ~LS_HTTP_IN_VALUE;
    hd = &h->hdrs[h->nhdrs - 1];
    v = h->rbase + hd->value;
    while (hd->vlen > 0 && (v[hd->vlen - 1] == ' ' || v[hd->vlen - 1] == '\t'))
        hd->vlen--;
    return 0;
}

/* The head is complete: the checks no single header can make. */
/* Is the one Transfer-Encoding header exactly "chunked" (any case, spaces
 * around)? */
static int
http_te_chunked(const ls_http_t *h)
{
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        const char *v = h->rbase + hd->value;
        size_t n = hd->vlen;
        if (hd->nlen != 17 ||
            strncasecmp(h->rbase + hd->name, "transfer-encoding", 17) != 0)
            continue;
        while (n > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            n--;
        }
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        return n == 7 && strncasecmp(v, "chunked", 7) == 0;
    }
    return 0;
}

static int
http_on_headers_complete(llhttp_t *p)
{
    ls_http_t *h = http_of(p);
    int body = (p->flags & F_CHUNKED) || p->content_length > 0;

    h->flags |= LS_HTTP_HEAD_DONE;
    if (p->http_major != 1)
        return http_refuse(h, 505, "HTTP version not supported");
    if (h->hosts > 1)
        return http_refuse(h, 400, "more than one Host header");
    if (h->hosts == 0 && p->http_minor > 0)
        return http_refuse(h, 400, "no Host header in an HTTP/1.1 request");
    if (h->tes > 1)
        return http_refuse(h, 400, "more than one Transfer-Encoding header");
    if (h->tes > 0 && p->http_minor == 0)
        return http_refuse(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
    if (h->tes > 0 && !http_te_chunked(h))
        /* as nginx: chunked is the only coding taken */
        return http_refuse(h, 501, "a transfer coding other than chunked");
    if (p->method == HTTP_CONNECT)
        return http_refuse(h, 405, "CONNECT is not supported");
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > http_max_body(h))
        return http_refuse(h, 413, "request body larger than maxBodySize");
    if (h->expect >= 0 && body && p->http_minor > 0) {
        const ls_http_hdr_t *hd = &h->hdrs[h->expect];
        if (hd->vlen == 12 &&
            strncasecmp(h->rbase + hd->value, "100-continue", 12) == 0) {
            h->flags |= LS_HTTP_CONTINUE;
            return HPE_PAUSED;
        }
    }
    return 0;
}

static int
http_on_chunk_header(llhttp_t *p)
{
    ls_http_t *h = http_of(p);

    /* content_length holds the size of the chunk that starts here */
    if (p->content_length > http_max_body(h) - h->blen)
        return http_refuse(h, 413, "request body larger than maxBodySize");
    return 0;
}

/* Body bytes are gathered right behind the ones before: in a chunked body
 * that moves them down over the chunk framing llhttp has already read. */
static int
http_on_body(llhttp_t *p, const char *at, size_t n)
{
    ls_http_t *h = http_of(p);
    char *end;

    if (h->blen == 0)
        h->body = (size_t)(at - h->rbase);
    end = (char *)h->rbase + h->body + h->blen;
    if (end != at)
        memmove(end, at, n);
    h->blen += n;
    if (h->blen > http_max_body(h))
        return http_refuse(h, 413, "request body larger than maxBodySize");
    return 0;
}

/* Stop at the end of each request, so that it is answered before the next
 * one is parsed. */
static int
http_on_message_complete(llhttp_t *p)
{
    http_of(p)->flags &= ~LS_HTTP_IN_MSG;
    return HPE_PAUSED;
}

static const llhttp_settings_t http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_headers_complete = http_on_headers_complete,
    .on_body = http_on_body,
    .on_message_complete = http_on_message_complete,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value_complete = http_on_header_value_complete,
    .on_chunk_header = http_on_chunk_header,
};

/* ---- headerTimeout and bodyTimeout ---------------------------------------
 *
 * One timer per connection, armed for the phase it is in: from accept, or
 * from the end of the previous response, until the request head is whole
 * (headerTimeout); then between two reads of the body (bodyTimeout). All
 * connections share the same durations, so the timers are libevent "common
 * timeouts" (a queue, not the heap: arming and disarming cost O(1)).
 * Neither timer is moved on every event; each is checked lazily when it
 * fires: the body timer against the last read, the head timer against the
 * end of the last response (tmo_from). A keep-alive connection's head timer
 * stays armed while the app has the request (it is ignored if it fires
 * then), so that a request costs no timer calls at all.
 */

enum { HTTP_TMO_NONE, HTTP_TMO_HEAD, HTTP_TMO_BODY };

static void http_linger(ls_conn_t *c, ls_http_t *h);

static void
http_tmo_set(ls_http_t *h, int which)
{
    const ls_listen_conf_t *l = &h->c->srv->conf;
    const struct timeval *tv;

    if (which == HTTP_TMO_HEAD)
        h->tmo_from = ls_loop_time();
    if (h->tmo == which)
        return;
    if (h->tmo != HTTP_TMO_NONE)
        evtimer_del(&h->tmo_ev);
    h->tmo = HTTP_TMO_NONE;
    if (which == HTTP_TMO_NONE)
        return;
    tv = ls_loop_timeout(which == HTTP_TMO_HEAD ? l->header_timeout
                                                  : l->body_timeout);
    if (tv != NULL && evtimer_add(&h->tmo_ev, tv) == 0)
        h->tmo = (uint8_t)which;
}

static void
http_tmo_in(ls_http_t *h, int which, double secs)
{
    struct timeval tv;

    if (secs < 0.001)
        secs = 0.001;
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    if (evtimer_add(&h->tmo_ev, &tv) == 0)
        h->tmo = (uint8_t)which;
}

/*
 * The client took too long. Nothing of the next request yet (an idle
 * keep-alive connection, or one that never sent a byte): close without a
 * reply, as nginx does when keepalive_timeout ends (a 408 could cross a
 * request the client is sending right now). Otherwise 408 with Connection:
 * close, onError(conn, TIMEOUT, text), and the lingering close.
 */
static void
http_timed_out(ls_conn_t *c, ls_http_t *h, int which)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("request timeouts", 0);
    const ls_listen_conf_t *l = &c->srv->conf;
    char text[160];

    if (which == HTTP_TMO_HEAD && !(h->flags & LS_HTTP_IN_MSG)) {
        static ls_log_limit_t ilim = LS_LOG_LIMIT("idle HTTP connections "
                                                  "closed", 0);
        ls_log_limited(&ilim, LS_LOG_DEBUG, 0, "conn %llu: no request within "
                       "headerTimeout (%g s); closing",
                       (unsigned long long)c->id, l->header_timeout);
        http_linger(c, h);
        return;
    }
    ls_worker->timeouts[which == HTTP_TMO_HEAD ? LS_TMO_HEADER
                                               : LS_TMO_BODY]++;
    if (which == HTTP_TMO_HEAD)
        snprintf(text, sizeof(text), "408 Request Timeout: request head not "
                 "complete within headerTimeout (%g s)", l->header_timeout);
    else
        snprintf(text, sizeof(text), "408 Request Timeout: no request body "
                 "data for bodyTimeout (%g s)", l->body_timeout);
    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: %s; closing",
                   (unsigned long long)c->id, text);
    ls_http_reply_error(c, 408);
    if (!(c->flags & HTTP_STOPPED))
        ls_conn_report_error(c, LS_ERR_TIMEOUT, text);
    if (c->flags & HTTP_STOPPED)
        return;
    http_linger(c, h);
}

static void
http_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    ls_http_t *h = c->pstate;
    int which;
    (void)fd;
    (void)what;

    if (h == NULL || (c->flags & HTTP_STOPPED))
        return;
    which = h->tmo;
    h->tmo = HTTP_TMO_NONE;
    if (which == HTTP_TMO_NONE ||
        (h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_LINGER)))
        return;
    if (c->flags & LS_CONN_PAUSED) {
        /* the app paused reading (pauseRecv): not the client's doing */
        http_tmo_set(h, which);
        return;
    }
    {   /* the phase began later than the timer was armed: not yet */
        double limit = which == HTTP_TMO_BODY ? c->srv->conf.body_timeout
                                              : c->srv->conf.header_timeout;
        double quiet = ls_loop_time() -
                       (which == HTTP_TMO_BODY ? c->active : h->tmo_from);
        if (quiet < 0)  /* the wall clock went back */
            quiet = 0;
        if (quiet < limit) {
            http_tmo_in(h, which, limit - quiet);
            return;
        }
    }
    ls_conn_incref(c);
    http_timed_out(c, h, which);
    ls_conn_decref(c);
    ls_conn_flush_all();
}

/* A response is complete and the connection stays: its next request head
 * must be in within headerTimeout. */
void
ls_http_await(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;

    if (h == NULL || (c->flags & HTTP_STOPPED) ||
        (h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_LINGER)))
        return;
    http_tmo_set(h, HTTP_TMO_HEAD);
}

/*
 * Hand a whole request to onMessage. A Lua error before the response has
 * begun is answered with 500 (OpenResty does the same), then the connection
 * closes as for any protocol.
 */
static void
http_dispatch(ls_conn_t *c, ls_http_t *h, char *base)
{
    llhttp_t *p = &h->parser;
    int status;

    ls_server_took_message(c->srv);
    /* The app's turn: no client timeout. A head timer may stay armed (it
     * is ignored while the request is in flight, see http_tmo_set). */
    if (h->tmo != HTTP_TMO_HEAD)
        http_tmo_set(h, HTTP_TMO_NONE);
    h->flags |= LS_HTTP_INFLIGHT;
    if (llhttp_should_keep_alive(p))
        h->flags |= LS_HTTP_KEEPALIVE;
    if (p->http_minor == 0)
        h->flags |= LS_HTTP_V10;
    if (p->method == HTTP_HEAD)
        h->flags |= LS_HTTP_HEAD_REQ;
    ls_conn_incref(c);
    status = ls_http_events->request(c, h, base);
    if (status == LS_EV_NONE) {
        ls_http_reply_error(c, 404);
        ls_http_retire(c);
    } else if (status == LS_EV_ERROR && !(c->flags & HTTP_STOPPED)) {
        if ((h->flags & LS_HTTP_INFLIGHT) && !(h->flags & LS_HTTP_STREAMING)) {
            ls_http_reply_error(c, 500);
            ls_http_retire(c);
        } else {
            ls_conn_close(c);
        }
    }
    ls_conn_decref(c);
}

/*
 * The handler of the request in flight failed after it had waited (the
 * Lua layer logged it): as for a failure before (http_dispatch), a 500
 * unless the response has begun, which the close then cuts short.
 */
void
ls_http_abort(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;

    if (c->flags & HTTP_STOPPED)
        return;
    if (c->proto->kind == LS_PROTO_HTTP && h != NULL &&
        (h->flags & LS_HTTP_INFLIGHT) && !(h->flags & LS_HTTP_STREAMING)) {
        ls_http_reply_error(c, 500);
        ls_http_retire(c);
    } else {
        ls_conn_close(c);
    }
}

/* ---- errors and the lingering close ------------------------------------- */

static void
http_on_linger_timeout(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    ls_http_t *h = c->pstate;
    double now = ls_loop_time(), quiet = now - c->active;
    (void)fd;
    (void)what;

    /* a client still sending (a large upload refused at its head) is
     * drained on, up to HTTP_LINGER_MAX: closing now would reset it */
    if (h != NULL && quiet < HTTP_LINGER_QUIET &&
        now - h->linger_since < HTTP_LINGER_MAX) {
        struct timeval tv;
        double rest = HTTP_LINGER_QUIET - quiet + 0.01;
        tv.tv_sec = (time_t)rest;
        tv.tv_usec = (suseconds_t)((rest - (double)tv.tv_sec) * 1e6);
        evtimer_add(&h->linger_ev, &tv);
        return;
    }
    ls_conn_incref(c);
    /* a client that reads nothing for a second still gets what is queued */
    if (c->out && evbuffer_get_length(c->out) > 0)
        ls_conn_close(c);
    else
        ls_conn_destroy(c);
    ls_conn_decref(c);
    ls_conn_flush_all();
}

/* The error reply has left: end our side and let the client read it. */
static void
http_on_out(struct evbuffer *out, const struct evbuffer_cb_info *info,
            void *arg)
{
    ls_conn_t *c = arg;
    ls_http_t *h = c->pstate;

    if (info->n_deleted == 0 || evbuffer_get_length(out) > 0 || h == NULL ||
        h->linger_cb == NULL)
        return;
    evbuffer_cb_clear_flags(out, h->linger_cb, EVBUFFER_CB_ENABLED);
    ls_conn_shutdown_write(c);
}

/*
 * nginx's lingering close: closing a socket with unread input makes the
 * kernel send a reset, which can destroy the last response before the
 * client has read it. So: shut our side once the response is written, drop
 * whatever still comes in, and close on EOF, after a second without input,
 * or after HTTP_LINGER_MAX seconds in all (lingering_timeout and
 * lingering_time in nginx). Used after error replies, timeouts and the
 * last response of a connection.
 */
static void
http_linger(ls_conn_t *c, ls_http_t *h)
{
    struct timeval tv = {(time_t)HTTP_LINGER_QUIET, 0};

    if (h->flags & LS_HTTP_LINGER)
        return;
    h->flags |= LS_HTTP_LINGER;
    h->flags &= ~(LS_HTTP_INFLIGHT | LS_HTTP_IN_MSG);
    http_tmo_set(h, HTTP_TMO_NONE);
    h->linger_since = ls_loop_time();
    evtimer_assign(&h->linger_ev, ls_worker->base, http_on_linger_timeout, c);
    evtimer_add(&h->linger_ev, &tv);
    if (c->flags & LS_CONN_PAUSED) {
        /* reading was held for a response: drain from now on */
        h->flags &= ~LS_HTTP_HELD;
        ls_conn_resume(c);
    }
    /* the staged responses go out first (what the socket does not take
     * joins the output buffer, which the linger then waits for) */
    ls_conn_stage_write(c);
    if (c->out == NULL || evbuffer_get_length(c->out) == 0) {
        ls_conn_shutdown_write(c);
        return;
    }
    h->linger_cb = evbuffer_add_cb(c->out, http_on_out, c);
    if (h->linger_cb == NULL)
        ls_conn_close(c);
}

/* The last response of a connection is queued (Connection: close, HTTP/1.0,
 * a graceful stop, a 500): close the lingering way, so that a request the
 * client sent meanwhile cannot turn the close into a reset that destroys
 * the response. */
void
ls_http_retire(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;

    if (c->flags & HTTP_STOPPED)
        return;
    if (h == NULL || c->fd < 0)
        ls_conn_close(c);
    else
        http_linger(c, h);
}

/* Refuse the request being parsed: reply, tell the app, linger, close. */
static void
http_fail(ls_conn_t *c, ls_http_t *h, llhttp_errno_t err)
{
    /* llhttp refuses an unknown coding itself: 501, as nginx answers */
    int status = h->status                              ? h->status
                 : err == HPE_INVALID_TRANSFER_ENCODING ? 501
                                                        : 400;
    const char *why = h->why ? h->why : llhttp_get_error_reason(&h->parser);
    static ls_log_limit_t lim_big = LS_LOG_LIMIT("oversized requests", 0);
    static ls_log_limit_t lim_bad = LS_LOG_LIMIT("bad requests", 0);
    int big = status == 413 || status == 431;
    char text[256];

    if (why == NULL)
        why = llhttp_errno_name(err);
    snprintf(text, sizeof(text), "%d %s: %s", status, ls_http_reason(status),
             why);
    if (big)
        ls_log_limited(&lim_big, LS_LOG_WARN, 0, "conn %llu: %s (maxHeaderSize "
                       "%zu, maxBodySize %zu); closing",
                       (unsigned long long)c->id, text, http_max_header(h),
                       http_max_body(h));
    else
        ls_log_limited(&lim_bad, LS_LOG_INFO, 0, "conn %llu: %s; closing",
                       (unsigned long long)c->id, text);
    ls_http_reply_error(c, status);
    ls_conn_report_error(c, big ? LS_ERR_PACKAGE_TOO_BIG : LS_ERR_BAD_INPUT,
                         text);
    if (c->flags & HTTP_STOPPED)
        return;
    http_linger(c, h);
}

/* ---- header look-ups (for ws.c's handshake) ---------------------------- */

/* Does the comma-separated list v[0..n) hold token tok (any case)? */
int
ls_http_token(const char *v, size_t n, const char *tok)
{
    const char *end = v + n;
    size_t tl = strlen(tok);

    while (v < end) {
        const char *e;
        size_t m;
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        e = v;
        while (e < end && *e != ',')
            e++;
        m = (size_t)(e - v);
        while (m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

/* The request header name (lower case) of the request at h->rbase: its
 * first value, and how many times it came. */
const char *
ls_http_header(const ls_http_t *h, const char *name, size_t *len, int *count)
{
    size_t nl = strlen(name);
    const char *v = NULL;

    *count = 0;
    *len = 0;
    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        if (hd->nlen == nl &&
            strncasecmp(h->rbase + hd->name, name, nl) == 0 &&
            (*count)++ == 0) {
            v = h->rbase + hd->value;
            *len = hd->vlen;
        }
    }
    return v;
}

/* ---- WebSocket upgrade ------------------------------------------------- */


/* A websocket:// listener, or a request asking for a WebSocket on a
 * listener that takes them (it has onWebSocketConnect)? */
static int
http_ws_wanted(ls_conn_t *c, ls_http_t *h)
{
    const char *scheme = c->srv->conf.addr.proto;
    int asked = 0;

    if (strcmp(scheme, "websocket") == 0 || strcmp(scheme, "ws") == 0)
        return 1;
    if (!h->parser.upgrade)
        return 0;
    for (uint32_t i = 0; i < h->nhdrs && !asked; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        asked = hd->nlen == 7 &&
                strncasecmp(h->rbase + hd->name, "upgrade", 7) == 0 &&
                ls_http_token(h->rbase + hd->value, hd->vlen, "websocket");
    }
    return asked && ls_conn_events->handles(c, "onWebSocketConnect");
}

/*
 * The request at h->rbase is a WebSocket handshake: ws.c answers it. When
 * it switches the connection, HTTP's state goes and the bytes pipelined
 * behind the request go to the WebSocket parser; a refusal (already
 * answered) ends the connection as any bad request does. Returns how many
 * of the len bytes at h->rbase were used.
 */
static size_t
http_upgrade(ls_conn_t *c, ls_http_t *h, size_t len)
{
    const char *base = h->rbase;
    size_t used = h->parsed;
    void *ws;

    ls_server_took_message(c->srv);
    ls_conn_incref(c);
    ls_http_upgrade(c, h);
    if (c->proto->kind == LS_PROTO_HTTP) {
        /* refused and answered: still ours, ends as a bad request does */
        if (!(c->flags & HTTP_STOPPED)) {
            h->flags &= ~(LS_HTTP_IN_MSG | LS_HTTP_INFLIGHT);
            http_linger(c, h);
        }
        ls_conn_decref(c);
        return len;
    }
    /* Switched (perhaps closed meanwhile): HTTP's state goes. */
    ws = c->pstate;
    c->pstate = h;
    ls_http_release(c);
    c->pstate = ws;
    if (!(c->flags & HTTP_STOPPED) && used < len)
        used += c->proto->input(c, base + used, len - used);
    if (c->flags & LS_CONN_CLOSED)
        used = len;
    ls_conn_decref(c);
    return used;
}

/* ---- the protocol -------------------------------------------------------- */

/* Freed HTTP states, for the next connection (mempool.c). */
static ls_cache_t http_cache = LS_CACHE(ls_http_t, 256);

static ls_http_t *
http_new(ls_conn_t *c)
{
    ls_http_t *h = ls_cache_get(&http_cache);

    if (h == NULL)
        return NULL;
    llhttp_init(&h->parser, HTTP_REQUEST, &http_settings);
    h->parser.data = h;
    h->c = c;
    h->hdrs = h->inline_hdrs;
    h->hcap = LS_HTTP_INLINE_HDRS;
    h->expect = -1;
    evtimer_assign(&h->tmo_ev, ls_worker->base, http_on_timeout, c);
    c->pstate = h;
    return h;
}

/* Accepted: the first request head must be in within headerTimeout. */
void
ls_http_start(ls_conn_t *c)
{
    ls_http_t *h = c->pstate != NULL ? c->pstate : http_new(c);

    if (h != NULL)  /* else input() reports it */
        http_tmo_set(h, HTTP_TMO_HEAD);
}

static size_t http_input(ls_conn_t *c, const char *buf, size_t len);

/*
 * Parse what is new, answer each whole request in turn. Returns where the
 * request not yet answered starts: its bytes must stay. The responses of
 * one read are staged and written together (conn.c), as a batch of stream
 * messages' replies are. The caller (conn.c's read) holds c.
 */
size_t
ls_http_input(ls_conn_t *c, const char *buf, size_t len)
{
    ls_conn_t *outer = ls_conn_stage_begin(c);
    size_t used = http_input(c, buf, len);

    ls_conn_stage_end(c, outer);
    return used;
}

static size_t
http_input(ls_conn_t *c, const char *buf, size_t len)
{
    ls_http_t *h = c->pstate;
    size_t start = 0;

    if (h == NULL) {
        if ((h = http_new(c)) == NULL) {
            ls_log(LS_LOG_ERROR, 0, "conn %llu: out of memory",
                   (unsigned long long)c->id);
            ls_conn_destroy(c);
            return len;
        }
        http_tmo_set(h, HTTP_TMO_HEAD);
    }
    if (h->flags & LS_HTTP_LINGER)
        return len;
    for (;;) {
        const char *from, *pos;
        llhttp_errno_t err;

        if (h->flags & LS_HTTP_INFLIGHT) {
            /* Wait for the answer; read nothing more until then. */
            if (start < len && !(h->flags & LS_HTTP_HELD) &&
                ls_conn_receiving(c)) {
                h->flags |= LS_HTTP_HELD;
                ls_conn_pause(c);
            }
            break;
        }
        if (!ls_conn_receiving(c) || start + h->parsed >= len)
            break;
        h->rbase = buf + start;
        from = h->rbase + h->parsed;
        err = llhttp_execute(&h->parser, from, (size_t)(buf + len - from));
        if (err == HPE_OK) {
            h->parsed = len - start;
            if ((h->flags & LS_HTTP_IN_MSG) &&
                !(h->flags & LS_HTTP_HEAD_DONE) &&
                h->parsed > http_max_header(h)) {
                http_refuse(h, 431, "request head larger than maxHeaderSize");
                err = HPE_USER;
            } else if ((h->flags & LS_HTTP_HEAD_DONE) &&
                       h->parsed > http_max_header(h) +
                                       2 * http_max_body(h) +
                                       HTTP_CHUNK_SLACK) {
                http_refuse(h, 413, "chunked body framing too large");
                err = HPE_USER;
            } else {
                /* the head is in, the body is not yet: bodyTimeout */
                if ((h->flags & (LS_HTTP_IN_MSG | LS_HTTP_HEAD_DONE)) ==
                        (LS_HTTP_IN_MSG | LS_HTTP_HEAD_DONE) &&
                    h->tmo != HTTP_TMO_BODY)
                    http_tmo_set(h, HTTP_TMO_BODY);
                break;
            }
        }
        if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
            http_fail(c, h, err);
            return len;
        }
        pos = llhttp_get_error_pos(&h->parser);
        h->parsed = (size_t)(pos - h->rbase);
        if (err == HPE_PAUSED_UPGRADE) {
            /* served as an ordinary request: parse on as HTTP */
            llhttp_resume_after_upgrade(&h->parser);
            continue;
        }
        llhttp_resume(&h->parser);
        if (h->flags & LS_HTTP_CONTINUE) {
            struct evbuffer *out = ls_conn_outbuf(c);
            h->flags &= ~LS_HTTP_CONTINUE;
            http_tmo_set(h, HTTP_TMO_BODY);
            if (out != NULL) {
                evbuffer_add(out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
                ls_conn_commit(c);
                if (c->flags & HTTP_STOPPED)
                    return len;
            }
            continue;
        }
        if (http_ws_wanted(c, h))
            return start + http_upgrade(c, h, len - start);
        http_dispatch(c, h, (char *)h->rbase);
        if (c->flags & HTTP_STOPPED)
            return len; /* h may be gone */
        if (h->flags & LS_HTTP_LINGER)
            return len; /* that was the last: what follows is dropped */
        start += h->parsed;
        h->parsed = 0;
    }
    return start;
}

/* A large Content-Length body is read in pieces as large as what is left. */
size_t
ls_http_missing(ls_conn_t *c, const char *buf, size_t len)
{
    ls_http_t *h = c->pstate;
    (void)buf;

    if (h == NULL || (h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_LINGER)) ||
        !(h->flags & LS_HTTP_HEAD_DONE) || !(h->flags & LS_HTTP_IN_MSG) ||
        (h->parser.flags & F_CHUNKED) || h->parsed != len)
        return 0;
    return (size_t)h->parser.content_length;
}

#define HTTP_DRAIN_GRACE 1.0 /* s an idle keep-alive conn may still ask */

/*
 * A request may already sit in the kernel, unread because this loop turn
 * handles the timer (or the drain) before the read event: closing then
 * would lose it. FIONREAD tells; such a connection stays until it is read.
 */
static int
http_unread(const ls_conn_t *c)
{
    int n = 0;
    return c->fd >= 0 && ((ioctl(c->fd, FIONREAD, &n) == 0 && n > 0) ||
                          (c->io != NULL && c->io->pending(c)));
}

static void
http_on_drain_grace(evutil_socket_t fd, short what, void *arg)
{
    ls_conn_t *c = arg;
    ls_http_t *h = c->pstate;
    struct timeval tv = {(time_t)HTTP_DRAIN_GRACE, 0};
    (void)fd;
    (void)what;

    if (h == NULL || (h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_IN_MSG |
                                  LS_HTTP_LINGER)) || c->in.len != 0)
        return;
    if (http_unread(c)) {   /* its next request came: answer it first */
        evtimer_add(h->drain_ev, &tv);
        return;
    }
    ls_http_retire(c);
    ls_conn_flush_all();
}

/*
 * Graceful stop: a connection with a request in progress goes after its
 * response (Connection: close). An idle keep-alive connection that was
 * quiet for a while goes now; one that was busy a moment ago is likely to
 * send its next request right now, and closing it would race with that
 * request (the classic keep-alive failure), so it gets HTTP_DRAIN_GRACE
 * seconds to ask, and is answered with Connection: close.
 */
void
ls_http_drain(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;
    struct timeval tv = {(time_t)HTTP_DRAIN_GRACE, 0};
    int idle = h == NULL || (!(h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_IN_MSG |
                                           LS_HTTP_LINGER)) &&
                             c->in.len == 0);

    if (idle && (h == NULL ||
                 (c->active < ls_loop_time() - HTTP_DRAIN_GRACE &&
                  !http_unread(c)))) {
        ls_http_retire(c);
        return;
    }
    h->flags |= LS_HTTP_DRAINING;
    if (idle && h->drain_ev == NULL) {
        h->drain_ev = evtimer_new(ls_worker->base, http_on_drain_grace, c);
        if (h->drain_ev == NULL || evtimer_add(h->drain_ev, &tv) < 0)
            ls_conn_close(c);
    }
}

/*
 * idleTimeout. A request in flight (the app owes the answer), a request
 * half read, or reading paused (requests pipelined behind the one in
 * flight, conn:pauseRecv()) means input may sit unread in the kernel, and
 * closing then sends a reset that can destroy responses the client has
 * not read yet: the lingering close. Otherwise reading was on and nothing
 * came for idleTimeout, so nothing is unread and close() sends a plain
 * FIN (as nginx's keepalive_timeout does); a lingering close already
 * under way is left to finish.
 */
void
ls_http_idle(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;

    if (h != NULL && (h->flags & LS_HTTP_LINGER))
        return;
    if (h != NULL && c->fd >= 0 &&
        ((h->flags & (LS_HTTP_INFLIGHT | LS_HTTP_IN_MSG)) || c->in.len > 0 ||
         (c->flags & LS_CONN_PAUSED))) {
        static ls_log_limit_t lim = LS_LOG_LIMIT("idle HTTP requests", 0);
        ls_log_limited(&lim, LS_LOG_DEBUG, 0, "conn %llu: idle with a request "
                       "pending; lingering close", (unsigned long long)c->id);
        http_linger(c, h);
        return;
    }
    ls_conn_close(c);
}

void
ls_http_release(ls_conn_t *c)
{
    ls_http_t *h = c->pstate;

    if (h == NULL)
        return;
    if (h->flags & LS_HTTP_LINGER)
        evtimer_del(&h->linger_ev);
    evtimer_del(&h->tmo_ev);
    if (h->drain_ev)
        event_free(h->drain_ev);
    if (h->linger_cb && c->out)
        evbuffer_remove_cb_entry(c->out, h->linger_cb);
    if (h->hdrs != h->inline_hdrs)
        free(h->hdrs);
    ls_cache_put(&http_cache, h);
    c->pstate = NULL;
}
