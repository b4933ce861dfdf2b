/*
 * http.h -- the http:// protocol: HTTP/1.x requests in, responses out.
 *
 * ls_proto_http is what a listener needs. The state below is shared by
 * http.c (parsing, dispatch, errors, lingering close) and http_send.c
 * (encoding what the app sends); ws.c reads a handshake's request from it,
 * and the Lua layer builds the app's req table from it. HTTP reaches the app
 * only through ls_http_events (and ls_conn_events); it does not know
 * WebSocket either: ws.c installs itself as the upgrade (ls_http_upgrade).
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include "net/proto.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>
#include <llhttp.h>
#include <stdint.h>

struct ls_conn;

extern const ls_proto_t ls_proto_http;

/* One request header, as offsets from the start of the request's bytes. */
typedef struct ls_http_hdr {
    uint32_t name, nlen, value, vlen;
} ls_http_hdr_t;

enum {
    LS_HTTP_IN_MSG = 1 << 0,      /* a request has begun */
    LS_HTTP_HEAD_DONE = 1 << 1,   /* ... and its head is complete */
    LS_HTTP_IN_FIELD = 1 << 2,    /* parsing a header name */
    LS_HTTP_IN_VALUE = 1 << 3,    /* parsing a header value */
    LS_HTTP_INFLIGHT = 1 << 4,    /* given to onMessage, not yet answered */
    LS_HTTP_STREAMING = 1 << 5,   /* response head sent, chunks follow */
    LS_HTTP_KEEPALIVE = 1 << 6,   /* the request allows another after it */
    LS_HTTP_HEAD_REQ = 1 << 7,    /* HEAD: the response has no body */
    LS_HTTP_V10 = 1 << 8,         /* HTTP/1.0 request */
    LS_HTTP_NOBODY = 1 << 9,      /* response without body (HEAD, 204, 304) */
    LS_HTTP_CLOSE = 1 << 10,      /* close after this response */
    LS_HTTP_DRAINING = 1 << 11,   /* graceful stop: last response */
    LS_HTTP_HELD = 1 << 12,       /* reading paused behind a pending answer */
    LS_HTTP_LINGER = 1 << 13,     /* error sent: discard input, then close */
    LS_HTTP_CONTINUE = 1 << 14,   /* paused to send 100 Continue */
};

#define LS_HTTP_INLINE_HDRS 16

typedef struct ls_http {
    llhttp_t parser;
    struct ls_conn *c;
    const char *rbase;      /* request start; valid during llhttp_execute */
    size_t parsed;          /* bytes from the request start given to llhttp */
    size_t url, ulen;
    size_t body, blen;      /* chunked bodies are compacted in place */
    ls_http_hdr_t *hdrs;    /* points to inline until there are more */
    uint32_t nhdrs, hcap;
    unsigned flags;
    uint8_t hosts, tes;     /* Host and Transfer-Encoding header count */
    int expect;             /* index of an Expect header, or -1 */
    int status;             /* error reply chosen while parsing */
    const char *why;
    struct event linger_ev;
    struct evbuffer_cb_entry *linger_cb;
    struct event *drain_ev;    /* graceful stop: idle grace for this conn */
    struct event tmo_ev;       /* headerTimeout / bodyTimeout */
    uint8_t tmo;               /* which of them tmo_ev is armed for */
    double tmo_from;           /* when the current head wait began */
    double linger_since;
    ls_http_hdr_t inline_hdrs[LS_HTTP_INLINE_HDRS];
} ls_http_t;

/* RFC 9110 tchar: what a header name may consist of. */
static inline int
ls_http_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
        (ch >= '0' && ch <= '9'))
        return 1;
    switch (ch) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
    case '+': case '-': case '.': case '^': case '_': case '`': case '|':
    case '~':
        return 1;
    }
    return 0;
}

/* Does the comma-separated header value v[0..n) hold the token tok
 * (case-insensitive)? "Connection: keep-alive, Upgrade" holds "upgrade". */
int ls_http_token(const char *v, size_t n, const char *tok);

/* The value of the request header name (lower case), or NULL; *count is
 * how many times the request has it. */
const char *ls_http_header(const ls_http_t *h, const char *name, size_t *len,
                           int *count);

/*
 * What HTTP tells the app, besides ls_conn_events (the Lua layer implements
 * it; the worker installs it). The caller holds a reference on c; results
 * are LS_EV_* (net/conn.h).
 *  - request: onMessage(conn, req) for the whole request at base (h's
 *    offsets are relative to it).
 *  - ws_connect: onWebSocketConnect(conn, req) for a handshake that ws.c
 *    has checked; *refuse is set to the HTTP status of a refusal (false:
 *    403, or a status from 400 to 599 the callback returned), else 0.
 */
typedef struct ls_http_events {
    int (*request)(struct ls_conn *c, ls_http_t *h, char *base);
    int (*ws_connect)(struct ls_conn *c, ls_http_t *h, const char *base,
                      int *refuse);
} ls_http_events_t;

extern const ls_http_events_t *ls_http_events;
void ls_http_set_events(const ls_http_events_t *ev);

/*
 * The protocol a request may switch to (WebSocket): called with a whole
 * request that asks for it; answers it, and switches c->proto, or queues
 * a refusal and leaves c as it was. ws.c sets it (ls_ws_init).
 */
typedef int (*ls_http_upgrade_fn)(struct ls_conn *c, ls_http_t *h);
extern ls_http_upgrade_fn ls_http_upgrade;

/* A response as the app gave it (lua/lua_response.c checks and builds it;
 * the pointers stay valid for the call). */
typedef struct ls_http_field {
    const char *name, *value;
    size_t nlen, vlen;
    int close;                  /* "Connection" whose value says close */
} ls_http_field_t;

typedef struct ls_http_response {
    int status;                 /* 200..999 */
    int stream;                 /* the head and this body; parts follow */
    const ls_http_field_t *fields;
    size_t nfields;
    const char *body;
    size_t blen;
} ls_http_response_t;

/* What conn:send may do now (ls_http_send_state). */
enum {
    LS_HTTP_SEND_HEAD,          /* a request waits: send a response */
    LS_HTTP_SEND_PART,          /* a streamed response goes on */
    LS_HTTP_SEND_GONE,          /* the connection is ending: "closed" */
    LS_HTTP_SEND_NONE,          /* no request waits for an answer */
};

/* http.c: the protocol's functions (http_proto.c puts them in the table) */
void ls_http_start(struct ls_conn *c);
size_t ls_http_input(struct ls_conn *c, const char *buf, size_t len);
size_t ls_http_missing(struct ls_conn *c, const char *buf, size_t len);
void ls_http_drain(struct ls_conn *c);
void ls_http_idle(struct ls_conn *c);
void ls_http_release(struct ls_conn *c);

/* http.c: a response is complete and the connection stays (headerTimeout
 * runs until the next head is in); or it is the last one (lingering close) */
void ls_http_await(struct ls_conn *c);
void ls_http_abort(struct ls_conn *c);
void ls_http_retire(struct ls_conn *c);

/* http_send.c */
int ls_http_send_state(const struct ls_conn *c);
int ls_http_respond(struct ls_conn *c, const ls_http_response_t *r);
int ls_http_send_part(struct ls_conn *c, const char *p, size_t n, int done);
int ls_http_send(struct ls_conn *c, const char *p, size_t n, int raw);

#endif
