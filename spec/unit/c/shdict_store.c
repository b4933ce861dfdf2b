/*
 * shdict_store.c -- unit test of the shared dict store (src/core/shdict.c),
 * run by spec/unit/shdict_store_spec.lua: random operations checked against
 * a model and against ls_shdict_check; random operations on a small dict
 * that keeps evicting; and a process that dies holding the lock, with the
 * structure left sound or damaged, followed by the next taker's recovery.
 * Prints "ok" and exits 0, or names the first failure and exits 1.
 */
#include "core/shdict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS 200
#define NLISTKEYS 20
#define LISTMAX 20

static int failures;

#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            failures++;                                                       \
            return -1;                                                        \
        }                                                                     \
    } while (0)

typedef struct model {
    int type;                    /* LS_SHD_NONE, STR, INT, LIST */
    char s[400];
    size_t len;
    int64_t i;
    char items[LISTMAX][130];
    size_t ilen[LISTMAX];
    int n;
} model_t;

static model_t M[NKEYS];
static ls_shd_buf_t buf;

static void
randstr(char *p, size_t *len, size_t max)
{
    *len = (size_t)rand() % (max + 1);
    for (size_t i = 0; i < *len; i++)
        p[i] = (char)(rand() & 0xff);
}

static int
check_sound(ls_shdict_t *d, const char *when)
{
    char why[256];
    EXPECT(ls_shdict_check(d, why, sizeof(why)) == 0, "%s: %s", when, why);
    return 0;
}

