/*
 * http_send.c -- responses on an http:// connection: what the app sends (a
 * ls_http_response_t, which lua/lua_response.c makes of conn:send's value)
 * becomes an HTTP/1.1 response (status line, Date, Content-Length or
 * chunked framing, Connection), or a part of a streamed one; and luaserv's
 * own error replies.
 *
 * The caller has checked the whole response before it comes here, so that
 * a bad header raises before any byte is queued and the stream stays in
 * sync. The head is assembled on the C stack and given to the output
 * evbuffer in one call, together with a small body.
 */
#include "http/http.h"
#include "http/http_reply.h"
#include "core/log.h"
#include "net/conn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    HAS_TYPE = 1 << 0,   /* the app set Content-Type */
    HAS_DATE = 1 << 1,   /* ... Date */
    HAS_CLOSE = 1 << 2,  /* ... Connection: close */
};

static int
http_name_is(const char *k, size_t n, const char *lit, size_t litlen)
{
    return n == litlen && strncasecmp(k, lit, n) == 0;
}

#define NAME_IS(k, n, lit) http_name_is((k), (n), (lit), sizeof(lit) - 1)

/* What the app sets itself, of the headers luaserv adds otherwise. */
static unsigned
http_has(const ls_http_response_t *r)
{
    unsigned has = 0;

    for (size_t i = 0; i < r->nfields; i++) {
        const ls_http_field_t *f = &r->fields[i];
        if (NAME_IS(f->name, f->nlen, "content-type"))
            has |= HAS_TYPE;
        else if (NAME_IS(f->name, f->nlen, "date"))
            has |= HAS_DATE;
        else if (f->close)
            has |= HAS_CLOSE;
    }
    return has;
}

/* The app's headers, leaving out the framing luaserv decides. */
static void
http_wb_headers(ls_http_wbuf_t *w, const ls_http_response_t *r)
{
    for (size_t i = 0; i < r->nfields; i++) {
        const ls_http_field_t *f = &r->fields[i];

        if (NAME_IS(f->name, f->nlen, "content-length") ||
            NAME_IS(f->name, f->nlen, "transfer-encoding") ||
            NAME_IS(f->name, f->nlen, "connection"))
            continue;
        ls_http_wb_add(w, f->name, f->nlen);
        LS_HTTP_WB_LIT(w, ": ");
        ls_http_wb_add(w, f->value, f->vlen);
        LS_HTTP_WB_LIT(w, "\r\n");
    }
}

/* One part of a streamed body. */
static void
http_wb_chunk(ls_http_wbuf_t *w, const ls_http_t *h, const char *p, size_t n)
{
    if (n == 0 || (h->flags & LS_HTTP_NOBODY))
        return;
    if (h->flags & LS_HTTP_V10) { /* no chunked coding: the close ends it */
        ls_http_wb_add(w, p, n);
        return;
    }
    ls_http_wb_uint(w, n, 16);
    LS_HTTP_WB_LIT(w, "\r\n");
    ls_http_wb_add(w, p, n);
    LS_HTTP_WB_LIT(w, "\r\n");
}

/*
 * Queue what was written; when the response is complete, the connection
 * either closes or takes the next request (reading resumes if it was held
 * for this answer).
 */
static int
http_commit(ls_conn_t *c, ls_http_t *h, ls_http_wbuf_t *w, int complete)
{
    int close = 0, held = 0, plain = 0;

    ls_http_wb_flush(w);
    if (w->failed) {
        ls_log(LS_LOG_ERROR, 0, "conn %llu: cannot queue the response",
               (unsigned long long)c->id);
        ls_conn_destroy(c);
        return LS_SEND_CLOSED;
    }
    if (complete) {
        close = (h->flags & (LS_HTTP_CLOSE | LS_HTTP_DRAINING)) ||
                !(h->flags & LS_HTTP_KEEPALIVE);
        /* The client itself asked to close (Connection: close, HTTP/1.0)
         * and sent nothing after this request: no input can be left
         * unread, so a plain close ends with a FIN, as nginx does. A close
         * we decide on (the app's Connection: close, a graceful stop) or
         * input pipelined behind it lingers instead. */
        plain = close && !(h->flags & (LS_HTTP_KEEPALIVE | LS_HTTP_DRAINING |
                                       LS_HTTP_HELD | LS_HTTP_IN_MSG)) &&
                c->in.len == 0;
        held = h->flags & LS_HTTP_HELD;
        h->flags &= ~(LS_HTTP_INFLIGHT | LS_HTTP_STREAMING | LS_HTTP_HELD |
                      LS_HTTP_NOBODY | LS_HTTP_CLOSE);
    }
    /* From here on h may be gone: onBufferFull runs Lua. */
    int rc = ls_conn_commit(c);
    if (plain) {
        ls_conn_close(c);
    } else if (close) {
        ls_http_retire(c);
    } else if (complete) {
        ls_http_await(c);
        if (held)
            ls_conn_resume(c);
    }
    return rc;
}

