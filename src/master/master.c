/*
 * master.c -- the master: learns the configuration from the validator, owns
 * the listening sockets, forks workers into stable slots, reaps and replaces
 * them, rolls out new generations on reload, and stops them. It never runs
 * user Lua.
 *
 * All signals arrive through the self-pipe (signals.c) and are acted on in
 * the poll() loop below, never in a handler. A slot is one worker position
 * (listener, id) of one generation: IDLE (no process; maybe a respawn is
 * scheduled), STARTING (forked, not ready yet) or READY; a retiring slot
 * belongs to a generation being replaced and is never respawned.
 *
 * Reload (nginx's order): validate in a throwaway child; fork the whole new
 * generation on the same listening sockets; when every new worker has said
 * "ready", tell the old ones to drain (SIGQUIT). A new worker that dies
 * before ready aborts the rollout and the old generation keeps serving. The
 * sockets never close in between, so nothing queued in a backlog is lost.
 */
#include "master/master.h"
#include "master/ctl.h"
#include "master/daemon.h"
#include "core/log.h"
#include "core/mail.h"
#include "core/task.h"
#include "master/metrics.h"
#include "master/shared.h"
#include "master/signals.h"
#include "master/validate.h"
#include "worker/worker.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_IDLE, SLOT_STARTING, SLOT_READY };

#define RESPAWN_HEALTHY_AFTER 1.0  /* s a worker must live to reset back-off */
#define RESPAWN_FIRST_DELAY 0.1
#define RESPAWN_MAX_DELAY 10.0
#define FAST_STOP_GRACE 5.0        /* s before SIGKILL on a fast stop */
#define DRAIN_GRACE 5.0            /* s past stopTimeout before SIGKILL */
#define ROLLOUT_TIMEOUT 60.0       /* s for a new generation to be ready */
#define STATUS_TIMEOUT 1.0
#define CTL_MAX_CLIENTS 16
#define WATCHDOG_CELLS 4096        /* heartbeat cells: workers alive at once */

typedef struct ls_gen {
    int id;
    ls_conf_t conf;
    int refs;           /* slots of this generation */
} ls_gen_t;

typedef struct ls_sock {
    ls_addr_t addr;
    int reuseport;
    int idx;            /* reusePort: the worker id it is for; else 0 */
    int fd;
} ls_sock_t;

typedef struct ls_slot {
    ls_gen_t *gen;
    int li;             /* listener index in gen->conf */
    int id;             /* worker.id, stable across respawns */
    int fd;             /* its listening socket (owned by M.socks) */
    pid_t pid;          /* 0: no process */
    int chan;           /* master end of the channel, -1 */
    int state;
    int retiring;       /* replaced or stopping: never respawned */
    int fails;          /* consecutive deaths before becoming healthy */
    double started;
    double respawn_at;  /* 0: none scheduled */
    double kill_at;     /* retiring: SIGKILL after this */
    int status_wait;
    char status[512];
    int conns_wait;     /* a connections round waits for its answer */
    char *conns;        /* ... and got this (malloc'd), or NULL */
    struct ls_slot *successor; /* recycling: the slot replacing this one */
    int beat;           /* watchdog: heartbeat cell + 1; 0: none */
    int stat;           /* metrics: figures cell + 1; 0: none */
    int task_cell;      /* a task worker's (li -1) cell + 1; 0: none */
    uint64_t beat_seen; /* its value when last seen changing ... */
    double beat_at;     /* ... and when */
    double beat_check;  /* when the master last looked */
} ls_slot_t;

enum { CTL_READING, CTL_RELOAD, CTL_STATUS, CTL_CONNS };

typedef struct ls_ctlc {
    int fd;
    int state;
    char buf[128];
    size_t len;
} ls_ctlc_t;

static struct {
    const ls_master_opts_t *opts;
    ls_gen_t *cur;          /* serving generation */
    ls_gen_t *next;         /* being rolled out, or NULL */
    ls_slot_t **slots;
    int nslots, capslots;
    ls_sock_t *socks;
    int nsocks;
    int stopping;           /* 0, LS_STOP_GRACEFUL or LS_STOP_FAST */
    double kill_at;
    int reload_pending;
    ls_gen_t *validating;   /* a reload's generation while its validator runs */
    ls_validation_t val;
    double rollout_deadline;
    int reloads;
    time_t started_wall;
    double started;
    int ready_fd;           /* -d: the caller waiting for "started" */
    int announced;
    char pid_file[4096];
    char ctl_path[4096];
    int ctl_fd;
    ls_ctlc_t ctlc[CTL_MAX_CLIENTS];
    int nctlc;
    double status_deadline; /* 0: no status round in progress */
    double conns_deadline;  /* 0: no connections round in progress */
    volatile uint64_t *beats; /* watchdog: MAP_SHARED, one cell per worker */
    unsigned char beat_used[WATCHDOG_CELLS];
    ls_stats_t *stats;      /* metrics: MAP_SHARED, one cell per slot */
    unsigned char stat_used[WATCHDOG_CELLS];
    unsigned long long respawns, reload_failures;
} M;

/* ---- listening sockets ------------------------------------------------ */

/*
 * The socket for (address, worker id): reused when an earlier generation
 * already had it open, so that a reload never closes a socket that clients
 * are queued on.
 */
static int
master_sock(const ls_listen_conf_t *l, int id, char *err, size_t errlen)
{
    int idx = l->reuseport ? id : 0;
    ls_sock_t *n;
    int fd;

    for (int i = 0; i < M.nsocks; i++)
        if (M.socks[i].reuseport == l->reuseport && M.socks[i].idx == idx &&
            strcmp(M.socks[i].addr.url, l->addr.url) == 0)
            return M.socks[i].fd;
    fd = ls_listener_open(&l->addr, l->reuseport, l->backlog, err, errlen);
    if (fd < 0)
        return -1;
    n = realloc(M.socks, sizeof(*n) * (size_t)(M.nsocks + 1));
    if (n == NULL) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    M.socks = n;
    M.socks[M.nsocks].addr = l->addr;
    M.socks[M.nsocks].reuseport = l->reuseport;
    M.socks[M.nsocks].idx = idx;
    M.socks[M.nsocks].fd = fd;
    M.nsocks++;
    if (idx == 0)
        ls_log(LS_LOG_INFO, 0, "listening on %s (%s)", l->addr.url, l->name);
    return fd;
}

/* Close the sockets no slot uses any more (listeners removed by a reload). */
static void
master_sock_gc(void)
{
    for (int i = 0; i < M.nsocks;) {
        int used = 0;
        for (int j = 0; j < M.nslots && !used; j++)
            used = M.slots[j]->fd == M.socks[i].fd;
        if (used) {
            i++;
            continue;
        }
        if (M.socks[i].idx == 0)
            ls_log(LS_LOG_INFO, 0, "closed %s", M.socks[i].addr.url);
        close(M.socks[i].fd);
        ls_listener_unlink(&M.socks[i].addr);
        M.socks[i] = M.socks[--M.nsocks];
    }
}

