/*
 * mail.c -- worker-to-worker message sockets (see mail.h).
 */
#include "core/mail.h"
#include "core/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Queued bytes per id (asked of SO_SNDBUFFORCE, else SO_SNDBUF): room for
 * a few 1 MiB messages or thousands of small ones. */
#define MAIL_QUEUE_BYTES (8 << 20)

typedef struct mail_hdr {
    int32_t from;
    uint32_t magic;
} mail_hdr_t;

#define MAIL_MAGIC 0x6c736d31u

static int (*mail_fds)[2];   /* [id][0] sends, [id][1] receives */
static int mail_n, mail_cap;

int
ls_mail_ensure(int n, char *err, size_t errlen)
{
    while (mail_n < n) {
        int sv[2], size = MAIL_QUEUE_BYTES, got = 0;
        socklen_t sl = sizeof(got);
        if (mail_n == mail_cap) {
            int cap = mail_cap ? mail_cap * 2 : 16;
            int (*p)[2] = realloc(mail_fds, sizeof(*p) * (size_t)cap);
            if (p == NULL) {
                snprintf(err, errlen, "out of memory for worker messages");
                return -1;
            }
            mail_fds = p;
            mail_cap = cap;
        }
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                       sv) < 0) {
            snprintf(err, errlen, "socketpair() for worker messages failed: "
                     "%s", strerror(errno));
            return -1;
        }
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &size,
                       sizeof(size)) < 0)
            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        if (mail_n == 0 &&
            getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &got, &sl) == 0 &&
            (size_t)got < 2 * LS_MAIL_MAX)
            ls_log(LS_LOG_WARN, 0, "worker messages: the socket buffer is "
                   "%d bytes (SO_SNDBUFFORCE needs root; raise "
                   "net.core.wmem_max): long messages may not fit", got);
        mail_fds[mail_n][0] = sv[0];
        mail_fds[mail_n][1] = sv[1];
        mail_n++;
    }
    return 0;
}

int
ls_mail_count(void)
{
    return mail_n;
}

int
ls_mail_recv_fd(int id)
{
    return id >= 0 && id < mail_n ? mail_fds[id][1] : -1;
}

ls_mail_stats_t ls_mail_stats;

int
ls_mail_send(int to, int from, const void *msg, size_t len)
{
    mail_hdr_t h = {from, MAIL_MAGIC};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)msg, len}};
    struct msghdr m;
    ssize_t n;

    if (to < 0 || to >= mail_n) {
        errno = EINVAL;
        return -1;
    }
    if (len > LS_MAIL_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    do
        n = sendmsg(mail_fds[to][0], &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == ENOBUFS)
        errno = EAGAIN;
    if (n >= 0)
        ls_mail_stats.sent++;
    else if (errno == EAGAIN || errno == EWOULDBLOCK)
        ls_mail_stats.full++;
    return n < 0 ? -1 : 0;
}

ssize_t
ls_mail_recv(int fd, int *from, char *buf)
{
    mail_hdr_t h;
    struct iovec iov[2] = {{&h, sizeof(h)}, {buf, LS_MAIL_MAX}};
    struct msghdr m;
    ssize_t n;

    for (;;) {
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        n = recvmsg(fd, &m, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if ((size_t)n < sizeof(h) || h.magic != MAIL_MAGIC ||
            (m.msg_flags & MSG_TRUNC))
            continue; /* not ours, or cut: dropped */
        *from = h.from;
        ls_mail_stats.received++;
        return n - (ssize_t)sizeof(h);
    }
}
