/*
 * vm.c -- Lua state creation and protected calls.
 *
 * Every call into user Lua goes through ls_vm_call(): a message handler adds
 * a traceback, the error is logged with the connection it concerns, and the
 * caller decides the outcome (close that connection, keep serving).
 *
 * The guards live here too: luaMemoryLimit (the allocator refuses growth, so
 * Lua raises "not enough memory" in the running callback), callbackTimeout
 * (a watcher thread notices a call that runs too long and only then has a
 * count hook set that raises an error: no hook, hence no cost, in the normal
 * case; under LuaJIT, compiled code is reached through the profiler's
 * checks, see below), and
 * os.exit, which in a worker retires the worker instead of ending the process
 * under its connections.
 */
#include "lua/vm.h"
#include "core/log.h"
#include "lua/binding.h"
#include "core/mempool.h"
#include "net/loop.h"

#include "lua/compat.h"
#include <lualib.h>
#if LS_LUAJIT
#include <luajit.h>
#endif

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* A state's ls_vm_t (lua/binding.h): in its extra space, set by
 * ls_vm_new (LuaJIT: the allocator's ud). */
#define vm_of ls_vm_of

/* What the message handler may use past luaMemoryLimit, so that the
 * traceback of a memory error can still be built. */
#define VM_HEADROOM (1024 * 1024)
/* Once a call is over time the hook runs at every instruction: an app loop
 * that catches the error with pcall gets it again right after. */
#define VM_HOOK_COUNT 1

static const char *const vm_names[] = {
    "onConnect", "onMessage", "onClose", "onError", "onBufferFull",
    "onBufferDrain", "onWorkerStart", "onWorkerStop", "onWorkerReload",
    "onWebSocketConnect", "protocol", "input", "decode", "encode", "onDrain",
    NULL,
};
_Static_assert(sizeof(vm_names) / sizeof(*vm_names) - 1 <=
                   sizeof(((ls_vm_t *)0)->name_refs) / sizeof(int),
               "ls_vm_t.name_refs holds a ref for each of vm_names");

/* The error object of os.exit in a worker: not logged as an error. */
static const char vm_exit_key;

static int vm_msghandler(lua_State *L);

/*
 * Allocator that counts what the state holds (skynet), for status figures
 * and luaMemoryLimit. Only growth inside ls_vm_call (depth > 0) is refused:
 * there the refusal becomes "not enough memory" in the running callback (Lua
 * first runs an emergency collection and retries); outside any protected
 * call, in C code preparing a call, it would abort the process. Shrinking
 * and freeing never fail.
 */
static __attribute__((noinline)) void *
vm_alloc_slow(ls_vm_t *vm, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        ls_pool_free(vm->pool, ptr, old);
        vm->mem -= old;
        return NULL;
    }
    if (vm->mem_limit && nsize > old && vm->depth > 0 &&
        vm->mem - old + nsize >
            vm->mem_limit + (vm->in_handler ? VM_HEADROOM : 0)) {
        vm->mem_refused++;
        return NULL;
    }
    /* small blocks from size-class free lists (mempool.c) */
    ptr = ls_pool_realloc(vm->pool, ptr, old, nsize);
    if (ptr != NULL)
        vm->mem = vm->mem - old + nsize;
    return ptr;
}

/* The two calls of every short-lived object (a message string) take the
 * inline paths: a new small block while under the limit, and a small block
 * freed; everything else goes through vm_alloc_slow. */
static void *
vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    ls_vm_t *vm = ud;

    if (vm->pool != NULL) {
        if (ptr == NULL && nsize - 1 < LS_POOL_MAX &&
            vm->mem + nsize <= vm->mem_soft) {
            void *p = ls_pool_take(vm->pool, nsize);
            if (p != NULL) {
                vm->mem += nsize;
                return p;
            }
        } else if (nsize == 0 && ptr != NULL && osize - 1 < LS_POOL_MAX) {
            ls_pool_give(vm->pool, ptr, osize);
            vm->mem -= osize;
            return NULL;
        }
    }
    return vm_alloc_slow(vm, ptr, osize, nsize);
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

/* ---- callbackTimeout ------------------------------------------------------ */

