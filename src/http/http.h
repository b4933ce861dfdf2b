/*
 * http.h -- the http:// protocol: HTTP/1.x requests in, responses out.
 *
 * ls_proto_http is all the rest of luaserv needs. The state below is shared
 * by http.c (parsing, dispatch, errors, lingering close) and http_send.c
 * (encoding what the app sends); nothing else looks inside it.
 */
#ifndef LS_HTTP_H
#define LS_HTTP_H

#include "proto.h"

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

/* http_request.c */
void ls_http_push_request(lua_State *L, ls_http_t *h, char *base);

/* http.c: a response is complete and the connection stays (headerTimeout
 * runs until the next head is in); or it is the last one (lingering close) */
void ls_http_await(struct ls_conn *c);
void ls_http_retire(struct ls_conn *c);

/* http_send.c */
int ls_http_send(struct ls_conn *c, lua_State *L, int idx, int raw);
void ls_http_reply_error(struct ls_conn *c, int status);
const char *ls_http_reason(int status);

#endif
