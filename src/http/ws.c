/*
 * ws.c -- WebSocket (RFC 6455) connections.
 *
 * A connection starts as HTTP on websocket:// listeners too: llhttp parses
 * the request head strictly (maxHeaderSize, 431, 400 with a lingering
 * close), and http.c hands a handshake request to ws_upgrade() (through
 * ls_http_upgrade: HTTP does not know WebSocket), which
 * checks the WebSocket headers, lets onWebSocketConnect(conn, req) refuse,
 * answers 101 and switches the connection to ls_proto_ws. From then on
 * libwslay does the frames: input() feeds it bytes through its recv
 * callback, its send callback appends to the connection's output buffer.
 * wslay answers pings, enforces client masking, reassembles fragmented
 * messages, closes with 1009 over maxPackageSize and runs the close
 * handshake; onMessage(conn, data) gets text and binary messages. What a
 * message causes (replies, the pong) is written out before the next frame
 * is read, so a close that arrives with it comes after, not instead.
 * conn:close() and a graceful stop send a close frame and wait for the
 * peer's, at most WS_CLOSE_TIMEOUT seconds; a fast stop sends close 1001
 * too, if the socket takes it at once, and does not wait.
 */
#include "http/ws.h"
#include "core/log.h"
#include "http/http.h"
#include "http/http_reply.h"
#include "net/conn.h"
#include <wslay/wslay.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define WS_CLOSE_TIMEOUT 3 /* s to wait for the peer's close frame */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct ws_state {
    wslay_event_context_ptr ctx;
    ls_conn_t *c;
    const char *rbuf;   /* bytes being offered to wslay */
    size_t rlen, roff;
    int busy;           /* inside wslay: release() must wait */
    int dead;           /* released while busy */
    int open;           /* the 101 has been sent */
    int sent;           /* wslay wrote to the output buffer */
    int closing;        /* conn:close() or a stop: messages are dropped */
    int close_pending;  /* the close frame goes after the queued messages */
    int failed;         /* a send inside wslay_event_recv() failed */
    int bad_logged;     /* wslay's close for bad input has been logged */
    uint16_t close_code;
    size_t close_rlen;
    char close_reason[124];
    struct event *close_ev; /* gives up on the peer's close frame */
} ws_state_t;

/* ---- SHA-1 (FIPS 180-1) and base64, for Sec-WebSocket-Accept ---- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e, f, k, t;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (; i < 80; i++)
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (i = 0; i < 80; i++) {
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void
sha1(const unsigned char *msg, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                     0xC3D2E1F0};
    unsigned char blk[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t off = 0, r;
    int i;

    for (; len - off >= 64; off += 64)
        sha1_block(h, msg + off);
    r = len - off;
    memset(blk, 0, sizeof(blk));
    memcpy(blk, msg + off, r);
    blk[r] = 0x80;
    if (r >= 56) {
        sha1_block(h, blk);
        memset(blk, 0, sizeof(blk));
    }
    for (i = 0; i < 8; i++)
        blk[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, blk);
    for (i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void
base64(const unsigned char *p, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
        *out++ = tab[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        *out++ = tab[p[i + 2] & 63];
    }
    if (n - i == 1) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
        *out++ = tab[(p[i + 1] & 15) << 2];
        *out++ = '=';
    }
    *out = '\0';
}

/* ---- wslay callbacks ---- */

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
           void *user)
{
    ws_state_t *s = user;
    size_t n = s->rlen - s->roff;

    (void)flags;
    if (n == 0 || !ls_conn_receiving(s->c)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n > len)
        n = len;
    memcpy(buf, s->rbuf + s->roff, n);
    s->roff += n;
    return (ssize_t)n;
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
           int flags, void *user)
{
    ws_state_t *s = user;
    struct evbuffer *out;

    (void)flags;
    if ((s->c->flags & LS_CONN_CLOSED) || (out = ls_conn_outbuf(s->c)) ==
        NULL || evbuffer_add(out, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    s->sent = 1; /* ws_pump commits, outside wslay (onBufferFull) */
    return (ssize_t)len;
}

static void ws_start_close(ls_conn_t *c, ws_state_t *s, uint16_t code,
                           const char *reason, size_t rlen);

/* onMessage(conn, data); a Lua error in it closes with 1011. */
static void
ws_deliver(ls_conn_t *c, ws_state_t *s,
           const struct wslay_event_on_msg_recv_arg *arg)
{
    if (s->closing || (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)))
        return;
    ls_server_took_message(c->srv);
    ls_conn_incref(c);
    if (ls_conn_events->message(c, (const char *)arg->msg,
                                arg->msg_length) == LS_EV_ERROR &&
        !s->dead && !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)))
        ws_start_close(c, s, WSLAY_CODE_INTERNAL_SERVER_ERROR,
                       "internal error", 14);
    ls_conn_decref(c);
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
          const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    ws_state_t *s = user;
    ls_conn_t *c = s->c;

    (void)ctx;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE)
        return; /* wslay queued the reply; ws_pump sends it */
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        ws_deliver(c, s, arg);
    /* What this message caused (the app's replies, wslay's pong) goes to
     * the output buffer now, before wslay reads the next frame: if that is
     * a close, wslay queues its reply ahead of the messages still queued
     * and sends nothing after it, and drops queued pongs. ws_pump commits
     * the buffer once wslay_event_recv() is done. */
    if (!s->dead && !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)) &&
        wslay_event_send(s->ctx) != 0)
        s->failed = 1;
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_recv_cb, ws_send_cb, NULL, NULL, NULL, NULL, ws_msg_cb,
};

