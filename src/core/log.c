/*
 * log.c -- timestamped log lines on stderr or in a log file.
 */
#include "core/log.h"
#include "core/luaserv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *level_names[] = {"debug", "info", "warn", "error", "crit"};
static char log_role[128] = "master";
static int log_level = LS_LOG_INFO;
static int log_fd = 2;
static char log_path[4096];

double
ls_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
ls_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

void
ls_log_set_level(int level)
{
    log_level = level;
}

int
ls_log_enabled(int level)
{
    return level >= log_level;
}

int
ls_log_level_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(*level_names); i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

int
ls_log_fd(void)
{
    return log_fd;
}

/*
 * Log to a file from now on (O_APPEND, so that every process writing it keeps
 * whole lines). The file is reopened by ls_log_reopen() for logrotate.
 */
int
ls_log_open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        /* a long path is cut in the message, which is fine */
        if (snprintf(err, errlen, "open(\"%s\") failed: %s", path,
                     strerror(errno)) >= (int)errlen)
            err[errlen - 1] = '\0';
        return -1;
    }
    if (path != log_path)   /* ls_log_reopen() passes log_path itself */
        snprintf(log_path, sizeof(log_path), "%s", path);
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

int
ls_log_reopen(void)
{
    char err[LS_ERRLEN];
    if (log_path[0] == '\0')
        return 0;
    if (ls_log_open_file(log_path, err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "cannot reopen the log file: %s", err);
        return -1;
    }
    return 0;
}

/* Append to buf[0..cap), keeping *n at most cap - 2 (room for '\n'). */
static void
log_cat(char *buf, size_t *n, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(buf + *n, cap - 1 - *n, fmt, ap);
    va_end(ap);
    if (r > 0)
        *n = *n + (size_t)r < cap - 2 ? *n + (size_t)r : cap - 2;
}

void
ls_logv(int level, int err, const char *fmt, va_list ap)
{
    char buf[8192];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    if (level < log_level)
        return;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    log_cat(buf, &n, sizeof(buf), ".%03d [%s] %d %s: ",
            (int)(tv.tv_usec / 1000), level_names[level], (int)getpid(),
            log_role);
    r = vsnprintf(buf + n, sizeof(buf) - 1 - n, fmt, ap);
    if (r > 0)
        n = n + (size_t)r < sizeof(buf) - 2 ? n + (size_t)r : sizeof(buf) - 2;
    if (err != 0)
        log_cat(buf, &n, sizeof(buf), " (%d: %s)", err, strerror(err));
    if (n >= sizeof(buf) - 2)
        memcpy(buf + sizeof(buf) - 5, "...", 3); /* mark a truncated line */
    buf[n++] = '\n';

    /* One write per line; retry on EINTR and short writes. */
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void
ls_log(int level, int err, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;
    va_start(ap, fmt);
    ls_logv(level, err, fmt, ap);
    va_end(ap);
    errno = saved;
}

/* ---- rate limiting -------------------------------------------------------- */

static ls_log_limit_t *log_pending;     /* limits with a summary to write */
static void (*log_suppress_hook)(void);

void
ls_log_set_suppress_hook(void (*hook)(void))
{
    log_suppress_hook = hook;
}

/* Summaries of dropped lines stay below [error]: a flood of one error is
 * already in the log, and the summary is about the log, not a new failure. */
static void
log_summary(ls_log_limit_t *lim, double now)
{
    int level = lim->level > LS_LOG_WARN ? LS_LOG_WARN : lim->level;

    if (!ls_log_enabled(level))
        level = lim->level;
    ls_log(level, 0, "%s: suppressed %llu similar messages in %.1f s "
           "(at most %u a second are logged)", lim->cause, lim->suppressed,
           now - lim->window, lim->burst ? lim->burst : LS_LOG_BURST);
    lim->suppressed = 0;
}

static void
log_unlist(ls_log_limit_t *lim)
{
    for (ls_log_limit_t **p = &log_pending; *p != NULL; p = &(*p)->next)
        if (*p == lim) {
            *p = lim->next;
            break;
        }
    lim->next = NULL;
    lim->listed = 0;
}

void
ls_log_limited(ls_log_limit_t *lim, int level, int err, const char *fmt, ...)
{
    unsigned burst = lim->burst ? lim->burst : LS_LOG_BURST;
    double now;
    va_list ap;
    int saved;

    if (!ls_log_enabled(level))
        return;
    now = ls_now();
    if (now - lim->window >= 1.0) {
        if (lim->suppressed > 0)
            log_summary(lim, now);
        if (lim->listed)
            log_unlist(lim);
        lim->window = now;
        lim->lines = 0;
    }
    lim->level = level;
    if (lim->lines >= burst) {
        /* Counted, not formatted: a flood costs next to nothing. */
        lim->suppressed++;
        if (!lim->listed) {
            lim->listed = 1;
            lim->next = log_pending;
            log_pending = lim;
            if (log_suppress_hook)
                log_suppress_hook();
        }
        return;
    }
    lim->lines++;
    saved = errno;
    va_start(ap, fmt);
    ls_logv(level, err, fmt, ap);
    va_end(ap);
    errno = saved;
}

double
ls_log_flush_suppressed(int all)
{
    double now = ls_now(), next = -1;
    ls_log_limit_t *lim = log_pending, *after;

    for (; lim != NULL; lim = after) {
        double due = lim->window + 1.0 - now;
        after = lim->next;
        if (!all && due > 0) {
            if (next < 0 || due < next)
                next = due;
            continue;
        }
        if (lim->suppressed > 0)
            log_summary(lim, now);
        log_unlist(lim);
        /* a new second starts with the next line */
        lim->window = 0;
    }
    return next;
}
