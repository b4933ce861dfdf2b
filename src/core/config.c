/*
 * config.c -- the declared configuration and its wire form.
 *
 * Wire form, one record per line, fields separated by tabs (names and paths
 * are checked for control characters when declared):
 *   setting <key> <value>
 *   listener <name> <count> <reusePort> <backlog> <url>
 *   shared <name> <size>
 *   file <listener> <path>      (the ssl option's certificates and keys)
 */
#include "core/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
ls_conf_init(ls_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->stop_timeout = LS_DEFAULT_STOP_TIMEOUT;
    c->log_level = -1;
    c->lua_memory_limit = LS_DEFAULT_LUA_MEMORY_LIMIT;
    c->callback_timeout = LS_DEFAULT_CALLBACK_TIMEOUT;
    c->watchdog_timeout = LS_DEFAULT_WATCHDOG_TIMEOUT;
    c->task_queue = LS_DEFAULT_TASK_QUEUE;
}

void
ls_conf_free(ls_conf_t *c)
{
    free(c->listeners);
    c->listeners = NULL;
    c->nlisteners = 0;
    for (int i = 0; i < c->nfiles; i++)
        free(c->files[i].path);
    free(c->files);
    c->files = NULL;
    c->nfiles = 0;
}

ls_listen_conf_t *
ls_conf_find(ls_conf_t *c, const char *name)
{
    for (int i = 0; i < c->nlisteners; i++)
        if (strcmp(c->listeners[i].name, name) == 0)
            return &c->listeners[i];
    return NULL;
}

