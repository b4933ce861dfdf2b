/*
 * shdict.c -- the shared dict store (see shdict.h).
 *
 * Layout of a region: the header (struct ls_shdict, with the lock), then
 * fixed-size blocks of SHD_BLK bytes, then the hash buckets (uint32 block
 * numbers). The blocks come first so that a block's address is a constant
 * offset from the header's (shd_blk), with no field to load.
 * Every block begins with the number of the next block of its chain, so
 * a free list, an entry's bytes and a list element's bytes are all chains,
 * and any free block fits any need (no fragmentation). Block numbers start
 * at 1; 0 is "none".
 *
 *   entry     shd_entry_t, then the key and the value bytes, continued in
 *             further blocks (SHD_CONT bytes of header each)
 *   element   one item of a list value: shd_elem_t, then its bytes
 *
 * Every entry sits in its bucket's chain (hnext) and in the LRU list
 * (lprev toward the most recently used head, lnext toward the tail, which
 * is evicted first). A list's value is a shd_list_t: its first and last
 * element and their count. Blocks past `fresh` were never used and are free
 * without being on the free list, so creating a dict touches no page.
 *
 * Time is CLOCK_MONOTONIC in milliseconds, the same clock in every process.
 */
#include "core/shdict.h"
#include "core/log.h"
#include "core/luaserv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SHD_MAGIC 0x6c736431u
#define SHD_BLK 64
#define SHD_CONT 4                 /* a continuation block's header */
#define SHD_EXPIRE_ON_WRITE 2      /* expired keys reclaimed per write */

typedef struct shd_entry {
    uint32_t next;      /* continuation block (first in every block) */
    uint32_t hnext;     /* hash chain */
    uint32_t lprev;     /* LRU: toward the head (more recent) */
    uint32_t lnext;     /* LRU: toward the tail */
    uint32_t hash;
    uint32_t uflags;    /* the user's flags */
    uint64_t expires;   /* monotonic ms; 0: never */
    uint16_t klen;
    uint8_t type;
    uint8_t pad;
    uint32_t vlen;
} shd_entry_t;

typedef struct shd_elem {
    uint32_t next;      /* continuation block */
    uint32_t eprev;     /* toward the list's head */
    uint32_t enext;     /* toward its tail */
    uint32_t vlen;
    uint8_t type;
    uint8_t pad[3];
} shd_elem_t;

typedef struct shd_list {
    uint32_t head, tail, count;
} shd_list_t;

struct ls_shdict {
    uint32_t magic;
    int refs;                /* the master's: generations using it */
    pthread_mutex_t lock;
    char name[LS_NAME_MAX];
    uint64_t size;           /* declared */
    uint64_t map_size;
    size_t buckets_off;      /* the blocks start at SHD_HDR */
    uint32_t nbuckets, nblocks;
    uint32_t fresh;          /* first never-used block */
    uint32_t nfree;          /* free-list blocks + never-used ones */
    uint32_t free_head;
    uint32_t lru_head, lru_tail;
    uint32_t nkeys;
    uint32_t writing;        /* a change is under way (for recovery) */
    uint64_t evictions, recoveries;
};

#define SHD_HDR (((sizeof(struct ls_shdict) + SHD_BLK - 1) / SHD_BLK) * SHD_BLK)
#define SHD_ENTRY_DATA ((size_t)sizeof(shd_entry_t))
#define SHD_ELEM_DATA ((size_t)sizeof(shd_elem_t))

_Static_assert(sizeof(shd_entry_t) == 40, "entry header");
_Static_assert(sizeof(shd_elem_t) == 20, "element header");

static inline unsigned char *
shd_blk(const ls_shdict_t *d, uint32_t i)
{
    return (unsigned char *)d + SHD_HDR + (size_t)(i - 1) * SHD_BLK;
}

static inline uint32_t *
shd_buckets(const ls_shdict_t *d)
{
    return (uint32_t *)((unsigned char *)d + d->buckets_off);
}

#define E(d, i) ((shd_entry_t *)shd_blk((d), (i)))
#define EL(d, i) ((shd_elem_t *)shd_blk((d), (i)))
#define NEXT(d, i) (*(uint32_t *)shd_blk((d), (i)))

static uint64_t
shd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The clock is read at most once per operation, and only when an expiry
 * is involved (*now 0: not read yet). */
static inline uint64_t
shd_clock(uint64_t *now)
{
    if (*now == 0)
        *now = shd_now();
    return *now;
}

static uint64_t
shd_deadline(uint64_t *now, double ttl)
{
    uint64_t ms;
    if (!(ttl > 0))
        return 0;
    if (ttl > 1e12) /* some 30000 years (and inf, whose cast is undefined) */
        ttl = 1e12;
    ms = (uint64_t)(ttl * 1000 + 0.5);
    return shd_clock(now) + (ms ? ms : 1);
}

static inline int
shd_expired(const shd_entry_t *e, uint64_t *now)
{
    return e->expires != 0 && e->expires <= shd_clock(now);
}

/* A multiplicative hash over 8 bytes at a time (FNV-1a's byte loop cost a
 * few instructions per byte of every key of every call). */
static inline uint32_t
shd_hash(const char *k, size_t kl)
{
    const uint64_t m = 0x9e3779b97f4a7c15ull;
    uint64_t h = (uint64_t)kl * m, w;

    for (; kl >= 8; k += 8, kl -= 8) {
        memcpy(&w, k, 8);
        h = (h ^ w) * m;
        h ^= h >> 29;
    }
    if (kl > 0) {
        w = 0;
        if (kl >= 4) {
            uint32_t a, b;
            memcpy(&a, k, 4);
            memcpy(&b, k + kl - 4, 4); /* overlaps a for kl < 8 */
            w = (uint64_t)a << 32 | b;
        } else {
            w = (uint64_t)(unsigned char)k[0] << 16 |
                (uint64_t)(unsigned char)k[kl >> 1] << 8 |
                (unsigned char)k[kl - 1];
        }
        h = (h ^ w) * m;
    }
    h ^= h >> 32;
    return (uint32_t)h;
}

