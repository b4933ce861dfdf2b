/*
 * vm.c -- Lua state creation and protected calls.
 *
 * Every call into user Lua goes through ls_vm_call(): a message handler adds
 * a traceback, the error is logged with the connection it concerns, and the
 * caller decides the outcome (close that connection, keep serving).
 */
#include "vm.h"
#include "log.h"
#include "mempool.h"

#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int luaopen_luaserv_core(lua_State *L);

/* Allocator that counts what the state holds (skynet), for status figures
 * and an optional cap. */
static void *
vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ls_vm_t *vm = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        ls_pool_free(vm->pool, ptr, old);
        vm->mem -= old;
        return NULL;
    }
    if (vm->mem_limit && nsize > old && vm->mem - old + nsize > vm->mem_limit)
        return NULL;
    /* small blocks from size-class free lists (mempool.c) */
    ptr = ls_pool_realloc(vm->pool, ptr, old, nsize);
    if (ptr != NULL)
        vm->mem = vm->mem - old + nsize;
    return ptr;
}

static int
vm_is_dir_with_init(const char *dir)
{
    char p[PATH_MAX + 32];
    struct stat st;
    int r = snprintf(p, sizeof(p), "%s/luaserv/init.lua", dir);
    return r > 0 && (size_t)r < sizeof(p) && stat(p, &st) == 0 &&
           S_ISREG(st.st_mode);
}

/*
 * Where our own Lua library lives: $LUASERV_LUA_DIR, else next to the
 * installed binary (<prefix>/share/luaserv/lua), else the source tree the
 * binary was built from.
 */
const char *
ls_vm_lua_dir(void)
{
    static char dir[PATH_MAX];
    char exe[PATH_MAX], cand[PATH_MAX + 64];
    const char *env = getenv("LUASERV_LUA_DIR");
    ssize_t n;

    if (dir[0])
        return dir;
    if (env && *env && vm_is_dir_with_init(env)) {
        snprintf(dir, sizeof(dir), "%s", env);
        return dir;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        int r = snprintf(cand, sizeof(cand), "%s/%s", dirname(exe),
                         LUASERV_LUA_DIR_REL);
        if (r > 0 && (size_t)r < sizeof(cand) && vm_is_dir_with_init(cand) &&
            realpath(cand, dir) != NULL)
            return dir;
    }
    snprintf(dir, sizeof(dir), "%s", LUASERV_LUA_DIR_SOURCE);
    return dir;
}

/* package.path: the app's own directory first, then ours, then Lua's. */
static void
vm_set_paths(lua_State *L, const char *app)
{
    char appdir[4096];
    const char *ours = ls_vm_lua_dir(), *dir;

    snprintf(appdir, sizeof(appdir), "%s", app);
    dir = dirname(appdir);
    lua_getglobal(L, "package");                        /* package */
    lua_getfield(L, -1, "path");                        /* package path */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua;%s/?/init.lua;%s",
                    dir, dir, ours, ours,
                    lua_tostring(L, -1));               /* package path new */
    lua_setfield(L, -3, "path");                        /* package path */
    lua_pop(L, 2);
}

ls_vm_t *
ls_vm_new(int mode, const char *app, char *err, size_t errlen)
{
    ls_vm_t *vm = calloc(1, sizeof(*vm));
    lua_State *L;

    if (vm == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    vm->mode = mode;
    vm->serve_ref = LUA_NOREF;
    snprintf(vm->app, sizeof(vm->app), "%s", app);
    ls_conf_init(&vm->conf);
    vm->pool = ls_pool_new(); /* NULL (plain malloc) is fine too */
    L = lua_newstate(vm_alloc, vm);
    if (L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state: out of memory");
        ls_pool_destroy(vm->pool);
        free(vm);
        return NULL;
    }
    vm->L = L;
    *(ls_vm_t **)lua_getextraspace(L) = vm;
    luaL_openlibs(L);
    vm_set_paths(L, app);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
    lua_pushcfunction(L, luaopen_luaserv_core);          /* preload open */
    lua_setfield(L, -2, "luaserv.core");                 /* preload */
    lua_pop(L, 1);
    return vm;
}

void
ls_vm_free(ls_vm_t *vm)
{
    if (vm == NULL)
        return;
    if (vm->L)
        lua_close(vm->L);
    ls_pool_destroy(vm->pool);
    ls_conf_free(&vm->conf);
    free(vm);
}

/* Lua's own msghandler (lua.c): stringify, then append a traceback. */
static int
vm_msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static const char *
vm_status_name(int status)
{
    switch (status) {
    case LUA_ERRMEM:
        return "out of memory";
    case LUA_ERRERR:
        return "error in the error handler";
    default:
        return "error";
    }
}

/*
 * Call the function below nargs arguments with a traceback handler. On
 * failure log "conn 17: onMessage: app.lua:12: boom" plus the traceback and
 * leave nothing on the stack; on success leave nres results.
 */
int
ls_vm_call(ls_vm_t *vm, int nargs, int nres, const char *what,
           uint64_t conn_id)
{
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs;
    int status;

    lua_pushcfunction(L, vm_msghandler);
    lua_insert(L, base);
    status = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL)
            msg = "(no message)";
        /* a connection's callbacks fail on what clients send: rate-limited */
        static ls_log_limit_t lim = LS_LOG_LIMIT("Lua errors in connection "
                                                 "callbacks", 0);
        if (conn_id)
            ls_log_limited(&lim, LS_LOG_ERROR, 0, "conn %llu: %s: %s%s%s",
                           (unsigned long long)conn_id, what,
                           status == LUA_ERRRUN ? "" : vm_status_name(status),
                           status == LUA_ERRRUN ? "" : ": ", msg);
        else
            ls_log(LS_LOG_ERROR, 0, "%s: %s%s%s", what,
                   status == LUA_ERRRUN ? "" : vm_status_name(status),
                   status == LUA_ERRRUN ? "" : ": ", msg);
        lua_pop(L, 1);
    }
    return status;
}

/*
 * Compile and run APP.lua's top level. On failure err holds the message with
 * its traceback, ready for stderr.
 */
int
ls_vm_load_app(ls_vm_t *vm, char *err, size_t errlen)
{
    lua_State *L = vm->L;
    int status;

    lua_pushcfunction(L, vm_msghandler);
    status = luaL_loadfilex(L, vm->app, "t");
    if (status == LUA_OK) {
        vm->loading = 1;
        status = lua_pcall(L, 0, 0, -2);
        vm->loading = 0;
    }
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}