static void
ws_free(ws_state_t *s)
{
    if (s->close_ev)
        event_free(s->close_ev);
    if (s->ctx)
        wslay_event_context_free(s->ctx);
    free(s);
}

static void ws_on_close_timeout(evutil_socket_t fd, short what, void *arg);

/* Write what wslay has queued; end the connection once both sides have
 * closed, or on a wslay error. Once our close frame is out (conn:close(),
 * a stop, or wslay's answer to bad input), the peer has WS_CLOSE_TIMEOUT
 * seconds to answer it. */
static void
ws_pump(ls_conn_t *c, ws_state_t *s)
{
    int fail, done;

    if (c->flags & LS_CONN_CLOSED)
        return;
    ls_conn_incref(c);
    fail = s->failed || wslay_event_send(s->ctx) != 0;
    /* wslay sends control frames first: a close queued with messages still
     * waiting would cut them off (conn:close(data)) */
    if (!fail && s->close_pending &&
        wslay_event_get_queued_msg_count(s->ctx) == 0) {
        s->close_pending = 0;
        /* fails when the peer's close came first: wslay answers that */
        if (wslay_event_queue_close(s->ctx, s->close_code,
                                    (const uint8_t *)s->close_reason,
                                    s->close_rlen) == 0)
            fail = wslay_event_send(s->ctx) != 0;
    }
    done = !wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx);
    if (!fail && !done && wslay_event_get_close_sent(s->ctx) &&
        s->close_ev == NULL) {
        struct timeval tv = {WS_CLOSE_TIMEOUT, 0};
        s->close_ev = evtimer_new(ls_worker->base, ws_on_close_timeout, c);
        if (s->close_ev == NULL || evtimer_add(s->close_ev, &tv) < 0)
            fail = 1;
    }
    /* last: onBufferFull may run here, and may even free s */
    if (s->sent) {
        s->sent = 0; /* also what ws_msg_cb wrote */
        ls_conn_commit(c);
    }
    if (fail || done)
        ls_conn_close(c);
    ls_conn_decref(c);
}

/* ---- the handshake ---- */

/* The first value of the request header name, or NULL when it is missing
 * or repeated (repeats would be joined with ", ": never a valid value of
 * the ones looked up here). */
static const char *
ws_header(const ls_http_t *h, const char *name, size_t *len)
{
    int count;
    const char *v = ls_http_header(h, name, len, &count);

    return count == 1 ? v : NULL;
}

/* Does a header of that name (any of its lines) hold the token? */
static int
ws_header_token(const ls_http_t *h, const char *name, const char *tok)
{
    size_t nl = strlen(name);

    for (uint32_t i = 0; i < h->nhdrs; i++) {
        const ls_http_hdr_t *hd = &h->hdrs[i];
        if (hd->nlen == nl &&
            strncasecmp(h->rbase + hd->name, name, nl) == 0 &&
            ls_http_token(h->rbase + hd->value, hd->vlen, tok))
            return 1;
    }
    return 0;
}

