/*
 * main.c -- argv to a command: start, check (and later stop, reload,
 * status). Exit codes: 0 success, 1 broken app or config, 2 usage error,
 * 3 no running instance.
 */
#include "config.h"
#include "log.h"
#include "luaserv.h"
#include "master.h"
#include "validate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: luaserv [options] APP.lua [command]\n"
    "\n"
    "commands (default: start)\n"
    "  start       run master + workers in the foreground (Ctrl+C stops)\n"
    "  check       load APP.lua as a worker would, report errors, exit 0/1\n"
    "\n"
    "options\n"
    "  -w N        override the worker count of every listener\n"
    "  -l FILE     log file (default: stderr)\n"
    "  -h, -v      help, version\n";

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

int
main(int argc, char **argv)
{
    const char *app = NULL, *cmd = NULL, *log_file = NULL;
    char app_abs[PATH_MAX];
    ls_master_opts_t mo;
    int workers = 0;
    const char *env_level = getenv("LUASERV_LOG_LEVEL");

    if (env_level && ls_log_level_from_name(env_level) >= 0)
        ls_log_set_level(ls_log_level_from_name(env_level));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage_text, stdout);
            return LS_EXIT_OK;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("luaserv %s\n", LUASERV_VERSION);
            return LS_EXIT_OK;
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
        } else if (strcmp(a, "-l") == 0) {
            if (++i >= argc)
                return usage("-l needs a file name", NULL);
            log_file = argv[i];
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
    if (strcmp(cmd, "start") != 0 && strcmp(cmd, "check") != 0)
        return usage("unknown command \"%s\"", cmd);

    /* The workers reload the script by path; make it absolute first. */
    if (realpath(app, app_abs) == NULL) {
        fprintf(stderr, "luaserv: cannot open %s: %s\n", app,
                strerror(errno));
        return LS_EXIT_BROKEN;
    }
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
    return ls_master_run(&mo);
}
