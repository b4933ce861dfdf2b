/*
 * task.c -- the task queue (see task.h).
 */
#include "core/task.h"
#include "core/log.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define TASK_MAGIC 0x6c737431u
#define REPLY_MAGIC 0x6c737232u
#define TASK_QUEUE_BYTES (8 << 20)

typedef struct task_shm {
    volatile uint32_t pending;   /* tasks sent and not taken yet */
    volatile uint32_t limit;     /* taskQueue */
    ls_task_cell_t cells[LS_TASK_CELLS];
} task_shm_t;

typedef struct task_hdr {
    uint32_t magic;
    int32_t pid;
    uint64_t reqid;
} task_hdr_t;

typedef struct reply_hdr {
    uint32_t magic;
    uint32_t status;
    uint64_t reqid;
} reply_hdr_t;

static task_shm_t *task_shm;
static int task_fds[2] = {-1, -1};  /* [0] sends tasks, [1] takes them */
static unsigned char cell_used[LS_TASK_CELLS];
static pid_t task_master;           /* names the result sockets */
static int reply_fd = -1;
static pid_t reply_pid;             /* the process reply_fd was bound for */

int
ls_task_setup(int limit, char *err, size_t errlen)
{
    if (task_shm == NULL) {
        int size = TASK_QUEUE_BYTES;
        task_shm_t *p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            snprintf(err, errlen, "mmap() for the task queue failed: %s",
                     strerror(errno));
            return -1;
        }
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       0, task_fds) < 0) {
            snprintf(err, errlen, "socketpair() for the task queue failed: "
                     "%s", strerror(errno));
            munmap(p, sizeof(*p));
            return -1;
        }
        if (setsockopt(task_fds[0], SOL_SOCKET, SO_SNDBUFFORCE, &size,
                       sizeof(size)) < 0)
            setsockopt(task_fds[0], SOL_SOCKET, SO_SNDBUF, &size,
                       sizeof(size));
        task_shm = p;
        task_master = getpid();
    }
    __atomic_store_n(&task_shm->limit, (uint32_t)limit, __ATOMIC_RELAXED);
    return 0;
}

int
ls_task_ready(void)
{
    return task_shm != NULL;
}

void
ls_task_depth(unsigned *waiting, unsigned *limit)
{
    *waiting = task_shm ? __atomic_load_n(&task_shm->pending, __ATOMIC_RELAXED)
                        : 0;
    *limit = task_shm ? __atomic_load_n(&task_shm->limit, __ATOMIC_RELAXED)
                      : 0;
}

int
ls_task_cell_take(void)
{
    for (int i = 0; task_shm != NULL && i < LS_TASK_CELLS; i++)
        if (!cell_used[i]) {
            cell_used[i] = 1;
            memset((void *)&task_shm->cells[i], 0, sizeof(ls_task_cell_t));
            return i + 1;
        }
    return 0;
}

void
ls_task_cell_drop(int cell)
{
    if (cell > 0 && cell <= LS_TASK_CELLS)
        cell_used[cell - 1] = 0;
}

ls_task_cell_t *
ls_task_cell(int cell)
{
    return cell > 0 && task_shm != NULL ? &task_shm->cells[cell - 1] : NULL;
}

int
ls_task_orphan(int cell)
{
    static const char died[] = "task worker died";
    ls_task_cell_t *c = ls_task_cell(cell);

    if (c == NULL || !c->busy)
        return 0;
    c->busy = 0;
    if (ls_task_reply(c->pid, c->reqid, LS_TASK_DIED, died,
                      sizeof(died) - 1, 0) < 0 && errno != ECONNREFUSED &&
        errno != ENOENT)
        ls_log(LS_LOG_WARN, errno, "cannot tell worker pid %d that its task "
               "failed", (int)c->pid);
    return 1;
}

