/*
 * proto.c -- the stream protocols: raw chunks (tcp://), and framing done in
 * C (text://, frame://, declarative delimiter and length framing). One
 * message per packet, no Lua per read.
 */
#include "net/proto.h"
#include "net/conn.h"

#include <string.h>

typedef struct stream_batch {
    const char *buf;
    size_t len, off;
    int code;                   /* a framing error: LS_ERR_* */
    const char *err;
} stream_batch_t;

/* ls_conn_next_fn: the next whole packet at the head of the buffer. */
static int
stream_next(ls_conn_t *c, void *ctx, const char **p, size_t *n)
{
    stream_batch_t *b = ctx;
    ls_packet_t pkt;
    int r;

    if (b->off >= b->len || b->err != NULL || !ls_conn_receiving(c))
        return 0;
    r = ls_framing_next(&c->srv->conf.framing, b->buf + b->off,
                        b->len - b->off, c->srv->conf.max_package_size,
                        &c->scan, &pkt, &b->err);
    if (r == 0)
        return 0;
    if (r < 0) {
        b->code = strcmp(b->err, "package too big") == 0
                      ? LS_ERR_PACKAGE_TOO_BIG
                      : LS_ERR_BAD_INPUT;
        return 0;
    }
    c->scan = 0;
    *p = b->buf + b->off + pkt.off;
    *n = pkt.len;
    b->off += pkt.total;
    return 1;
}

/* Deliver every whole packet at the head of buf, in one batch. */
static size_t
stream_input(ls_conn_t *c, const char *buf, size_t len)
{
    stream_batch_t b = {buf, len, 0, 0, NULL};

    ls_conn_emit_messages(c, stream_next, &b);
    if (b.err != NULL) {
        ls_conn_fail(c, b.code, b.err);
        return len;
    }
    return b.off;
}

static size_t
stream_missing(ls_conn_t *c, const char *buf, size_t len)
{
    return ls_framing_missing(&c->srv->conf.framing, buf, len);
}

/* conn:send(data [, raw]): data framed as the listener's protocol says. */
int
ls_proto_stream_send(ls_conn_t *c, const char *p, size_t n, int raw)
{
    const ls_framing_t *f = &c->srv->conf.framing;
    struct evbuffer *out;
    size_t hlen = 0, tlen = 0;
    const char *trailer = NULL;
    char hdr[16], *d;

    if (!raw) {
        hlen = ls_framing_header(f, n, hdr);
        trailer = ls_framing_trailer(f, &tlen);
    }
    if (n <= LS_STAGE_SIZE && (d = ls_conn_stage(c, hlen + n + tlen))) {
        /* a reply to the messages being delivered (conn.c) */
        if (hlen)
            memcpy(d, hdr, hlen);
        memcpy(d + hlen, p, n);
        if (tlen)
            memcpy(d + hlen + n, trailer, tlen);
        return ls_conn_staged(c, hlen + n + tlen);
    }
    if ((out = ls_conn_outbuf(c)) == NULL)
        return LS_SEND_CLOSED;
    if (hlen + tlen == 0) {
        if (evbuffer_add(out, p, n) < 0)
            return LS_SEND_FULL;
    } else if (hlen + n + tlen <= 256) {
        /* A short message: assembled here, then one evbuffer_add (cheaper
         * than reserve + commit). */
        char tmp[256];

        if (hlen)
            memcpy(tmp, hdr, hlen);
        memcpy(tmp + hlen, p, n);
        if (tlen)
            memcpy(tmp + hlen + n, trailer, tlen);
        if (evbuffer_add(out, tmp, hlen + n + tlen) < 0)
            return LS_SEND_FULL;
    } else {
        /* Header, payload and trailer in one piece of the buffer: one
         * evbuffer call per message instead of two or three. */
        struct evbuffer_iovec v;

        if (evbuffer_reserve_space(out, (ev_ssize_t)(hlen + n + tlen), &v,
                                   1) < 1)
            return LS_SEND_FULL;
        d = v.iov_base;
        if (hlen)
            memcpy(d, hdr, hlen);
        memcpy(d + hlen, p, n);
        if (tlen)
            memcpy(d + hlen + n, trailer, tlen);
        v.iov_len = hlen + n + tlen;
        if (evbuffer_commit_space(out, &v, 1) < 0)
            return LS_SEND_FULL;
    }
    return ls_conn_commit(c);
}

const ls_proto_t ls_proto_stream = {
    .name = "stream",
    .kind = LS_PROTO_STREAM,
    .input = stream_input,
    .missing = stream_missing,
    .send = ls_proto_stream_send,
};
