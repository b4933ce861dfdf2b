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

/*
 * A response being written: assembled in b, then put where the connection's
 * output goes (ls_http_wb_put): the worker's stage while the requests of one
 * read are answered (net/conn.c, written out once at the end of the read),
 * else the output buffer. out: NULL until the output buffer is taken.
 */
typedef struct ls_http_wbuf {
    struct ls_conn *c;
    struct evbuffer *out;
    int failed;
    size_t n;
    char b[2048];
} ls_http_wbuf_t;

void ls_http_wb_put(ls_http_wbuf_t *w, const void *p, size_t n);

static inline void
ls_http_wb_init(ls_http_wbuf_t *w, struct ls_conn *c)
{
    w->c = c;
    w->out = NULL;
    w->failed = 0;
    w->n = 0;
}

static inline void
ls_http_wb_flush(ls_http_wbuf_t *w)
{
    if (w->n > 0)
        ls_http_wb_put(w, w->b, w->n);
    w->n = 0;
}

static inline void
ls_http_wb_add(ls_http_wbuf_t *w, const void *p, size_t n)
{
    if (w->n + n > sizeof(w->b)) {
        ls_http_wb_flush(w);
        if (n > sizeof(w->b)) {
            ls_http_wb_put(w, p, n);
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
