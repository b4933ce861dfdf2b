/*
 * master.c -- the master: learns the configuration from the validator, opens
 * the listening sockets, forks workers into stable slots, reaps and replaces
 * them, and stops them. It never runs user Lua.
 *
 * All signals arrive through the self-pipe (signals.c) and are acted on in
 * the poll() loop below, never in a handler. Each slot is a small state
 * machine: IDLE (no process; maybe a respawn scheduled), STARTING (forked,
 * not yet ready), READY.
 */
#include "master.h"
#include "log.h"
#include "signals.h"
#include "validate.h"
#include "worker.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { SLOT_IDLE, SLOT_STARTING, SLOT_READY };

#define RESPAWN_HEALTHY_AFTER 1.0  /* s a worker must live to reset back-off */
#define RESPAWN_FIRST_DELAY 0.1
#define RESPAWN_MAX_DELAY 10.0
#define FAST_STOP_GRACE 5.0        /* s before SIGKILL on a fast stop */

typedef struct ls_slot {
    int li;             /* listener index */
    int id;             /* worker.id, stable across respawns */
    pid_t pid;          /* 0: no process */
    int chan;           /* master end of the channel, -1 */
    int state;
    int fails;          /* consecutive deaths before becoming healthy */
    double started;
    double respawn_at;  /* 0: none scheduled */
} ls_slot_t;

typedef struct ls_lfds {
    int *fds;           /* one, or one per slot with reusePort */
    int n;
} ls_lfds_t;

typedef struct ls_master {
    const ls_master_opts_t *opts;
    ls_conf_t conf;
    ls_lfds_t *lfds;    /* per listener */
    ls_slot_t *slots;
    int nslots;
    int stopping;       /* 0, LS_STOP_GRACEFUL or LS_STOP_FAST */
    double kill_at;     /* stop deadline */
    int announced;      /* "ready" logged once */
    int generation;
} ls_master_t;

static ls_master_t M;

/* In any child: close what belongs to the master and to other workers. */
static void
master_close_inherited(int keep_fd, int keep_chan)
{
    for (int i = 0; i < M.conf.nlisteners; i++)
        for (int j = 0; M.lfds && j < M.lfds[i].n; j++)
            if (M.lfds[i].fds[j] >= 0 && M.lfds[i].fds[j] != keep_fd)
                close(M.lfds[i].fds[j]);
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].chan >= 0 && M.slots[i].chan != keep_chan)
            close(M.slots[i].chan);
}

static void
master_validator_hook(void)
{
    master_close_inherited(-1, -1);
}

static const char *
master_lname(const ls_slot_t *s)
{
    return M.conf.listeners[s->li].name;
}

static int
master_slot_fd(const ls_slot_t *s)
{
    const ls_lfds_t *l = &M.lfds[s->li];
    return l->n == 1 ? l->fds[0] : l->fds[s->id];
}

static int
master_spawn(ls_slot_t *s)
{
    int sv[2];
    pid_t pid;
    sigset_t old;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        ls_log(LS_LOG_ERROR, errno, "socketpair() failed");
        return -1;
    }
    fflush(NULL);
    ls_signals_block(&old);
    pid = fork();
    if (pid < 0) {
        ls_signals_restore(&old);
        ls_log(LS_LOG_ERROR, errno, "fork() failed");
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        ls_worker_args_t a;
        int lfd = master_slot_fd(s);

        ls_signals_reset_child();
        ls_signals_restore(&old);
        close(sv[0]);
        master_close_inherited(lfd, -1);
        a.app = M.opts->app;
        a.conf = &M.conf;
        a.listener = &M.conf.listeners[s->li];
        a.listen_fd = lfd;
        a.id = s->id;
        a.generation = M.generation;
        a.chan = sv[1];
        ls_worker_main(&a);
    }
    ls_signals_restore(&old);
    close(sv[1]);
    s->pid = pid;
    s->chan = sv[0];
    s->state = SLOT_STARTING;
    s->started = ls_now();
    s->respawn_at = 0;
    ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] started, pid %d", s->id,
           master_lname(s), (int)pid);
    return 0;
}

static ls_slot_t *
master_slot_by_pid(pid_t pid)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].pid == pid)
            return &M.slots[i];
    return NULL;
}

static void
master_describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 ls_signals_name(WTERMSIG(status)),
                 WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with status %d", status);
}

/* A worker died: when it was not asked to, schedule its replacement in the
 * same slot, backing off while it keeps dying young. */
static void
master_on_exit(ls_slot_t *s, int status)
{
    double now = ls_now(), lived = now - s->started, delay;
    char how[128];
    int was_ready = s->state == SLOT_READY;

    master_describe(status, how, sizeof(how));
    if (s->chan >= 0) {
        close(s->chan);
        s->chan = -1;
    }
    s->pid = 0;
    s->state = SLOT_IDLE;
    if (M.stopping) {
        ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] %s", s->id, master_lname(s),
               how);
        return;
    }
    if (was_ready && lived >= RESPAWN_HEALTHY_AFTER)
        s->fails = 0;
    else
        s->fails++;
    delay = s->fails == 0 ? 0
                          : fmin(RESPAWN_FIRST_DELAY * pow(2, s->fails - 1),
                                 RESPAWN_MAX_DELAY);
    s->respawn_at = now + delay;
    ls_log(s->fails > 1 ? LS_LOG_ERROR : LS_LOG_WARN, 0,
           "worker %d [%s] %s%s after %.1f s; respawning%s%.1f s",
           s->id, master_lname(s), how,
           was_ready ? "" : " during start-up", lived,
           delay > 0 ? " in " : " now", delay > 0 ? delay : 0.0);
}

