/*
 * main.c -- argv to a command: start, stop, reload, status, check.
 * Exit codes: 0 success, 1 broken app or config, 2 usage error, 3 no running
 * instance (stop/reload/status).
 */
#include "core/config.h"
#include "master/ctl.h"
#include "master/daemon.h"
#include "core/log.h"
#include "core/luaserv.h"
#include "master/master.h"
#include "master/validate.h"
#include "lua/vm.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: luaserv [options] APP.lua [command]\n"
    "\n"
    "commands (default: start)\n"
    "  start       run master + workers in the foreground (Ctrl+C stops)\n"
    "  stop        stop the running instance of APP.lua; waits until it is "
    "gone\n"
    "  reload      validate APP.lua, then replace all workers gracefully\n"
    "  status      print master and per-worker figures of the running "
    "instance\n"
    "              (--watch: again every second, in place, until Ctrl+C)\n"
    "  connections every open connection of the running instance, per "
    "worker\n"
    "  check       load APP.lua as a worker would, report errors, exit 0/1\n"
    "\n"
    "options\n"
    "  -d          daemonize (start)\n"
    "  -g          graceful stop (stop: let connections finish)\n"
    "  -w N        override the worker count of every listener\n"
    "  --watch     with status: refresh the table every second\n"
    "  -p FILE     pid file\n"
    "  -l FILE     log file (default: stderr; with -d a file next to the pid "
    "file)\n"
    "  -h, -v      help, version\n"
    "\n"
    "exit codes: 0 ok, 1 the app or its config is broken, 2 usage error,\n"
    "            3 no running instance (stop, reload, status)\n";

