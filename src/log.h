/*
 * log.h -- one logging function for every process.
 *
 * A line is "2026-11-23 09:12:01.123 [info] 1234 worker 0 [echo]: message",
 * written with a single write(2) so that lines from several processes sharing
 * stderr or an O_APPEND log file do not interleave.
 */
#ifndef LS_LOG_H
#define LS_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum { LS_LOG_DEBUG, LS_LOG_INFO, LS_LOG_WARN, LS_LOG_ERROR, LS_LOG_CRIT };

void ls_log_set_role(const char *role);  /* "master", "worker 0 [echo]" */
void ls_log_set_level(int level);
int ls_log_level_from_name(const char *name); /* -1 if unknown */
int ls_log_open_file(const char *path, char *err, size_t errlen);
int ls_log_reopen(void);
int ls_log_fd(void);
void ls_log(int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ls_logv(int level, int err, const char *fmt, va_list ap);
int ls_log_enabled(int level);

#endif