/* ---- generations and slots --------------------------------------------- */

static ls_gen_t *
master_gen_new(int id)
{
    ls_gen_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->id = id;
    ls_conf_init(&g->conf);
    return g;
}

static void
master_gen_unref(ls_gen_t *g)
{
    if (g == NULL || --g->refs > 0 || g == M.cur || g == M.next)
        return;
    ls_shared_release(&g->conf);
    ls_conf_free(&g->conf);
    free(g);
}

static ls_slot_t *
master_slot_add(ls_gen_t *g, int li, int id, int fd)
{
    ls_slot_t *s;

    if (M.nslots == M.capslots) {
        int cap = M.capslots ? M.capslots * 2 : 16;
        ls_slot_t **n = realloc(M.slots, sizeof(*n) * (size_t)cap);
        if (n == NULL)
            return NULL;
        M.slots = n;
        M.capslots = cap;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->gen = g;
    s->li = li;
    s->id = id;
    s->fd = fd;
    s->chan = -1;
    g->refs++;
    M.slots[M.nslots++] = s;
    return s;
}

/* Drop retiring slots whose process is gone. */
static void
master_slot_gc(void)
{
    for (int i = 0; i < M.nslots;) {
        ls_slot_t *s = M.slots[i];
        if (s->pid == 0 && (s->retiring || M.stopping)) {
            ls_gen_t *g = s->gen;
            for (int j = 0; j < M.nslots; j++)
                if (M.slots[j]->successor == s)
                    M.slots[j]->successor = NULL;
            M.slots[i] = M.slots[--M.nslots];
            if (s->stat)
                M.stat_used[s->stat - 1] = 0;
            ls_task_cell_drop(s->task_cell);
            free(s->conns);
            free(s);
            master_gen_unref(g);
        } else {
            i++;
        }
    }
}

static const char *
master_lname(const ls_slot_t *s)
{
    return s->li < 0 ? "task" : s->gen->conf.listeners[s->li].name;
}

/* In any child: close what belongs to the master and to other workers. */
static void
master_close_inherited(int keep_fd)
{
    for (int i = 0; i < M.nsocks; i++)
        if (M.socks[i].fd != keep_fd)
            close(M.socks[i].fd);
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->chan >= 0)
            close(M.slots[i]->chan);
    for (int i = 0; i < M.nctlc; i++)
        close(M.ctlc[i].fd);
    if (M.ctl_fd >= 0)
        close(M.ctl_fd);
    if (M.ready_fd >= 0)
        close(M.ready_fd);
}

static void
master_validator_hook(void)
{
    master_close_inherited(-1);
}

/* ---- watchdog ------------------------------------------------------------ */

/*
 * watchdogTimeout: each worker bumps its cell of a shared page from a loop
 * timer; a ready worker whose cell has not moved for that long has a loop
 * that no longer turns (SIGSTOP, an endless loop in C or with
 * callbackTimeout off) and is killed, then respawned as after a crash.
 * Starting and draining workers are not watched: the start-up has the
 * rollout timeout, draining has stopTimeout.
 */
static void
master_beat_take(ls_slot_t *s)
{
    if (M.beats == NULL || s->gen->conf.watchdog_timeout <= 0)
        return;
    for (int i = 0; i < WATCHDOG_CELLS; i++)
        if (!M.beat_used[i]) {
            M.beat_used[i] = 1;
            __atomic_store_n(&M.beats[i], 0, __ATOMIC_RELAXED);
            s->beat = i + 1;
            return;
        }
    ls_log(LS_LOG_WARN, 0, "more than %d workers: worker %d [%s] is not "
           "watched by watchdogTimeout", WATCHDOG_CELLS, s->id,
           master_lname(s));
}

static void
master_beat_drop(ls_slot_t *s)
{
    if (s->beat)
        M.beat_used[s->beat - 1] = 0;
    s->beat = 0;
}

/* Returns when the next check is due. */
static double
master_watchdog(ls_slot_t *s, double now)
{
    double limit = s->gen->conf.watchdog_timeout;
    uint64_t v;

    if (!s->beat || s->pid <= 0 || s->state != SLOT_READY || s->retiring ||
        M.stopping || limit <= 0)
        return now + 60;
    v = __atomic_load_n(&M.beats[s->beat - 1], __ATOMIC_RELAXED);
    /* A master that did not run either (the whole machine or VM paused,
     * a stopped process group) has not seen the worker stall: start over
     * rather than kill every worker on waking up. */
    int gap = s->beat_check > 0 && now - s->beat_check > limit / 2;
    s->beat_check = now;
    if (v != s->beat_seen || s->beat_at == 0 || gap) {
        s->beat_seen = v;
        s->beat_at = now;
    } else if (now - s->beat_at >= limit) {
        ls_log(LS_LOG_ERROR, 0, "worker %d [%s] pid %d: its event loop has "
               "not turned for %.1f s (watchdogTimeout %g s); killing it "
               "(SIGKILL), a replacement starts", s->id,
               master_lname(s), (int)s->pid,
               now - s->beat_at, limit);
        kill(s->pid, SIGKILL);
        s->beat_at = now; /* once; SIGCHLD brings the respawn */
    }
    return now + (limit / 4 > 0.05 ? limit / 4 : 0.05);
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
    master_beat_take(s);
    if (M.stats != NULL && !s->stat) /* the slot's cell, while it lives */
        for (int i = 0; i < WATCHDOG_CELLS; i++)
            if (!M.stat_used[i]) {
                M.stat_used[i] = 1;
                s->stat = i + 1;
                break;
            }
    if (s->stat) /* a new process: its figures start from 0 */
        memset(&M.stats[s->stat - 1], 0, sizeof(ls_stats_t));
    if (s->li < 0 && !s->task_cell)
        s->task_cell = ls_task_cell_take();
    fflush(NULL);
    ls_signals_block(&old);
    pid = fork();
    if (pid < 0) {
        ls_signals_restore(&old);
        master_beat_drop(s);
        ls_log(LS_LOG_ERROR, errno, "fork() failed");
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        ls_worker_args_t a;

        ls_signals_reset_child();
        ls_signals_restore(&old);
        close(sv[0]);
        master_close_inherited(s->fd);
        ls_proctitle_set("luaserv: worker %s #%d%s", master_lname(s), s->id,
                         M.next || s->gen != M.cur ? " (new generation)" : "");
        a.app = M.opts->app;
        a.conf = &s->gen->conf;
        a.listener = s->li < 0 ? NULL : &s->gen->conf.listeners[s->li];
        a.listen_fd = s->fd;
        a.task_cell = ls_task_cell(s->task_cell);
        a.id = s->id;
        a.generation = s->gen->id;
        a.chan = sv[1];
        a.heartbeat = s->beat ? &M.beats[s->beat - 1] : NULL;
        a.stats = s->stat ? &M.stats[s->stat - 1] : NULL;
        ls_metrics_close(); /* the master's */
        if (s->li < 0)
            ls_task_worker_main(&a);
        ls_worker_main(&a);
    }
    ls_signals_restore(&old);
    close(sv[1]);
    s->pid = pid;
    s->chan = sv[0];
    s->state = SLOT_STARTING;
    s->started = ls_now();
    s->respawn_at = 0;
    ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] generation %d started, pid %d",
           s->id, master_lname(s), s->gen->id, (int)pid);
    return 0;
}

