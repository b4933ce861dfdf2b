/*
 * daemon.h -- becoming a daemon, the pid file, run-time paths derived from
 * the app's path, process titles, and systemd notifications.
 */
#ifndef LS_DAEMON_H
#define LS_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

/* Default paths for an app: <rundir>/<name>-<hash>.{pid,sock,log}. */
int ls_daemon_default_path(const char *app, const char *ext, char *out,
                           size_t outlen);

int ls_daemonize(int *ready_fd, char *err, size_t errlen);
void ls_daemon_report(int ready_fd, int ok, const char *msg);

int ls_pidfile_acquire(const char *path, char *err, size_t errlen);
void ls_pidfile_release(void);
pid_t ls_pidfile_running(const char *path);

void ls_proctitle_init(int argc, char **argv);
void ls_proctitle_set(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/*
 * systemd Type=notify (NOTIFY_SOCKET): state is "READY=1", "RELOADING=1"
 * (MONOTONIC_USEC is added, as systemd's notify-reload wants) or
 * "STOPPING=1"; status, if not NULL, goes along as STATUS= (one line).
 */
void ls_sd_notify(const char *state, const char *status);

#endif
