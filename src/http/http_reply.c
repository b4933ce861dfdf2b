/*
 * http_reply.c -- status lines, reason phrases, the Date header, and
 * luaserv's own error replies: plain text, then close.
 */
#include "http/http_reply.h"
#include "net/conn.h"

#include <stdio.h>
#include <sys/time.h>
#include <time.h>

void
ls_http_wb_uint(ls_http_wbuf_t *w, size_t v, unsigned base)
{
    char tmp[24], *p = tmp + sizeof(tmp);

    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v > 0);
    ls_http_wb_add(w, p, (size_t)(tmp + sizeof(tmp) - p));
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
void
ls_http_wb_date(ls_http_wbuf_t *w)
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
    ls_http_wb_add(w, line, len);
}

void
ls_http_wb_status(ls_http_wbuf_t *w, int status)
{
    const char *reason;
    char s[8];

    if (status == 200) {
        LS_HTTP_WB_LIT(w, "HTTP/1.1 200 OK\r\n");
        return;
    }
    reason = ls_http_reason(status);
    s[0] = ' ';
    s[1] = (char)('0' + status / 100 % 10);
    s[2] = (char)('0' + status / 10 % 10);
    s[3] = (char)('0' + status % 10);
    s[4] = ' ';
    LS_HTTP_WB_LIT(w, "HTTP/1.1");
    ls_http_wb_add(w, s, 5);
    ls_http_wb_add(w, reason, strlen(reason));
    LS_HTTP_WB_LIT(w, "\r\n");
}

void
ls_http_wb_put(ls_http_wbuf_t *w, const void *p, size_t n)
{
    char *dst;

    if (w->out == NULL && (dst = ls_conn_stage(w->c, n)) != NULL) {
        memcpy(dst, p, n);
        ls_conn_stage_add(w->c, n);
        return;
    }
    if (w->out == NULL && (w->out = ls_conn_outbuf(w->c)) == NULL) {
        w->failed = 1;
        return;
    }
    if (evbuffer_add(w->out, p, n) < 0)
        w->failed = 1;
}

/* luaserv's own reply (400, 413, 500 ...): plain text, then close. */
void
ls_http_reply_error(ls_conn_t *c, int status)
{
    const char *reason = ls_http_reason(status);
    ls_http_wbuf_t w;

    if (ls_conn_stopped(c))
        return;
    ls_http_wb_init(&w, c);
    ls_http_wb_status(&w, status);
    ls_http_wb_date(&w);
    LS_HTTP_WB_LIT(&w, "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: ");
    ls_http_wb_uint(&w, strlen(reason) + 5, 10);
    LS_HTTP_WB_LIT(&w, "\r\nConnection: close\r\n\r\n");
    ls_http_wb_uint(&w, (size_t)status, 10);
    LS_HTTP_WB_LIT(&w, " ");
    ls_http_wb_add(&w, reason, strlen(reason));
    LS_HTTP_WB_LIT(&w, "\n");
    ls_http_wb_flush(&w);
    ls_conn_commit(c);
}