static ls_slot_t *
master_slot_by_pid(pid_t pid)
{
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->pid == pid)
            return M.slots[i];
    return NULL;
}

static int
master_live_workers(void)
{
    int n = 0;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->pid > 0)
            n++;
    return n;
}

/*
 * Ask a slot's worker to go: SIGQUIT drains, SIGTERM closes at once, and 0
 * drains because a new generation replaced it (told over the channel, so the
 * worker can call onWorkerReload first; a signal is the fallback).
 */
static void
master_retire(ls_slot_t *s, int signo, double grace)
{
    s->retiring = 1;
    s->respawn_at = 0;
    if (s->pid > 0) {
        if (signo != 0 ||
            s->chan < 0 || send(s->chan, "reload", 6, MSG_NOSIGNAL) != 6)
            kill(s->pid, signo ? signo : SIGQUIT);
        s->kill_at = ls_now() + grace;
    }
}

/* ---- control socket replies --------------------------------------------- */

static void
master_ctl_reply(ls_ctlc_t *cc, const char *text)
{
    size_t n = strlen(text);
    const char *p = text;

    /* The client waits for the reply; it is small, so block briefly. */
    fcntl(cc->fd, F_SETFL, 0);
    while (n > 0) {
        ssize_t w = send(cc->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
    close(cc->fd);
    *cc = M.ctlc[--M.nctlc];
}

static void
master_ctl_reply_all(int state, const char *text)
{
    for (int i = 0; i < M.nctlc;)
        if (M.ctlc[i].state == state)
            master_ctl_reply(&M.ctlc[i], text);
        else
            i++;
}

/* ---- reload -------------------------------------------------------------- */

static void master_reload(void);

static void
master_rollout_abort(const char *why)
{
    char msg[LS_ERRLEN];
    ls_gen_t *g = M.next;

    M.reload_failures++;
    snprintf(msg, sizeof(msg), "reload aborted, generation %d keeps serving: "
             "%s", M.cur->id, why);
    ls_log(LS_LOG_ERROR, 0, "%s", msg);
    M.next = NULL;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->gen == g)
            master_retire(M.slots[i], SIGTERM, FAST_STOP_GRACE);
    g->refs++; /* balance: unref below frees it once its slots are gone */
    master_gen_unref(g);
    master_slot_gc();
    master_sock_gc();
    strncat(msg, "\n", sizeof(msg) - strlen(msg) - 1);
    {
        char reply[LS_ERRLEN + 8];
        snprintf(reply, sizeof(reply), "error %s", msg);
        master_ctl_reply_all(CTL_RELOAD, reply);
    }
    ls_sd_notify("READY=1", msg);
    if (M.reload_pending) {
        M.reload_pending = 0;
        master_reload();
    }
}

static void
master_rollout_check(void)
{
    ls_gen_t *old = M.cur;
    char msg[128];

    if (M.next == NULL)
        return;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->gen == M.next && M.slots[i]->state != SLOT_READY)
            return;
    /* Every new worker is serving: the old generation drains. */
    M.cur = M.next;
    M.next = NULL;
    M.reloads++;
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        if (s->gen == old)
            master_retire(s, 0, old->conf.stop_timeout + DRAIN_GRACE);
    }
    old->refs++;
    master_gen_unref(old);
    master_slot_gc();
    master_sock_gc();
    snprintf(msg, sizeof(msg), "reloaded, generation %d\n", M.cur->id);
    ls_log(LS_LOG_INFO, 0, "reloaded: generation %d serving, generation %d "
           "draining", M.cur->id, old->id);
    master_ctl_reply_all(CTL_RELOAD, msg);
    ls_proctitle_set("luaserv: master %s (generation %d)", M.opts->app,
                     M.cur->id);
    snprintf(msg, sizeof(msg), "serving, generation %d (reloaded)", M.cur->id);
    ls_sd_notify("READY=1", msg);
    if (M.reload_pending) {
        M.reload_pending = 0;
        master_reload();
    }
}

