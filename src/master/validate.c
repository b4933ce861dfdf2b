/*
 * validate.c -- the validator: a child process that loads APP.lua as a worker
 * would (compile, run the top level, check every listen() and settings()),
 * binds nothing, and writes what it learned to a pipe. The master never runs
 * user Lua itself, so nothing loaded here survives into a worker.
 */
#include "master/validate.h"
#include "core/log.h"
#include "master/signals.h"
#include "lua/lua_core.h"
#include "lua/lua_task.h"
#include "lua/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void (*child_hook)(void);

/* Called in the child right after fork: the master closes what the validator
 * must not hold (listening sockets, worker channels). */
void
ls_validate_set_child_hook(void (*hook)(void))
{
    child_hook = hook;
}

static void
validate_child(const char *app, int fd)
{
    char err[LS_ERRLEN * 8];
    ls_vm_t *vm;
    int sent = -1;   /* loaded: the exit code, 0 once ok and the conf are out */
    static const char ok[] = "ok\n", bad[] = "error\n";

    ls_log_set_role("validator");
    vm = ls_vm_new(LS_VM_VALIDATE, app, err, sizeof(err));
    if (vm != NULL)
        ls_lua_core_install(vm);
    if (vm != NULL && ls_vm_load_app(vm, err, sizeof(err)) == 0) {
        if (vm->conf.nlisteners == 0)
            snprintf(err, sizeof(err), "%s declares no listener (call "
                     "luaserv.listen(\"text://127.0.0.1:9000\") at its top "
                     "level)", app);
        else if (vm->conf.task_workers > 0 &&
                 ls_lua_task_check(vm, err, sizeof(err)) < 0)
            ; /* err says why */
        else
            sent = write(fd, ok, sizeof(ok) - 1) < 0 ||
                   ls_conf_write(&vm->conf, fd) < 0;
    }
    /* freed before _exit so that valgrind's leak check of this child stays
     * clean, however the compiler kept vm */
    if (vm != NULL)
        ls_vm_free(vm);
    if (sent >= 0)
        _exit(sent);
    if (write(fd, bad, sizeof(bad) - 1) < 0 ||
        write(fd, err, strlen(err)) < 0)
        _exit(1);
    _exit(1);
}

int
ls_validation_start(ls_validation_t *v, const char *app, char *err,
                    size_t errlen)
{
    int p[2];
    pid_t pid;
    sigset_t old;

    memset(v, 0, sizeof(*v));
    v->fd = -1;
    v->app = app;
    v->cap = 65536;
    if ((v->buf = malloc(v->cap)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2() failed: %s", strerror(errno));
        free(v->buf);
        v->buf = NULL;
        return -1;
    }
    fflush(NULL);
    ls_signals_block(&old);
    pid = fork();
    if (pid < 0) {
        ls_signals_restore(&old);
        snprintf(err, errlen, "fork() failed: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        free(v->buf);
        v->buf = NULL;
        return -1;
    }
    if (pid == 0) {
        ls_signals_reset_child();
        ls_signals_restore(&old);
        close(p[0]);
        if (child_hook)
            child_hook();
        validate_child(app, p[1]);
    }
    ls_signals_restore(&old);
    close(p[1]);
    if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0)
        ls_log(LS_LOG_WARN, errno, "validator pipe: O_NONBLOCK");
    v->pid = pid;
    v->fd = p[0];
    v->deadline = ls_now() + LS_VALIDATE_TIMEOUT;
    return 0;
}

int
ls_validation_read(ls_validation_t *v)
{
    for (;;) {
        ssize_t n;

        if (v->len + 4096 > v->cap) {
            char *nb = realloc(v->buf, v->cap * 2);
            if (nb == NULL) {
                v->failed = 1;
                return 1;
            }
            v->buf = nb;
            v->cap *= 2;
        }
        n = read(v->fd, v->buf + v->len, v->cap - v->len - 1);
        if (n > 0) {
            v->len += (size_t)n;
            continue;
        }
        if (n == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return 1;
        break;
    }
    if (ls_now() >= v->deadline) {
        v->timed_out = 1;
        return 1;
    }
    return 0;
}

int
ls_validation_child(ls_validation_t *v, pid_t pid, int status)
{
    if (v->pid <= 0 || pid != v->pid || v->reaped)
        return 0;
    v->status = status;
    v->reaped = 1;
    return 1;
}

static void
validation_free(ls_validation_t *v)
{
    if (v->fd >= 0)
        close(v->fd);
    v->fd = -1;
    free(v->buf);
    v->buf = NULL;
    v->pid = 0;
}

/* The validator's exit status. Its end of the pipe is closed (EOF): it is
 * exiting, so the wait is short. */
static void
validation_wait(ls_validation_t *v, int kill_first)
{
    if (v->reaped || v->pid <= 0)
        return;
    if (kill_first)
        kill(v->pid, SIGKILL);
    while (waitpid(v->pid, &v->status, 0) < 0) {
        if (errno != EINTR) {   /* taken by another reaper: unknown */
            v->status = 0;
            break;
        }
    }
    v->reaped = 1;
}

void
ls_validation_cancel(ls_validation_t *v)
{
    validation_wait(v, 1);
    validation_free(v);
}

int
ls_validation_finish(ls_validation_t *v, ls_conf_t *conf, char *err,
                     size_t errlen)
{
    const char *app = v->app;
    int status, r = -1;
    char *buf = v->buf;

    if (v->failed || v->timed_out) {
        validation_wait(v, 1);
        if (v->timed_out)
            snprintf(err, errlen, "%s: loading the script took longer than "
                     "%.0f s (is its top level blocking?)", app,
                     LS_VALIDATE_TIMEOUT);
        else
            snprintf(err, errlen, "%s: reading what the validator learned "
                     "failed (out of memory?)", app);
        validation_free(v);
        return -1;
    }
    validation_wait(v, 0);
    status = v->status;
    buf[v->len] = '\0';
    if (strncmp(buf, "ok\n", 3) == 0 && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
        r = ls_conf_read(conf, buf + 3, err, errlen);
    else if (strncmp(buf, "error\n", 6) == 0)
        snprintf(err, errlen, "%s", buf + 6);
    else if (WIFSIGNALED(status))
        snprintf(err, errlen, "%s: the validator was killed by signal %d "
                 "(%s) while loading the script", app, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(err, errlen, "%s: the validator exited with code %d while "
                 "loading the script", app,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    validation_free(v);
    return r;
}

int
ls_validate(const char *app, ls_conf_t *conf, char *err, size_t errlen)
{
    ls_validation_t v;

    if (ls_validation_start(&v, app, err, errlen) < 0)
        return -1;
    while (!ls_validation_read(&v)) {
        struct pollfd pfd = {.fd = v.fd, .events = POLLIN};
        int left = (int)((v.deadline - ls_now()) * 1000) + 1;
        if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
            v.failed = 1;
            break;
        }
    }
    return ls_validation_finish(&v, conf, err, errlen);
}