/* Blocks for `bytes` after a first block with `first` bytes of header. */
static inline uint32_t
shd_blocks_for(size_t bytes, size_t first)
{
    size_t room = SHD_BLK - first;
    if (bytes <= room)
        return 1;
    return 1 + (uint32_t)((bytes - room + (SHD_BLK - SHD_CONT) - 1) /
                          (SHD_BLK - SHD_CONT));
}

/* shd_io across blocks. */
static void
shd_io_chain(const ls_shdict_t *d, uint32_t i, size_t off, size_t pos,
             void *p, size_t len, int write)
{
    unsigned char *q = p;
    size_t room = SHD_BLK - off;

    while (pos >= room) {
        pos -= room;
        i = NEXT(d, i);
        off = SHD_CONT;
        room = SHD_BLK - SHD_CONT;
    }
    while (len > 0) {
        unsigned char *b = shd_blk(d, i) + off + pos;
        size_t n = room - pos;
        if (n > len)
            n = len;
        if (write)
            memcpy(b, q, n);
        else
            memcpy(q, b, n);
        q += n;
        len -= n;
        pos = 0;
        if (len > 0) {
            i = NEXT(d, i);
            off = SHD_CONT;
            room = SHD_BLK - SHD_CONT;
        }
    }
}

/* Copy len bytes at position pos of the bytes of the chain from block i
 * (whose header is off bytes) to p, or from p when `write`. Inline: the
 * callers' lengths are often constants (8 for a number). */
static inline void
shd_io(const ls_shdict_t *d, uint32_t i, size_t off, size_t pos, void *p,
       size_t len, int write)
{
    if (pos + len <= SHD_BLK - off) { /* all in this block: most of them */
        unsigned char *b = shd_blk(d, i) + off + pos;
        if (write)
            memcpy(b, p, len);
        else
            memcpy(p, b, len);
        return;
    }
    shd_io_chain(d, i, off, pos, p, len, write);
}

/* n (at most SHD_BLK) bytes at a and b equal: no call to memcmp for the
 * short keys most are. */