/* Slots for every (listener, id) of generation g, on their sockets. */
static int
master_gen_slots(ls_gen_t *g, char *err, size_t errlen)
{
    int base = 0; /* worker ids run on across listeners (luaserv.send) */

    for (int li = 0; li < g->conf.nlisteners; li++)
        base += g->conf.listeners[li].count;
    if (ls_mail_ensure(base, err, errlen) < 0)
        return -1;
    base = 0;
    for (int li = 0; li < g->conf.nlisteners; li++) {
        ls_listen_conf_t *l = &g->conf.listeners[li];
        for (int id = 0; id < l->count; id++) {
            char e[LS_ERRLEN];
            int fd = master_sock(l, id, e, sizeof(e));
            if (fd < 0) {
                snprintf(err, errlen, "listener \"%s\": %s", l->name, e);
                return -1;
            }
            if (master_slot_add(g, li, base + id, fd) == NULL) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        }
        base += l->count;
    }
    /* task workers: slots of no listener (li -1), ids of their own */
    if (g->conf.task_workers > 0 &&
        ls_task_setup(g->conf.task_queue, err, errlen) < 0)
        return -1;
    for (int id = 0; id < g->conf.task_workers; id++)
        if (master_slot_add(g, -1, id, -1) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

/* -w N overrides every listener's count. */
static void
master_conf_override(ls_gen_t *g)
{
    if (M.opts->workers > 0)
        for (int i = 0; i < g->conf.nlisteners; i++)
            g->conf.listeners[i].count = M.opts->workers;
}

static int
master_load_conf(ls_gen_t *g, char *err, size_t errlen)
{
    if (ls_validate(M.opts->app, &g->conf, err, errlen) < 0)
        return -1;
    master_conf_override(g);
    return 0;
}

static void
master_reload_failed(ls_gen_t *g, const char *err)
{
    char reply[LS_ERRLEN * 8 + 64];

    ls_log(LS_LOG_ERROR, 0, "reload failed, generation %d keeps serving: %s",
           M.cur->id, err);
    M.reload_failures++;
    snprintf(reply, sizeof(reply), "error %s\n", err);
    master_ctl_reply_all(CTL_RELOAD, reply);
    if (g) {
        ls_conf_free(&g->conf);
        free(g);
    }
    snprintf(reply, sizeof(reply), "reload failed, generation %d keeps "
             "serving: %s", M.cur->id, err);
    ls_sd_notify("READY=1", reply);
    if (M.reload_pending) {
        M.reload_pending = 0;
        master_reload();
    }
}

/*
 * A reload, first half: start the validator in the background, so that the
 * master keeps reaping, answering its control socket and handling signals
 * while a slow top level loads. master_reload_validated is the second half.
 */
static void
master_reload(void)
{
    char err[LS_ERRLEN * 8];
    ls_gen_t *g;

    if (M.stopping)
        return;
    if (M.next != NULL || M.validating != NULL) {
        /* Not dropped: it runs as soon as this one ends. */
        M.reload_pending = 1;
        ls_log(LS_LOG_INFO, 0, "reload requested during a reload; it will "
               "follow");
        return;
    }
    ls_sd_notify("RELOADING=1", "reloading");
    ls_log_reopen();
    ls_log(LS_LOG_INFO, 0, "reloading %s", M.opts->app);
    g = master_gen_new(M.cur->id + 1);
    if (g == NULL) {
        master_reload_failed(NULL, "out of memory");
        return;
    }
    if (ls_validation_start(&M.val, M.opts->app, err, sizeof(err)) < 0) {
        master_reload_failed(g, err);
        return;
    }
    M.validating = g;
}

/*
 * A reload that lowers a reusePort listener's count closes the surplus
 * sockets once the old workers are gone. The connections queued on them
 * then move to the sockets left in the group if the kernel migrates them
 * (net.ipv4.tcp_migrate_req = 1, Linux 5.14); otherwise they are reset.
 */
static void
master_check_reuseport_shrink(const ls_gen_t *g)
{
    int migrate = -1;

    for (int i = 0; i < g->conf.nlisteners; i++) {
        const ls_listen_conf_t *l = &g->conf.listeners[i];
        for (int j = 0; l->reuseport && j < M.cur->conf.nlisteners; j++) {
            const ls_listen_conf_t *o = &M.cur->conf.listeners[j];
            if (!o->reuseport || o->count <= l->count ||
                strcmp(o->addr.url, l->addr.url) != 0)
                continue;
            if (ls_addr_is_udp(&l->addr)) { /* no migration for datagrams */
                ls_log(LS_LOG_WARN, 0, "listener \"%s\": reusePort count %d "
                       "-> %d: datagrams that reach the %d surplus socket(s) "
                       "until their old workers are gone are lost",
                       l->name, o->count, l->count, o->count - l->count);
                continue;
            }
            if (migrate < 0) {
                FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
                migrate = 0;
                if (f != NULL) {
                    if (fscanf(f, "%d", &migrate) != 1)
                        migrate = 0;
                    fclose(f);
                }
            }
            if (migrate == 1)
                ls_log(LS_LOG_INFO, 0, "listener \"%s\": reusePort count %d "
                       "-> %d; the kernel moves what is queued on the %d "
                       "surplus socket(s) to the others (tcp_migrate_req)",
                       l->name, o->count, l->count, o->count - l->count);
            else
                ls_log(LS_LOG_WARN, 0, "listener \"%s\": reusePort count %d "
                       "-> %d: connections still queued on the %d surplus "
                       "socket(s) when they close are reset; set sysctl "
                       "net.ipv4.tcp_migrate_req=1 (Linux 5.14+) to have the "
                       "kernel move them to the remaining sockets", l->name,
                       o->count, l->count, o->count - l->count);
        }
    }
}

/* The validator is done (or out of time): roll the new generation out. */
static void
master_reload_validated(void)
{
    char err[LS_ERRLEN * 8], reply[LS_ERRLEN * 8 + 16];
    ls_gen_t *g = M.validating;

    M.validating = NULL;
    if (ls_validation_finish(&M.val, &g->conf, err, sizeof(err)) < 0 ||
        ls_shared_attach(&g->conf, &M.cur->conf, err, sizeof(err)) < 0) {
        master_reload_failed(g, err);
        return;
    }
    master_conf_override(g);
    if (g->conf.log_level >= 0)
        ls_log_set_level(g->conf.log_level);
    master_check_reuseport_shrink(g);
    M.next = g;
    M.rollout_deadline = ls_now() + ROLLOUT_TIMEOUT;
    if (master_gen_slots(g, err, sizeof(err)) < 0) {
        snprintf(reply, sizeof(reply), "%s", err);
        master_rollout_abort(reply);
        return;
    }
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->gen == g && master_spawn(M.slots[i]) < 0) {
            master_rollout_abort("fork() failed");
            return;
        }
}

/* A stop during validation: the validator goes, the reload fails. */
static void
master_reload_cancel(void)
{
    if (M.validating == NULL)
        return;
    ls_validation_cancel(&M.val);
    ls_conf_free(&M.validating->conf);
    free(M.validating);
    M.validating = NULL;
    M.reload_pending = 0;
    master_ctl_reply_all(CTL_RELOAD, "error the server is stopping\n");
}

/* ---- exits ------------------------------------------------------------- */

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
    char how[128], why[LS_ERRLEN];
    int was_ready = s->state == SLOT_READY;

    master_describe(status, how, sizeof(how));
    master_beat_drop(s);
    if (s->li < 0 && ls_task_orphan(s->task_cell))
        ls_log(M.stopping ? LS_LOG_INFO : LS_LOG_WARN, 0, "task worker %d %s "
               "during a task: that task failed (\"task worker died\")",
               s->id, how);
    if (s->chan >= 0) {
        close(s->chan);
        s->chan = -1;
    }
    s->pid = 0;
    s->state = SLOT_IDLE;
    if (s->successor != NULL) {
        s->retiring = 1; /* its successor takes the position */
        s->successor = NULL;
    }
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->successor == s) {
            /* The successor failed: the old worker keeps serving. */
            M.slots[i]->successor = NULL;
            s->retiring = 1;
            ls_log(LS_LOG_ERROR, 0, "the successor of worker %d [%s] %s; "
                   "the old worker keeps serving", s->id, master_lname(s),
                   how);
        }
    if (s->retiring || M.stopping) {
        ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] generation %d %s", s->id,
               master_lname(s), s->gen->id, how);
        return;
    }
    if (s->gen == M.next) {
        snprintf(why, sizeof(why), "new worker %d [%s] %s during start-up "
                 "(see the log above)", s->id, master_lname(s), how);
        master_rollout_abort(why);
        return;
    }
    if (!M.announced && M.ready_fd >= 0) {
        /* -d: the caller is still waiting; do not leave a broken daemon. */
        snprintf(why, sizeof(why), "worker %d [%s] %s during start-up (see "
                 "the log)", s->id, master_lname(s), how);
        ls_log(LS_LOG_ERROR, 0, "%s; stopping", why);
        ls_daemon_report(M.ready_fd, 0, why);
        M.ready_fd = -1;
        M.stopping = LS_STOP_FAST;
        M.kill_at = now + FAST_STOP_GRACE;
        for (int i = 0; i < M.nslots; i++)
            master_retire(M.slots[i], SIGTERM, FAST_STOP_GRACE);
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
    M.respawns++;
    ls_log(s->fails > 1 ? LS_LOG_ERROR : LS_LOG_WARN, 0,
           "worker %d [%s] %s%s after %.1f s; respawning in %.1f s", s->id,
           master_lname(s), how, was_ready ? "" : " during start-up", lived,
           delay);
}

