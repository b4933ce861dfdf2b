/*
 * cbase.c -- the C baseline for luaserv's benchmarks: a minimal
 * single-process, single-threaded epoll server, i.e. about the most one core
 * can do on this machine.
 *
 *   cbase line  PORT   line echo: every complete line comes back (one write
 *                      per read, however many lines it held)
 *   cbase frame PORT   frame:// echo: 4-byte big-endian total length
 *                      (header included); a frame is echoed once it has
 *                      arrived whole (buffer grows geometrically: linear)
 *   cbase http  PORT   HTTP/1.1 "hello": keep-alive, pipelining (answers in
 *                      order, one write per read), Connection: close and
 *                      HTTP/1.0; GET-style requests (a Content-Length body is
 *                      skipped); no chunked bodies -- a bench peer, not a
 *                      server
 *   cbase https PORT CERT KEY
 *                      the same HTTP "hello" over TLS (OpenSSL): the
 *                      ceiling for the HTTPS workloads. Non-blocking
 *                      SSL_do_handshake / SSL_read_ex / SSL_write_ex on the
 *                      socket (read-ahead on: one recv for what is there),
 *                      one SSL_write per read as above, close_notify on
 *                      close, one session ticket; OpenSSL's default
 *                      ciphers, TLS 1.2 and 1.3 -- what luaserv and nginx
 *                      are given
 *
 * Listens on 127.0.0.1 only. Stops on SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum { M_LINE, M_FRAME, M_HTTP };

struct buf {
    char *p;
    size_t len, cap;
};

struct conn {
    struct buf in, out;
    int want_out;
    int close_after;
    SSL *ssl;           /* https: from accept on */
    int tls_ready;      /* the handshake is done */
    int tls_wout;       /* the handshake (or a read) waits to write */
};

static int mode;
static struct conn *conns;
static int max_fds;
static int ep;
static char rbuf[256 * 1024];
static volatile sig_atomic_t stopping;
static SSL_CTX *tls;

static void
on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static int
buf_reserve(struct buf *b, size_t need)
{
    if (b->cap - b->len >= need)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < need)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
buf_append(struct buf *b, const char *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void
buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->len == 0 && b->cap > 65536) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void
conn_close(int fd)
{
    struct conn *c = &conns[fd];
    if (c->ssl) {
        if (c->tls_ready)
            SSL_shutdown(c->ssl); /* close_notify, as luaserv and nginx */
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c->in.p);
    free(c->out.p);
    memset(c, 0, sizeof(*c));
}

/* ---- TLS: read(2) and write(2) over the connection's SSL ------------------ */

/* SSL_get_error -> errno: EAGAIN (wait; *wout: for writability), 0 (EOF)
 * or ECONNRESET. */
static int
tls_errno(struct conn *c, int r, int *wout)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *wout = 1;
        return EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        SSL_set_quiet_shutdown(c->ssl, 1);
        return ECONNRESET;
    }
}

/* The handshake, then every whole record there is (no syscall for a record
 * read-ahead already holds); read(2)'s outcomes. */
static ssize_t
io_read(int fd, char *p, size_t n)
{
    struct conn *c = &conns[fd];
    size_t got = 0, k;
    int r;

    if (!c->ssl)
        return read(fd, p, n);
    c->tls_wout = 0;
    if (!c->tls_ready) {
        if ((r = SSL_do_handshake(c->ssl)) != 1) {
            errno = tls_errno(c, r, &c->tls_wout);
            return errno == 0 ? 0 : -1;
        }
        c->tls_ready = 1;
    }
    while (got < n) {
        if (!SSL_read_ex(c->ssl, p + got, n - got, &k)) {
            if (got > 0) {
                ERR_clear_error();
                break;
            }
            errno = tls_errno(c, 0, &c->tls_wout);
            return errno == 0 ? 0 : -1;
        }
        got += k;
        if (!SSL_has_pending(c->ssl))
            break;
    }
    return (ssize_t)got;
}

static ssize_t
io_write(int fd, const char *p, size_t n)
{
    struct conn *c = &conns[fd];
    int wout = 0; /* pending output asks for EPOLLOUT anyway */
    size_t w;

    if (!c->ssl)
        return write(fd, p, n);
    if (SSL_write_ex(c->ssl, p, n, &w))
        return (ssize_t)w;
    errno = tls_errno(c, 0, &wout);
    if (errno == 0)
        errno = EPIPE;
    return -1;
}

