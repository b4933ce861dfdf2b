/*
 * http_send.c -- conn:send on an http:// connection: the app's value becomes
 * an HTTP/1.1 response (status line, Date, Content-Length or chunked framing,
 * Connection), or a part of a streamed one; and luaserv's own error replies.
 *
 * A response is written only after the whole value has been checked, so that
 * a bad header raises before any byte is queued and the stream stays in sync.
 * The head is assembled on the C stack and given to the output evbuffer in
 * one call, together with a small body.
 */
#include "http.h"
#include "conn.h"
#include "log.h"

#include <lauxlib.h>

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct http_wbuf {
    struct evbuffer *out;
    int failed;
    size_t n;
    char b[2048];
} http_wbuf_t;

enum {
    HAS_TYPE = 1 << 0,   /* the app set Content-Type */
    HAS_DATE = 1 << 1,   /* ... Date */
    HAS_CLOSE = 1 << 2,  /* ... Connection: close */
};

static void
http_wb_flush(http_wbuf_t *w)
{
    if (w->n > 0 && evbuffer_add(w->out, w->b, w->n) < 0)
        w->failed = 1;
    w->n = 0;
}

static void
http_wb_add(http_wbuf_t *w, const void *p, size_t n)
{
    if (w->n + n > sizeof(w->b)) {
        http_wb_flush(w);
        if (n > sizeof(w->b)) {
            if (evbuffer_add(w->out, p, n) < 0)
                w->failed = 1;
            return;
        }
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

#define HTTP_WB_LIT(w, s) http_wb_add((w), (s), sizeof(s) - 1)

static void
http_wb_uint(http_wbuf_t *w, size_t v, unsigned base)
{
    char tmp[24], *p = tmp + sizeof(tmp);

    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v > 0);
    http_wb_add(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

const char *
ls_http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}

/* "Date: ...\r\n", formatted once per second of loop time; day and month
 * names spelled out so that a locale set by the app cannot change them. */
static void
http_wb_date(http_wbuf_t *w)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri",
                                    "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May",
                                       "Jun", "Jul", "Aug", "Sep", "Oct",
                                       "Nov", "Dec"};
    static char line[64];
    static size_t len;
    static time_t when = (time_t)-1;
    struct timeval tv;

    if (event_base_gettimeofday_cached(ls_worker->base, &tv) < 0)
        gettimeofday(&tv, NULL);
    if (tv.tv_sec != when) {
        struct tm tm;
        int n;
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line),
                     "Date: %s, %02d %s %04d %02d:%02d:%02d GMT\r\n",
                     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        len = n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0;
        when = tv.tv_sec;
    }
    http_wb_add(w, line, len);
}

static void
http_wb_status(http_wbuf_t *w, int status)
{
    const char *reason;
    char s[8];

    if (status == 200) {
        HTTP_WB_LIT(w, "HTTP/1.1 200 OK\r\n");
        return;
    }
    reason = ls_http_reason(status);
    s[0] = ' ';
    s[1] = (char)('0' + status / 100 % 10);
    s[2] = (char)('0' + status / 10 % 10);
    s[3] = (char)('0' + status % 10);
    s[4] = ' ';
    HTTP_WB_LIT(w, "HTTP/1.1");
    http_wb_add(w, s, 5);
    http_wb_add(w, reason, strlen(reason));
    HTTP_WB_LIT(w, "\r\n");
}

/* luaserv's own reply (400, 413, 500 ...): plain text, then close. */
void
ls_http_reply_error(ls_conn_t *c, int status)
{
    struct evbuffer *out = ls_conn_outbuf(c);
    const char *reason = ls_http_reason(status);
    http_wbuf_t w;

    if (out == NULL)
        return;
    w.out = out;
    w.failed = 0;
    w.n = 0;
    http_wb_status(&w, status);
    http_wb_date(&w);
    HTTP_WB_LIT(&w, "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: ");
    http_wb_uint(&w, strlen(reason) + 5, 10);
    HTTP_WB_LIT(&w, "\r\nConnection: close\r\n\r\n");
    http_wb_uint(&w, (size_t)status, 10);
    HTTP_WB_LIT(&w, " ");
    http_wb_add(&w, reason, strlen(reason));
    HTTP_WB_LIT(&w, "\n");
    http_wb_flush(&w);
    ls_conn_commit(c);
}

/* A header value must not be able to start a new line (response splitting). */
static void
http_check_value(lua_State *L, const char *name, int idx)
{
    size_t n;
    const char *v;
    int t = lua_type(L, idx);

    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad value for header '%s' (string, number or array "
                   "expected, got %s)", name, luaL_typename(L, idx));
    v = lua_tolstring(L, idx, &n);
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            luaL_error(L, "bad value for header '%s' (CR, LF or NUL)", name);
}

static int
http_name_is(const char *k, size_t n, const char *lit, size_t litlen)
{
    return n == litlen && strncasecmp(k, lit, n) == 0;
}

#define NAME_IS(k, n, lit) http_name_is((k), (n), (lit), sizeof(lit) - 1)

