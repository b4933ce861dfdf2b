/*
 * signals.c -- the master's signal table and self-pipe.
 *
 * A handler only writes the signal number to a non-blocking pipe (saving and
 * restoring errno, as dropbear does); the master's poll() loop reads the pipe
 * and does the work: reap, respawn, stop, reload, reopen logs.
 */
#include "master/signals.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int sig_pipe[2] = {-1, -1};

static const struct {
    int signo;
    const char *name;
} sig_table[] = {
    {SIGINT, "SIGINT"},   {SIGTERM, "SIGTERM"}, {SIGQUIT, "SIGQUIT"},
    {SIGHUP, "SIGHUP"},   {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"},
    {SIGCHLD, "SIGCHLD"},
};
#define SIG_COUNT (sizeof(sig_table) / sizeof(*sig_table))

static void
signals_handler(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    /* A full pipe already holds a wake-up; losing a duplicate is harmless
     * because SIGCHLD reaping loops over every dead child. */
    (void)!write(sig_pipe[1], &b, 1);
    errno = saved;
}

const char *
ls_signals_name(int signo)
{
    for (size_t i = 0; i < SIG_COUNT; i++)
        if (sig_table[i].signo == signo)
            return sig_table[i].name;
    return strsignal(signo);
}

int
ls_signals_install(void)
{
    struct sigaction sa;

    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        ls_log(LS_LOG_CRIT, errno, "pipe2() failed");
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = signals_handler;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < SIG_COUNT; i++) {
        if (sigaction(sig_table[i].signo, &sa, NULL) < 0) {
            ls_log(LS_LOG_CRIT, errno, "sigaction(%s) failed",
                   sig_table[i].name);
            return -1;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int
ls_signals_fd(void)
{
    return sig_pipe[0];
}

int
ls_signals_next(void)
{
    unsigned char b;
    for (;;) {
        ssize_t n = read(sig_pipe[0], &b, 1);
        if (n == 1)
            return b;
        if (n < 0 && errno == EINTR)
            continue;
        return 0;
    }
}

/*
 * In a freshly forked child: default dispositions for everything the master
 * caught, the self-pipe closed, and the mask the master had before the fork
 * restored by the caller.
 */
void
ls_signals_reset_child(void)
{
    for (size_t i = 0; i < SIG_COUNT; i++)
        signal(sig_table[i].signo, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    if (sig_pipe[0] >= 0) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
    }
}

void
ls_signals_block(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, old);
}

void
ls_signals_restore(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}
