/*
 * vm.h -- a Lua state for one process (validator or worker): counting
 * allocator, module paths, the app loader, and the one entry point for calling
 * user Lua, ls_vm_call().
 */
#ifndef LS_VM_H
#define LS_VM_H

#include "config.h"

#include <lua.h>
#include <stdint.h>

enum { LS_VM_VALIDATE, LS_VM_WORKER };

struct ls_worker;

typedef struct ls_vm {
    lua_State *L;
    size_t mem;               /* bytes held by this Lua state */
    size_t mem_limit;         /* 0: none */
    struct ls_pool *pool;     /* small blocks (mempool.c); NULL: malloc */
    int mode;
    int loading;              /* running the script's top level */
    char app[4096];           /* absolute path of APP.lua */
    ls_conf_t conf;           /* what the script declared */
    /* Worker mode: the listener this process serves. */
    struct ls_worker *worker;
    char serve_name[LS_NAME_MAX];
    int serve_ref;            /* its Lua table; LUA_NOREF until declared */
    ls_listen_conf_t serve;   /* its options, parsed by luaserv.listen */
} ls_vm_t;

ls_vm_t *ls_vm_new(int mode, const char *app, char *err, size_t errlen);
void ls_vm_free(ls_vm_t *vm);
int ls_vm_load_app(ls_vm_t *vm, char *err, size_t errlen);
int ls_vm_call(ls_vm_t *vm, int nargs, int nres, const char *what,
               uint64_t conn_id);
const char *ls_vm_lua_dir(void);

static inline ls_vm_t *
ls_vm_of(lua_State *L)
{
    return *(ls_vm_t **)lua_getextraspace(L);
}

#endif