int
ls_conf_add_listener(ls_conf_t *c, const ls_listen_conf_t *l, char *err,
                     size_t errlen)
{
    ls_listen_conf_t *n;

    for (int i = 0; i < c->nlisteners; i++) {
        if (strcmp(c->listeners[i].name, l->name) == 0) {
            snprintf(err, errlen, "a listener named \"%s\" already exists "
                     "(give each listen() a distinct name)", l->name);
            return -1;
        }
        if (strcmp(c->listeners[i].addr.url, l->addr.url) == 0) {
            snprintf(err, errlen, "\"%s\" is already listened on by "
                     "listener \"%s\"", l->addr.url, c->listeners[i].name);
            return -1;
        }
    }
    n = realloc(c->listeners, sizeof(*n) * (size_t)(c->nlisteners + 1));
    if (n == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->listeners = n;
    c->listeners[c->nlisteners++] = *l;
    return 0;
}

/* A file of listener's ssl option, recorded once; -1: out of memory. */
int
ls_conf_add_file(ls_conf_t *c, const char *listener, const char *path)
{
    ls_conf_file_t *n;
    char *p;

    for (int i = 0; i < c->nfiles; i++)
        if (strcmp(c->files[i].listener, listener) == 0 &&
            strcmp(c->files[i].path, path) == 0)
            return 0;
    if ((p = strdup(path)) == NULL)
        return -1;
    n = realloc(c->files, sizeof(*n) * (size_t)(c->nfiles + 1));
    if (n == NULL) {
        free(p);
        return -1;
    }
    c->files = n;
    snprintf(n[c->nfiles].listener, sizeof(n[c->nfiles].listener), "%s",
             listener);
    n[c->nfiles++].path = p;
    return 0;
}

static int
conf_writeall(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int
ls_conf_write(const ls_conf_t *c, int fd)
{
    char line[LS_URL_MAX + 4200];
    int n;

#define CONF_PUT(...)                                                         \
    do {                                                                      \
        n = snprintf(line, sizeof(line), __VA_ARGS__);                        \
        if (n < 0 || (size_t)n >= sizeof(line) ||                             \
            conf_writeall(fd, line, (size_t)n) < 0)                           \
            return -1;                                                        \
    } while (0)

    CONF_PUT("setting\tname\t%s\n", c->name);
    CONF_PUT("setting\tstopTimeout\t%.17g\n", c->stop_timeout);
    CONF_PUT("setting\tstopDelay\t%.17g\n", c->stop_delay);
    CONF_PUT("setting\tpidFile\t%s\n", c->pid_file);
    CONF_PUT("setting\tlogFile\t%s\n", c->log_file);
    CONF_PUT("setting\tuser\t%s\n", c->user);
    CONF_PUT("setting\tgroup\t%s\n", c->group);
    CONF_PUT("setting\tlogLevel\t%d\n", c->log_level);
    CONF_PUT("setting\tluaMemoryLimit\t%zu\n", c->lua_memory_limit);
    CONF_PUT("setting\tcallbackTimeout\t%.17g\n", c->callback_timeout);
    CONF_PUT("setting\twatchdogTimeout\t%.17g\n", c->watchdog_timeout);
    CONF_PUT("setting\tmetrics\t%s\n", c->metrics);
    CONF_PUT("setting\ttaskWorkers\t%d\n", c->task_workers);
    CONF_PUT("setting\ttaskQueue\t%d\n", c->task_queue);
    for (int i = 0; i < c->nlisteners; i++) {
        const ls_listen_conf_t *l = &c->listeners[i];
        CONF_PUT("listener\t%s\t%d\t%d\t%d\t%s\n", l->name, l->count,
                 l->reuseport, l->backlog, l->addr.url);
    }
    for (int i = 0; i < c->nshared; i++)
        CONF_PUT("shared\t%s\t%zu\n", c->shared[i].name, c->shared[i].size);
    for (int i = 0; i < c->nfiles; i++)
        CONF_PUT("file\t%s\t%s\n", c->files[i].listener, c->files[i].path);
#undef CONF_PUT
    return 0;
}

/* Split line at tabs into at most max fields; returns the count. */
static int
conf_split(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++) {
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

int
ls_conf_read(ls_conf_t *c, char *text, char *err, size_t errlen)
{
    char *save = NULL;

    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[6];
        int n = conf_split(line, f, 6);

        if (n == 3 && strcmp(f[0], "setting") == 0) {
            if (strcmp(f[1], "name") == 0)
                snprintf(c->name, sizeof(c->name), "%s", f[2]);
            else if (strcmp(f[1], "stopTimeout") == 0)
                c->stop_timeout = strtod(f[2], NULL);
            else if (strcmp(f[1], "stopDelay") == 0)
                c->stop_delay = strtod(f[2], NULL);
            else if (strcmp(f[1], "pidFile") == 0)
                snprintf(c->pid_file, sizeof(c->pid_file), "%s", f[2]);
            else if (strcmp(f[1], "logFile") == 0)
                snprintf(c->log_file, sizeof(c->log_file), "%s", f[2]);
            else if (strcmp(f[1], "user") == 0)
                snprintf(c->user, sizeof(c->user), "%s", f[2]);
            else if (strcmp(f[1], "group") == 0)
                snprintf(c->group, sizeof(c->group), "%s", f[2]);
            else if (strcmp(f[1], "logLevel") == 0)
                c->log_level = atoi(f[2]);
            else if (strcmp(f[1], "luaMemoryLimit") == 0)
                c->lua_memory_limit = (size_t)strtoull(f[2], NULL, 10);
            else if (strcmp(f[1], "callbackTimeout") == 0)
                c->callback_timeout = strtod(f[2], NULL);
            else if (strcmp(f[1], "watchdogTimeout") == 0)
                c->watchdog_timeout = strtod(f[2], NULL);
            else if (strcmp(f[1], "metrics") == 0)
                snprintf(c->metrics, sizeof(c->metrics), "%s", f[2]);
            else if (strcmp(f[1], "taskWorkers") == 0)
                c->task_workers = atoi(f[2]);
            else if (strcmp(f[1], "taskQueue") == 0)
                c->task_queue = atoi(f[2]);
        } else if (n == 3 && strcmp(f[0], "shared") == 0 &&
                   c->nshared < LS_SHARED_MAX) {
            ls_shared_conf_t *s = &c->shared[c->nshared++];
            memset(s, 0, sizeof(*s));
            snprintf(s->name, sizeof(s->name), "%s", f[1]);
            s->size = (size_t)strtoull(f[2], NULL, 10);
        } else if (n == 3 && strcmp(f[0], "file") == 0) {
            if (ls_conf_add_file(c, f[1], f[2]) < 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
        } else if (n == 6 && strcmp(f[0], "listener") == 0) {
            ls_listen_conf_t l;
            memset(&l, 0, sizeof(l));
            snprintf(l.name, sizeof(l.name), "%s", f[1]);
            l.count = atoi(f[2]);
            l.reuseport = atoi(f[3]);
            l.backlog = atoi(f[4]);
            if (ls_listener_parse(f[5], &l.addr, err, errlen) < 0)
                return -1;
            if (ls_conf_add_listener(c, &l, err, errlen) < 0)
                return -1;
        } else {
            snprintf(err, errlen, "validator sent a malformed line");
            return -1;
        }
    }
    return 0;
}