static void
master_reap(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        ls_slot_t *s = master_slot_by_pid(pid);
        if (s != NULL)
            master_on_exit(s, status);
    }
}

static int
master_live_workers(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].pid > 0)
            n++;
    return n;
}

static void
master_signal_workers(int signo)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i].pid > 0)
            kill(M.slots[i].pid, signo);
}

static void
master_begin_stop(int how, int signo)
{
    double grace = how == LS_STOP_FAST ? FAST_STOP_GRACE
                                       : M.conf.stop_timeout + 2.0;

    if (M.stopping == LS_STOP_FAST && how == LS_STOP_FAST) {
        /* Asked twice: do not wait any longer. */
        ls_log(LS_LOG_WARN, 0, "%s again: killing the workers",
               ls_signals_name(signo));
        master_signal_workers(SIGKILL);
        return;
    }
    if (M.stopping >= how)
        return;
    ls_log(LS_LOG_INFO, 0, "%s received: %s", ls_signals_name(signo),
           how == LS_STOP_FAST ? "stopping" : "stopping gracefully");
    M.stopping = how;
    M.kill_at = ls_now() + grace;
    for (int i = 0; i < M.nslots; i++)
        M.slots[i].respawn_at = 0;
    master_signal_workers(how == LS_STOP_FAST ? SIGTERM : SIGQUIT);
}

static void
master_on_signal(int signo)
{
    switch (signo) {
    case SIGCHLD:
        master_reap();
        break;
    case SIGINT:
    case SIGTERM:
        master_begin_stop(LS_STOP_FAST, signo);
        break;
    case SIGQUIT:
        master_begin_stop(LS_STOP_GRACEFUL, signo);
        break;
    case SIGHUP:
    case SIGUSR1:
        ls_log(LS_LOG_WARN, 0, "%s received: hot reload is not available in "
               "this build yet; workers keep running", ls_signals_name(signo));
        break;
    case SIGUSR2:
        ls_log_reopen();
        master_signal_workers(SIGUSR2);
        break;
    }
}

static void
master_on_chan(ls_slot_t *s)
{
    char buf[512];
    ssize_t n = recv(s->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            /* The worker is exiting; SIGCHLD will tell how. */
            close(s->chan);
            s->chan = -1;
        }
        return;
    }
    buf[n] = '\0';
    if (strcmp(buf, "ready") == 0 && s->state == SLOT_STARTING) {
        s->state = SLOT_READY;
        ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] pid %d ready", s->id,
               master_lname(s), (int)s->pid);
        if (!M.announced) {
            int ready = 0;
            for (int i = 0; i < M.nslots; i++)
                ready += M.slots[i].state == SLOT_READY;
            if (ready == M.nslots) {
                M.announced = 1;
                ls_log(LS_LOG_INFO, 0, "ready: %d worker(s) serving %d "
                       "listener(s)", M.nslots, M.conf.nlisteners);
            }
        }
    }
}