static int
is_b64(int ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
           (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* Refuse the handshake: a short plain-text reply; the caller closes. */
static int
ws_refuse(ls_conn_t *c, int status, const char *why, const char *extra)
{
    struct evbuffer *out = ls_conn_outbuf(c);
    const char *reason = ls_http_reason(status);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;

    static ls_log_limit_t lim = LS_LOG_LIMIT("websocket handshakes refused",
                                             0);
    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: websocket handshake "
                   "refused: %d %s", (unsigned long long)c->id, status, why);
    if (out == NULL)
        return status;
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT",
             gmtime_r(&now, &tm));
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: %zu\r\nConnection: close\r\n%s\r\n"
                        "%d %s\n", status, reason, date, strlen(reason) + 5,
                        extra, status, reason);
    ls_conn_commit(c);
    return status;
}

/*
 * The whole HTTP request in h (from http.c, at h->rbase) asks for a
 * WebSocket. Check it, ask onWebSocketConnect, answer 101 and switch the
 * connection to ls_proto_ws. Returns 0 when switched (or when the app
 * closed the connection meanwhile: the caller checks), else the HTTP status
 * of the refusal already queued (the connection is left to the caller, as
 * it was).
 */
static int
ws_upgrade(ls_conn_t *c, ls_http_t *h)
{
    const ls_proto_t *prev = c->proto;
    void *prev_state = c->pstate;
    int status = 0;
    const char *v, *key;
    size_t n, klen = 0;
    char cat[128], accept[32];
    unsigned char dig[20];
    ws_state_t *s;

    if (h->parser.method != HTTP_GET)
        return ws_refuse(c, 400, "not a GET request", "");
    if (h->parser.http_major != 1 || h->parser.http_minor != 1)
        return ws_refuse(c, 400, "not an HTTP/1.1 request", "");
    if (!ws_header_token(h, "upgrade", "websocket"))
        return ws_refuse(c, 400, "no \"Upgrade: websocket\"", "");
    if (!ws_header_token(h, "connection", "upgrade"))
        return ws_refuse(c, 400, "no \"Connection: Upgrade\"", "");
    /* 16 random bytes in base64: 22 characters and "==" */
    key = ws_header(h, "sec-websocket-key", &klen);
    if (key == NULL || klen != 24 || key[22] != '=' || key[23] != '=')
        return ws_refuse(c, 400, "bad Sec-WebSocket-Key", "");
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i]))
            return ws_refuse(c, 400, "bad Sec-WebSocket-Key", "");
    if (h->blen > 0)
        return ws_refuse(c, 400, "a handshake with a body", "");
    if ((v = ws_header(h, "sec-websocket-version", &n)) == NULL || n != 2 ||
        memcmp(v, "13", 2) != 0)
        return ws_refuse(c, 400, "Sec-WebSocket-Version is not 13",
                         "Sec-WebSocket-Version: 13\r\n");
    snprintf(cat, sizeof(cat), "%.*s%s", (int)klen, key, WS_GUID);
    sha1((const unsigned char *)cat, strlen(cat), dig);
    base64(dig, sizeof(dig), accept);

    /* The connection is WebSocket's from here, so that onWebSocketConnect
     * may already conn:send (a welcome): busy holds the frames until after
     * the 101. */
    if ((s = calloc(1, sizeof(*s))) == NULL ||
        wslay_event_context_server_init(&s->ctx, &ws_callbacks, s) != 0) {
        static ls_log_limit_t lim = LS_LOG_LIMIT("websocket out of memory",
                                                 0);
        free(s);
        ls_log_limited(&lim, LS_LOG_WARN, 0, "conn %llu: websocket: out of "
                       "memory", (unsigned long long)c->id);
        return ws_refuse(c, 503, "out of memory", "");
    }
    s->c = c;
    wslay_event_config_set_max_recv_msg_length(s->ctx,
                                               c->srv->conf.max_package_size);
    c->proto = &ls_proto_ws;
    c->pstate = s;
    ls_conn_incref(c);
    s->busy = 1;
    switch (ls_http_events->ws_connect(c, h, h->rbase, &status)) {
    case LS_EV_NONE:
        s->busy = 0;
        ls_conn_decref(c);
        break;
    case LS_EV_ERROR:
        status = 403;
        /* fall through */
    default:
        s->busy = 0;
        if (s->dead) {                   /* conn:destroy() */
            ws_free(s);
            ls_conn_decref(c);
            return 0;
        }
        ls_conn_decref(c);
        if (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))
            return 0;                    /* conn:close(): release() frees */
        if (status != 0) {
            c->proto = prev;
            c->pstate = prev_state;
            ws_free(s);
            return ws_refuse(c, status, "by onWebSocketConnect", "");
        }
    }
    {
        struct evbuffer *out = ls_conn_outbuf(c);
        if (out == NULL)
            return 0;
        evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
        ls_conn_commit(c);
    }
    s->open = 1;
    ws_pump(c, s); /* what onWebSocketConnect sent */
    /* The handshake was under way when a graceful stop began, so this
     * connection missed the drain: close now, not cut at stopTimeout
     * without a close frame. */
    if (ls_worker->stopping && c->pstate == s &&
        !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)))
        ws_start_close(c, s, WSLAY_CODE_GOING_AWAY, "server stopping", 15);
    return 0;
}

