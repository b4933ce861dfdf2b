/*
 * shdict.h -- a shared dict: a key/value store in one region of memory that
 * the master maps (MAP_SHARED | MAP_ANONYMOUS) before forking, so that every
 * worker of every generation sees the same data. OpenResty's ngx.shared.DICT
 * semantics: values with flags and an expiry, LRU eviction when full (the
 * "forcible" flag), safe variants that refuse instead, counters, lists.
 *
 * No Lua and no event loop here: every call takes the dict's lock (a robust,
 * process-shared mutex), does its work and releases it; nothing in between
 * can raise or longjmp. A process that dies holding the lock is noticed by
 * the next one to take it (EOWNERDEAD), which checks the structure and
 * rebuilds it from what is sound before going on.
 */
#ifndef LS_SHDICT_H
#define LS_SHDICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ls_shdict ls_shdict_t;

/* Value types. */
enum { LS_SHD_NONE, LS_SHD_STR, LS_SHD_INT, LS_SHD_NUM, LS_SHD_BOOL,
       LS_SHD_LIST };

/* Outcomes. */
enum {
    LS_SHD_OK = 0,
    LS_SHD_NOTFOUND,   /* "not found" */
    LS_SHD_EXISTS,     /* "exists" */
    LS_SHD_NOMEM,      /* "no memory" (the dict is full) */
    LS_SHD_NOTNUM,     /* "not a number" */
    LS_SHD_NOTLIST,    /* "value not a list" */
    LS_SHD_ISLIST,     /* "value is a list" */
    LS_SHD_ENOMEM,     /* the caller's buffer could not grow */
    LS_SHD_ELOCK,      /* the lock could not be taken (logged) */
};

/* Store operations. */
enum { LS_SHD_SET, LS_SHD_ADD, LS_SHD_REPLACE };

typedef struct ls_shd_value {
    int type;          /* LS_SHD_* */
    const char *s;     /* STR: the bytes (in the caller's buffer on output) */
    size_t len;
    int64_t i;         /* INT */
    double n;          /* NUM */
    int b;             /* BOOL */
} ls_shd_value_t;

/* A growable buffer of the caller's for what comes out (strings, keys). */
typedef struct ls_shd_buf {
    char *p;
    size_t len, cap;
} ls_shd_buf_t;

#define LS_SHDICT_MIN_SIZE ((size_t)8192)
#define LS_SHDICT_MAX_SIZE ((size_t)1 << 36)
#define LS_SHDICT_KEY_MAX 65535

/* Map and initialize a dict of `size` bytes (its declared size, overhead
 * included); NULL with err filled if mmap fails. */
ls_shdict_t *ls_shdict_create(const char *name, size_t size, char *err,
                              size_t errlen);
void ls_shdict_destroy(ls_shdict_t *d);
const char *ls_shdict_name(const ls_shdict_t *d);
size_t ls_shdict_capacity(const ls_shdict_t *d);  /* the declared size */
/* Bytes of free blocks (read without the lock; may be a moment old). */
size_t ls_shdict_free_space(const ls_shdict_t *d);

/* The master's count of generations using the region (never a worker's). */
int *ls_shdict_refs(ls_shdict_t *d);

/* Lockless figures for status and metrics. */
typedef struct ls_shdict_usage {
    uint64_t keys, used, capacity, free_bytes, evictions, recoveries;
} ls_shdict_usage_t;
void ls_shdict_usage(const ls_shdict_t *d, ls_shdict_usage_t *u);

/* get / get_stale: v (strings copied into buf), flags; *stale set when the
 * value has expired (only returned with allow_stale). */
int ls_shdict_get(ls_shdict_t *d, const char *k, size_t kl, int allow_stale,
                  ls_shd_value_t *v, uint32_t *flags, int *stale,
                  ls_shd_buf_t *buf);
/* set / add / replace (and their safe_ forms with `safe`); v->type NONE
 * deletes. ttl in seconds, 0: never expires. */
int ls_shdict_store(ls_shdict_t *d, int op, int safe, const char *k,
                    size_t kl, const ls_shd_value_t *v, double ttl,
                    uint32_t flags, int *forcible);
/* incr: *io is the step in and the new value out. With init (not NULL) a
 * missing key starts at init (expiring after init_ttl s, 0: never). */
int ls_shdict_incr(ls_shdict_t *d, const char *k, size_t kl,
                   ls_shd_value_t *io, const ls_shd_value_t *init,
                   double init_ttl, int *forcible);
/* lpush / rpush: *len the list's new length. */
int ls_shdict_push(ls_shdict_t *d, const char *k, size_t kl, int left,
                   const ls_shd_value_t *v, size_t *len);
/* lpop / rpop: NOTFOUND for a missing key or an empty list. */
int ls_shdict_pop(ls_shdict_t *d, const char *k, size_t kl, int left,
                  ls_shd_value_t *v, ls_shd_buf_t *buf);
int ls_shdict_llen(ls_shdict_t *d, const char *k, size_t kl, size_t *len);
/* ttl: seconds left, 0 for a key that never expires. */
int ls_shdict_ttl(ls_shdict_t *d, const char *k, size_t kl, double *ttl);
int ls_shdict_expire(ls_shdict_t *d, const char *k, size_t kl, double ttl);
void ls_shdict_flush_all(ls_shdict_t *d);
size_t ls_shdict_flush_expired(ls_shdict_t *d, size_t max);
/* Keys that have not expired, most recently used first, at most max (0: all)
 * into buf as (uint16 length, bytes) records; returns how many or -1. */
long ls_shdict_keys(ls_shdict_t *d, size_t max, ls_shd_buf_t *buf);

/* Check the structure (the lock must be held or the dict private); 0 if
 * sound, else -1 with the first fault in why. For recovery and tests. */
int ls_shdict_check(ls_shdict_t *d, char *why, size_t whylen);
/* Tests: take the lock and keep it, as a process that dies in the middle
 * of a change would, and (damage 1..3) leave the structure as an insert,
 * a hash unlink or an LRU unlink cut short would. */
void ls_shdict_test_hold(ls_shdict_t *d, int damage);

#endif