/* The head, and the whole body unless the response streams. */
int
ls_http_respond(ls_conn_t *c, const ls_http_response_t *r)
{
    ls_http_t *h = c->pstate;
    ls_http_wbuf_t w;
    unsigned has = r->nfields ? http_has(r) : 0;
    int status = r->status, stream = r->stream;
    const char *body = r->body;
    size_t blen = r->blen;
    int bodyless = status == 204 || status == 304;

    if (ls_conn_stopped(c))
        return LS_SEND_CLOSED;
    ls_http_wb_init(&w, c);
    if (bodyless || (h->flags & LS_HTTP_HEAD_REQ))
        h->flags |= LS_HTTP_NOBODY;
    if ((has & HAS_CLOSE) || !(h->flags & LS_HTTP_KEEPALIVE) ||
        (h->flags & LS_HTTP_DRAINING) ||
        (stream && (h->flags & LS_HTTP_V10) && !(h->flags & LS_HTTP_NOBODY)))
        h->flags |= LS_HTTP_CLOSE;

    ls_http_wb_status(&w, status);
    if (!(has & HAS_DATE))
        ls_http_wb_date(&w);
    if (r->nfields)
        http_wb_headers(&w, r);
    if (!(has & HAS_TYPE) && !bodyless)
        LS_HTTP_WB_LIT(&w, "Content-Type: text/html; charset=utf-8\r\n");
    if (bodyless) {
        /* neither length nor body */
    } else if (stream) {
        if (!(h->flags & LS_HTTP_V10))
            LS_HTTP_WB_LIT(&w, "Transfer-Encoding: chunked\r\n");
    } else {
        LS_HTTP_WB_LIT(&w, "Content-Length: ");
        ls_http_wb_uint(&w, blen, 10);
        LS_HTTP_WB_LIT(&w, "\r\n");
    }
    if (h->flags & LS_HTTP_CLOSE)
        LS_HTTP_WB_LIT(&w, "Connection: close\r\n\r\n");
    else if (h->flags & LS_HTTP_V10)
        LS_HTTP_WB_LIT(&w, "Connection: keep-alive\r\n\r\n");
    else
        LS_HTTP_WB_LIT(&w, "\r\n");
    if (stream) {
        h->flags |= LS_HTTP_STREAMING;
        http_wb_chunk(&w, h, body, blen);
        return http_commit(c, h, &w, 0);
    }
    if (!(h->flags & LS_HTTP_NOBODY))
        ls_http_wb_add(&w, body, blen);
    return http_commit(c, h, &w, 1);
}

/* The next part of a streamed response, or its end (done). */
int
ls_http_send_part(ls_conn_t *c, const char *p, size_t n, int done)
{
    ls_http_t *h = c->pstate;
    ls_http_wbuf_t w;

    if (ls_conn_stopped(c))
        return LS_SEND_CLOSED;
    ls_http_wb_init(&w, c);
    http_wb_chunk(&w, h, p, n);
    if (done && !(h->flags & (LS_HTTP_NOBODY | LS_HTTP_V10)))
        LS_HTTP_WB_LIT(&w, "0\r\n\r\n");
    return http_commit(c, h, &w, done);
}

/* What conn:send may do now (LS_HTTP_SEND_*). */
int
ls_http_send_state(const ls_conn_t *c)
{
    const ls_http_t *h = c->pstate;

    if (h != NULL && (h->flags & LS_HTTP_LINGER))
        return LS_HTTP_SEND_GONE; /* ending: e.g. idleTimeout ended the wait */
    if (h == NULL || !(h->flags & LS_HTTP_INFLIGHT))
        return LS_HTTP_SEND_NONE;
    if (h->flags & LS_HTTP_STREAMING)
        return LS_HTTP_SEND_PART;
    return LS_HTTP_SEND_HEAD;
}

/* A string from C: a 200 with it as the body, or the next part. */
int
ls_http_send(ls_conn_t *c, const char *p, size_t n, int raw)
{
    ls_http_response_t r = {200, 0, NULL, 0, p, n};

    if (raw)
        return ls_conn_write(c, p, n);
    switch (ls_http_send_state(c)) {
    case LS_HTTP_SEND_HEAD:
        return ls_http_respond(c, &r);
    case LS_HTTP_SEND_PART:
        return ls_http_send_part(c, p, n, 0);
    default:
        return LS_SEND_CLOSED;
    }
}
