/*
 * daemon.c -- detaching from the terminal, the locked pid file, run-time
 * paths, process titles and sd_notify.
 */
#include "master/daemon.h"
#include "core/log.h"
#include "core/luaserv.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/*
 * <rundir>/<name>-<hash>.<ext>, where rundir is $LUASERV_RUN_DIR, or
 * /run/luaserv for root, or /tmp/luaserv-<uid>; the hash is FNV-1a of the
 * absolute app path, so stop/reload/status find an instance from the path
 * alone, even when the script no longer loads.
 */
int
ls_daemon_default_path(const char *app, const char *ext, char *out,
                       size_t outlen)
{
    char dir[256], base[LS_NAME_MAX], tmp[4096];
    const char *env = getenv("LUASERV_RUN_DIR");
    uint64_t h = 1469598103934665603ULL;
    char *dot;
    int r;

    for (const unsigned char *p = (const unsigned char *)app; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    if (env && *env)
        snprintf(dir, sizeof(dir), "%s", env);
    else if (geteuid() == 0)
        snprintf(dir, sizeof(dir), "/run/luaserv");
    else
        snprintf(dir, sizeof(dir), "/tmp/luaserv-%d", (int)geteuid());
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -1;
    snprintf(tmp, sizeof(tmp), "%s", app);
    snprintf(base, sizeof(base), "%.32s", basename(tmp));
    if ((dot = strrchr(base, '.')) != NULL && dot != base)
        *dot = '\0';
    r = snprintf(out, outlen, "%s/%s-%016llx.%s", dir, base,
                 (unsigned long long)h, ext);
    return r > 0 && (size_t)r < outlen ? 0 : -1;
}

/*
 * fork, setsid, fork again, umask, chdir("/"), stdin/stdout to /dev/null.
 * The original process stays behind, waiting on a pipe for the daemon to
 * say it is serving (or why it is not), and exits with that outcome; the
 * daemon gets the write end in *ready_fd.
 */
int
ls_daemonize(int *ready_fd, char *err, size_t errlen)
{
    int p[2], fd;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2() failed: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        /* The caller: wait for the verdict. */
        char buf[LS_ERRLEN * 4];
        size_t len = 0;
        ssize_t n;

        close(p[1]);
        while ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            len += (size_t)n;
            if (len >= sizeof(buf) - 1)
                break;
        }
        buf[len] = '\0';
        waitpid(pid, NULL, 0); /* the intermediate child */
        if (strncmp(buf, "ok ", 3) == 0) {
            printf("%s", buf + 3);
            exit(LS_EXIT_OK);
        }
        fprintf(stderr, "luaserv: %s\n", len > 4 ? buf + 4
                                                 : "the daemon died while "
                                                   "starting (see its log)");
        exit(LS_EXIT_BROKEN);
    }
    close(p[0]);
    if (setsid() < 0)
        _exit(LS_EXIT_BROKEN);
    pid = fork();
    if (pid < 0)
        _exit(LS_EXIT_BROKEN);
    if (pid > 0)
        _exit(LS_EXIT_OK);
    umask(022);
    if (chdir("/") < 0)
        _exit(LS_EXIT_BROKEN);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        if (ls_log_fd() != 2)
            dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    *ready_fd = p[1];
    return 0;
}

