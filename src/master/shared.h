/*
 * shared.h -- the master's side of shared dicts: mapping each generation's
 * declared dicts before its workers fork, keeping a dict's region across
 * reloads while its size stays, and unmapping it when no generation uses
 * it any more.
 */
#ifndef LS_SHARED_H
#define LS_SHARED_H

#include "core/config.h"

/* Give every dict of next a region: cur's one of the same name and size
 * (its contents kept), else a new one; logs the dicts that start afresh
 * or go. cur is NULL at startup. -1 with err if a mapping fails (next then
 * holds nothing). */
int ls_shared_attach(ls_conf_t *next, const ls_conf_t *cur, char *err,
                     size_t errlen);
/* status: a line per dict of c ("shared dict cache: ..."), appended at
 * buf (size left); returns the bytes written. */
size_t ls_shared_status(const ls_conf_t *c, char *buf, size_t size);
/* A generation is gone: drop its hold on its dicts. */
void ls_shared_release(ls_conf_t *c);

#endif