/* Send p (after anything pending). -1: the connection is gone. */
static int
conn_send(int fd, const char *p, size_t n)
{
    struct conn *c = &conns[fd];
    if (c->out.len == 0) {
        while (n > 0) {
            ssize_t w = io_write(fd, p, n);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN)
                    break;
                return -1;
            }
            p += w;
            n -= (size_t)w;
        }
        if (n == 0)
            return 0;
    }
    return buf_append(&c->out, p, n);
}

static int
conn_flush(int fd)
{
    struct conn *c = &conns[fd];
    size_t off = 0;
    while (off < c->out.len) {
        ssize_t w = io_write(fd, c->out.p + off, c->out.len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        off += (size_t)w;
    }
    buf_consume(&c->out, off);
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------ */

static char date_hdr[64];
static time_t date_at;

static void
update_date(void)
{
    time_t t = time(NULL);
    if (t == date_at)
        return;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date_hdr, sizeof(date_hdr), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    date_at = t;
}

static const char *
find_ci(const char *h, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(h + i, needle, k) == 0)
            return h + i;
    return NULL;
}

/* Answer every complete request in p[0..n); returns bytes used, appends the
 * responses to resp. */
static size_t
http_process(int fd, const char *p, size_t n, struct buf *resp)
{
    struct conn *c = &conns[fd];
    size_t used = 0;
    update_date();
    while (used < n && !c->close_after) {
        const char *head = p + used;
        const char *end = memmem(head, n - used, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t hlen = (size_t)(end - head) + 4;
        size_t body = 0;
        const char *cl = find_ci(head, hlen, "\r\ncontent-length:");
        if (cl)
            body = strtoul(cl + 17, NULL, 10);
        if (used + hlen + body > n)
            break;
        const char *eol = memchr(head, '\n', hlen);
        int v10 = eol && eol - head >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0;
        const char *conn_hdr = find_ci(head, hlen, "\r\nconnection:");
        int close_it = v10;
        if (conn_hdr) {
            const char *ce = memchr(conn_hdr + 2, '\r', hlen - (size_t)(conn_hdr + 2 - head));
            size_t cn = ce ? (size_t)(ce - conn_hdr) : 0;
            if (find_ci(conn_hdr, cn, "close"))
                close_it = 1;
            else if (find_ci(conn_hdr, cn, "keep-alive"))
                close_it = 0;
        }
        char out[256];
        int len = snprintf(out, sizeof(out),
                           "HTTP/1.1 200 OK\r\nServer: cbase\r\nDate: %s\r\n"
                           "Content-Type: text/plain\r\nContent-Length: 5\r\n"
                           "%s\r\nhello",
                           date_hdr,
                           close_it ? "Connection: close\r\n"
                                    : (v10 ? "Connection: keep-alive\r\n" : ""));
        buf_append(resp, out, (size_t)len);
        used += hlen + body;
        if (close_it)
            c->close_after = 1;
    }
    return used;
}

/* ---- per-read processing --------------------------------------------------- */

static size_t
frame_missing(const struct buf *b)
{
    if (b->len < 4)
        return 0;
    uint32_t be;
    memcpy(&be, b->p, 4);
    size_t total = ntohl(be);
    return total > b->len ? total - b->len : 0;
}

/* Process p[0..n): send replies; returns bytes consumed. -1: close. */
static long
process(int fd, const char *p, size_t n)
{
    if (mode == M_LINE) {
        const char *nl = memrchr(p, '\n', n);
        if (!nl)
            return 0;
        size_t k = (size_t)(nl - p) + 1;
        return conn_send(fd, p, k) < 0 ? -1 : (long)k;
    }
    if (mode == M_FRAME) {
        /* whole frames at the head go back in one write */
        size_t used = 0;
        while (n - used >= 4) {
            uint32_t be;
            memcpy(&be, p + used, 4);
            size_t total = ntohl(be);
            if (total < 4)
                return -1;
            if (n - used < total)
                break;
            used += total;
        }
        if (used > 0 && conn_send(fd, p, used) < 0)
            return -1;
        return (long)used;
    }
    struct buf resp = {0};
    size_t used = http_process(fd, p, n, &resp);
    int rc = resp.len ? conn_send(fd, resp.p, resp.len) : 0;
    free(resp.p);
    return rc < 0 ? -1 : (long)used;
}

static void
on_readable(int fd)
{
    struct conn *c = &conns[fd];
    long used;
    ssize_t r;

    if (c->in.len == 0) {
        r = io_read(fd, rbuf, sizeof(rbuf));
        if (r <= 0)
            goto gone;
        used = process(fd, rbuf, (size_t)r);
        if (used < 0)
            goto kill;
        if (used < r && !c->close_after &&
            buf_append(&c->in, rbuf + used, (size_t)(r - used)) < 0)
            goto kill;
    } else {
        size_t want = mode == M_FRAME ? frame_missing(&c->in) : 0;
        if (want < 65536)
            want = 65536;
        if (buf_reserve(&c->in, want) < 0)
            goto kill;
        r = io_read(fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (r <= 0)
            goto gone;
        c->in.len += (size_t)r;
        used = process(fd, c->in.p, c->in.len);
        if (used < 0)
            goto kill;
        buf_consume(&c->in, (size_t)used);
    }
    return;
gone:
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
kill:
    conn_close(fd);
}

static void
after_io(int fd)
{
    struct conn *c = &conns[fd];
    if (c->out.len == 0 && c->close_after) {
        conn_close(fd);
        return;
    }
    int want = c->out.len > 0 || c->tls_wout;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0)};
        ev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        c->want_out = want;
    }
}