static int
usage(const char *fmt, const char *arg)
{
    if (fmt) {
        fprintf(stderr, "luaserv: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
    }
    fputs(usage_text, stderr);
    return LS_EXIT_USAGE;
}

static int
cmd_check(const char *app)
{
    char err[LS_ERRLEN * 8];
    ls_conf_t conf;

    ls_conf_init(&conf);
    if (ls_validate(app, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "luaserv: %s\n", err);
        return LS_EXIT_BROKEN;
    }
    printf("%s: ok, %d listener%s\n", app, conf.nlisteners,
           conf.nlisteners == 1 ? "" : "s");
    for (int i = 0; i < conf.nlisteners; i++) {
        const ls_listen_conf_t *l = &conf.listeners[i];
        printf("  %-16s %s  %d worker%s%s\n", l->name, l->addr.url, l->count,
               l->count == 1 ? "" : "s", l->reuseport ? ", reusePort" : "");
    }
    ls_conf_free(&conf);
    return LS_EXIT_OK;
}

/* Wait until pid is gone; 0 when it is, -1 after timeout seconds. */
static int
wait_gone(pid_t pid, double timeout)
{
    double deadline = ls_now() + timeout;
    while (kill(pid, 0) == 0 || errno != ESRCH) {
        if (ls_now() > deadline)
            return -1;
        usleep(20000);
    }
    return 0;
}

/*
 * stop / reload / status talk to the master over its control socket, whose
 * path derives from the app's path alone (the script may be broken now).
 * stop falls back to the pid file and a signal.
 */
static int
cmd_control(const char *app, const char *cmd, int graceful,
            const char *pid_file)
{
    char ctl[4096], pidf[4096], reply[65536];
    int r;
    pid_t pid = 0;

    if (pid_file) {
        if ((size_t)snprintf(ctl, sizeof(ctl), "%s.sock", pid_file) >=
            sizeof(ctl))
            return usage("pid file path too long: %s", pid_file);
    } else if (ls_daemon_default_path(app, "sock", ctl, sizeof(ctl)) < 0) {
        fprintf(stderr, "luaserv: cannot make the control socket path\n");
        return LS_EXIT_BROKEN;
    }
    if (strcmp(cmd, "stop") == 0) {
        r = ls_ctl_request(ctl, graceful ? "stop graceful" : "stop", reply,
                           sizeof(reply), 10);
        if (r == 0 && strncmp(reply, "ok ", 3) == 0) {
            pid = (pid_t)atoi(reply + 3);
        } else {
            if (pid_file)
                snprintf(pidf, sizeof(pidf), "%s", pid_file);
            else if (ls_daemon_default_path(app, "pid", pidf, sizeof(pidf)) < 0)
                pidf[0] = '\0';
            pid = pidf[0] ? ls_pidfile_running(pidf) : 0;
            if (pid == 0) {
                fprintf(stderr, "luaserv: %s is not running\n", app);
                return LS_EXIT_NOTRUNNING;
            }
            kill(pid, graceful ? SIGQUIT : SIGTERM);
        }
        /* Graceful stops may take up to stopTimeout; never wait forever. */
        if (wait_gone(pid, graceful ? 24 * 3600 : 60) < 0) {
            fprintf(stderr, "luaserv: pid %d is still running\n", (int)pid);
            return LS_EXIT_BROKEN;
        }
        printf("stopped (pid %d)\n", (int)pid);
        return LS_EXIT_OK;
    }
    r = ls_ctl_request(ctl, cmd, reply, sizeof(reply),
                       strcmp(cmd, "reload") == 0 ? 300 : 10);
    if (r == LS_CTL_NOSERVER) {
        fprintf(stderr, "luaserv: %s is not running\n", app);
        return LS_EXIT_NOTRUNNING;
    }
    if (r < 0) {
        fprintf(stderr, "luaserv: %s\n", reply);
        return LS_EXIT_BROKEN;
    }
    if (strncmp(reply, "error ", 6) == 0) {
        fprintf(stderr, "luaserv: %s", reply + 6);
        return LS_EXIT_BROKEN;
    }
    fputs(reply, stdout);
    return LS_EXIT_OK;
}

int
main(int argc, char **argv)
{
    const char *app = NULL, *cmd = NULL, *log_file = NULL, *pid_file = NULL;
    static char app_abs[PATH_MAX], log_abs[PATH_MAX], pid_abs[PATH_MAX];
    ls_master_opts_t mo;
    int workers = 0, daemon = 0, graceful = 0, watch = 0;
    const char *env_level = getenv("LUASERV_LOG_LEVEL");

    ls_proctitle_init(argc, argv);
    if (env_level && ls_log_level_from_name(env_level) >= 0)
        ls_log_set_level(ls_log_level_from_name(env_level));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return LS_EXIT_OK;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("luaserv %s (%s)\n", LUASERV_VERSION, ls_vm_lua_release());
            return LS_EXIT_OK;
        } else if (strcmp(a, "-d") == 0) {
            daemon = 1;
        } else if (strcmp(a, "-g") == 0) {
            graceful = 1;
        } else if (strcmp(a, "--watch") == 0) {
            watch = 1;
        } else if (strcmp(a, "-w") == 0) {
            char *end;
            long n;
            if (++i >= argc)
                return usage("-w needs a number", NULL);
            errno = 0;
            n = strtol(argv[i], &end, 10);
            if (*argv[i] == '\0' || *end != '\0' || errno || n < 1 ||
                n > LS_MAX_WORKERS)
                return usage("-w: bad worker count \"%s\" (1..1024)", argv[i]);
            workers = (int)n;
        } else if (strcmp(a, "-l") == 0 || strcmp(a, "-p") == 0) {
            if (++i >= argc)
                return usage("%s needs a file name", a);
            if (a[1] == 'l')
                log_file = argv[i];
            else
                pid_file = argv[i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage("unknown option \"%s\"", a);
        } else if (app == NULL) {
            app = a;
        } else if (cmd == NULL) {
            cmd = a;
        } else {
            return usage("unexpected argument \"%s\"", a);
        }
    }
    if (app == NULL)
        return usage("no app script given", NULL);
    if (cmd == NULL)
        cmd = "start";
    if (strcmp(cmd, "start") != 0 && strcmp(cmd, "check") != 0 &&
        strcmp(cmd, "stop") != 0 && strcmp(cmd, "reload") != 0 &&
        strcmp(cmd, "status") != 0 && strcmp(cmd, "connections") != 0)
        return usage("unknown command \"%s\"", cmd);
    if (watch && strcmp(cmd, "status") != 0)
        return usage("--watch goes with status, not %s", cmd);
    if (daemon && strcmp(cmd, "start") != 0)
        return usage("-d goes with start, not %s", cmd);
    if (graceful && strcmp(cmd, "stop") != 0)
        return usage("-g goes with stop, not %s", cmd);

    /* Paths from the command line are resolved before a daemon leaves the
     * current directory; the app's path also names its instance. */
    if (realpath(app, app_abs) == NULL) {
        if (strcmp(cmd, "start") != 0 && strcmp(cmd, "check") != 0) {
            fprintf(stderr, "luaserv: %s is not running (%s)\n", app,
                    strerror(errno));
            return LS_EXIT_NOTRUNNING;
        }
        fprintf(stderr, "luaserv: cannot open %s: %s\n", app,
                strerror(errno));
        return LS_EXIT_BROKEN;
    }
    /* argv is rewritten by the process titles: keep copies. */
    if (log_file && log_file[0] == '/') {
        snprintf(log_abs, sizeof(log_abs), "%s", log_file);
        log_file = log_abs;
    } else if (log_file) {
        if (getcwd(log_abs, sizeof(log_abs) - strlen(log_file) - 2) == NULL)
            return usage("cannot resolve %s", log_file);
        strcat(log_abs, "/");
        strcat(log_abs, log_file);
        log_file = log_abs;
    }
    if (pid_file && pid_file[0] == '/') {
        snprintf(pid_abs, sizeof(pid_abs), "%s", pid_file);
        pid_file = pid_abs;
    } else if (pid_file) {
        if (getcwd(pid_abs, sizeof(pid_abs) - strlen(pid_file) - 2) == NULL)
            return usage("cannot resolve %s", pid_file);
        strcat(pid_abs, "/");
        strcat(pid_abs, pid_file);
        pid_file = pid_abs;
    }
    if (watch) {
        /* the live table, redrawn in place once a second */
        for (;;) {
            int r;
            if (isatty(1))
                fputs("\033[H\033[2J", stdout);
            r = cmd_control(app_abs, cmd, graceful, pid_file);
            fflush(stdout);
            if (r != LS_EXIT_OK)
                return r;
            sleep(1);
        }
    }
    if (strcmp(cmd, "stop") == 0 || strcmp(cmd, "reload") == 0 ||
        strcmp(cmd, "status") == 0 || strcmp(cmd, "connections") == 0)
        return cmd_control(app_abs, cmd, graceful, pid_file);
    if (access(app_abs, R_OK) < 0) {
        fprintf(stderr, "luaserv: cannot read %s: %s\n", app,
                strerror(errno));
        return LS_EXIT_BROKEN;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(app_abs);

    memset(&mo, 0, sizeof(mo));
    mo.app = app_abs;
    mo.workers = workers;
    mo.log_file = log_file;
    mo.pid_file = pid_file;
    mo.daemonize = daemon;
    return ls_master_run(&mo);
}
