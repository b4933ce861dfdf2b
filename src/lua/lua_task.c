/*
 * lua_task.c -- task workers from Lua.
 *
 * In a worker, luaserv.task(data [, timeout]) sends data to the task queue
 * (core/task.c) and the calling coroutine waits; the result comes back on
 * this process's result socket, read by an event here, and resumes it with
 * result, nil or nil, err. A timer gives "timeout" (a late result is then
 * dropped).
 *
 * In a task worker, each task runs luaserv.onTask(data) in a coroutine
 * (through a small runner that catches its error, so the outcome is
 * always known); the task worker's loop asks ls_lua_task_done.
 */
#include "lua/lua_task.h"
#include "core/log.h"
#include "core/task.h"
#include "lua/binding.h"
#include "lua/co.h"
#include "net/loop.h"

#include "lua/compat.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TASK_DEFAULT_TIMEOUT 60.0

typedef struct task_req {
    uint64_t id;
    ls_co_t *co;
    struct event timer;
    struct task_req *prev, *next;
} task_req_t;

static int task_workers;          /* 0: none; -1: this is a task worker */
static task_req_t *task_reqs;     /* waiting for a result */
static uint64_t task_next_id;
static struct event task_reply_ev;
static int task_reply_on;
static char *task_buf;            /* LS_TASK_MAX bytes */

void
ls_lua_task_use(int n)
{
    task_workers = n;
}

/* ---- asking: luaserv.task ---------------------------------------------- */

static void
task_finish(task_req_t *r, int status, const char *data, size_t len)
{
    ls_co_t *co = r->co;
    lua_State *L = co->L;

    if (r->prev)
        r->prev->next = r->next;
    else
        task_reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    evtimer_del(&r->timer);
    free(r);
    if (status == LS_TASK_OK) {
        lua_pushlstring(L, data, len);
        lua_pushnil(L);
    } else if (status == LS_TASK_FAILED) {
        lua_pushnil(L);
        lua_pushliteral(L, "task failed: ");
        lua_pushlstring(L, data, len);
        lua_concat(L, 2);
    } else {
        lua_pushnil(L);
        lua_pushlstring(L, data, len);  /* "timeout", "task worker died" */
    }
    ls_co_resume(co, 2);
}

static void
task_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    task_finish(arg, -1, "timeout", 7);
    ls_conn_flush_all();
}

static void
task_on_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    for (int i = 0; i < 64; i++) {
        uint64_t id;
        int status;
        ssize_t n = ls_task_reply_recv(&id, &status, task_buf);
        task_req_t *r;
        if (n < 0)
            break;
        for (r = task_reqs; r != NULL && r->id != id; r = r->next)
            ;
        if (r != NULL) /* else it timed out already */
            task_finish(r, status, task_buf, (size_t)n);
    }
    ls_conn_flush_all();
}

static int
task_reply_start(void)
{
    int fd;
    if (task_reply_on)
        return 0;
    if (task_buf == NULL && (task_buf = malloc(LS_TASK_MAX)) == NULL)
        return -1;
    if ((fd = ls_task_reply_fd()) < 0) {
        ls_log(LS_LOG_ERROR, errno, "cannot bind the socket for task "
               "results");
        return -1;
    }
    event_assign(&task_reply_ev, ls_worker->base, fd, EV_READ | EV_PERSIST,
                 task_on_reply, NULL);
    event_add(&task_reply_ev, NULL);
    task_reply_on = 1;
    return 0;
}

/* luaserv.task(data [, timeout]) -> result, nil | nil, err   [-1..2, +2, e]
 * waits */