/*
 * A watcher thread samples the outermost call every callbackTimeout/4 (at
 * most 1 s): a call seen running on vm_tick_need consecutive samples has run
 * at least callbackTimeout. Only then does it signal the worker's thread
 * (SIGALRM), whose handler sets the hook: setting a hook from a signal
 * handler is what lua.c does for Ctrl+C (lua_sethook is written to allow
 * it), and doing it there, not from the thread, never races with the
 * interpreter. A worker whose callbacks are short never gets a signal, so
 * nothing (epoll_wait, a blocking call in a C library) sees EINTR.
 */
static ls_vm_t *vm_ticked;                /* the state watched; NULL: none */
static pthread_mutex_t vm_tick_lock = PTHREAD_MUTEX_INITIALIZER; /* its life */
static long vm_tick_ns;                   /* the sampling period */
static int vm_tick_need;                  /* samples that make a timeout */
static pthread_t vm_tick_main;            /* the worker's thread */
static int vm_tick_started;
static volatile sig_atomic_t vm_tick_target; /* the call to stop (seq) */

/* Set only once a call is over time: raise in the Lua code it is running.
 * Kept until the outermost call returns, so that a pcall in the app that
 * catches the error does not let the loop go on (only the message handler,
 * which builds the traceback, runs unhindered). */
static void
vm_timeout_hook(lua_State *L, lua_Debug *ar)
{
    ls_vm_t *vm = vm_of(L);
    (void)ar;

    if (!vm->expired || vm->in_handler)
        return;
    {
        char msg[96];
        snprintf(msg, sizeof(msg), "callback exceeded callbackTimeout (%g s)",
                 vm->callback_timeout);
#if LS_LUAJIT
        /* LuaJIT's traceback of a dead coroutine has no line for its top
         * frame, the one that ran too long: take it now (vm_co_message
         * keeps it) */
        vm->in_handler++;
        luaL_traceback(L, L, msg, 0);
        vm->in_handler--;
#else
        lua_pushstring(L, msg);
#endif
    }
    lua_error(L);
}

#if LS_LUAJIT
/*
 * LuaJIT runs no hooks inside compiled code (a trace): `while true do end`
 * becomes a trace that loops without ever reaching the interpreter, where
 * the count hook would run. But LuaJIT's profiler, started in its line mode
 * ('l'), records into every trace a check at each new source line that
 * leaves the trace for the interpreter once the profiler has asked for a
 * sample. So the worker starts the profiler once (which flushes the traces
 * made so far) with an interval so long that it never samples by itself
 * (ITIMER_PROF counts CPU time: ~28 hours of it), and an over-time call
 * raises SIGPROF itself, right after setting the count hook: the profiler's
 * own signal handler flags the sample, the trace exits at its next line,
 * the profiler's callback (which does nothing) runs in the interpreter, and
 * the count hook raises at the next instruction. The check costs a load
 * and a branch per line of compiled code. The watcher pokes again at every
 * tick while the call goes on (a sample asked for while a __gc runs is
 * dropped). The app must not start jit.profile itself: that would take
 * the profiler over (docs/api.md).
 */
static ls_vm_t *vm_jit_profiled;   /* the state the profiler runs for */

static void
vm_jit_sample(void *data, lua_State *L, int samples, int vmstate)
{
    (void)data;
    (void)L;
    (void)samples;
    (void)vmstate;
}

static void
vm_jit_profile(ls_vm_t *vm)
{
    if (vm_jit_profiled == vm)
        return;
    luaJIT_profile_start(vm->L, "li100000000", vm_jit_sample, vm);
    vm_jit_profiled = vm;
}

static void
vm_jit_unprofile(ls_vm_t *vm)
{
    if (vm_jit_profiled != vm)
        return;
    luaJIT_profile_stop(vm->L);
    vm_jit_profiled = NULL;
}

/* In the SIGALRM handler: have compiled code leave its trace. */
static void
vm_jit_poke(ls_vm_t *vm)
{
    if (vm_jit_profiled == vm)
        raise(SIGPROF);
}
#else
#define vm_jit_poke(vm) ((void)(vm))
#endif