/* Random operations on keys k0..k199, each checked against the model. */
static int
test_model(void)
{
    char err[256], key[16], s[400];
    ls_shdict_t *d = ls_shdict_create("model", 1 << 20, err, sizeof(err));
    size_t free0;

    EXPECT(d != NULL, "create: %s", err);
    free0 = ls_shdict_free_space(d);
    srand(1);
    for (int op = 0; op < 200000; op++) {
        int k = rand() % NKEYS, r = rand() % 10, forcible = 0, rc;
        size_t kl = (size_t)snprintf(key, sizeof(key), "k%d", k), len;
        model_t *m = &M[k];
        ls_shd_value_t v = {0}, out;
        uint32_t flags;
        int stale;

        if (r >= 8 && k >= NLISTKEYS)
            r = 7;
        switch (r) {
        case 0: case 1: case 2: case 3: case 4: /* set, add, replace */
        {
            int how = r <= 2 ? LS_SHD_SET : r == 3 ? LS_SHD_ADD
                                                   : LS_SHD_REPLACE;
            int live = m->type != LS_SHD_NONE;
            if (rand() % 2) {
                v.type = LS_SHD_STR;
                randstr(s, &len, 300);
                v.s = s;
                v.len = len;
            } else {
                v.type = LS_SHD_INT;
                v.i = rand() - RAND_MAX / 2;
            }
            rc = ls_shdict_store(d, how, 0, key, kl, &v, 0, 0, &forcible);
            EXPECT(!forcible, "op %d: an eviction in a big dict", op);
            if (how == LS_SHD_ADD && live) {
                EXPECT(rc == LS_SHD_EXISTS, "op %d: add of a live key: %d",
                       op, rc);
                break;
            }
            if (how == LS_SHD_REPLACE && !live) {
                EXPECT(rc == LS_SHD_NOTFOUND, "op %d: replace: %d", op, rc);
                break;
            }
            EXPECT(rc == LS_SHD_OK, "op %d: store: %d", op, rc);
            m->type = v.type;
            m->n = 0;
            if (v.type == LS_SHD_STR) {
                memcpy(m->s, s, len);
                m->len = len;
            } else {
                m->i = v.i;
            }
            break;
        }
        case 5: /* delete, or incr */
            if (rand() % 2) {
                v.type = LS_SHD_NONE;
                rc = ls_shdict_store(d, LS_SHD_SET, 0, key, kl, &v, 0, 0,
                                     &forcible);
                EXPECT(rc == LS_SHD_OK, "op %d: delete: %d", op, rc);
                m->type = LS_SHD_NONE;
            } else {
                ls_shd_value_t io = {0}, init = {0};
                io.type = LS_SHD_INT;
                io.i = 3;
                init.type = LS_SHD_INT;
                rc = ls_shdict_incr(d, key, kl, &io, &init, 0, &forcible);
                if (m->type == LS_SHD_STR || m->type == LS_SHD_LIST) {
                    EXPECT(rc == LS_SHD_NOTNUM, "op %d: incr: %d", op, rc);
                } else {
                    EXPECT(rc == LS_SHD_OK && io.type == LS_SHD_INT &&
                           io.i == (m->type ? m->i : 0) + 3,
                           "op %d: incr: %d", op, rc);
                    m->type = LS_SHD_INT;
                    m->i = io.i;
                }
            }
            break;
        case 6: case 7: /* get */
            rc = ls_shdict_get(d, key, kl, 0, &out, &flags, &stale, &buf);
            if (m->type == LS_SHD_NONE)
                EXPECT(rc == LS_SHD_NOTFOUND, "op %d: get: %d", op, rc);
            else if (m->type == LS_SHD_LIST)
                EXPECT(rc == LS_SHD_ISLIST, "op %d: get: %d", op, rc);
            else if (m->type == LS_SHD_STR)
                EXPECT(rc == LS_SHD_OK && out.type == LS_SHD_STR &&
                       out.len == m->len && memcmp(out.s, m->s, m->len) == 0,
                       "op %d: get of a string", op);
            else
                EXPECT(rc == LS_SHD_OK && out.type == LS_SHD_INT &&
                       out.i == m->i, "op %d: get of an integer", op);
            break;
        case 8: /* push */
            if (m->type != LS_SHD_NONE && m->type != LS_SHD_LIST) {
                v.type = LS_SHD_STR;
                v.s = "x";
                v.len = 1;
                rc = ls_shdict_push(d, key, kl, 1, &v, &len);
                EXPECT(rc == LS_SHD_NOTLIST, "op %d: push: %d", op, rc);
                break;
            }
            if (m->type == LS_SHD_LIST && m->n == LISTMAX)
                break;
            randstr(s, &len, 120);
            v.type = LS_SHD_STR;
            v.s = s;
            v.len = len;
            if (m->type != LS_SHD_LIST)
                m->n = 0;
            {
                int left = rand() % 2;
                size_t n;
                rc = ls_shdict_push(d, key, kl, left, &v, &n);
                EXPECT(rc == LS_SHD_OK && (int)n == m->n + 1,
                       "op %d: push: %d", op, rc);
                m->type = LS_SHD_LIST;
                if (left) {
                    memmove(&m->items[1], &m->items[0],
                            sizeof(m->items[0]) * (size_t)m->n);
                    memmove(&m->ilen[1], &m->ilen[0],
                            sizeof(m->ilen[0]) * (size_t)m->n);
                    memcpy(m->items[0], s, len);
                    m->ilen[0] = len;
                } else {
                    memcpy(m->items[m->n], s, len);
                    m->ilen[m->n] = len;
                }
                m->n++;
            }
            break;
        case 9: /* pop */
        {
            int left = rand() % 2;
            rc = ls_shdict_pop(d, key, kl, left, &out, &buf);
            if (m->type == LS_SHD_NONE) {
                EXPECT(rc == LS_SHD_NOTFOUND, "op %d: pop: %d", op, rc);
            } else if (m->type != LS_SHD_LIST) {
                EXPECT(rc == LS_SHD_NOTLIST, "op %d: pop: %d", op, rc);
            } else {
                int at = left ? 0 : m->n - 1;
                EXPECT(rc == LS_SHD_OK && out.len == m->ilen[at] &&
                       memcmp(out.s, m->items[at], out.len) == 0,
                       "op %d: pop", op);
                if (left) {
                    memmove(&m->items[0], &m->items[1],
                            sizeof(m->items[0]) * (size_t)(m->n - 1));
                    memmove(&m->ilen[0], &m->ilen[1],
                            sizeof(m->ilen[0]) * (size_t)(m->n - 1));
                }
                if (--m->n == 0)
                    m->type = LS_SHD_NONE;
            }
            break;
        }
        }
        if (op % 500 == 0 && check_sound(d, "model") < 0)
            return -1;
    }
    for (int k = 0; k < NKEYS; k++) {
        ls_shd_value_t v = {0};
        int forcible;
        size_t kl = (size_t)snprintf(key, sizeof(key), "k%d", k);
        v.type = LS_SHD_NONE;
        ls_shdict_store(d, LS_SHD_SET, 0, key, kl, &v, 0, 0, &forcible);
    }
    if (check_sound(d, "emptied") < 0)
        return -1;
    EXPECT(ls_shdict_free_space(d) == free0, "all blocks back: %zu of %zu",
           ls_shdict_free_space(d), free0);
    ls_shdict_destroy(d);
    return 0;
}

