/*
 * ctl.c -- both ends of the control socket. The master side only opens the
 * listening socket here; reading commands and answering them is part of the
 * master's loop (master.c).
 */
#include "master/ctl.h"
#include "core/luaserv.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int
ctl_addr(const char *path, struct sockaddr_un *sun)
{
    if (strlen(path) >= sizeof(sun->sun_path))
        return -1;
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, strlen(path) + 1);
    return 0;
}

int
ls_ctl_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    mode_t old;
    int fd;

    if (ctl_addr(path, &sun) < 0) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX) failed: %s", strerror(errno));
        return -1;
    }
    unlink(path); /* the pid file lock already proved nobody else owns it */
    old = umask(0177);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
        listen(fd, 16) < 0) {
        umask(old);
        snprintf(err, errlen, "bind(%s) failed: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    umask(old);
    return fd;
}

/*
 * Send "cmd\n" and read the whole reply (the master closes after it).
 * Returns 0, LS_CTL_NOSERVER or LS_CTL_FAILED (reply holds the reason).
 */
int
ls_ctl_request(const char *path, const char *cmd, char *reply,
               size_t replylen, double timeout)
{
    struct sockaddr_un sun;
    double deadline = ls_now() + timeout;
    size_t len = 0;
    char line[256];
    int fd, n;

    reply[0] = '\0';
    if (ctl_addr(path, &sun) < 0)
        return LS_CTL_NOSERVER;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return LS_CTL_FAILED;
    if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return LS_CTL_NOSERVER;
        snprintf(reply, replylen, "connect(%s) failed: %s", path,
                 strerror(e));
        return LS_CTL_FAILED;
    }
    n = snprintf(line, sizeof(line), "%s\n", cmd);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        snprintf(reply, replylen, "send() failed: %s", strerror(errno));
        close(fd);
        return LS_CTL_FAILED;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)((deadline - ls_now()) * 1000);
        ssize_t r;

        if (left <= 0) {
            snprintf(reply, replylen, "no answer from the master within "
                     "%.0f s", timeout);
            close(fd);
            return LS_CTL_FAILED;
        }
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            break;
        r = read(fd, reply + len, replylen - 1 - len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len >= replylen - 1)
            break;
    }
    reply[len] = '\0';
    close(fd);
    return 0;
}
