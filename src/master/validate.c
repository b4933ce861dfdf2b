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
ls_validate(const char *app, ls_conf_t *conf, char *err, size_t errlen)
{
    int p[2], status = 0;
    size_t cap = 65536, len = 0;
    char *buf = NULL;
    double deadline;
    pid_t pid;
    sigset_t old;

    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2() failed: %s", strerror(errno));
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

    if ((buf = malloc(cap)) == NULL)
        goto oom;
    deadline = ls_now() + LS_VALIDATE_TIMEOUT;
    for (;;) {
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int left = (int)((deadline - ls_now()) * 1000);
        ssize_t n;

        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(p[0]);
            free(buf);
            snprintf(err, errlen, "%s: loading the script took longer than "
                     "%.0f s (is its top level blocking?)", app,
                     LS_VALIDATE_TIMEOUT);
            return -1;
        }
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            break;
        if (len + 4096 > cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                goto oom;
            buf = nb;
            cap *= 2;
        }
        n = read(p[0], buf + len, cap - len - 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    if (strncmp(buf, "ok\n", 3) == 0 && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0) {
        int r = ls_conf_read(conf, buf + 3, err, errlen);
        free(buf);
        return r;
    }
    if (strncmp(buf, "error\n", 6) == 0)
        snprintf(err, errlen, "%s", buf + 6);
    else if (WIFSIGNALED(status))
        snprintf(err, errlen, "%s: the validator was killed by signal %d "
                 "(%s) while loading the script", app, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(err, errlen, "%s: the validator exited with code %d while "
                 "loading the script", app,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(buf);
    return -1;

oom:
    free(buf);
    close(p[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    snprintf(err, errlen, "out of memory");
    return -1;
}