static void
master_reap(void)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        ls_slot_t *s;
        if (M.validating && ls_validation_child(&M.val, pid, status))
            continue;   /* the validator: its pipe says the rest */
        s = master_slot_by_pid(pid);
        if (s != NULL)
            master_on_exit(s, status);
    }
    master_slot_gc();
    master_sock_gc();
}

static void
master_begin_stop(int how, const char *why)
{
    if (M.stopping == LS_STOP_FAST && how == LS_STOP_FAST) {
        /* Asked twice: do not wait any longer. */
        ls_log(LS_LOG_WARN, 0, "%s again: killing the workers", why);
        for (int i = 0; i < M.nslots; i++)
            if (M.slots[i]->pid > 0)
                kill(M.slots[i]->pid, SIGKILL);
        return;
    }
    if (M.stopping >= how)
        return;
    ls_log(LS_LOG_INFO, 0, "%s: %s", why,
           how == LS_STOP_FAST ? "stopping" : "stopping gracefully");
    ls_sd_notify("STOPPING=1", how == LS_STOP_FAST ? "stopping" :
                 "stopping gracefully");
    M.stopping = how;
    master_reload_cancel();
    if (M.next)
        master_ctl_reply_all(CTL_RELOAD, "error the server is stopping\n");
    for (int i = 0; i < M.nslots; i++)
        master_retire(M.slots[i], how == LS_STOP_FAST ? SIGTERM : SIGQUIT,
                      how == LS_STOP_FAST
                          ? FAST_STOP_GRACE
                          : M.slots[i]->gen->conf.stop_timeout +
                                M.slots[i]->gen->conf.stop_delay + DRAIN_GRACE);
    master_slot_gc();
}

static void
master_on_signal(int signo)
{
    char why[64];

    snprintf(why, sizeof(why), "%s received", ls_signals_name(signo));
    switch (signo) {
    case SIGCHLD:
        master_reap();
        break;
    case SIGINT:
    case SIGTERM:
        master_begin_stop(LS_STOP_FAST, why);
        break;
    case SIGQUIT:
        master_begin_stop(LS_STOP_GRACEFUL, why);
        break;
    case SIGHUP:
    case SIGUSR1:
        ls_log(LS_LOG_INFO, 0, "%s", why);
        master_reload();
        break;
    case SIGUSR2:
        ls_log_reopen();
        for (int i = 0; i < M.nslots; i++)
            if (M.slots[i]->pid > 0)
                kill(M.slots[i]->pid, SIGUSR2);
        break;
    }
}

/* ---- status -------------------------------------------------------------- */

static void
master_status_send(void)
{
    char buf[16384], line[768];
    size_t n = 0;
    time_t now = time(NULL);

#define STATUS_ADD(...)                                                       \
    do {                                                                      \
        int r_ = snprintf(line, sizeof(line), __VA_ARGS__);                   \
        if (r_ > 0 && n + (size_t)r_ < sizeof(buf)) {                         \
            memcpy(buf + n, line, (size_t)r_);                                \
            n += (size_t)r_;                                                  \
        }                                                                     \
    } while (0)

    STATUS_ADD("master pid %d, app %s\n", (int)getpid(), M.opts->app);
    STATUS_ADD("uptime %lds, generation %d, reloads %d%s\n",
               (long)(now - M.started_wall), M.cur->id, M.reloads,
               M.next ? " (a reload is in progress)" : "");
    STATUS_ADD("%-4s %-8s %-16s %-4s %-8s %7s %9s %10s %10s %12s %12s %9s "
               "%9s %8s %8s %8s %8s %8s %s\n", "id", "pid", "listener", "gen",
               "state", "conns", "total", "msgs_in", "msgs_out", "bytes_in",
               "bytes_out", "lua_kb", "rss_kb", "to_head", "to_body",
               "to_send", "to_idle", "emfile", "started");
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        const char *state = s->retiring ? "draining"
                            : s->state == SLOT_READY ? "ready"
                            : s->state == SLOT_STARTING ? "starting"
                                                        : "down";
        STATUS_ADD("%-4d %-8d %-16s %-4d %-8s %s\n", s->id, (int)s->pid,
                   master_lname(s), s->gen->id, state,
                   s->status[0] ? s->status : "-");
    }
    for (int i = 0; i < M.nslots; i++) { /* luaserv.send / broadcast */
        const ls_stats_t *st = M.slots[i]->stat
                                   ? &M.stats[M.slots[i]->stat - 1] : NULL;
        if (st != NULL && (st->mail_sent || st->mail_full ||
                           st->mail_received))
            STATUS_ADD("worker %d messages: %llu sent, %llu queue full, "
                       "%llu received\n", M.slots[i]->id,
                       (unsigned long long)st->mail_sent,
                       (unsigned long long)st->mail_full,
                       (unsigned long long)st->mail_received);
    }
    n += ls_shared_status(&M.cur->conf, buf + n, sizeof(buf) - n);
    if (ls_task_ready()) {
        unsigned waiting, limit;
        ls_task_depth(&waiting, &limit);
        STATUS_ADD("task queue: %u waiting of %u\n", waiting, limit);
    }
#undef STATUS_ADD
    buf[n] = '\0';
    master_ctl_reply_all(CTL_STATUS, buf);
    M.status_deadline = 0;
}

/* ---- connections: every open connection, asked of each worker ---------- */

