/*
 * vm.h -- a Lua state for one process (validator or worker): counting
 * allocator, module paths, the app loader, and the one entry point for calling
 * user Lua, ls_vm_call().
 */
#ifndef LS_VM_H
#define LS_VM_H

#include "core/config.h"

#include <signal.h>
#include <stdint.h>

enum { LS_VM_VALIDATE, LS_VM_WORKER };

#define LS_VM_RUN_MAX 16      /* coroutines resumed inside one another */

struct ls_worker;
struct lua_State;

/* What the worker process and the validator see of the Lua layer: no
 * lua.h (the bindings reach a state's ls_vm_t through lua/binding.h). */
typedef struct ls_vm {
    struct lua_State *L;
    size_t mem;               /* bytes held by this Lua state */
    struct ls_pool *pool;     /* small blocks (mempool.c); NULL: malloc */
    size_t mem_limit;         /* luaMemoryLimit; 0: none */
    const char *conn_send_key; /* the state's interned "send" (lua_conn.c) */
    size_t mem_soft;          /* growth up to here needs no check: the
                                 limit, or SIZE_MAX without one */
    unsigned mem_refused;     /* allocations refused by the limit so far */
    uint64_t errors;          /* callbacks that raised (metrics) */
    int in_handler;           /* message handler running: headroom */
    /* callbackTimeout: the tick handler (SIGALRM) watches the outermost
     * ls_vm_call; these are shared with it. */
    double callback_timeout;  /* seconds; 0: none */
    volatile sig_atomic_t depth;   /* ls_vm_call nesting */
    volatile sig_atomic_t seq;     /* outermost calls started */
    volatile sig_atomic_t expired; /* over time: the hook is set */
    /* The coroutines running now, outermost first (ls_vm_resume): a call
     * made from C while one runs goes on its stack (ls_vm_L), and an
     * expired callbackTimeout hooks every one of them. */
    struct lua_State *run[LS_VM_RUN_MAX];
    volatile sig_atomic_t nrun;
    struct lua_State *hooked[LS_VM_RUN_MAX + 1];
    volatile sig_atomic_t nhooked;
    int mode;
    int loading;              /* running the script's top level */
    char app[4096];           /* absolute path of APP.lua */
    ls_conf_t conf;           /* what the script declared */
    /* Worker mode: the listener this process serves. */
    struct ls_worker *worker;
    char serve_name[LS_NAME_MAX];
    int serve_ref;            /* its Lua table; LUA_NOREF until declared */
    ls_listen_conf_t serve;   /* its options, parsed by luaserv.listen */
    int name_refs[16];        /* registry refs of the callback names */
} ls_vm_t;

ls_vm_t *ls_vm_new(int mode, const char *app, char *err, size_t errlen);
void ls_vm_free(ls_vm_t *vm);
void ls_vm_set_limits(ls_vm_t *vm, size_t mem_limit, double callback_timeout);
int ls_vm_load_app(ls_vm_t *vm, char *err, size_t errlen);
/* conn_id: the connection a callback runs for (its errors are rate-limited
 * and name it), 0 for none, or LS_VM_CLIENT for none but caused by a
 * client all the same (a udp datagram): rate-limited, no conn named. */
#define LS_VM_CLIENT UINT64_MAX
int ls_vm_call(ls_vm_t *vm, int nargs, int nres, const char *what,
               uint64_t conn_id);
int ls_vm_resume(ls_vm_t *vm, struct lua_State *co, int nargs,
                 const char *what, uint64_t conn_id, int *nres);
void ls_vm_push_name(ls_vm_t *vm, struct lua_State *L, const char *name);
int ls_vm_serves(const ls_vm_t *vm);
const char *ls_vm_lua_dir(void);
const char *ls_vm_lua_release(void);

/* The thread C code calls the app on: the innermost running coroutine, or
 * the main thread between callbacks. */
static inline struct lua_State *
ls_vm_L(const ls_vm_t *vm)
{
    return vm->nrun > 0 ? vm->run[vm->nrun - 1] : vm->L;
}

/* Several callbacks run under one ls_vm_call (a batch of messages): the
 * next one starts, and callbackTimeout times each on its own. */
static inline void
ls_vm_next_callback(ls_vm_t *vm)
{
    if (vm->depth == 1)
        vm->seq++;
}

#endif