int
main(int argc, char **argv)
{
    struct sockaddr_in sa;
    struct epoll_event evs[512];
    int lfd, on = 1;

    if (argc != 3 && !(argc == 5 && !strcmp(argv[1], "https"))) {
        fprintf(stderr, "usage: cbase line|frame|http PORT\n"
                        "       cbase https PORT CERT KEY\n");
        return 2;
    }
    if (!strcmp(argv[1], "line"))
        mode = M_LINE;
    else if (!strcmp(argv[1], "frame"))
        mode = M_FRAME;
    else if (!strcmp(argv[1], "http") || !strcmp(argv[1], "https"))
        mode = M_HTTP;
    else {
        fprintf(stderr, "cbase: unknown mode %s\n", argv[1]);
        return 2;
    }
    max_fds = (int)sysconf(_SC_OPEN_MAX);
    if (max_fds < 1024)
        max_fds = 1024;
    conns = calloc((size_t)max_fds, sizeof(*conns));
    if (argc == 5) {
        tls = SSL_CTX_new(TLS_server_method());
        if (!tls || !SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION) ||
            !SSL_CTX_use_certificate_chain_file(tls, argv[3]) ||
            !SSL_CTX_use_PrivateKey_file(tls, argv[4], SSL_FILETYPE_PEM)) {
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_options(tls, SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_NO_COMPRESSION |
                                     SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_set_mode(tls, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_read_ahead(tls, 1);
        SSL_CTX_set_num_tickets(tls, 1);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[2]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(lfd, 4096) < 0) {
        perror("cbase: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN};
    lev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    while (!stopping) {
        int n = epoll_wait(ep, evs, 512, 500);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (int k = 0; k < 256; k++) {
                    int cfd = accept4(lfd, NULL, NULL,
                                      SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0)
                        break;
                    if (cfd >= max_fds) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
                    if (tls) {
                        SSL *ssl = SSL_new(tls);
                        if (!ssl || !SSL_set_fd(ssl, cfd)) {
                            SSL_free(ssl);
                            close(cfd);
                            continue;
                        }
                        SSL_set_accept_state(ssl);
                        conns[cfd].ssl = ssl;
                    }
                    struct epoll_event ev = {.events = EPOLLIN};
                    ev.data.fd = cfd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(fd) < 0) {
                    conn_close(fd);
                    continue;
                }
            }
            /* (TLS: a handshake or read that waited to write goes on) */
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
                conns[fd].tls_wout)
                on_readable(fd);
            /* after a close conns[fd] is all zero and this does nothing */
            after_io(fd);
        }
    }
    return 0;
}