static void
master_conns_send(void)
{
    size_t cap = 65536 - 64, n = 0;
    char *out = malloc(cap + 1);
    static const char head[] = "worker conn peer age_s bytes_in bytes_out "
                               "state protocol listener\n";

    if (out == NULL) {
        master_ctl_reply_all(CTL_CONNS, "error out of memory\n");
        M.conns_deadline = 0;
        return;
    }
    memcpy(out, head, sizeof(head) - 1);
    n = sizeof(head) - 1;
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        const char *p = s->conns;
        if (p == NULL)
            continue;
        /* each line of the worker's answer, with the listener added */
        while (*p) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            size_t ln = strlen(master_lname(s));
            if (n + len + ln + 2 > cap) {
                n += (size_t)snprintf(out + n, cap + 1 - n, "...\n");
                goto done;
            }
            memcpy(out + n, p, len);
            n += len;
            out[n++] = ' ';
            memcpy(out + n, master_lname(s), ln);
            n += ln;
            out[n++] = '\n';
            p += len + (e ? 1 : 0);
        }
        free(s->conns);
        s->conns = NULL;
    }
done:
    out[n] = '\0';
    master_ctl_reply_all(CTL_CONNS, out);
    free(out);
    for (int i = 0; i < M.nslots; i++) {
        free(M.slots[i]->conns);
        M.slots[i]->conns = NULL;
        M.slots[i]->conns_wait = 0;
    }
    M.conns_deadline = 0;
}

static void
master_conns_check(void)
{
    if (M.conns_deadline == 0)
        return;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->conns_wait && M.slots[i]->pid > 0 &&
            ls_now() < M.conns_deadline)
            return;
    master_conns_send();
}

static void
master_conns_begin(void)
{
    if (M.conns_deadline != 0)
        return; /* a round is running; this client gets its answer */
    M.conns_deadline = ls_now() + STATUS_TIMEOUT;
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        free(s->conns);
        s->conns = NULL;
        s->conns_wait = s->chan >= 0 && s->state == SLOT_READY &&
                        send(s->chan, "connections", 11, MSG_NOSIGNAL) == 11;
    }
    master_conns_check();
}

static void
master_status_check(void)
{
    if (M.status_deadline == 0)
        return;
    for (int i = 0; i < M.nslots; i++)
        if (M.slots[i]->status_wait && M.slots[i]->pid > 0 &&
            ls_now() < M.status_deadline)
            return;
    master_status_send();
}

static void
master_status_begin(void)
{
    if (M.status_deadline != 0)
        return; /* a round is running; this client gets its answer */
    M.status_deadline = ls_now() + STATUS_TIMEOUT;
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        s->status[0] = '\0';
        s->status_wait = s->chan >= 0 && s->state == SLOT_READY &&
                         send(s->chan, "status", 6, MSG_NOSIGNAL) == 6;
    }
    master_status_check();
}

/* ---- channels and control clients ---------------------------------------- */

/* A worker hit maxRequests or maxMemory: start its successor in the same
 * position; the old one drains once the new one is ready. */
static void
master_recycle(ls_slot_t *s)
{
    ls_slot_t *n = master_slot_add(s->gen, s->li, s->id, s->fd);

    if (n == NULL || master_spawn(n) < 0) {
        ls_log(LS_LOG_ERROR, 0, "cannot start a successor for worker %d "
               "[%s]; it keeps serving", s->id, master_lname(s));
        if (n != NULL)
            n->retiring = 1;
        master_slot_gc();
        return;
    }
    s->successor = n;
}

static void
master_on_chan(ls_slot_t *s)
{
    static char buf[65536]; /* a connections answer is up to ~60 KB */
    ssize_t n = recv(s->chan, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(s->chan); /* exiting; SIGCHLD will tell how */
            s->chan = -1;
        }
        return;
    }
    buf[n] = '\0';
    if (strcmp(buf, "ready") == 0 && s->state == SLOT_STARTING) {
        s->state = SLOT_READY;
        s->beat_at = 0; /* the watchdog starts counting now */
        ls_log(LS_LOG_DEBUG, 0, "worker %d [%s] generation %d pid %d ready",
               s->id, master_lname(s), s->gen->id, (int)s->pid);
        if (!M.announced && s->gen == M.cur) {
            int ready = 0, total = 0;
            for (int i = 0; i < M.nslots; i++) {
                total += M.slots[i]->gen == M.cur;
                ready += M.slots[i]->gen == M.cur &&
                         M.slots[i]->state == SLOT_READY;
            }
            if (ready == total) {
                char msg[4400];
                M.announced = 1;
                ls_log(LS_LOG_INFO, 0, "ready: %d worker(s) serving %d "
                       "listener(s)", total, M.cur->conf.nlisteners);
                snprintf(msg, sizeof(msg), "started in the background, pid "
                         "%d (logs: %s)", (int)getpid(),
                         M.cur->conf.log_file);
                ls_daemon_report(M.ready_fd, 1, msg);
                M.ready_fd = -1;
                snprintf(msg, sizeof(msg), "serving, generation %d: %d "
                         "worker(s), %d listener(s)", M.cur->id, total,
                         M.cur->conf.nlisteners);
                ls_sd_notify("READY=1", msg);
            }
        }
        for (int i = 0; i < M.nslots; i++) {
            ls_slot_t *o = M.slots[i];
            if (o->successor == s) {
                o->successor = NULL;
                ls_log(LS_LOG_INFO, 0, "worker %d [%s] pid %d replaced by "
                       "pid %d", o->id, master_lname(o), (int)o->pid,
                       (int)s->pid);
                master_retire(o, 0, o->gen->conf.stop_timeout + DRAIN_GRACE);
            }
        }
        master_rollout_check();
    } else if (strcmp(buf, "recycle") == 0 && !s->retiring &&
               s->successor == NULL && !M.stopping) {
        master_recycle(s);
    } else if (strncmp(buf, "status ", 7) == 0) {
        /* a worker's line, cut to the column's size if need be */
        size_t len = strnlen(buf + 7, sizeof(s->status) - 1);
        memcpy(s->status, buf + 7, len);
        s->status[len] = '\0';
        s->status_wait = 0;
        master_status_check();
    } else if (strncmp(buf, "conns ", 6) == 0 && s->conns_wait) {
        free(s->conns);
        s->conns = strdup(buf + 6);
        s->conns_wait = 0;
        master_conns_check();
    }
}