/* First pass over headers = {...}: raise on anything bad, note what the
 * app sets itself. */
static unsigned
http_check_headers(lua_State *L, int hidx)
{
    unsigned has = 0;

    lua_pushnil(L);
    while (lua_next(L, hidx)) {                          /* k v */
        size_t kn;
        const char *k;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "bad header name (string expected, got %s)",
                       luaL_typename(L, -2));
        k = lua_tolstring(L, -2, &kn);
        for (size_t i = 0; i < kn; i++)
            if (!ls_http_tchar((unsigned char)k[i]))
                luaL_error(L, "bad header name '%s'", k);
        if (kn == 0)
            luaL_error(L, "bad header name (empty)");
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                http_check_value(L, k, -1);
                lua_pop(L, 1);
            }
        } else {
            http_check_value(L, k, -1);
        }
        if (NAME_IS(k, kn, "content-type"))
            has |= HAS_TYPE;
        else if (NAME_IS(k, kn, "date"))
            has |= HAS_DATE;
        else if (NAME_IS(k, kn, "connection") &&
                 lua_type(L, -1) == LUA_TSTRING &&
                 strcasestr(lua_tostring(L, -1), "close") != NULL)
            has |= HAS_CLOSE;
        lua_pop(L, 1);                                   /* k */
    }
    return has;
}

static void
http_wb_header(http_wbuf_t *w, lua_State *L, const char *k, size_t kn,
               int idx)
{
    size_t vn;
    const char *v = lua_tolstring(L, idx, &vn);

    http_wb_add(w, k, kn);
    HTTP_WB_LIT(w, ": ");
    http_wb_add(w, v, vn);
    HTTP_WB_LIT(w, "\r\n");
}

/* Second pass: write them, leaving out the framing luaserv decides. */
static void
http_wb_headers(http_wbuf_t *w, lua_State *L, int hidx)
{
    lua_pushnil(L);
    while (lua_next(L, hidx)) {                          /* k v */
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);

        if (NAME_IS(k, kn, "content-length") ||
            NAME_IS(k, kn, "transfer-encoding") ||
            NAME_IS(k, kn, "connection")) {
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
            for (lua_Integer i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, i);
                http_wb_header(w, L, k, kn, -1);
                lua_pop(L, 1);
            }
        } else {
            http_wb_header(w, L, k, kn, -1);
        }
        lua_pop(L, 1);                                   /* k */
    }
}

/* One part of a streamed body. */
static void
http_wb_chunk(http_wbuf_t *w, const ls_http_t *h, const char *p, size_t n)
{
    if (n == 0 || (h->flags & LS_HTTP_NOBODY))
        return;
    if (h->flags & LS_HTTP_V10) { /* no chunked coding: the close ends it */
        http_wb_add(w, p, n);
        return;
    }
    http_wb_uint(w, n, 16);
    HTTP_WB_LIT(w, "\r\n");
    http_wb_add(w, p, n);
    HTTP_WB_LIT(w, "\r\n");
}

/*
 * Queue what was written; when the response is complete, the connection
 * either closes or takes the next request (reading resumes if it was held
 * for this answer).
 */
static int
http_commit(ls_conn_t *c, ls_http_t *h, http_wbuf_t *w, int complete)
{
    int close = 0, held = 0, plain = 0;

    http_wb_flush(w);
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
static int
http_respond(ls_conn_t *c, ls_http_t *h, lua_State *L, int status, int hidx,
             const char *body, size_t blen, int stream)
{
    http_wbuf_t w;
    unsigned has = hidx ? http_check_headers(L, hidx) : 0;
    int bodyless = status == 204 || status == 304;

    w.out = ls_conn_outbuf(c);
    if (w.out == NULL)
        return LS_SEND_CLOSED;
    w.failed = 0;
    w.n = 0;
    if (bodyless || (h->flags & LS_HTTP_HEAD_REQ))
        h->flags |= LS_HTTP_NOBODY;
    if ((has & HAS_CLOSE) || !(h->flags & LS_HTTP_KEEPALIVE) ||
        (h->flags & LS_HTTP_DRAINING) ||
        (stream && (h->flags & LS_HTTP_V10) && !(h->flags & LS_HTTP_NOBODY)))
        h->flags |= LS_HTTP_CLOSE;

    http_wb_status(&w, status);
    if (!(has & HAS_DATE))
        http_wb_date(&w);
    if (hidx)
        http_wb_headers(&w, L, hidx);
    if (!(has & HAS_TYPE) && !bodyless)
        HTTP_WB_LIT(&w, "Content-Type: text/html; charset=utf-8\r\n");
    if (bodyless) {
        /* neither length nor body */
    } else if (stream) {
        if (!(h->flags & LS_HTTP_V10))
            HTTP_WB_LIT(&w, "Transfer-Encoding: chunked\r\n");
    } else {
        HTTP_WB_LIT(&w, "Content-Length: ");
        http_wb_uint(&w, blen, 10);
        HTTP_WB_LIT(&w, "\r\n");
    }
    if (h->flags & LS_HTTP_CLOSE)
        HTTP_WB_LIT(&w, "Connection: close\r\n\r\n");
    else if (h->flags & LS_HTTP_V10)
        HTTP_WB_LIT(&w, "Connection: keep-alive\r\n\r\n");
    else
        HTTP_WB_LIT(&w, "\r\n");
    if (stream) {
        h->flags |= LS_HTTP_STREAMING;
        http_wb_chunk(&w, h, body, blen);
        return http_commit(c, h, &w, 0);
    }
    if (!(h->flags & LS_HTTP_NOBODY))
        http_wb_add(&w, body, blen);
    return http_commit(c, h, &w, 1);
}

/* body = string | number | nil, from the table at idx. A body is left on the
 * stack, which keeps the returned pointer valid. */
static const char *
http_opt_body(lua_State *L, int idx, size_t *n)
{
    int t = lua_getfield(L, idx, "body");
    const char *s;

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        *n = 0;
        return "";
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "bad field 'body' (string expected, got %s)",
                   luaL_typename(L, -1));
    s = lua_tolstring(L, -1, n);
    return s; /* left on the stack, which keeps it alive */
}