/* SIGALRM from the watcher: the call it timed is still the one running. */
static void
vm_on_alarm(int signo)
{
    ls_vm_t *vm = vm_ticked;
    (void)signo;

    if (vm == NULL || vm->depth == 0 || vm->seq != vm_tick_target)
        return;
    if (vm->expired) {
        vm_jit_poke(vm);
        return;
    }
    vm->expired = 1;
    /* whichever thread runs the loop: the main one and every coroutine
     * resumed (a coroutine may have resumed another that yielded back) */
    vm->hooked[0] = vm->L;
    for (int i = 0; i < vm->nrun; i++)
        vm->hooked[i + 1] = vm->run[i];
    vm->nhooked = vm->nrun + 1;
    for (int i = 0; i < vm->nhooked; i++)
        lua_sethook(vm->hooked[i], vm_timeout_hook, LUA_MASKCOUNT,
                    VM_HOOK_COUNT);
    vm_jit_poke(vm);
}

static void *
vm_watch(void *arg)
{
    int seen = 0, count = 0;
    (void)arg;

    for (;;) {
        struct timespec ts;
        ls_vm_t *vm;
        long ns = __atomic_load_n(&vm_tick_ns, __ATOMIC_RELAXED);

        ts.tv_sec = ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&vm_tick_lock); /* vm is not freed meanwhile */
        vm = vm_ticked;
        if (vm == NULL || __atomic_load_n(&vm->depth, __ATOMIC_RELAXED) == 0) {
            count = 0;
        } else if (__atomic_load_n(&vm->expired, __ATOMIC_RELAXED)) {
            /* LuaJIT: the call it stopped still runs; poke again */
            if (LS_LUAJIT &&
                __atomic_load_n(&vm->seq, __ATOMIC_RELAXED) == seen)
                pthread_kill(vm_tick_main, SIGALRM);
            count = 0;
        } else if (__atomic_load_n(&vm->seq, __ATOMIC_RELAXED) != seen) {
            seen = __atomic_load_n(&vm->seq, __ATOMIC_RELAXED);
            count = 0;
        } else if (++count >= __atomic_load_n(&vm_tick_need,
                                              __ATOMIC_RELAXED)) {
            vm_tick_target = seen;
            pthread_kill(vm_tick_main, SIGALRM);
            count = 0;
        }
        pthread_mutex_unlock(&vm_tick_lock);
    }
    return NULL;
}

/* Worker: luaMemoryLimit (bytes) and callbackTimeout (seconds); 0: none.
 * Called again once the listener's own options are known. */
