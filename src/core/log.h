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

/*
 * Rate limiting for lines a client can cause (bad requests, oversized
 * packages, timeouts, Lua errors in a connection's callbacks): each cause
 * (a static ls_log_limit_t at its call site) writes at most `burst` lines
 * (LS_LOG_BURST if 0) per second; the rest are counted and summed up in one
 * "<cause>: suppressed N similar messages" line once the second is over, so
 * that nothing a client sends makes the log grow without bound.
 */
typedef struct ls_log_limit {
    const char *cause;              /* names the cause in the summary */
    unsigned burst;                 /* lines per second; 0: LS_LOG_BURST */
    double window;                  /* start of the current second */
    unsigned lines;                 /* written in it */
    int level;                      /* of the last line, for the summary */
    unsigned long long suppressed;  /* dropped since the last summary */
    struct ls_log_limit *next;      /* pending summaries */
    int listed;
} ls_log_limit_t;

#define LS_LOG_BURST 10
#define LS_LOG_LIMIT(cause, burst) {(cause), (burst), 0, 0, 0, 0, NULL, 0}

void ls_log_limited(ls_log_limit_t *lim, int level, int err,
                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Write the summaries whose second is over (all of them if `all`). Returns
 * the seconds until the next one is due, or -1 if none is pending. */
double ls_log_flush_suppressed(int all);
/* Called when a summary becomes pending, so that an event loop can call
 * ls_log_flush_suppressed() once the second is over. */
void ls_log_set_suppress_hook(void (*hook)(void));

#endif