/* ---- the protocol ---- */

static const char *
ws_code_name(uint16_t code)
{
    switch (code) {
    case WSLAY_CODE_PROTOCOL_ERROR:
        return "protocol error";
    case WSLAY_CODE_UNSUPPORTED_DATA:
        return "unsupported data";
    case WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA:
        return "invalid payload";
    case WSLAY_CODE_MESSAGE_TOO_BIG:
        return "message over maxPackageSize";
    default:
        return "bad input";
    }
}

/* wslay closed on its own because of what the client sent (a bad frame,
 * an unmasked one, a message over maxPackageSize...): say so, once per
 * connection and rate-limited, since any client can cause it at will.
 * An answer to the peer's own close (same code) is not bad input. */
static void
ws_log_bad_input(ls_conn_t *c, ws_state_t *s)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("websocket bad input", 0);
    uint16_t code;

    if (s->bad_logged || s->closing || !wslay_event_get_close_sent(s->ctx))
        return;
    code = wslay_event_get_status_code_sent(s->ctx);
    if (code != WSLAY_CODE_PROTOCOL_ERROR &&
        code != WSLAY_CODE_UNSUPPORTED_DATA &&
        code != WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA &&
        code != WSLAY_CODE_MESSAGE_TOO_BIG)
        return;
    if (wslay_event_get_close_received(s->ctx) &&
        wslay_event_get_status_code_received(s->ctx) == code)
        return;
    s->bad_logged = 1;
    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: websocket: %s from the "
                   "client; closing with %u", (unsigned long long)c->id,
                   ws_code_name(code), (unsigned)code);
}

static size_t
ws_input(ls_conn_t *c, const char *buf, size_t len)
{
    ws_state_t *s = c->pstate;
    size_t off = 0;
    int err;

    if (s == NULL || !ls_conn_receiving(c))
        return s == NULL ? len : 0;
    ls_conn_incref(c);
    s->rbuf = buf + off;
    s->rlen = len - off;
    s->roff = 0;
    s->busy = 1;
    err = wslay_event_recv(s->ctx);
    s->busy = 0;
    off += s->roff;
    s->rbuf = NULL;
    if (s->dead) {
        ws_free(s);
    } else {
        static ls_log_limit_t lim = LS_LOG_LIMIT("websocket receive errors",
                                                 0);
        ws_pump(c, s); /* replies, and a close frame wslay queued */
        if (c->pstate == s) /* onBufferFull may have destroyed it */
            ws_log_bad_input(c, s);
        if (err != 0 && !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))) {
            ls_log_limited(&lim, LS_LOG_DEBUG, 0, "conn %llu: websocket: "
                           "protocol error (%d)", (unsigned long long)c->id,
                           err);
            ls_conn_close(c);
        }
    }
    ls_conn_decref(c);
    return (c->flags & LS_CONN_CLOSED) ? len : off;
}