/* The next part of a streamed response, or its end: {done = true}. */
static int
http_send_part(ls_conn_t *c, ls_http_t *h, lua_State *L, int idx)
{
    http_wbuf_t w;
    const char *p;
    size_t n;
    int done = 0;

    if (lua_type(L, idx) == LUA_TTABLE) {
        if (lua_getfield(L, idx, "status") != LUA_TNIL)
            luaL_error(L, "the response has begun: send its parts as "
                       "strings and end it with {done = true}");
        lua_pop(L, 1);
        lua_getfield(L, idx, "done");
        done = lua_toboolean(L, -1);
        lua_pop(L, 1);
        p = http_opt_body(L, idx, &n);
    } else {
        p = lua_tolstring(L, idx, &n);
    }
    w.out = ls_conn_outbuf(c);
    if (w.out == NULL)
        return LS_SEND_CLOSED;
    w.failed = 0;
    w.n = 0;
    http_wb_chunk(&w, h, p, n);
    if (done && !(h->flags & (LS_HTTP_NOBODY | LS_HTTP_V10)))
        HTTP_WB_LIT(&w, "0\r\n\r\n");
    return http_commit(c, h, &w, done);
}

/* {status = 200, headers = {...}, body = "...", stream = false} */
static int
http_send_table(ls_conn_t *c, ls_http_t *h, lua_State *L, int idx)
{
    lua_Integer status = 200;
    int hidx = 0, stream, isint = 0;
    const char *body;
    size_t blen;

    if (lua_getfield(L, idx, "status") != LUA_TNIL) {
        status = lua_tointegerx(L, -1, &isint);
        if (!isint || status < 200 || status > 999)
            luaL_error(L, "bad field 'status' (integer from 200 to 999 "
                       "expected, got %s)", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "stream");
    stream = lua_toboolean(L, -1);
    lua_pop(L, 1);
    switch (lua_getfield(L, idx, "headers")) {           /* ... hdrs */
    case LUA_TNIL:
        lua_pop(L, 1);
        break;
    case LUA_TTABLE:
        hidx = lua_gettop(L);
        break;
    default:
        luaL_error(L, "bad field 'headers' (table expected, got %s)",
                   luaL_typename(L, -1));
    }
    body = http_opt_body(L, idx, &blen);                 /* ... [hdrs] b */
    return http_respond(c, h, L, (int)status, hidx, body, blen, stream);
}

/* conn:send(value [, raw]) on http://; see the guide at the top of http.c. */
int
ls_http_send(ls_conn_t *c, lua_State *L, int idx, int raw)
{
    ls_http_t *h = c->pstate;
    int t = lua_type(L, idx);

    if (raw) {
        struct evbuffer *out;
        size_t n;
        const char *p;
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_typeerror(L, idx, "string");
        p = lua_tolstring(L, idx, &n);
        if ((out = ls_conn_outbuf(c)) == NULL)
            return LS_SEND_CLOSED;
        if (evbuffer_add(out, p, n) < 0)
            return LS_SEND_FULL;
        return ls_conn_commit(c);
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TTABLE)
        luaL_typeerror(L, idx, "string or table");
    if (h != NULL && (h->flags & LS_HTTP_LINGER))
        return LS_SEND_CLOSED; /* ending: e.g. idleTimeout ended the wait */
    if (h == NULL || !(h->flags & LS_HTTP_INFLIGHT))
        luaL_error(L, "no HTTP request is waiting for a response on this "
                   "connection");
    if (h->flags & LS_HTTP_STREAMING)
        return http_send_part(c, h, L, idx);
    if (t == LUA_TTABLE)
        return http_send_table(c, h, L, idx);
    {
        size_t n;
        const char *p = lua_tolstring(L, idx, &n);
        return http_respond(c, h, L, 200, 0, p, n, 0);
    }
}
