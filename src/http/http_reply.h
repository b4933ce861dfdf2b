/*
 * http_reply.h -- writing HTTP responses: the buffer a head is assembled in
 * (on the C stack, then one evbuffer_add), status lines, Date, and
 * luaserv's own error replies (400, 408, 413, 500 ...).
 */
#ifndef LS_HTTP_REPLY_H
#define LS_HTTP_REPLY_H

#include <event2/buffer.h>
#include <stddef.h>
#include <string.h>

struct ls_conn;

typedef struct ls_http_wbuf {
    struct evbuffer *out;
    int failed;
    size_t n;
    char b[2048];
} ls_http_wbuf_t;

static inline void
ls_http_wb_flush(ls_http_wbuf_t *w)
{
    if (w->n > 0 && evbuffer_add(w->out, w->b, w->n) < 0)
        w->failed = 1;
    w->n = 0;
}

static inline void
ls_http_wb_add(ls_http_wbuf_t *w, const void *p, size_t n)
{
    if (w->n + n > sizeof(w->b)) {
        ls_http_wb_flush(w);
        if (n > sizeof(w->b)) {
            if (evbuffer_add(w->out, p, n) < 0)
                w->failed = 1;
            return;
        }
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

#define LS_HTTP_WB_LIT(w, s) ls_http_wb_add((w), (s), sizeof(s) - 1)

void ls_http_wb_uint(ls_http_wbuf_t *w, size_t v, unsigned base);
void ls_http_wb_date(ls_http_wbuf_t *w);
void ls_http_wb_status(ls_http_wbuf_t *w, int status);

const char *ls_http_reason(int status);
void ls_http_reply_error(struct ls_conn *c, int status);

#endif