void
ls_vm_set_limits(ls_vm_t *vm, size_t mem_limit, double callback_timeout)
{
    struct sigaction sa;
    sigset_t all, old;
    double tick;
    int err;

    vm->mem_limit = mem_limit;
    vm->mem_soft = mem_limit ? mem_limit : SIZE_MAX;
    vm->callback_timeout = callback_timeout;
    if (callback_timeout <= 0) {
        pthread_mutex_lock(&vm_tick_lock);
        if (vm_ticked == vm) /* a listener turned the setting off */
            vm_ticked = NULL;
        pthread_mutex_unlock(&vm_tick_lock);
        return;
    }
    tick = callback_timeout / 4;
    tick = tick > 1.0 ? 1.0 : tick < 0.005 ? 0.005 : tick;
    __atomic_store_n(&vm_tick_ns, (long)(tick * 1e9), __ATOMIC_RELAXED);
    __atomic_store_n(&vm_tick_need, (int)ceil(callback_timeout / tick - 1e-9),
                     __ATOMIC_RELAXED);
#if LS_LUAJIT
    vm_jit_profile(vm);
#endif
    pthread_mutex_lock(&vm_tick_lock);
    vm_ticked = vm;
    pthread_mutex_unlock(&vm_tick_lock);
    if (vm_tick_started)
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = vm_on_alarm;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    vm_tick_main = pthread_self();
    /* The watcher takes no signal: they all stay with the worker's loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&(pthread_t){0}, NULL, vm_watch, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        ls_log(LS_LOG_ERROR, err, "cannot start the callbackTimeout watcher; "
               "callbackTimeout is not enforced");
        pthread_mutex_lock(&vm_tick_lock);
        vm_ticked = NULL;
        pthread_mutex_unlock(&vm_tick_lock);
        return;
    }
    vm_tick_started = 1;
}

/* Around every protected call into the app; the outermost one is what
 * callbackTimeout measures. seq moves before depth, so that a sample between
 * the two never counts the previous call's time for this one. */
static void
vm_enter(ls_vm_t *vm)
{
    if (vm->depth == 0)
        vm->seq++;
    vm->depth++;
}

static void
vm_leave(ls_vm_t *vm)
{
    vm->depth--;
    if (vm->depth > 0)
        return;
    vm->in_handler = 0;  /* ls_vm_load_app: a handler that failed */
    if (vm->expired) {
        for (int i = 0; i < vm->nhooked; i++)
            lua_sethook(vm->hooked[i], NULL, 0, 0);
        vm->nhooked = 0;
        vm->expired = 0;
    }
}

/* ---- os.exit --------------------------------------------------------------- */

/*
 * os.exit([code]): ending the process here would cut every connection of
 * the worker. In a callback it aborts that callback (its connection closes,
 * as for an error) and the worker retires through the new-first recycle
 * path; at the top level of the script it is an error (a broken script).
 */
static int
vm_os_exit(lua_State *L)
{
    ls_vm_t *vm = vm_of(L);
    int code;

    if (lua_isboolean(L, 1))
        code = lua_toboolean(L, 1) ? 0 : 1;
    else
        code = (int)luaL_optinteger(L, 1, 0);
    if (vm->mode != LS_VM_WORKER || vm->loading || vm->worker == NULL)
        return luaL_error(L, "os.exit(%d) called while loading the script "
                          "(its top level must return: luaserv runs it to "
                          "learn the listeners, and in every worker)", code);
    vm->worker->os_exit(vm->worker, code);
    lua_pushlightuserdata(L, (void *)&vm_exit_key);
    return lua_error(L);
}

/* "Lua 5.4.4" or "LuaJIT 2.1.0-beta3": what this binary was built with
 * (luaserv -v). */
const char *
ls_vm_lua_release(void)
{
#if LS_LUAJIT
    return LUAJIT_VERSION;
#else
    return LUA_RELEASE;
#endif
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
    vm->mem_soft = SIZE_MAX;
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
#if !LS_LUAJIT
    *(ls_vm_t **)lua_getextraspace(L) = vm;
#endif
    luaL_openlibs(L);
    vm_set_paths(L, app);
#if LS_LUAJIT
    /* the 5.3/5.4 library functions apps and our modules use */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "luaserv.compat");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot load luaserv.compat: %s",
                 lua_tostring(L, -1));
        lua_close(L);
        ls_pool_destroy(vm->pool);
        free(vm);
        return NULL;
    }
#endif
    /* Intern the names C looks up between nested calls (conn:close() in
     * onMessage fires onClose), so that those lookups never allocate and
     * so never fail at luaMemoryLimit in the middle of C code; and keep a
     * registry ref of each, so that pushing one is an array access
     * (ls_vm_push_name), not a hash of the C string. */
    for (int i = 0; vm_names[i] != NULL; i++) {
        lua_pushstring(L, vm_names[i]);
        vm->name_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    /* The traceback handler stays at the bottom of the stack for the
     * outermost ls_vm_call, which then need not insert and remove one. */
    lua_pushcfunction(L, vm_msghandler);
    lua_getglobal(L, "os");                              /* os */
    lua_pushcfunction(L, vm_os_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    return vm;
}

void
ls_vm_free(ls_vm_t *vm)
{
    if (vm == NULL)
        return;
    pthread_mutex_lock(&vm_tick_lock);
    if (vm_ticked == vm)
        vm_ticked = NULL;
    pthread_mutex_unlock(&vm_tick_lock);
#if LS_LUAJIT
    vm_jit_unprofile(vm);
#endif
    if (vm->L)
        lua_close(vm->L);
    ls_pool_destroy(vm->pool);
    ls_conf_free(&vm->conf);
    free(vm);
}

/*
 * Push a callback name ("onMessage"). The names C uses are interned with a
 * registry ref each (ls_vm_new); a name is usually the very literal of
 * vm_names (the linker merges equal string constants), so a pointer
 * comparison finds it, strcmp otherwise. Other names are pushed as such.
 */
/* Did the script declare the listener this worker serves (serve_name)? */
int
ls_vm_serves(const ls_vm_t *vm)
{
    return vm->serve_ref != LUA_NOREF;
}

void
ls_vm_push_name(ls_vm_t *vm, lua_State *L, const char *name)
{
    int i;

    for (i = 0; vm_names[i] != NULL; i++)
        if (vm_names[i] == name)
            goto found;
    for (i = 0; vm_names[i] != NULL; i++)
        if (strcmp(vm_names[i], name) == 0)
            goto found;
    lua_pushstring(L, name);
    return;
found:
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->name_refs[i]);
}