/* One message: a text frame, or a binary one. LS_WS_EARLY before the
 * handshake (in onWebSocketConnect the connection is already WebSocket's,
 * but no frame can go before the 101). */
int
ls_ws_send(ls_conn_t *c, const char *p, size_t n, int binary)
{
    ws_state_t *s = c->pstate;
    struct wslay_event_msg msg;

    msg.opcode = binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME;
    if (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))
        return LS_SEND_CLOSED;
    if (s == NULL)
        return LS_WS_EARLY;
    if (s->closing)
        return LS_SEND_CLOSED; /* after conn:close() */
    msg.msg = (const uint8_t *)p;
    msg.msg_length = n;
    if (wslay_event_queue_msg(s->ctx, &msg) != 0)
        return LS_SEND_CLOSED;
    if (s->busy) {
        /* Held in wslay until the callback returns: the send buffer limit
         * counts them, so that a loop of sends in onMessage stops too. */
        size_t held = wslay_event_get_queued_msg_length(s->ctx) +
                      (c->out ? evbuffer_get_length(c->out) : 0);
        if (held >= c->srv->conf.max_send_buffer_size &&
            !(c->flags & LS_CONN_FULL)) {
            c->flags |= LS_CONN_FULL;
            ls_conn_report_full(c);
        }
    } else {
        int r;
        ls_conn_incref(c);
        ws_pump(c, s);
        /* queued, so not refused even when it filled the buffer (as in
         * the stream protocols): the next send is (conn:send) */
        r = (c->flags & LS_CONN_CLOSED) ? LS_SEND_CLOSED : LS_SEND_OK;
        ls_conn_decref(c);
        return r;
    }
    return LS_SEND_OK;
}

/* ---- closing ---- */

static void
ws_on_close_timeout(evutil_socket_t fd, short what, void *arg)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("websocket close timeouts", 0);
    ls_conn_t *c = arg;
    (void)fd;
    (void)what;

    ls_log_limited(&lim, LS_LOG_INFO, 0, "conn %llu: websocket: no close "
                   "frame from the peer within %d s; closing",
                   (unsigned long long)c->id, WS_CLOSE_TIMEOUT);
    ls_conn_incref(c);
    ls_conn_destroy(c);
    ls_conn_decref(c);
    ls_conn_flush_all();
}

/* Send our close frame after what is queued; ws_pump then waits for the
 * peer's (bounded). */
static void
ws_start_close(ls_conn_t *c, ws_state_t *s, uint16_t code,
               const char *reason, size_t rlen)
{
    if (s->closing)
        return;
    s->closing = 1;
    s->close_pending = 1;
    s->close_code = code;
    if (rlen > sizeof(s->close_reason))
        rlen = sizeof(s->close_reason);
    if (rlen > 0)
        memcpy(s->close_reason, reason, rlen);
    s->close_rlen = rlen;
    if (!s->busy)
        ws_pump(c, s);
}

/* Is p[0..n) UTF-8 (no overlongs, surrogates or code points over
 * U+10FFFF)? A close reason must be. */
int
ls_ws_utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = p[i], need, cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            need = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 3, cp = c & 0x07;
        else
            return 0;
        if (n - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        i += need + 1;
    }
    return 1;
}

/* 1000-1003, 1007-1014 and the application ranges may be sent;
 * 1004-1006 and 1015 are reserved. */