int
ls_task_submit(uint64_t reqid, const void *data, size_t len)
{
    task_hdr_t h = {TASK_MAGIC, (int32_t)getpid(), reqid};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, len}};
    struct msghdr m;
    ssize_t n;

    if (task_shm == NULL) {
        errno = ENOTCONN;
        return -1;
    }
    if (len > LS_TASK_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (__atomic_add_fetch(&task_shm->pending, 1, __ATOMIC_RELAXED) >
        __atomic_load_n(&task_shm->limit, __ATOMIC_RELAXED)) {
        __atomic_sub_fetch(&task_shm->pending, 1, __ATOMIC_RELAXED);
        errno = EAGAIN;
        return -1;
    }
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    do
        n = sendmsg(task_fds[0], &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        int e = errno == ENOBUFS ? EAGAIN : errno;
        __atomic_sub_fetch(&task_shm->pending, 1, __ATOMIC_RELAXED);
        errno = e;
        return -1;
    }
    return 0;
}

int
ls_task_queue_fd(void)
{
    return task_fds[1];
}

ssize_t
ls_task_take(pid_t *pid, uint64_t *reqid, char *buf)
{
    task_hdr_t h;
    struct iovec iov[2] = {{&h, sizeof(h)}, {buf, LS_TASK_MAX}};
    struct msghdr m;
    ssize_t n;

    for (;;) {
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        n = recvmsg(task_fds[1], &m, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        __atomic_sub_fetch(&task_shm->pending, 1, __ATOMIC_RELAXED);
        if ((size_t)n < sizeof(h) || h.magic != TASK_MAGIC ||
            (m.msg_flags & MSG_TRUNC))
            continue;
        *pid = h.pid;
        *reqid = h.reqid;
        return n - (ssize_t)sizeof(h);
    }
}

static socklen_t
task_addr(pid_t pid, struct sockaddr_un *a)
{
    int n;
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1,
                 "luaserv-task-%d-%d", (int)task_master, (int)pid);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                       (size_t)n);
}

int
ls_task_reply(pid_t pid, uint64_t reqid, int status, const void *data,
              size_t len, int wait_ms)
{
    static int fd = -1;
    reply_hdr_t h = {REPLY_MAGIC, (uint32_t)status, reqid};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)data, len}};
    struct sockaddr_un a;
    struct msghdr m;
    int waited = 0;

    if (fd < 0 &&
        (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    memset(&m, 0, sizeof(m));
    m.msg_name = &a;
    m.msg_namelen = task_addr(pid, &a);
    m.msg_iov = iov;
    m.msg_iovlen = 2;
    for (;;) {
        struct pollfd p = {fd, POLLOUT, 0};
        ssize_t n = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if ((errno != EAGAIN && errno != ENOBUFS) || waited >= wait_ms)
            return -1;
        /* the asker's queue is full: it is reading, give it a moment */
        poll(&p, 1, 10);
        waited += 10;
    }
}

int
ls_task_reply_fd(void)
{
    struct sockaddr_un a;
    socklen_t len;
    int size = TASK_QUEUE_BYTES;

    if (reply_fd >= 0 && reply_pid == getpid())
        return reply_fd;
    if (reply_fd >= 0)
        close(reply_fd); /* the parent's, inherited */
    reply_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (reply_fd < 0)
        return -1;
    len = task_addr(getpid(), &a);
    if (bind(reply_fd, (struct sockaddr *)&a, len) < 0) {
        close(reply_fd);
        reply_fd = -1;
        return -1;
    }
    if (setsockopt(reply_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
                   sizeof(size)) < 0)
        setsockopt(reply_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    reply_pid = getpid();
    return reply_fd;
}

ssize_t
ls_task_reply_recv(uint64_t *reqid, int *status, char *buf)
{
    reply_hdr_t h;
    struct iovec iov[2] = {{&h, sizeof(h)}, {buf, LS_TASK_MAX}};
    struct msghdr m;
    ssize_t n;

    for (;;) {
        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = 2;
        n = recvmsg(reply_fd, &m, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if ((size_t)n < sizeof(h) || h.magic != REPLY_MAGIC ||
            (m.msg_flags & MSG_TRUNC))
            continue;
        *reqid = h.reqid;
        *status = (int)h.status;
        return n - (ssize_t)sizeof(h);
    }
}