static void
master_on_ctl_accept(void)
{
    for (;;) {
        int fd = accept4(M.ctl_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (M.nctlc == CTL_MAX_CLIENTS) {
            close(fd);
            continue;
        }
        M.ctlc[M.nctlc].fd = fd;
        M.ctlc[M.nctlc].state = CTL_READING;
        M.ctlc[M.nctlc].len = 0;
        M.nctlc++;
    }
}

static void
master_on_ctl_client(ls_ctlc_t *cc)
{
    ssize_t n = read(cc->fd, cc->buf + cc->len, sizeof(cc->buf) - 1 - cc->len);
    char *nl, reply[64];

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(cc->fd);
            *cc = M.ctlc[--M.nctlc];
        }
        return;
    }
    cc->len += (size_t)n;
    cc->buf[cc->len] = '\0';
    if ((nl = strchr(cc->buf, '\n')) == NULL) {
        if (cc->len == sizeof(cc->buf) - 1)
            master_ctl_reply(cc, "error command too long\n");
        return;
    }
    *nl = '\0';
    if (strcmp(cc->buf, "status") == 0) {
        cc->state = CTL_STATUS;
        master_status_begin();
    } else if (strcmp(cc->buf, "connections") == 0) {
        cc->state = CTL_CONNS;
        master_conns_begin();
    } else if (strcmp(cc->buf, "reload") == 0) {
        cc->state = CTL_RELOAD;
        ls_log(LS_LOG_INFO, 0, "reload asked on the control socket");
        master_reload();
    } else if (strcmp(cc->buf, "stop") == 0 ||
               strcmp(cc->buf, "stop graceful") == 0) {
        int graceful = cc->buf[4] != '\0';
        snprintf(reply, sizeof(reply), "ok %d\n", (int)getpid());
        master_ctl_reply(cc, reply);
        master_begin_stop(graceful ? LS_STOP_GRACEFUL : LS_STOP_FAST,
                          "stop asked on the control socket");
    } else {
        master_ctl_reply(cc, "error unknown command\n");
    }
}

/* ---- the loop ------------------------------------------------------------ */

static double
master_timers(double now)
{
    double next = now + 60;

    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        if (!M.stopping && !s->retiring && s->pid == 0 && s->respawn_at > 0) {
            if (s->respawn_at <= now) {
                if (master_spawn(s) < 0)
                    s->respawn_at = now + RESPAWN_MAX_DELAY;
            } else if (s->respawn_at < next) {
                next = s->respawn_at;
            }
        }
        if (s->beat) {
            double at = master_watchdog(s, now);
            if (at < next)
                next = at;
        }
        if (s->retiring && s->pid > 0) {
            if (s->kill_at <= now) {
                ls_log(LS_LOG_WARN, 0, "worker %d [%s] generation %d pid %d "
                       "did not stop in time; sending SIGKILL", s->id,
                       master_lname(s), s->gen->id, (int)s->pid);
                kill(s->pid, SIGKILL);
                s->kill_at = now + 5;
            }
            if (s->kill_at < next)
                next = s->kill_at;
        }
    }
    if (M.next) {
        if (now >= M.rollout_deadline)
            master_rollout_abort("the new workers were not ready in time");
        else if (M.rollout_deadline < next)
            next = M.rollout_deadline;
    }
    if (M.validating) {
        if (now >= M.val.deadline && ls_validation_read(&M.val))
            master_reload_validated();
        else if (M.val.deadline < next)
            next = M.val.deadline;
    }
    if (M.status_deadline > 0) {
        if (now >= M.status_deadline)
            master_status_send();
        else if (M.status_deadline < next)
            next = M.status_deadline;
    }
    if (M.conns_deadline > 0) {
        if (now >= M.conns_deadline)
            master_conns_send();
        else if (M.conns_deadline < next)
            next = M.conns_deadline;
    }
    return next;
}

/* What /metrics shows: the master's counters and every worker process. */
static void
master_metrics_view(ls_metrics_view_t *v)
{
    static ls_metrics_worker_t *ws;
    static int cap;
    int n = 0;

    if (cap < M.nslots) {
        ls_metrics_worker_t *p = realloc(ws, sizeof(*p) * (size_t)M.nslots);
        if (p == NULL)
            return;
        ws = p;
        cap = M.nslots;
    }
    for (int i = 0; i < M.nslots; i++) {
        ls_slot_t *s = M.slots[i];
        if (s->pid <= 0)
            continue;
        ws[n].listener = master_lname(s);
        ws[n].id = s->id;
        ws[n].generation = s->gen->id;
        ws[n].pid = (int)s->pid;
        ws[n].ready = s->state == SLOT_READY;
        ws[n].stats = s->stat ? &M.stats[s->stat - 1] : NULL;
        n++;
    }
    v->workers = ws;
    v->nworkers = n;
    v->master.reloads = (unsigned long long)M.reloads;
    v->master.reload_failures = M.reload_failures;
    v->master.respawns = M.respawns;
    v->master.generation = M.cur ? M.cur->id : 0;
    v->master.started = M.started;
    v->conf = M.cur ? &M.cur->conf : NULL;
}

static void
master_loop(void)
{
    for (;;) {
        struct pollfd pfds[2 + CTL_MAX_CLIENTS + 1024 + 16 + 1];
        ls_slot_t *owners[1024];
        int n = 0, ns = 0, nc, timeout, sig, mfirst, nm, vfd;
        double next;

        if (M.stopping && master_live_workers() == 0)
            break;
        next = master_timers(ls_now());
        pfds[n].fd = ls_signals_fd();
        pfds[n++].events = POLLIN;
        pfds[n].fd = M.ctl_fd;
        pfds[n++].events = M.ctl_fd >= 0 ? POLLIN : 0;
        nc = M.nctlc;
        for (int i = 0; i < nc; i++) {
            pfds[n].fd = M.ctlc[i].fd;
            pfds[n++].events = M.ctlc[i].state == CTL_READING ? POLLIN : 0;
        }
        for (int i = 0; i < M.nslots && ns < 1024; i++) {
            if (M.slots[i]->chan >= 0) {
                pfds[n].fd = M.slots[i]->chan;
                pfds[n++].events = POLLIN;
                owners[ns++] = M.slots[i];
            }
        }
        mfirst = n;
        nm = ls_metrics_pollfds(&pfds[n], 16);
        n += nm;
        vfd = M.validating ? M.val.fd : -1;
        pfds[n].fd = vfd;
        pfds[n++].events = POLLIN;
        timeout = (int)ceil((next - ls_now()) * 1000);
        if (poll(pfds, (nfds_t)n, timeout < 0 ? 0 : timeout) < 0 &&
            errno != EINTR) {
            ls_log(LS_LOG_CRIT, errno, "poll() failed");
            break;
        }
        /* Channels first (their slots cannot vanish before the signals
         * are handled), then control clients, then signals. */
        for (int i = 0; i < ns; i++)
            if (pfds[2 + nc + i].revents && owners[i]->chan == pfds[2 + nc + i].fd)
                master_on_chan(owners[i]);
        for (int i = nc - 1; i >= 0; i--)
            if (pfds[2 + i].revents && i < M.nctlc &&
                M.ctlc[i].fd == pfds[2 + i].fd)
                master_on_ctl_client(&M.ctlc[i]);
        if (pfds[1].revents)
            master_on_ctl_accept();
        ls_metrics_serve(&pfds[mfirst], nm, master_metrics_view);
        if (vfd >= 0 && pfds[mfirst + nm].revents && M.validating &&
            M.val.fd == vfd && ls_validation_read(&M.val))
            master_reload_validated();
        while ((sig = ls_signals_next()) != 0)
            master_on_signal(sig);
    }
}

