/*
 * lua_timer.c -- one-shot and periodic timers for Lua.
 *
 * The userdata holds the libevent timer itself (Lua 5.4 never moves a
 * userdata). While a timer is armed a registry reference pins it, so a handle
 * the app drops still fires; cancel() or the last shot of after() unpins it.
 * Errors in a timer callback are logged like any other callback; a periodic
 * timer keeps running.
 */
#include "lua/lua_timer.h"
#include "core/log.h"
#include "lua/binding.h"
#include "lua/co.h"

#include "lua/compat.h"

#include <math.h>

#define TIMER_MT "luaserv.timer"

typedef struct ls_timer {
    struct event ev;
    struct ls_timer *next, *prev;  /* worker's list of armed timers */
    double interval;
    int periodic;
    int armed;
    int self_ref;                  /* pins the userdata while armed */
    int fn_ref;
} ls_timer_t;

static void
timer_unlink(ls_worker_t *w, ls_timer_t *t, lua_State *L)
{
    if (!t->armed)
        return;
    event_del(&t->ev);
    t->armed = 0;
    if (t->prev)
        t->prev->next = t->next;
    else
        w->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->fn_ref = t->self_ref = LUA_NOREF;
}

static void
timer_on_fire(evutil_socket_t fd, short what, void *arg)
{
    ls_timer_t *t = arg;
    ls_worker_t *w = ls_worker;
    ls_co_t *co = ls_co_get();
    lua_State *L;
    (void)fd;
    (void)what;

    if (co == NULL)
        return;
    L = co->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->fn_ref);        /* fn */
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);      /* fn handle */
    if (!t->periodic)
        timer_unlink(w, t, L); /* the handle on the stack keeps t alive */
    /* in a coroutine of its own: it may wait; an every() timer's next
     * shot does not wait for it */
    ls_co_start(co, 1, t->periodic ? "timer (every)" : "timer (after)", NULL,
                0);
    ls_conn_flush_all();
}

static int
timer_new(lua_State *L, int periodic)
{
    ls_worker_t *w = ls_worker;
    lua_Number secs = luaL_checknumber(L, 1);
    ls_timer_t *t;
    struct timeval tv;

    luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_argcheck(L, secs == secs && secs >= 0 && secs < 1e9, 1,
                  "seconds must be a number from 0 to 1e9");
    if (periodic && secs < 0.001)
        luaL_argerror(L, 1, "an every() interval must be at least 0.001 s");
    if (ls_vm_of(L)->mode != LS_VM_WORKER || ls_vm_of(L)->loading ||
        w == NULL || w->base == NULL)
        return luaL_error(L, "timers run in workers only: create them in "
                          "onWorkerStart or a callback, not at the top level "
                          "of the script");
    t = lua_newuserdatauv(L, sizeof(*t), 0);             /* fn? t */
    t->fn_ref = t->self_ref = LUA_NOREF;
    t->armed = 0;
    luaL_setmetatable(L, TIMER_MT);
    t->interval = secs;
    t->periodic = periodic;
    event_assign(&t->ev, w->base, -1, periodic ? EV_PERSIST : 0, timer_on_fire,
                 t);
    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - floor(secs)) * 1e6);
    lua_pushvalue(L, 2);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    event_add(&t->ev, &tv);
    t->armed = 1;
    t->prev = NULL; /* the new head; userdata memory is not zeroed */
    t->next = w->timers;
    if (w->timers)
        w->timers->prev = t;
    w->timers = t;
    return 1;
}

/* luaserv.after(seconds, fn) -> handle   [-2, +1, e] */
static int
ltimer_after(lua_State *L)
{
    return timer_new(L, 0);
}

/* luaserv.every(seconds, fn) -> handle   [-2, +1, e] */
static int
ltimer_every(lua_State *L)
{
    return timer_new(L, 1);
}

/* handle:cancel() -> true if it was armed, false otherwise   [-1, +1, e] */
static int
ltimer_cancel(lua_State *L)
{
    ls_timer_t *t = luaL_checkudata(L, 1, TIMER_MT);
    int was = t->armed;
    if (ls_worker)
        timer_unlink(ls_worker, t, L);
    lua_pushboolean(L, was);
    return 1;
}

/* handle:active() -> boolean */
static int
ltimer_active(lua_State *L)
{
    ls_timer_t *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushboolean(L, t->armed);
    return 1;
}

static int
ltimer_tostring(lua_State *L)
{
    ls_timer_t *t = luaL_checkudata(L, 1, TIMER_MT);
    lua_pushfstring(L, "luaserv.timer (%s %f s, %s)",
                    t->periodic ? "every" : "after", t->interval,
                    t->armed ? "armed" : "done");
    return 1;
}

static const luaL_Reg ltimer_methods[] = {
    {"active", ltimer_active},
    {"cancel", ltimer_cancel},
    {NULL, NULL},
};

void
ls_lua_timer_register(lua_State *L)
{
    if (luaL_newmetatable(L, TIMER_MT)) {                /* lib mt */
        luaL_newlib(L, ltimer_methods);                  /* lib mt methods */
        lua_setfield(L, -2, "__index");                  /* lib mt */
        lua_pushcfunction(L, ltimer_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);                                       /* lib */
    lua_pushcfunction(L, ltimer_after);
    lua_setfield(L, -2, "after");
    lua_pushcfunction(L, ltimer_every);
    lua_setfield(L, -2, "every");
}

/* Timers stop with their worker. */
void
ls_lua_timer_cancel_all(ls_worker_t *w)
{
    while (w->timers)
        timer_unlink(w, w->timers, w->vm->L);
}