/* A small dict under random sets, lists, expiries and flushes. */
static int
test_evict(void)
{
    char err[256], key[16], s[3000];
    ls_shdict_t *d = ls_shdict_create("evict", 16384, err, sizeof(err));
    int evicted = 0, nomem = 0;

    EXPECT(d != NULL, "create: %s", err);
    srand(2);
    for (int op = 0; op < 50000; op++) {
        int k = rand() % 300, r = rand() % 12, forcible = 0, rc;
        size_t kl = (size_t)snprintf(key, sizeof(key), "e%d", k), len;
        ls_shd_value_t v = {0}, out;

        randstr(s, &len, r == 0 ? 3000 : 200);
        v.type = LS_SHD_STR;
        v.s = s;
        v.len = len;
        if (r < 6) {
            rc = ls_shdict_store(d, LS_SHD_SET, r == 5, key, kl, &v,
                                 rand() % 4 == 0 ? 0.001 : 0, 0, &forcible);
            EXPECT(rc == LS_SHD_OK || rc == LS_SHD_NOMEM, "store: %d", rc);
            evicted += forcible;
            nomem += rc == LS_SHD_NOMEM;
        } else if (r < 9) {
            rc = ls_shdict_push(d, key, kl, r == 6, &v, &len);
            EXPECT(rc == LS_SHD_OK || rc == LS_SHD_NOMEM ||
                   rc == LS_SHD_NOTLIST, "push: %d", rc);
        } else if (r == 9) {
            ls_shdict_pop(d, key, kl, 1, &out, &buf);
        } else if (r == 10) {
            ls_shdict_flush_expired(d, 5);
        } else if (rand() % 50 == 0) {
            ls_shdict_flush_all(d);
        }
        if (check_sound(d, "evict") < 0)
            return -1;
    }
    EXPECT(evicted > 100 && nomem > 10, "evictions %d, no memory %d",
           evicted, nomem);
    ls_shdict_destroy(d);
    return 0;
}

/* A child takes the lock, maybe damages the structure, and dies; the
 * parent's next call recovers. */
static int
test_owner_dead(int damage)
{
    char err[256], key[16];
    ls_shdict_t *d = ls_shdict_create("robust", 65536, err, sizeof(err));
    ls_shdict_usage_t u;
    ls_shd_value_t v = {0}, out;
    uint32_t flags;
    int forcible, stale, status, rc;
    size_t free0;
    pid_t pid;

    EXPECT(d != NULL, "create: %s", err);
    for (int k = 0; k < 100; k++) {
        size_t kl = (size_t)snprintf(key, sizeof(key), "r%d", k);
        v.type = LS_SHD_INT;
        v.i = k;
        EXPECT(ls_shdict_store(d, LS_SHD_SET, 0, key, kl, &v, 0, 0,
                               &forcible) == LS_SHD_OK, "store");
    }
    free0 = ls_shdict_free_space(d);
    pid = fork();
    if (pid == 0) {
        ls_shdict_test_hold(d, damage);
        _exit(0);
    }
    EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait");
    rc = ls_shdict_get(d, "r5", 2, 0, &out, &flags, &stale, &buf);
    EXPECT(rc == LS_SHD_OK && out.i == 5, "damage %d: get after: %d",
           damage, rc);
    if (check_sound(d, "recovered") < 0)
        return -1;
    ls_shdict_usage(d, &u);
    EXPECT(u.recoveries == 1 && u.keys == 100,
           "damage %d: recoveries %llu, keys %llu", damage,
           (unsigned long long)u.recoveries, (unsigned long long)u.keys);
    EXPECT(ls_shdict_free_space(d) == free0, "damage %d: free %zu, was %zu",
           damage, ls_shdict_free_space(d), free0);
    for (int k = 0; k < 100; k++) {
        size_t kl = (size_t)snprintf(key, sizeof(key), "r%d", k);
        rc = ls_shdict_get(d, key, kl, 0, &out, &flags, &stale, &buf);
        EXPECT(rc == LS_SHD_OK && out.i == k, "damage %d: key %d lost",
               damage, k);
    }
    ls_shdict_usage(d, &u);
    EXPECT(u.recoveries == 1, "recovered once");
    ls_shdict_destroy(d);
    return 0;
}

int
main(void)
{
    test_model();
    test_evict();
    for (int damage = 0; damage <= 3; damage++)
        test_owner_dead(damage);
    free(buf.p);
    if (failures) {
        printf("%d failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