/* Tell the waiting caller of ls_daemonize() how the start went. */
void
ls_daemon_report(int ready_fd, int ok, const char *msg)
{
    char buf[LS_ERRLEN * 4];
    int n;

    if (ready_fd < 0)
        return;
    n = snprintf(buf, sizeof(buf), "%s %s\n", ok ? "ok" : "err", msg);
    if (n > 0)
        (void)!write(ready_fd, buf,
                     (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
    close(ready_fd);
}

static int pidfile_fd = -1;
static char pidfile_path[4096];

/*
 * The pid file is locked (flock) for as long as the master lives: a second
 * start is refused while the lock is held, and a file left by a dead master
 * (no lock) is simply taken over. The new pid is written over the old
 * content before the rest is cut, so a reader never sees an empty file.
 */
int
ls_pidfile_acquire(const char *path, char *err, size_t errlen)
{
    char buf[32];
    int fd, n;

    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path,
                 strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
        buf[r > 0 ? r : 0] = '\0';
        snprintf(err, errlen, "already running (pid %d, pid file %s)",
                 atoi(buf), path);
        close(fd);
        return -1;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (pwrite(fd, buf, (size_t)n, 0) != n || ftruncate(fd, n) < 0) {
        snprintf(err, errlen, "write(\"%s\") failed: %s", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    pidfile_fd = fd;
    snprintf(pidfile_path, sizeof(pidfile_path), "%s", path);
    return 0;
}

void
ls_pidfile_release(void)
{
    if (pidfile_fd < 0)
        return;
    unlink(pidfile_path);
    close(pidfile_fd);
    pidfile_fd = -1;
}

/* The pid of the live master holding the pid file, or 0. */
pid_t
ls_pidfile_running(const char *path)
{
    char buf[32];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    pid_t pid;

    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
        close(fd); /* nobody holds it: stale */
        return 0;
    }
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    pid = (pid_t)atoi(buf);
    return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

/* Process titles for ps: the argv area is rewritten in place (nginx). */
static char *title_base;
static size_t title_len;
/* The moved environment: kept here too, because glibc's exit-time cleanup
 * (clearenv in __libc_freeres, run under valgrind) drops environ. */
static char **volatile title_env;

void
ls_proctitle_init(int argc, char **argv)
{
    extern char **environ;
    char *end;
    int n = 0;

    if (argc < 1)
        return;
    title_base = argv[0];
    end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
    /* The environment usually follows argv: move it to the heap (nginx)
     * so that a title may use its room too. */
    while (environ[n] != NULL)
        n++;
    if (n > 0 && environ[0] == end) {
        char **env = malloc(sizeof(char *) * (size_t)(n + 1));
        if (env != NULL) {
            for (int i = 0; i < n; i++) {
                if (environ[i] == end)
                    end = environ[i] + strlen(environ[i]) + 1;
                env[i] = strdup(environ[i]);
                if (env[i] == NULL)
                    env[i] = environ[i];
            }
            env[n] = NULL;
            environ = title_env = env;
        }
    }
    title_len = (size_t)(end - title_base);
}

void
ls_proctitle_set(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, buf + (strncmp(buf, "luaserv: ", 9) == 0 ? 9 : 0), 0,
          0, 0);
    if (title_base == NULL || title_len < 2)
        return;
    memset(title_base, 0, title_len);
    memcpy(title_base, buf,
           strlen(buf) < title_len - 1 ? strlen(buf) : title_len - 1);
}

/* systemd Type=notify: see daemon.h. No NOTIFY_SOCKET, no message. */
void
ls_sd_notify(const char *state, const char *status)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    struct timespec ts;
    char msg[1024];
    size_t n;
    socklen_t len;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@') ||
        strlen(path) >= sizeof(sun.sun_path))
        return;
    n = (size_t)snprintf(msg, sizeof(msg), "%s\n", state);
    if (strcmp(state, "RELOADING=1") == 0 &&
        clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
        n += (size_t)snprintf(msg + n, sizeof(msg) - n,
                              "MONOTONIC_USEC=%llu\n",
                              (unsigned long long)ts.tv_sec * 1000000ULL +
                              (unsigned long long)ts.tv_nsec / 1000ULL);
    if (status != NULL && n < sizeof(msg) - 16) {
        size_t at = n + strlen("STATUS=");
        n += (size_t)snprintf(msg + n, sizeof(msg) - n - 1, "STATUS=%s",
                              status);
        if (n > sizeof(msg) - 2)
            n = sizeof(msg) - 2;
        for (size_t i = at; i < n; i++)  /* one line: systemd splits on \n */
            if (msg[i] == '\n' || msg[i] == '\r')
                msg[i] = ' ';
        msg[n++] = '\n';
        msg[n] = '\0';
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    if (path[0] == '@')
        sun.sun_path[0] = '\0';
    len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, n, MSG_NOSIGNAL, (struct sockaddr *)&sun, len) < 0)
        ls_log(LS_LOG_WARN, errno, "sd_notify(%s) failed", state);
    close(fd);
}
