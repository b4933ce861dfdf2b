/*
 * co.c -- the coroutines callbacks run in.
 *
 * Each callback (onConnect, onMessage, ..., a timer) is started in a
 * coroutine taken from a pool, so that it may yield inside luaserv.sleep or
 * a cosocket call while the worker goes on serving others; one that never
 * yields costs about what a protected call costs (lua_resume instead of
 * lua_pcall, and the coroutine goes back to the pool at once). A coroutine
 * that yields is anchored in the registry until it is done; whatever it
 * waits for (a timer, a socket) resumes it with ls_co_resume. Errors are
 * logged by ls_vm_resume with the coroutine's own traceback; an error
 * after a wait closes the callback's connection (or answers 500 to its
 * HTTP request), as an error before it would have.
 *
 * Order: a callback of a stream connection that waits holds that
 * connection's input (LS_CO_HOLD), so its messages are handled one after
 * the other, as without waiting. HTTP keeps request order itself: a
 * response is only ever for the oldest request.
 */
#include "lua/co.h"
#include "core/log.h"
#include "http/http.h"
#include "lua/binding.h"
#include "net/server.h"

#include "lua/compat.h"

#include <math.h>
#include <stdlib.h>

#define CO_POOL_MAX 256         /* idle coroutines kept */
#define CO_FAILED 0x100         /* ls_co_t.flags: do not pool it again */

static ls_co_t *co_free;        /* the pool */
static int co_nfree;
static int co_nwaiting;
/* The waiting ones, linked so that they stay reachable: a worker that exits
 * with some (a fast stop does not resume them) frees nothing, as for the
 * pool, and LeakSanitizer sees no leak. */
static ls_co_t *co_waiting;
static ls_co_t *co_stack[LS_VM_RUN_MAX]; /* running now, innermost last */
static int co_depth;

ls_co_t *
ls_co_get(void)
{
    ls_vm_t *vm = ls_worker->vm;
    ls_co_t *co = co_free;

    if (co != NULL) {
        co_free = co->next;
        co_nfree--;
        co->next = NULL;
        return co;
    }
    if ((co = calloc(1, sizeof(*co))) == NULL)
        return NULL;
    co->L = lua_newthread(vm->L);                    /* thread */
    co->ref = luaL_ref(vm->L, LUA_REGISTRYINDEX);
    return co;
}

void
ls_co_put(ls_co_t *co)
{
    lua_settop(co->L, 0);
    co->c = NULL;
    co->done = NULL;
    if (co_nfree >= CO_POOL_MAX || (co->flags & CO_FAILED)) {
        luaL_unref(ls_worker->vm->L, LUA_REGISTRYINDEX, co->ref);
        free(co);
        return;
    }
    co->flags = 0;
    co->next = co_free;
    co_free = co;
    co_nfree++;
}

/* It is done (finished or failed): the connection it held goes on. */
static void
co_done(ls_co_t *co, int waited)
{
    ls_conn_t *c = co->c;

    if (waited) {
        if (co->prev != NULL)
            co->prev->next = co->next;
        else
            co_waiting = co->next;
        if (co->next != NULL)
            co->next->prev = co->prev;
        co->next = co->prev = NULL;
        co_nwaiting--;
        ls_worker->app_waiting = co_nwaiting;
        ls_server_check_done(ls_worker); /* a stop waited for it */
        if (c != NULL) {
            if (co->flags & LS_CO_HOLD)
                ls_conn_unhold(c);
            ls_conn_decref(c);
        }
    }
    ls_co_put(co);
}

/* One resume; the status as LS_EV_*. */
static int
co_run(ls_co_t *co, int nargs)
{
    int nres = 0, status;

    co_stack[co_depth++] = co;
    status = ls_vm_resume(ls_worker->vm, co->L, nargs, co->what, co->conn_id,
                          &nres);
    co_depth--;
    if (status == LUA_YIELD) {
        lua_pop(co->L, nres);
        return LS_EV_WAIT;
    }
    if (status == LUA_OK)
        return LS_EV_OK;
    /* Not reused: a coroutine that failed inside a hook (callbackTimeout)
     * keeps its hooks disabled, as lua_resume does not restore them. */
    co->flags |= CO_FAILED;
    return LS_EV_ERROR;
}

int
ls_co_start(ls_co_t *co, int nargs, const char *what, ls_conn_t *c,
            int flags)
{
    int r;

    co->what = what;
    co->c = c;
    co->conn_id = c ? c->id : (flags & LS_CO_CLIENT) ? LS_VM_CLIENT : 0;
    co->flags = flags & ~CO_FAILED;
    r = co_run(co, nargs);
    if (r != LS_EV_WAIT) {
        co_done(co, 0);
        return r;
    }
    co->prev = NULL;
    co->next = co_waiting;
    if (co_waiting != NULL)
        co_waiting->prev = co;
    co_waiting = co;
    co_nwaiting++;
    ls_worker->app_waiting = co_nwaiting;
    if (c != NULL) {
        ls_conn_incref(c);
        if (flags & LS_CO_HOLD)
            ls_conn_hold(c);
    }
    return r;
}

void
ls_co_resume(ls_co_t *co, int nargs)
{
    ls_conn_t *c = co->c;
    int r = co_run(co, nargs);

    if (r == LS_EV_WAIT)
        return;
    if (co->done != NULL)
        *co->done = r == LS_EV_OK ? 1 : -1;
    if (r == LS_EV_ERROR && c != NULL && !(c->flags & LS_CONN_CLOSED)) {
        /* as for an error before the wait (net/conn.c, http/http.c) */
        if (co->flags & LS_CO_HTTP)
            ls_http_abort(c);
        else
            ls_conn_close(c);
    }
    co_done(co, 1);
}

ls_co_t *
ls_co_running(lua_State *L)
{
    if (co_depth > 0 && co_stack[co_depth - 1]->L == L)
        return co_stack[co_depth - 1];
    return NULL;
}

ls_co_t *
ls_co_check(lua_State *L, const char *what)
{
    ls_co_t *co = ls_co_running(L);

    if (co == NULL) {
        if (co_depth > 0 && lua_isyieldable(L))
            luaL_error(L, "%s: cannot wait inside a coroutine of the app's "
                       "own (call it from the callback itself)", what);
        luaL_error(L, "%s: cannot wait here (only callbacks, timers and "
                   "onWorkerStart may wait; not the top level of the "
                   "script, onWebSocketConnect or a protocol function)",
                   what);
    }
    return co;
}

int
ls_co_waiting(void)
{
    return co_nwaiting;
}

/* ---- luaserv.sleep ----------------------------------------------------- */

static void
co_on_sleep(evutil_socket_t fd, short what, void *arg)
{
    ls_co_t *co = arg;
    (void)fd;
    (void)what;

    co->timer_set = 0;
    ls_co_resume(co, 0);
    ls_conn_flush_all();
}

/* luaserv.sleep(seconds): this callback waits; the worker does not. */
static int
co_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    ls_co_t *co;
    struct timeval tv;

    luaL_argcheck(L, secs == secs && secs >= 0 && secs < 1e9, 1,
                  "seconds must be a number from 0 to 1e9");
    co = ls_co_check(L, "luaserv.sleep");
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - floor(secs)) * 1e6);
    evtimer_assign(&co->timer, ls_worker->base, co_on_sleep, co);
    evtimer_add(&co->timer, &tv);
    co->timer_set = 1;
    return lua_yield(L, 0);
}

void
ls_co_register(lua_State *L)
{
    lua_pushcfunction(L, co_sleep);
    lua_setfield(L, -2, "sleep");
}