int
ls_ws_close_code_ok(long long code)
{
    return (code >= 1000 && code <= 1003) ||
           (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* conn:close(code, reason): the caller has checked both (close code,
 * reason of at most 123 bytes of UTF-8); reason may be NULL. */
void
ls_ws_close(ls_conn_t *c, int code, const char *reason, size_t rlen)
{
    ws_state_t *s = c->pstate;

    if (s == NULL || !s->open) {
        /* inside onWebSocketConnect: no 101 goes out */
        ls_conn_close(c);
        return;
    }
    ws_start_close(c, s, (uint16_t)code, reason, rlen);
}

/* The protocol's send: a text frame (raw changes nothing). */
static int
ws_send_text(ls_conn_t *c, const char *p, size_t n, int raw)
{
    int r = ls_ws_send(c, p, n, 0);

    (void)raw;
    return r == LS_WS_EARLY ? LS_SEND_CLOSED : r;
}

static void
ws_drain(ls_conn_t *c)
{
    ws_state_t *s = c->pstate;

    if (s == NULL || !s->open) {
        ls_conn_close(c);
        return;
    }
    if (s->busy) {
        ws_start_close(c, s, WSLAY_CODE_GOING_AWAY, "server stopping", 15);
        return;
    }
    ws_start_close(c, s, WSLAY_CODE_GOING_AWAY, "server stopping", 15);
    ls_conn_flush_all(); /* called from a signal, not a read */
}

/* A fast stop (SIGTERM, SIGINT, stopTimeout): close 1001 goes into the
 * output buffer behind what is pending, and one non-blocking write tries to
 * get it out before the worker closes the socket. Best effort: no waiting
 * for the peer's close frame, nor for a socket that takes nothing now. */
static void
ws_stop(ls_conn_t *c)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("websocket fast stop", 0);
    ws_state_t *s = c->pstate;
    size_t left;

    if (s == NULL || !s->open || s->busy || (c->flags & LS_CONN_CLOSED))
        return;
    if (!(c->flags & LS_CONN_CLOSING) &&
        !wslay_event_get_close_sent(s->ctx)) {
        s->closing = 1;
        s->close_pending = 0;
        /* messages wslay still holds first: it sends control frames ahead
         * of them; fails if the peer's close came first (wslay answers) */
        if (wslay_event_send(s->ctx) == 0)
            wslay_event_queue_close(s->ctx, WSLAY_CODE_GOING_AWAY,
                                    (const uint8_t *)"server stopping", 15);
        wslay_event_send(s->ctx);
        s->sent = 0; /* no ls_conn_commit: it may run onBufferFull */
    }
    if (c->fd < 0)
        return;
    if (c->out != NULL && (left = evbuffer_get_length(c->out)) > 0) {
        int n = ls_conn_write_out(c);
        if (n > 0) {
            c->srv->bytes_out += (size_t)n;
            left -= (size_t)n;
        }
        if (left > 0) {
            ls_log_limited(&lim, LS_LOG_DEBUG, 0, "conn %llu: websocket: "
                           "fast stop; %zu bytes (the close frame among "
                           "them) not sent", (unsigned long long)c->id, left);
            return;
        }
    }
    /* Input nobody will read makes close() send a reset, and a reset may
     * make the client's stack drop the close frame before the app reads
     * it: discard what has arrived (a bounded amount), so that the close
     * that follows sends a FIN. */
    for (int i = 0; i < 16; i++) {
        char junk[4096];
        if (recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
            break;
    }
}

/* idleTimeout: close 1001 and the bounded close handshake, as a stop
 * does; a second sweep finds it closing and leaves it to the timeout. */
static void
ws_idle(ls_conn_t *c)
{
    static ls_log_limit_t lim = LS_LOG_LIMIT("websocket idle closes", 0);
    ws_state_t *s = c->pstate;

    if (s == NULL || !s->open) {
        ls_conn_close(c);
        return;
    }
    if (!s->closing)
        ls_log_limited(&lim, LS_LOG_DEBUG, 0, "conn %llu: websocket: idle; "
                       "sending close 1001", (unsigned long long)c->id);
    ws_start_close(c, s, WSLAY_CODE_GOING_AWAY, "idle timeout", 12);
}

static void
ws_release(ls_conn_t *c)
{
    ws_state_t *s = c->pstate;

    c->pstate = NULL;
    if (s == NULL)
        return;
    if (s->busy)
        s->dead = 1;
    else
        ws_free(s);
}

void
ls_ws_init(void)
{
    ls_http_upgrade = ws_upgrade;
}

const ls_proto_t ls_proto_ws = {
    .name = "websocket",
    .kind = LS_PROTO_WS,
    .input = ws_input,
    .missing = NULL,
    .send = ws_send_text,
    .drain = ws_drain,
    .release = ws_release,
    .idle = ws_idle,
    .stop = ws_stop,
};