static int
master_open_listeners(char *err, size_t errlen)
{
    M.lfds = calloc((size_t)M.conf.nlisteners, sizeof(*M.lfds));
    if (M.lfds == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int i = 0; i < M.conf.nlisteners; i++) {
        ls_listen_conf_t *l = &M.conf.listeners[i];
        ls_lfds_t *lf = &M.lfds[i];

        /* With reusePort every worker gets its own socket, opened here and
         * kept by the master, so a worker's death loses nothing queued. */
        lf->n = l->reuseport ? l->count : 1;
        lf->fds = malloc(sizeof(int) * (size_t)lf->n);
        if (lf->fds == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (int j = 0; j < lf->n; j++)
            lf->fds[j] = -1;
        for (int j = 0; j < lf->n; j++) {
            char e[LS_ERRLEN];
            lf->fds[j] = ls_listener_open(&l->addr, l->reuseport, l->backlog,
                                          e, sizeof(e));
            if (lf->fds[j] < 0) {
                snprintf(err, errlen, "listener \"%s\": %s", l->name, e);
                return -1;
            }
        }
        ls_log(LS_LOG_INFO, 0, "listening on %s (%s, %d worker%s%s)",
               l->addr.url, l->name, l->count, l->count == 1 ? "" : "s",
               l->reuseport ? ", reusePort" : "");
    }
    return 0;
}

static void
master_close_listeners(void)
{
    if (M.lfds == NULL)
        return;
    for (int i = 0; i < M.conf.nlisteners; i++) {
        for (int j = 0; j < M.lfds[i].n; j++)
            if (M.lfds[i].fds[j] >= 0)
                close(M.lfds[i].fds[j]);
        free(M.lfds[i].fds);
        ls_listener_unlink(&M.conf.listeners[i].addr);
    }
    free(M.lfds);
    M.lfds = NULL;
}

static int
master_make_slots(void)
{
    int n = 0;
    for (int i = 0; i < M.conf.nlisteners; i++)
        n += M.conf.listeners[i].count;
    M.slots = calloc((size_t)n, sizeof(*M.slots));
    if (M.slots == NULL)
        return -1;
    M.nslots = n;
    n = 0;
    for (int i = 0; i < M.conf.nlisteners; i++) {
        for (int j = 0; j < M.conf.listeners[i].count; j++, n++) {
            M.slots[n].li = i;
            M.slots[n].id = j;
            M.slots[n].chan = -1;
        }
    }
    return 0;
}

/* The poll() loop: signals, worker channels, respawn and stop deadlines. */
static void
master_loop(void)
{
    struct pollfd *pfds = calloc((size_t)M.nslots + 1, sizeof(*pfds));
    ls_slot_t **owners = calloc((size_t)M.nslots + 1, sizeof(*owners));

    if (pfds == NULL || owners == NULL) {
        ls_log(LS_LOG_CRIT, ENOMEM, "master loop");
        exit(LS_EXIT_BROKEN);
    }
    for (;;) {
        double now = ls_now(), next = now + 60;
        int n = 0, timeout, sig;

        if (M.stopping && master_live_workers() == 0)
            break;
        for (int i = 0; i < M.nslots; i++) {
            ls_slot_t *s = &M.slots[i];
            if (!M.stopping && s->pid == 0 && s->respawn_at > 0) {
                if (s->respawn_at <= now) {
                    if (master_spawn(s) < 0)
                        s->respawn_at = now + RESPAWN_MAX_DELAY;
                } else if (s->respawn_at < next) {
                    next = s->respawn_at;
                }
            }
        }
        if (M.stopping) {
            if (now >= M.kill_at) {
                ls_log(LS_LOG_WARN, 0, "%d worker(s) still running after the "
                       "stop deadline; sending SIGKILL",
                       master_live_workers());
                master_signal_workers(SIGKILL);
                M.kill_at = now + 5;
            }
            if (M.kill_at < next)
                next = M.kill_at;
        }

        pfds[n].fd = ls_signals_fd();
        pfds[n].events = POLLIN;
        owners[n++] = NULL;
        for (int i = 0; i < M.nslots; i++) {
            if (M.slots[i].chan >= 0) {
                pfds[n].fd = M.slots[i].chan;
                pfds[n].events = POLLIN;
                owners[n++] = &M.slots[i];
            }
        }
        timeout = (int)ceil((next - ls_now()) * 1000);
        if (timeout < 0)
            timeout = 0;
        if (poll(pfds, (nfds_t)n, timeout) < 0 && errno != EINTR) {
            ls_log(LS_LOG_CRIT, errno, "poll() failed");
            break;
        }
        for (int i = 1; i < n; i++)
            if (pfds[i].revents && owners[i]->chan == pfds[i].fd)
                master_on_chan(owners[i]);
        while ((sig = ls_signals_next()) != 0)
            master_on_signal(sig);
    }
    free(pfds);
    free(owners);
}

int
ls_master_run(const ls_master_opts_t *opts)
{
    char err[LS_ERRLEN * 8];

    M.opts = opts;
    M.generation = 1;
    ls_conf_init(&M.conf);
    ls_log_set_role("master");
    ls_validate_set_child_hook(master_validator_hook);
    if (ls_validate(opts->app, &M.conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (M.conf.log_level >= 0)
        ls_log_set_level(M.conf.log_level);
    if (opts->workers > 0)
        for (int i = 0; i < M.conf.nlisteners; i++)
            M.conf.listeners[i].count = opts->workers;
    if (opts->log_file)
        snprintf(M.conf.log_file, sizeof(M.conf.log_file), "%s",
                 opts->log_file);
    if (M.conf.log_file[0] &&
        ls_log_open_file(M.conf.log_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (master_make_slots() < 0 || ls_signals_install() < 0) {
        fprintf(stderr, "luaserv: cannot set up the master\n");
        return LS_EXIT_BROKEN;
    }
    if (master_open_listeners(err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "%s", err);
        if (ls_log_fd() != 2)
            fprintf(stderr, "luaserv: %s\n", err);
        master_close_listeners();
        return LS_EXIT_BROKEN;
    }
    ls_log(LS_LOG_INFO, 0, "luaserv %s started, app %s", LUASERV_VERSION,
           opts->app);
    for (int i = 0; i < M.nslots; i++)
        if (master_spawn(&M.slots[i]) < 0)
            M.slots[i].respawn_at = ls_now() + RESPAWN_FIRST_DELAY;

    master_loop();

    master_reap();
    master_close_listeners();
    ls_log(LS_LOG_INFO, 0, "stopped");
    free(M.slots);
    ls_conf_free(&M.conf);
    return LS_EXIT_OK;
}