static int
ltask_task(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Number timeout = luaL_optnumber(L, 2, TASK_DEFAULT_TIMEOUT);
    struct timeval tv;
    task_req_t *r;
    ls_co_t *co;

    luaL_argcheck(L, timeout > 0 && timeout < 1e9, 2,
                  "seconds from 0 to 1e9 expected");
    luaL_argcheck(L, len <= LS_TASK_MAX, 1, "data over 1048576 bytes");
    if (task_workers < 0)
        return luaL_error(L, "luaserv.task: not in a task worker");
    if (task_workers == 0 || !ls_task_ready())
        return luaL_error(L, "luaserv.task: there are no task workers "
                          "(settings{ taskWorkers = N })");
    co = ls_co_check(L, "luaserv.task");
    if (task_reply_start() < 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot receive results");
        return 2;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return luaL_error(L, "not enough memory");
    r->id = ++task_next_id;
    if (ls_task_submit(r->id, data, len) < 0) {
        int e = errno;
        free(r);
        lua_pushnil(L);
        lua_pushstring(L, e == EAGAIN ? "queue full" : strerror(e));
        return 2;
    }
    r->co = co;
    r->next = task_reqs;
    if (task_reqs)
        task_reqs->prev = r;
    task_reqs = r;
    tv.tv_sec = (time_t)timeout;
    tv.tv_usec = (suseconds_t)((timeout - floor(timeout)) * 1e6);
    evtimer_assign(&r->timer, ls_worker->base, task_on_timeout, r);
    evtimer_add(&r->timer, &tv);
    return lua_yield(L, 0);
}

void
ls_lua_task_register(lua_State *L)
{
    lua_pushcfunction(L, ltask_task);
    lua_setfield(L, -2, "task");
}

/* ---- running: luaserv.onTask ------------------------------------------- */

static int task_runner_ref = LUA_NOREF;
static int task_running, task_reported, task_co_done, task_status;
static char *task_result;
static size_t task_result_len;

static void
task_set_result(int status, const char *s, size_t len)
{
    char *p = realloc(task_result, len ? len : 1);
    task_status = status;
    task_reported = 1;
    if (p == NULL) {
        task_status = LS_TASK_FAILED;
        task_result_len = 0;
        return;
    }
    task_result = p;
    memcpy(p, s, len);
    task_result_len = len;
}

/* report(ok, result): the runner's last word   [-2, +0, -] */
static int
ltask_report(lua_State *L)
{
    size_t len;
    const char *s;
    if (lua_toboolean(L, 1) && (lua_type(L, 2) == LUA_TSTRING ||
                                lua_type(L, 2) == LUA_TNUMBER)) {
        s = lua_tolstring(L, 2, &len);
        task_set_result(LS_TASK_OK, s, len);
    } else if (lua_toboolean(L, 1)) {
        lua_pushfstring(L, "onTask returned %s (a string expected)",
                        luaL_typename(L, 2));
        s = lua_tolstring(L, -1, &len);
        task_set_result(LS_TASK_FAILED, s, len);
    } else {
        s = lua_tolstring(L, 2, &len);
        task_set_result(LS_TASK_FAILED, s ? s : "?", s ? len : 1);
    }
    return 0;
}

/* The message handler of onTask: logs the error with its traceback,
 * returns the message.   [-1, +1, m] */
static int
ltask_handler(lua_State *L)
{
    const char *msg = luaL_tolstring(L, 1, NULL);     /* e msg */
    luaL_traceback(L, L, msg, 1);                      /* e msg tb */
    ls_log(LS_LOG_ERROR, 0, "onTask: %s", lua_tostring(L, -1));
    lua_pop(L, 1);                                     /* e msg */
    return 1;
}

static const char task_runner_src[] =
    "local onTask, report, handler = ...\n"
    "local xpcall = xpcall\n"
    "return function(data)\n"
    "    report(xpcall(onTask, handler, data))\n"
    "end\n";

int
ls_lua_task_check(ls_vm_t *vm, char *err, size_t errlen)
{
    lua_State *L = vm->L;
    int top = lua_gettop(L), ok;

    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* loaded */
    lua_getfield(L, -1, "luaserv");                      /* loaded luaserv */
    ok = lua_istable(L, -1) &&
         lua_getfield(L, -1, "onTask") == LUA_TFUNCTION;
    lua_settop(L, top);
    if (!ok)
        snprintf(err, errlen, "taskWorkers is set but the script defines "
                 "no function luaserv.onTask(data)");
    return ok ? 0 : -1;
}

int
ls_lua_task_worker_init(ls_vm_t *vm, char *err, size_t errlen)
{
    lua_State *L = vm->L;
    int top = lua_gettop(L);

    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* loaded */
    lua_getfield(L, -1, "luaserv");                      /* loaded luaserv */
    if (!lua_istable(L, -1) ||
        lua_getfield(L, -1, "onTask") != LUA_TFUNCTION) { /* ... onTask */
        snprintf(err, errlen, "taskWorkers is set but the script defines "
                 "no function luaserv.onTask(data)");
        lua_settop(L, top);
        return -1;
    }
    if (luaL_loadbuffer(L, task_runner_src, sizeof(task_runner_src) - 1,
                        "=luaserv.task") != LUA_OK) {  /* ... onTask chunk */
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    lua_insert(L, -2);                                   /* ... chunk onTask */
    lua_pushcfunction(L, ltask_report);
    lua_pushcfunction(L, ltask_handler);                 /* chunk f r h */
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {               /* ... runner */
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_settop(L, top);
        return -1;
    }
    task_runner_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    ls_lua_push_worker(L);                          /* ... worker */
    if (lua_istable(L, -1)) {
        lua_pushliteral(L, "task");
        lua_setfield(L, -2, "name");
        lua_pushliteral(L, "task");
        lua_setfield(L, -2, "listener");
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "task");
    }
    lua_settop(L, top);
    return 0;
}

void
ls_lua_task_run(ls_vm_t *vm, const char *data, size_t len)
{
    ls_co_t *co = ls_co_get();
    int r;

    (void)vm;
    task_running = 1;
    task_reported = 0;
    task_co_done = 0;
    if (co == NULL) {
        task_set_result(LS_TASK_FAILED, "out of memory", 13);
        return;
    }
    lua_rawgeti(co->L, LUA_REGISTRYINDEX, task_runner_ref); /* runner */
    lua_pushlstring(co->L, data, len);                   /* runner data */
    co->done = &task_co_done;
    r = ls_co_start(co, 1, "onTask", NULL, 0);
    if (r != LS_EV_WAIT)
        task_co_done = r == LS_EV_OK ? 1 : -1;
}

int
ls_lua_task_done(int *status, const char **res, size_t *len)
{
    static const char failed[] = "onTask failed (see the task worker's log)";

    if (!task_running || (!task_reported && task_co_done == 0))
        return 0;
    task_running = 0;
    if (!task_reported) /* the runner itself was stopped (callbackTimeout) */
        task_set_result(LS_TASK_FAILED, failed, sizeof(failed) - 1);
    *status = task_status;
    *res = task_result;
    *len = task_result_len;
    return 1;
}