static int
master_fail(const char *msg)
{
    ls_log(LS_LOG_ERROR, 0, "%s", msg);
    if (M.ready_fd >= 0)
        ls_daemon_report(M.ready_fd, 0, msg);
    else if (ls_log_fd() != 2)
        fprintf(stderr, "luaserv: %s\n", msg);
    return LS_EXIT_BROKEN;
}

int
ls_master_run(const ls_master_opts_t *opts)
{
    char err[LS_ERRLEN * 8];
    ls_conf_t *conf;

    memset(&M, 0, sizeof(M));
    M.opts = opts;
    M.ctl_fd = M.ready_fd = -1;
    M.started = ls_now();
    M.started_wall = time(NULL);
    ls_log_set_role("master");
    ls_validate_set_child_hook(master_validator_hook);
    ls_tls_init(); /* before any fork: workers share the ticket keys */

    M.cur = master_gen_new(1);
    if (M.cur == NULL)
        return LS_EXIT_BROKEN;
    conf = &M.cur->conf;
    if (master_load_conf(M.cur, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (conf->log_level >= 0)
        ls_log_set_level(conf->log_level);
    if (opts->log_file)
        snprintf(conf->log_file, sizeof(conf->log_file), "%s", opts->log_file);
    if (opts->daemonize && !conf->log_file[0] &&
        ls_daemon_default_path(opts->app, "log", conf->log_file,
                               sizeof(conf->log_file)) < 0) {
        fprintf(stderr, "luaserv: cannot make the default log file path\n");
        return LS_EXIT_BROKEN;
    }
    if (conf->log_file[0] &&
        ls_log_open_file(conf->log_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (opts->pid_file)
        snprintf(M.pid_file, sizeof(M.pid_file), "%s", opts->pid_file);
    else if (conf->pid_file[0])
        snprintf(M.pid_file, sizeof(M.pid_file), "%s", conf->pid_file);
    else if (ls_daemon_default_path(opts->app, "pid", M.pid_file,
                                    sizeof(M.pid_file)) < 0) {
        fprintf(stderr, "luaserv: cannot make the default pid file path\n");
        return LS_EXIT_BROKEN;
    }
    /* With -p the control socket sits next to that pid file, so that two
     * instances of one app can run; otherwise its path derives from the
     * app's path alone (a pidFile setting cannot be read from a broken
     * script). */
    if (opts->pid_file) {
        if ((size_t)snprintf(M.ctl_path, sizeof(M.ctl_path), "%s.sock",
                             opts->pid_file) >= sizeof(M.ctl_path)) {
            fprintf(stderr, "luaserv: pid file path too long\n");
            return LS_EXIT_BROKEN;
        }
    } else if (ls_daemon_default_path(opts->app, "sock", M.ctl_path,
                                      sizeof(M.ctl_path)) < 0) {
        fprintf(stderr, "luaserv: cannot make the control socket path\n");
        return LS_EXIT_BROKEN;
    }
    /* Refuse a second instance before touching any socket. */
    {
        pid_t other = ls_pidfile_running(M.pid_file);
        if (other > 0) {
            fprintf(stderr, "luaserv: already running (pid %d, pid file "
                    "%s)\n", (int)other, M.pid_file);
            return LS_EXIT_BROKEN;
        }
    }
    if (master_gen_slots(M.cur, err, sizeof(err)) < 0) {
        ls_log(LS_LOG_ERROR, 0, "%s", err);
        if (ls_log_fd() != 2)
            fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (opts->daemonize && ls_daemonize(&M.ready_fd, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    if (ls_pidfile_acquire(M.pid_file, err, sizeof(err)) < 0)
        return master_fail(err);
    if ((M.ctl_fd = ls_ctl_listen(M.ctl_path, err, sizeof(err))) < 0) {
        ls_pidfile_release();
        return master_fail(err);
    }
    if (ls_signals_install() < 0) {
        ls_pidfile_release();
        return master_fail("cannot install the signal handlers");
    }
    /* Shared dicts: mapped now, so every worker forked from here on has
     * them at the same address. */
    if (ls_shared_attach(conf, NULL, err, sizeof(err)) < 0) {
        ls_pidfile_release();
        return master_fail(err);
    }
    /* The workers' figures for /metrics, shared the same way. */
    if (conf->metrics[0]) {
        M.stats = mmap(NULL, sizeof(*M.stats) * WATCHDOG_CELLS,
                       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                       -1, 0);
        if (M.stats == MAP_FAILED) {
            ls_pidfile_release();
            return master_fail("mmap() failed for the metrics");
        }
        if (ls_metrics_listen(conf->metrics, err, sizeof(err)) < 0) {
            char msg[LS_ERRLEN * 8 + 32];
            snprintf(msg, sizeof(msg), "metrics: %s", err);
            ls_pidfile_release();
            return master_fail(msg);
        }
    }
    /* Shared with every worker forked from now on (watchdogTimeout). */
    M.beats = mmap(NULL, sizeof(*M.beats) * WATCHDOG_CELLS,
                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (M.beats == MAP_FAILED) {
        ls_log(LS_LOG_ERROR, errno, "mmap() failed; watchdogTimeout is not "
               "enforced");
        M.beats = NULL;
    }
    ls_proctitle_set("luaserv: master %s", opts->app);
    ls_log(LS_LOG_INFO, 0, "luaserv %s started, app %s, pid file %s",
           LUASERV_VERSION, opts->app, M.pid_file);
    for (int i = 0; i < M.nslots; i++)
        if (master_spawn(M.slots[i]) < 0)
            M.slots[i]->respawn_at = ls_now() + RESPAWN_FIRST_DELAY;

    master_loop();

    master_reap();
    ls_metrics_close();
    for (int i = 0; i < M.nsocks; i++) {
        close(M.socks[i].fd);
        ls_listener_unlink(&M.socks[i].addr);
    }
    for (int i = M.nctlc - 1; i >= 0; i--)
        master_ctl_reply(&M.ctlc[i], "error the server stopped\n");
    close(M.ctl_fd);
    unlink(M.ctl_path);
    ls_pidfile_release();
    ls_log(LS_LOG_INFO, 0, "stopped");
    return LS_EXIT_OK;
}
