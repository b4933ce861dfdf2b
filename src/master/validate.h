/*
 * validate.h -- run APP.lua in a throwaway child to learn what it declares.
 */
#ifndef LS_VALIDATE_H
#define LS_VALIDATE_H

#include "core/config.h"

#include <sys/types.h>

#define LS_VALIDATE_TIMEOUT 30.0

/* At once: start the validator, wait for it, read what it learned. */
int ls_validate(const char *app, ls_conf_t *conf, char *err, size_t errlen);
void ls_validate_set_child_hook(void (*hook)(void));

/*
 * The same in steps, for a caller with a loop of its own (the master's
 * reload): start; poll fd and call read on POLLIN and at deadline until it
 * returns 1; then finish (parses, frees). A reaper that takes the
 * validator's exit (waitpid(-1)) hands it over with child(). cancel kills
 * the validator and frees.
 */
typedef struct ls_validation {
    pid_t pid;
    int fd;
    char *buf;
    size_t len, cap;
    double deadline;          /* ls_now() */
    int status, reaped, timed_out, failed;
    const char *app;
} ls_validation_t;

int ls_validation_start(ls_validation_t *v, const char *app, char *err,
                        size_t errlen);
int ls_validation_read(ls_validation_t *v);
int ls_validation_child(ls_validation_t *v, pid_t pid, int status);
int ls_validation_finish(ls_validation_t *v, ls_conf_t *conf, char *err,
                         size_t errlen);
void ls_validation_cancel(ls_validation_t *v);

#endif