static inline int
shd_memeq(const unsigned char *a, const char *b, size_t n)
{
    uint64_t x, y;
    uint32_t u, v;

    for (; n >= 8; a += 8, b += 8, n -= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    if (n >= 4) {
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        if (u != v)
            return 0;
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return u == v;
    }
    for (; n > 0; n--)
        if (*a++ != (unsigned char)*b++)
            return 0;
    return 1;
}

static inline int
shd_keyeq(const ls_shdict_t *d, uint32_t i, const char *k, size_t kl)
{
    size_t off = SHD_ENTRY_DATA, room = SHD_BLK - SHD_ENTRY_DATA;
    while (kl > 0) {
        size_t n = kl < room ? kl : room;
        if (!shd_memeq(shd_blk(d, i) + off, k, n))
            return 0;
        k += n;
        kl -= n;
        i = NEXT(d, i);
        off = SHD_CONT;
        room = SHD_BLK - SHD_CONT;
    }
    return 1;
}

/* ---- blocks ------------------------------------------------------------ */

static uint32_t
shd_pop_block(ls_shdict_t *d)
{
    uint32_t i = d->free_head;
    if (i != 0)
        d->free_head = NEXT(d, i);
    else
        i = d->fresh++;
    d->nfree--;
    NEXT(d, i) = 0;
    return i;
}

/* A chain of n blocks (d->nfree >= n). */
static uint32_t
shd_alloc(ls_shdict_t *d, uint32_t n)
{
    uint32_t head = shd_pop_block(d), last = head;
    for (uint32_t k = 1; k < n; k++) {
        uint32_t i = shd_pop_block(d);
        NEXT(d, last) = i;
        last = i;
    }
    return head;
}

static void
shd_free_chain(ls_shdict_t *d, uint32_t i)
{
    while (i != 0) {
        uint32_t nx = NEXT(d, i);
        NEXT(d, i) = d->free_head;
        d->free_head = i;
        d->nfree++;
        i = nx;
    }
}

/* ---- index and LRU ----------------------------------------------------- */

/* The link (a bucket or an entry's hnext) that holds key k, or the empty
 * link at the end of its chain. */
static inline uint32_t *
shd_find(ls_shdict_t *d, const char *k, size_t kl, uint32_t h)
{
    uint32_t *link = &shd_buckets(d)[h & (d->nbuckets - 1)];
    while (*link != 0) {
        shd_entry_t *e = E(d, *link);
        if (e->hash == h && e->klen == kl && shd_keyeq(d, *link, k, kl))
            return link;
        link = &e->hnext;
    }
    return link;
}

static void
shd_lru_unlink(ls_shdict_t *d, uint32_t i)
{
    shd_entry_t *e = E(d, i);
    if (e->lprev)
        E(d, e->lprev)->lnext = e->lnext;
    else
        d->lru_head = e->lnext;
    if (e->lnext)
        E(d, e->lnext)->lprev = e->lprev;
    else
        d->lru_tail = e->lprev;
    e->lprev = e->lnext = 0;
}

static void
shd_lru_push(ls_shdict_t *d, uint32_t i)
{
    shd_entry_t *e = E(d, i);
    e->lprev = 0;
    e->lnext = d->lru_head;
    if (d->lru_head)
        E(d, d->lru_head)->lprev = i;
    else
        d->lru_tail = i;
    d->lru_head = i;
}

static void
shd_touch(ls_shdict_t *d, uint32_t i)
{
    if (d->lru_head != i) {
        shd_lru_unlink(d, i);
        shd_lru_push(d, i);
    }
}

static void
shd_list_get(const ls_shdict_t *d, uint32_t i, shd_list_t *l)
{
    shd_io(d, i, SHD_ENTRY_DATA, E(d, i)->klen, l, sizeof(*l), 0);
}

static void
shd_list_put(ls_shdict_t *d, uint32_t i, const shd_list_t *l)
{
    shd_io(d, i, SHD_ENTRY_DATA, E(d, i)->klen, (void *)l, sizeof(*l), 1);
}

/* Remove entry i from the index and the LRU list and free its blocks. */
static void
shd_remove(ls_shdict_t *d, uint32_t i)
{
    shd_entry_t *e = E(d, i);
    uint32_t *link = &shd_buckets(d)[e->hash & (d->nbuckets - 1)];

    while (*link != 0 && *link != i)
        link = &E(d, *link)->hnext;
    if (*link == i)
        *link = e->hnext;
    shd_lru_unlink(d, i);
    if (e->type == LS_SHD_LIST) {
        shd_list_t l;
        shd_list_get(d, i, &l);
        for (uint32_t x = l.head; x != 0;) {
            uint32_t nx = EL(d, x)->enext;
            shd_free_chain(d, x);
            x = nx;
        }
    }
    shd_free_chain(d, i);
    d->nkeys--;
}

/* Reclaim up to max expired keys at the LRU tail (as nginx does on every
 * write, so that expired keys do not wait for eviction). */
static void
shd_expire_tail(ls_shdict_t *d, uint64_t *now, int max)
{
    for (int n = 0; n < max && d->lru_tail != 0; n++) {
        if (!shd_expired(E(d, d->lru_tail), now))
            return;
        shd_remove(d, d->lru_tail);
    }
}

/*
 * Make n blocks free: expired keys from the LRU tail first, then (unless
 * safe) the least recently used ones, setting *forcible. `keep` (an entry
 * being changed) is never evicted. -1 when it cannot be done.
 */
static int
shd_room(ls_shdict_t *d, uint32_t n, int safe, uint32_t keep, uint64_t *now,
         int *forcible)
{
    if (n > d->nblocks)
        return -1;
    while (d->nfree < n) {
        uint32_t v = d->lru_tail;
        int expired;
        if (v != 0 && v == keep)
            v = E(d, v)->lprev;
        if (v == 0)
            return -1;
        expired = shd_expired(E(d, v), now);
        if (!expired && safe)
            return -1;
        if (!expired) {
            if (forcible)
                *forcible = 1;
            d->evictions++;
        }
        shd_remove(d, v);
    }
    return 0;
}

/* ---- lock and recovery ------------------------------------------------- */

static int shd_scan(ls_shdict_t *d, int repair, char *why, size_t whylen);

static void
shd_recover(ls_shdict_t *d)
{
    char why[200] = "";
    uint32_t before = d->nkeys;

    d->recoveries++;
    if (!d->writing) {
        ls_log(LS_LOG_WARN, 0, "shared dict \"%s\": a process died holding "
               "its lock (nothing was being changed)", d->name);
        return;
    }
    if (shd_scan(d, 0, why, sizeof(why)) == 0) {
        ls_log(LS_LOG_WARN, 0, "shared dict \"%s\": a process died holding "
               "its lock while changing it; the structure checks out",
               d->name);
    } else {
        shd_scan(d, 1, NULL, 0);
        ls_log(LS_LOG_WARN, 0, "shared dict \"%s\": a process died holding "
               "its lock while changing it (%s); rebuilt with the %u sound "
               "keys of %u", d->name, why, d->nkeys, before);
    }
    d->writing = 0;
}

/* Start fetching the bucket of hash h before the lock is taken: the
 * miss on it then overlaps the lock's atomic instead of following it. (A
 * prefetch, not a load: a locked instruction waits for earlier loads.) */
static inline void
shd_prefetch(const ls_shdict_t *d, uint32_t h)
{
    __builtin_prefetch(&shd_buckets(d)[h & (d->nbuckets - 1)]);
}

static int
shd_lock(ls_shdict_t *d, int write)
{
    int r = pthread_mutex_lock(&d->lock);
    if (r == EOWNERDEAD) {
        shd_recover(d);
        pthread_mutex_consistent(&d->lock);
    } else if (r != 0) {
        static ls_log_limit_t lim = LS_LOG_LIMIT("shared dict lock", 1);
        ls_log_limited(&lim, LS_LOG_ERROR, r, "shared dict \"%s\": "
                       "pthread_mutex_lock() failed", d->name);
        return -1;
    }
    if (write)
        d->writing = 1;
    return 0;
}

static void
shd_unlock(ls_shdict_t *d)
{
    d->writing = 0;
    pthread_mutex_unlock(&d->lock);
}

void
ls_shdict_test_hold(ls_shdict_t *d, int damage)
{
    if (shd_lock(d, 1) < 0)
        return;
    d->writing = 1;
    if (damage == 1 && d->nfree > 0) /* an insert cut short: a lost block */
        shd_pop_block(d);
    else if (damage == 2 && d->lru_head != 0) /* a wild hash link */
        E(d, d->lru_head)->hnext = d->nblocks + 7;
    else if (damage == 3 && d->lru_tail != 0) /* an unlink cut short */
        d->lru_tail = E(d, d->lru_tail)->lprev;
}

/* ---- region ------------------------------------------------------------ */

ls_shdict_t *
ls_shdict_create(const char *name, size_t size, char *err, size_t errlen)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t map, hdr, usable, nb;
    uint32_t nbuckets = 8;
    pthread_mutexattr_t a;
    ls_shdict_t *d;
    int r;

    if (size < LS_SHDICT_MIN_SIZE || size > LS_SHDICT_MAX_SIZE) {
        snprintf(err, errlen, "shared dict \"%s\": size %zu out of range",
                 name, size);
        return NULL;
    }
    if (page <= 0)
        page = 4096;
    map = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
    d = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (d == MAP_FAILED) {
        snprintf(err, errlen, "shared dict \"%s\": mmap() of %zu bytes "
                 "failed: %s", name, map, strerror(errno));
        return NULL;
    }
    hdr = SHD_HDR;
    usable = size - hdr;
    nb = usable / (SHD_BLK + 2); /* a bucket (4 bytes) per 2 blocks */
    while ((size_t)nbuckets * 2 <= nb / 2 && nbuckets < (1u << 30))
        nbuckets *= 2;
    d->magic = SHD_MAGIC;
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->size = size;
    d->map_size = map;
    d->nbuckets = nbuckets;
    d->nblocks = (uint32_t)((size - hdr - (size_t)nbuckets * 4) / SHD_BLK);
    d->buckets_off = hdr + (size_t)d->nblocks * SHD_BLK;
    d->fresh = 1;
    d->nfree = d->nblocks;
    if ((r = pthread_mutexattr_init(&a)) != 0 ||
        (r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0 ||
        (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0 ||
        (r = pthread_mutex_init(&d->lock, &a)) != 0) {
        snprintf(err, errlen, "shared dict \"%s\": cannot make its lock: %s",
                 name, strerror(r));
        munmap(d, map);
        return NULL;
    }
    pthread_mutexattr_destroy(&a);
    return d;
}

void
ls_shdict_destroy(ls_shdict_t *d)
{
    if (d != NULL) {
        pthread_mutex_destroy(&d->lock);
        munmap(d, d->map_size);
    }
}

const char *
ls_shdict_name(const ls_shdict_t *d)
{
    return d->name;
}

size_t
ls_shdict_capacity(const ls_shdict_t *d)
{
    return d->size;
}

size_t
ls_shdict_free_space(const ls_shdict_t *d)
{
    return (size_t)__atomic_load_n(&d->nfree, __ATOMIC_RELAXED) * SHD_BLK;
}

int *
ls_shdict_refs(ls_shdict_t *d)
{
    return &d->refs;
}

void
ls_shdict_usage(const ls_shdict_t *d, ls_shdict_usage_t *u)
{
    uint32_t nfree = __atomic_load_n(&d->nfree, __ATOMIC_RELAXED);
    u->keys = __atomic_load_n(&d->nkeys, __ATOMIC_RELAXED);
    u->capacity = d->size;
    u->free_bytes = (uint64_t)nfree * SHD_BLK;
    u->used = (uint64_t)(d->nblocks - nfree) * SHD_BLK;
    u->evictions = __atomic_load_n(&d->evictions, __ATOMIC_RELAXED);
    u->recoveries = __atomic_load_n(&d->recoveries, __ATOMIC_RELAXED);
}

/* ---- values ------------------------------------------------------------ */

static size_t
shd_value_len(const ls_shd_value_t *v)
{
    switch (v->type) {
    case LS_SHD_STR:
        return v->len;
    case LS_SHD_INT:
    case LS_SHD_NUM:
        return 8;
    case LS_SHD_BOOL:
        return 1;
    default:
        return 0;
    }
}

/* Write v's bytes at pos of the chain from block i (header off). */
static void
shd_value_put(ls_shdict_t *d, uint32_t i, size_t off, size_t pos,
              const ls_shd_value_t *v)
{
    unsigned char b;
    switch (v->type) {
    case LS_SHD_STR:
        shd_io(d, i, off, pos, (void *)v->s, v->len, 1);
        break;
    case LS_SHD_INT:
        shd_io(d, i, off, pos, (void *)&v->i, 8, 1);
        break;
    case LS_SHD_NUM:
        shd_io(d, i, off, pos, (void *)&v->n, 8, 1);
        break;
    case LS_SHD_BOOL:
        b = v->b ? 1 : 0;
        shd_io(d, i, off, pos, &b, 1, 1);
        break;
    }
}

/* Make buf hold len + 1 bytes; -1 if it cannot grow. */
static int
shd_buf_grow(ls_shd_buf_t *buf, size_t len)
{
    size_t cap = buf->cap ? buf->cap : 256;
    char *p;
    while (cap < len + 1)
        cap *= 2;
    if ((p = realloc(buf->p, cap)) == NULL)
        return -1;
    buf->p = p;
    buf->cap = cap;
    return 0;
}

/* Read a value of type/len at pos into v (strings into buf). Only the
 * fields of v's type are set. */
static inline int
shd_value_get(const ls_shdict_t *d, uint32_t i, size_t off, size_t pos,
              int type, size_t len, ls_shd_value_t *v, ls_shd_buf_t *buf)
{
    unsigned char b = 0;
    v->type = type;
    switch (type) {
    case LS_SHD_STR:
        if (buf->cap < len + 1 && shd_buf_grow(buf, len) < 0)
            return -1;
        shd_io(d, i, off, pos, buf->p, len, 0);
        buf->len = len;
        v->s = buf->p;
        v->len = len;
        break;
    case LS_SHD_INT:
        shd_io(d, i, off, pos, &v->i, 8, 0);
        break;
    case LS_SHD_NUM:
        shd_io(d, i, off, pos, &v->n, 8, 0);
        break;
    case LS_SHD_BOOL:
        shd_io(d, i, off, pos, &b, 1, 0);
        v->b = b;
        break;
    }
    return 0;
}

/* A new entry for (k, h) of vlen value bytes at the head of the LRU list;
 * room has been made. */
static uint32_t
shd_insert(ls_shdict_t *d, uint32_t *link, const char *k, size_t kl,
           uint32_t h, int type, size_t vlen, uint64_t expires,
           uint32_t uflags)
{
    uint32_t i = shd_alloc(d, shd_blocks_for(kl + vlen, SHD_ENTRY_DATA));
    shd_entry_t *e = E(d, i);

    e->hash = h;
    e->klen = (uint16_t)kl;
    e->type = (uint8_t)type;
    e->vlen = (uint32_t)vlen;
    e->expires = expires;
    e->uflags = uflags;
    shd_io(d, i, SHD_ENTRY_DATA, 0, (void *)k, kl, 1);
    e->hnext = 0;
    *link = i;
    shd_lru_push(d, i);
    d->nkeys++;
    return i;
}

/* ---- operations -------------------------------------------------------- */

int
ls_shdict_get(ls_shdict_t *d, const char *k, size_t kl, int allow_stale,
              ls_shd_value_t *v, uint32_t *flags, int *stale,
              ls_shd_buf_t *buf)
{
    uint32_t h = shd_hash(k, kl), i;
    uint64_t now = 0;
    shd_entry_t *e;
    int rc = LS_SHD_OK;

    shd_prefetch(d, h);
    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    i = *shd_find(d, k, kl, h);
    *stale = 0;
    if (i == 0) {
        rc = LS_SHD_NOTFOUND;
        goto done;
    }
    e = E(d, i);
    if (shd_expired(e, &now)) {
        if (!allow_stale) {
            rc = LS_SHD_NOTFOUND;
            goto done;
        }
        *stale = 1;
    }
    if (e->type == LS_SHD_LIST) {
        rc = LS_SHD_ISLIST;
        goto done;
    }
    *flags = e->uflags;
    if (shd_value_get(d, i, SHD_ENTRY_DATA, e->klen, e->type, e->vlen, v,
                      buf) < 0)
        rc = LS_SHD_ENOMEM;
    else if (!*stale)
        shd_touch(d, i);
done:
    shd_unlock(d);
    return rc;
}

int
ls_shdict_store(ls_shdict_t *d, int op, int safe, const char *k, size_t kl,
                const ls_shd_value_t *v, double ttl, uint32_t flags,
                int *forcible)
{
    uint32_t h = shd_hash(k, kl), *link, i, need;
    size_t vlen = shd_value_len(v);
    uint64_t now = 0;
    int live, rc = LS_SHD_OK;

    *forcible = 0;
    shd_prefetch(d, h);
    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    now = 0;
    shd_expire_tail(d, &now, SHD_EXPIRE_ON_WRITE);
    link = shd_find(d, k, kl, h);
    i = *link;
    live = i != 0 && !shd_expired(E(d, i), &now);
    if (op == LS_SHD_ADD && live) {
        rc = LS_SHD_EXISTS;
        goto done;
    }
    if (op == LS_SHD_REPLACE && !live) {
        rc = LS_SHD_NOTFOUND;
        goto done;
    }
    if (v->type == LS_SHD_NONE) {
        if (i != 0)
            shd_remove(d, i);
        goto done;
    }
    need = shd_blocks_for(kl + vlen, SHD_ENTRY_DATA);
    if (i != 0 && E(d, i)->type != LS_SHD_LIST &&
        shd_blocks_for(kl + E(d, i)->vlen, SHD_ENTRY_DATA) == need) {
        shd_entry_t *e = E(d, i); /* the same blocks: in place */
        e->type = (uint8_t)v->type;
        e->vlen = (uint32_t)vlen;
        e->uflags = flags;
        e->expires = shd_deadline(&now, ttl);
        shd_value_put(d, i, SHD_ENTRY_DATA, kl, v);
        shd_touch(d, i);
        goto done;
    }
    if (i != 0)
        shd_remove(d, i);
    if (shd_room(d, need, safe, 0, &now, forcible) < 0) {
        rc = LS_SHD_NOMEM;
        goto done;
    }
    link = shd_find(d, k, kl, h); /* eviction may have changed the chain */
    i = shd_insert(d, link, k, kl, h, v->type, vlen, shd_deadline(&now, ttl),
                   flags);
    shd_value_put(d, i, SHD_ENTRY_DATA, kl, v);
done:
    shd_unlock(d);
    return rc;
}

int
ls_shdict_incr(ls_shdict_t *d, const char *k, size_t kl, ls_shd_value_t *io,
               const ls_shd_value_t *init, double init_ttl, int *forcible)
{
    uint32_t h = shd_hash(k, kl), *link, i;
    ls_shd_value_t cur, step = *io;
    ls_shd_buf_t nobuf = {NULL, 0, 0};
    uint64_t now = 0;
    int rc = LS_SHD_OK;

    *forcible = 0;
    shd_prefetch(d, h);
    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    now = 0;
    link = shd_find(d, k, kl, h);
    i = *link;
    if (i != 0 && shd_expired(E(d, i), &now)) {
        if (init == NULL) {
            rc = LS_SHD_NOTFOUND;
            goto done;
        }
        shd_remove(d, i);
        i = 0;
    }
    if (i == 0) {
        if (init == NULL) {
            rc = LS_SHD_NOTFOUND;
            goto done;
        }
        cur = *init;
    } else {
        shd_entry_t *e = E(d, i);
        if (e->type != LS_SHD_INT && e->type != LS_SHD_NUM) {
            rc = LS_SHD_NOTNUM;
            goto done;
        }
        shd_value_get(d, i, SHD_ENTRY_DATA, e->klen, e->type, 8, &cur,
                      &nobuf);
    }
    if (cur.type == LS_SHD_INT && step.type == LS_SHD_INT) {
        io->type = LS_SHD_INT; /* wraps around, as Lua's integers do */
        io->i = (int64_t)((uint64_t)cur.i + (uint64_t)step.i);
    } else {
        io->type = LS_SHD_NUM;
        io->n = (cur.type == LS_SHD_INT ? (double)cur.i : cur.n) +
                (step.type == LS_SHD_INT ? (double)step.i : step.n);
    }
    if (i != 0) {
        E(d, i)->type = (uint8_t)io->type;
        shd_value_put(d, i, SHD_ENTRY_DATA, kl, io);
        shd_touch(d, i);
        goto done;
    }
    shd_expire_tail(d, &now, SHD_EXPIRE_ON_WRITE);
    if (shd_room(d, shd_blocks_for(kl + 8, SHD_ENTRY_DATA), 0, 0, &now,
                 forcible) < 0) {
        rc = LS_SHD_NOMEM;
        goto done;
    }
    link = shd_find(d, k, kl, h);
    i = shd_insert(d, link, k, kl, h, io->type, 8,
                   shd_deadline(&now, init_ttl), 0);
    shd_value_put(d, i, SHD_ENTRY_DATA, kl, io);
done:
    shd_unlock(d);
    return rc;
}

int
ls_shdict_push(ls_shdict_t *d, const char *k, size_t kl, int left,
               const ls_shd_value_t *v, size_t *len)
{
    uint32_t h = shd_hash(k, kl), *link, i, x, need;
    size_t vlen = shd_value_len(v);
    shd_list_t l = {0, 0, 0};
    uint64_t now = 0;
    int rc = LS_SHD_OK;

    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    now = 0;
    shd_expire_tail(d, &now, SHD_EXPIRE_ON_WRITE);
    link = shd_find(d, k, kl, h);
    i = *link;
    if (i != 0 && shd_expired(E(d, i), &now)) {
        shd_remove(d, i);
        i = 0;
    }
    if (i != 0 && E(d, i)->type != LS_SHD_LIST) {
        rc = LS_SHD_NOTLIST;
        goto done;
    }
    need = shd_blocks_for(vlen, SHD_ELEM_DATA);
    if (i == 0)
        need += shd_blocks_for(kl + sizeof(shd_list_t), SHD_ENTRY_DATA);
    if (shd_room(d, need, 0, i, &now, NULL) < 0) {
        rc = LS_SHD_NOMEM;
        goto done;
    }
    if (i == 0) {
        link = shd_find(d, k, kl, h);
        i = shd_insert(d, link, k, kl, h, LS_SHD_LIST, sizeof(shd_list_t), 0,
                       0);
    } else {
        shd_list_get(d, i, &l);
    }
    x = shd_alloc(d, shd_blocks_for(vlen, SHD_ELEM_DATA));
    EL(d, x)->vlen = (uint32_t)vlen;
    EL(d, x)->type = (uint8_t)v->type;
    shd_value_put(d, x, SHD_ELEM_DATA, 0, v);
    if (left) {
        EL(d, x)->eprev = 0;
        EL(d, x)->enext = l.head;
        if (l.head)
            EL(d, l.head)->eprev = x;
        else
            l.tail = x;
        l.head = x;
    } else {
        EL(d, x)->enext = 0;
        EL(d, x)->eprev = l.tail;
        if (l.tail)
            EL(d, l.tail)->enext = x;
        else
            l.head = x;
        l.tail = x;
    }
    l.count++;
    shd_list_put(d, i, &l);
    shd_touch(d, i);
    *len = l.count;
done:
    shd_unlock(d);
    return rc;
}

int
ls_shdict_pop(ls_shdict_t *d, const char *k, size_t kl, int left,
              ls_shd_value_t *v, ls_shd_buf_t *buf)
{
    uint32_t h = shd_hash(k, kl), i, x;
    uint64_t now = 0;
    shd_list_t l;
    int rc = LS_SHD_OK;

    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    i = *shd_find(d, k, kl, h);
    if (i == 0 || shd_expired(E(d, i), &now)) {
        rc = LS_SHD_NOTFOUND;
        goto done;
    }
    if (E(d, i)->type != LS_SHD_LIST) {
        rc = LS_SHD_NOTLIST;
        goto done;
    }
    shd_list_get(d, i, &l);
    x = left ? l.head : l.tail;
    if (x == 0) {
        rc = LS_SHD_NOTFOUND;
        goto done;
    }
    if (shd_value_get(d, x, SHD_ELEM_DATA, 0, EL(d, x)->type,
                      EL(d, x)->vlen, v, buf) < 0) {
        rc = LS_SHD_ENOMEM;
        goto done;
    }
    if (left) {
        l.head = EL(d, x)->enext;
        if (l.head)
            EL(d, l.head)->eprev = 0;
        else
            l.tail = 0;
    } else {
        l.tail = EL(d, x)->eprev;
        if (l.tail)
            EL(d, l.tail)->enext = 0;
        else
            l.head = 0;
    }
    l.count--;
    shd_free_chain(d, x);
    if (l.count == 0) {
        shd_list_put(d, i, &l);
        shd_remove(d, i); /* an emptied list goes, as in OpenResty */
    } else {
        shd_list_put(d, i, &l);
        shd_touch(d, i);
    }
done:
    shd_unlock(d);
    return rc;
}

int
ls_shdict_llen(ls_shdict_t *d, const char *k, size_t kl, size_t *len)
{
    uint32_t h = shd_hash(k, kl), i;
    uint64_t now = 0;
    shd_list_t l;
    int rc = LS_SHD_OK;

    *len = 0;
    if (shd_lock(d, 0) < 0)
        return LS_SHD_ELOCK;
    i = *shd_find(d, k, kl, h);
    if (i != 0 && !shd_expired(E(d, i), &now)) {
        if (E(d, i)->type != LS_SHD_LIST) {
            rc = LS_SHD_NOTLIST;
        } else {
            shd_list_get(d, i, &l);
            *len = l.count;
        }
    }
    shd_unlock(d);
    return rc;
}

int
ls_shdict_ttl(ls_shdict_t *d, const char *k, size_t kl, double *ttl)
{
    uint32_t h = shd_hash(k, kl), i;
    uint64_t now = 0;
    int rc = LS_SHD_OK;

    if (shd_lock(d, 0) < 0)
        return LS_SHD_ELOCK;
    now = 0;
    i = *shd_find(d, k, kl, h);
    if (i == 0 || shd_expired(E(d, i), &now))
        rc = LS_SHD_NOTFOUND;
    else if (E(d, i)->expires == 0)
        *ttl = 0;
    else
        *ttl = (double)(E(d, i)->expires - now) / 1000.0;
    shd_unlock(d);
    return rc;
}

int
ls_shdict_expire(ls_shdict_t *d, const char *k, size_t kl, double ttl)
{
    uint32_t h = shd_hash(k, kl), i;
    uint64_t now = 0;
    int rc = LS_SHD_OK;

    if (shd_lock(d, 1) < 0)
        return LS_SHD_ELOCK;
    now = 0;
    i = *shd_find(d, k, kl, h);
    if (i == 0 || shd_expired(E(d, i), &now))
        rc = LS_SHD_NOTFOUND;
    else
        E(d, i)->expires = shd_deadline(&now, ttl);
    shd_unlock(d);
    return rc;
}

void
ls_shdict_flush_all(ls_shdict_t *d)
{
    if (shd_lock(d, 1) < 0)
        return;
    for (uint32_t i = d->lru_head; i != 0; i = E(d, i)->lnext)
        E(d, i)->expires = 1; /* long gone: get_stale still sees them */
    shd_unlock(d);
}

size_t
ls_shdict_flush_expired(ls_shdict_t *d, size_t max)
{
    size_t n = 0;
    uint64_t now = 0;

    if (shd_lock(d, 1) < 0)
        return 0;
    now = 0;
    for (uint32_t i = d->lru_tail; i != 0 && (max == 0 || n < max);) {
        uint32_t prev = E(d, i)->lprev;
        if (shd_expired(E(d, i), &now)) {
            shd_remove(d, i);
            n++;
        }
        i = prev;
    }
    shd_unlock(d);
    return n;
}

long
ls_shdict_keys(ls_shdict_t *d, size_t max, ls_shd_buf_t *buf)
{
    long n = 0;
    uint64_t now = 0;

    buf->len = 0;
    if (shd_lock(d, 0) < 0)
        return -1;
    now = 0;
    for (uint32_t i = d->lru_head; i != 0 && (max == 0 || (size_t)n < max);
         i = E(d, i)->lnext) {
        shd_entry_t *e = E(d, i);
        uint16_t kl = e->klen;
        if (shd_expired(e, &now))
            continue;
        if (buf->cap < buf->len + 2 + kl) {
            size_t cap = buf->cap ? buf->cap : 4096;
            char *p;
            while (cap < buf->len + 2 + kl)
                cap *= 2;
            if ((p = realloc(buf->p, cap)) == NULL) {
                n = -1;
                break;
            }
            buf->p = p;
            buf->cap = cap;
        }
        memcpy(buf->p + buf->len, &kl, 2);
        shd_io(d, i, SHD_ENTRY_DATA, 0, buf->p + buf->len + 2, kl, 0);
        buf->len += 2 + (size_t)kl;
        n++;
    }
    shd_unlock(d);
    return n;
}

/* ---- check and repair -------------------------------------------------- */

typedef struct shd_scan {
    ls_shdict_t *d;
    unsigned char *used;    /* a bit per block: belongs to a sound chain */
    unsigned char *head;    /* a bit per block: an entry's first block */
    char *kbuf;             /* a key, to check its hash */
} shd_scan_t;

#define BIT(m, i) ((m)[(i) >> 3] & (1u << ((i) & 7)))
#define SETBIT(m, i) ((m)[(i) >> 3] |= (unsigned char)(1u << ((i) & 7)))
#define CLRBIT(m, i) ((m)[(i) >> 3] &= (unsigned char)~(1u << ((i) & 7)))

static int
shd_scan_valid(const shd_scan_t *s, uint32_t i)
{
    return i >= 1 && i < s->d->fresh && !BIT(s->used, i);
}

/* Mark the n blocks of the chain from i; 0, or -1 (nothing left marked)
 * if it leaves the used blocks, meets a marked one or is not n long. */
static int
shd_scan_chain(shd_scan_t *s, uint32_t i, uint32_t n)
{
    uint32_t k = 0, x = i;
    for (; k < n; k++) {
        if (!shd_scan_valid(s, x))
            break;
        SETBIT(s->used, x);
        x = NEXT(s->d, x);
    }
    if (k == n && x == 0)
        return 0;
    for (x = i; k > 0; k--) { /* the same path back */
        uint32_t nx = NEXT(s->d, x);
        CLRBIT(s->used, x);
        x = nx;
    }
    return -1;
}

/* Entry i of bucket b: sound (and marked), or -1. A list with a bad tail is
 * cut short when repairing, else unsound. */
static int
shd_scan_entry(shd_scan_t *s, uint32_t i, uint32_t b, int repair)
{
    ls_shdict_t *d = s->d;
    shd_entry_t *e = E(d, i);
    char *kbuf = s->kbuf;
    shd_list_t l;
    uint32_t x, prev = 0, n = 0;

    if (!shd_scan_valid(s, i) || e->klen == 0 || e->type < LS_SHD_STR ||
        e->type > LS_SHD_LIST || e->vlen > (uint64_t)d->nblocks * SHD_BLK ||
        (e->hash & (d->nbuckets - 1)) != b ||
        (e->type == LS_SHD_LIST && e->vlen != sizeof(shd_list_t)) ||
        ((e->type == LS_SHD_INT || e->type == LS_SHD_NUM) && e->vlen != 8) ||
        shd_scan_chain(s, i, shd_blocks_for((size_t)e->klen + e->vlen,
                                            SHD_ENTRY_DATA)) < 0)
        return -1;
    shd_io(d, i, SHD_ENTRY_DATA, 0, kbuf, e->klen, 0);
    if (shd_hash(kbuf, e->klen) != e->hash) {
        for (x = i; x != 0;) {
            uint32_t nx = NEXT(d, x);
            CLRBIT(s->used, x);
            x = nx;
        }
        return -1;
    }
    SETBIT(s->head, i);
    if (e->type != LS_SHD_LIST)
        return 0;
    shd_list_get(d, i, &l);
    for (x = l.head; x != 0; x = EL(d, x)->enext) {
        shd_elem_t *el;
        if (!shd_scan_valid(s, x))
            break;
        el = EL(d, x);
        if (n == l.count || el->eprev != prev ||
            el->type < LS_SHD_STR || el->type > LS_SHD_BOOL ||
            el->vlen > (uint64_t)d->nblocks * SHD_BLK ||
            shd_scan_chain(s, x, shd_blocks_for(el->vlen, SHD_ELEM_DATA)) < 0)
            break;
        prev = x;
        n++;
    }
    if (x == 0 && n == l.count && l.tail == prev)
        return 0;
    if (!repair)
        return -1;
    if (prev != 0)
        EL(d, prev)->enext = 0;
    l.tail = prev;
    l.head = prev ? l.head : 0;
    l.count = n;
    shd_list_put(d, i, &l);
    return 0;
}

/*
 * Check the structure; with repair, rebuild it from what is sound: every
 * bucket chain is kept up to its first unsound entry, lists up to their
 * first unsound element, then the free list and the LRU list (in bucket
 * order) are made anew from the marks.
 */
static int
shd_scan(ls_shdict_t *d, int repair, char *why, size_t whylen)
{
    shd_scan_t s;
    size_t bytes = (size_t)d->nblocks / 8 + 1;
    uint32_t *bk = shd_buckets(d), keys = 0, nfree = 0;
    int rc = -1;

#define FAULT(...)                                                            \
    do {                                                                      \
        if (why)                                                              \
            snprintf(why, whylen, __VA_ARGS__);                               \
        goto out;                                                             \
    } while (0)

    s.d = d;
    s.used = calloc(1, bytes);
    s.head = calloc(1, bytes);
    s.kbuf = malloc(LS_SHDICT_KEY_MAX);
    if (s.used == NULL || s.head == NULL || s.kbuf == NULL) {
        free(s.used);
        free(s.head);
        free(s.kbuf);
        if (repair) { /* no memory to sort it out: start afresh */
            memset(bk, 0, (size_t)d->nbuckets * 4);
            d->fresh = 1;
            d->nfree = d->nblocks;
            d->free_head = d->lru_head = d->lru_tail = d->nkeys = 0;
        }
        if (why)
            snprintf(why, whylen, "out of memory to check it");
        return -1;
    }
    if (d->fresh < 1 || d->fresh > d->nblocks + 1)
        FAULT("bad high-water block %u", d->fresh);
    for (uint32_t b = 0; b < d->nbuckets; b++) {
        uint32_t *link = &bk[b];
        while (*link != 0) {
            if (shd_scan_entry(&s, *link, b, repair) < 0) {
                if (!repair)
                    FAULT("bucket %u: an unsound entry at block %u", b,
                          *link);
                *link = 0; /* the rest of this chain is lost */
                break;
            }
            keys++;
            link = &E(d, *link)->hnext;
        }
    }
    if (!repair) {
        uint32_t prev = 0, n = 0;
        for (uint32_t i = d->lru_head; i != 0; i = E(d, i)->lnext) {
            if (i >= d->fresh || !BIT(s.head, i) || E(d, i)->lprev != prev ||
                ++n > keys)
                FAULT("LRU list broken at block %u", i);
            prev = i;
        }
        if (prev != d->lru_tail)
            FAULT("LRU list ends at block %u, its tail says %u", prev,
                  d->lru_tail);
        if (n != keys || keys != d->nkeys)
            FAULT("LRU list has %u of %u keys (counted %u)", n, keys,
                  d->nkeys);
        for (uint32_t i = d->free_head; i != 0; i = NEXT(d, i)) {
            if (!shd_scan_valid(&s, i))
                FAULT("free list broken at block %u", i);
            SETBIT(s.used, i);
            nfree++;
        }
        for (uint32_t i = 1; i < d->fresh; i++)
            if (!BIT(s.used, i))
                FAULT("block %u is lost", i);
        if (nfree + (d->nblocks + 1 - d->fresh) != d->nfree)
            FAULT("free count %u, counted %u", d->nfree,
                  nfree + (d->nblocks + 1 - d->fresh));
        rc = 0;
        goto out;
    }
    /* repair: free list from the unmarked blocks, LRU in bucket order */
    d->free_head = 0;
    for (uint32_t i = d->fresh - 1; i >= 1; i--)
        if (!BIT(s.used, i)) {
            NEXT(d, i) = d->free_head;
            d->free_head = i;
            nfree++;
        }
    d->nfree = nfree + (d->nblocks + 1 - d->fresh);
    d->lru_head = d->lru_tail = 0;
    for (uint32_t b = 0; b < d->nbuckets; b++)
        for (uint32_t i = bk[b]; i != 0; i = E(d, i)->hnext)
            shd_lru_push(d, i);
    d->nkeys = keys;
    rc = 0;
out:
#undef FAULT
    free(s.used);
    free(s.head);
    free(s.kbuf);
    return rc;
}

int
ls_shdict_check(ls_shdict_t *d, char *why, size_t whylen)
{
    return shd_scan(d, 0, why, whylen);
}