/* Lua's own msghandler (lua.c): stringify, then append a traceback. */
static int
vm_msghandler(lua_State *L)
{
    ls_vm_t *vm = vm_of(L);
    const char *msg = lua_tostring(L, 1);

    if (lua_touserdata(L, 1) == &vm_exit_key)
        return 1;
    vm->in_handler++;
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING) {
            vm->in_handler--;
            return 1;
        }
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    vm->in_handler--;
    return 1;
}

/* "64 MiB", "1536 KiB" or "1000 bytes": luaMemoryLimit as it was set. */
static void
vm_format_size(size_t n, char *buf, size_t len)
{
    if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
        snprintf(buf, len, "%zu MiB", n / (1024 * 1024));
    else if (n >= 1024 && n % 1024 == 0)
        snprintf(buf, len, "%zu KiB", n / 1024);
    else
        snprintf(buf, len, "%zu bytes", n);
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
 * Did the call fail because of luaMemoryLimit? A refusal alone does not
 * say so (Lua collects and retries, and may succeed); the error must be the
 * memory error, its lauxlib form, or a failure of the handler itself.
 */
static int
vm_mem_failure(ls_vm_t *vm, lua_State *L, unsigned refused, int status)
{
    const char *msg;

    if (vm->mem_refused == refused)
        return 0;
    if (status == LUA_ERRMEM || status == LUA_ERRERR)
        return 1;
    msg = lua_tostring(L, -1);
    return msg != NULL && strstr(msg, "not enough memory") != NULL;
}

/*
 * Call the function below nargs arguments with a traceback handler. On
 * failure log "conn 17: onMessage: app.lua:12: boom" plus the traceback and
 * leave nothing on the stack; on success leave nres results.
 */
static int vm_co_message(lua_State *L);
static void vm_report(ls_vm_t *vm, lua_State *L, int status,
                      unsigned refused, const char *what, uint64_t conn_id);

int
ls_vm_call(ls_vm_t *vm, int nargs, int nres, const char *what,
           uint64_t conn_id)
{
    lua_State *L = ls_vm_L(vm);
    int base = lua_gettop(L) - nargs;
    unsigned refused = vm->mem_refused;
    int status, in_handler = vm->in_handler, handler = 1;

    /* Outermost: the handler left at index 1 by ls_vm_new. Nested (a C
     * function called from Lua calls back, e.g. onClose from conn:close()),
     * index 1 is that function's first argument: insert one. */
    if (vm->depth > 0 || lua_tocfunction(L, 1) != vm_msghandler) {
        lua_pushcfunction(L, vm_msghandler);
        lua_insert(L, base);
        handler = base;
    }
    vm_enter(vm);
    status = lua_pcall(L, nargs, nres, handler);
    vm->in_handler = in_handler; /* a handler that failed did not undo it */
    vm_leave(vm);
    if (handler != 1)
        lua_remove(L, base);
    if (status != LUA_OK)
        vm_report(vm, L, status, refused, what, conn_id);
    return status;
}

/*
 * Resume the coroutine co with nargs values on its stack (on the first
 * resume, its function below them). LUA_OK: it finished, *nres results on
 * its stack; LUA_YIELD: it waits (*nres values yielded); else it failed:
 * logged as ls_vm_call logs, with the coroutine's own traceback, and co
 * reset so that it can run something else.
 */
int
ls_vm_resume(ls_vm_t *vm, lua_State *co, int nargs, const char *what,
             uint64_t conn_id, int *nres)
{
    lua_State *from = ls_vm_L(vm);
    unsigned refused = vm->mem_refused;
    int status, n = vm->nrun;

    if (n >= LS_VM_RUN_MAX) {
        lua_settop(co, 0);
        ls_log(LS_LOG_ERROR, 0, "%s: callbacks nested more than %d deep; "
               "not run", what, LS_VM_RUN_MAX);
        return LUA_ERRRUN;
    }
    vm->run[n] = co;
    vm->nrun = n + 1;
    vm_enter(vm);
    status = lua_resume(co, from, nargs, nres);
    vm->nrun = n;
    if (status == LUA_OK || status == LUA_YIELD) {
        vm_leave(vm);
        return status;
    }
    /* The coroutine's stack is still there: its traceback, made as the
     * message handler of ls_vm_call makes one (protected, with the same
     * headroom: an error object's __tostring may fail too), onto the main
     * thread; then the coroutine's stack is let go, so that a memory
     * failure's collection can free what the failed callback held. */
    if (lua_touserdata(co, -1) != &vm_exit_key) {
        lua_State *M = vm->L;
        /* the headroom from here: outside any protected call, pushing
         * the function allocates under LuaJIT (a C closure) */
        vm->in_handler++;
        lua_pushcfunction(M, vm_co_message);             /* f */
        lua_pushthread(co);
        lua_xmove(co, M, 1);                             /* f co */
        lua_xmove(co, M, 1);                             /* f co err */
        if (lua_pcall(M, 2, 1, 0) != LUA_OK)             /* msg */
            status = LUA_ERRERR;
        vm->in_handler--;
    } else {
        lua_xmove(co, vm->L, 1);
    }
    vm_leave(vm);
    lua_resetthread(co);
    vm_report(vm, vm->L, status, refused, what, conn_id);
    return status;
}

/* (co, err) -> err as a string, with co's traceback. */
static int
vm_co_message(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    const char *msg = lua_tostring(L, 2);

    if (LS_LUAJIT && msg != NULL && strstr(msg, "\nstack traceback:\n"))
        return 1; /* it has one (vm_timeout_hook) */
    if (msg == NULL) {
        if (luaL_callmeta(L, 2, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)",
                              luaL_typename(L, 2));
    }
    luaL_traceback(L, co, msg, 0);
    return 1;
}

/* A call failed: its error object is at the top of L. Log it (once, as
 * the app's own callbacks see it) and pop it. */
static void
vm_report(ls_vm_t *vm, lua_State *L, int status, unsigned refused,
          const char *what, uint64_t conn_id)
{
    if (status != LUA_OK && lua_touserdata(L, -1) != &vm_exit_key)
        vm->errors++;
    if (status != LUA_OK && lua_touserdata(L, -1) == &vm_exit_key) {
        lua_pop(L, 1); /* os.exit: logged as a warning already */
    } else if (status != LUA_OK && vm_mem_failure(vm, L, refused, status)) {
        /* The limit caused it. Collect what the aborted call left so that
         * the state is usable again, and say how much the app still
         * holds. */
        const char *m = lua_tostring(L, -1);
        char lim[32], ids[32] = "", msg[2048];
        snprintf(msg, sizeof(msg), "%s",
                 m && status != LUA_ERRMEM ? m : "not enough memory");
        lua_pop(L, 1);
        if (vm->depth == 0)
            lua_gc(L, LUA_GCCOLLECT);
        vm_format_size(vm->mem_limit, lim, sizeof(lim));
        if (conn_id && conn_id != LS_VM_CLIENT)
            snprintf(ids, sizeof(ids), "conn %llu: ",
                     (unsigned long long)conn_id);
        static ls_log_limit_t mlim = LS_LOG_LIMIT("Lua memory limit", 0);
        ls_log_limited(&mlim, LS_LOG_ERROR, 0, "%s%s: Lua memory limit (%s) "
                       "reached; %zu KiB in use%s: %s", ids, what, lim,
                       vm->mem / 1024,
                       vm->depth == 0 ? " after a full collection" : "", msg);
    } else if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL)
            msg = "(no message)";
        /* a connection's callbacks fail on what clients send: rate-limited */
        static ls_log_limit_t lim = LS_LOG_LIMIT("Lua errors in connection "
                                                 "callbacks", 0);
        if (conn_id == LS_VM_CLIENT)
            ls_log_limited(&lim, LS_LOG_ERROR, 0, "%s: %s%s%s", what,
                           status == LUA_ERRRUN ? "" : vm_status_name(status),
                           status == LUA_ERRRUN ? "" : ": ", msg);
        else if (conn_id)
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
    vm_enter(vm);
    status = luaL_loadfilex(L, vm->app, "t");
    if (status == LUA_OK) {
        vm->loading = 1;
        status = lua_pcall(L, 0, 0, -2);
        vm->loading = 0;
    }
    vm_leave(vm);
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
        lua_pop(L, 2);
        return -1;
    }
    lua_pop(L, 1);
    return 0;
}
