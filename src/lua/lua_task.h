/*
 * lua_task.h -- luaserv.task (in workers) and luaserv.onTask (in task
 * workers).
 */
#ifndef LS_LUA_TASK_H
#define LS_LUA_TASK_H

#include <stddef.h>

struct lua_State;
struct ls_vm;

/* How many task workers there are (0: luaserv.task raises); before the app
 * loads. A task worker passes -1: it may not ask for tasks itself. */
void ls_lua_task_use(int task_workers);
/* core.task; the core table on top. */
void ls_lua_task_register(struct lua_State *L);

/* After the app loaded (the validator): luaserv.onTask is a function, or
 * -1 with err. */
int ls_lua_task_check(struct ls_vm *vm, char *err, size_t errlen);
/* Task worker: after the app loaded, find luaserv.onTask; -1 with err. */
int ls_lua_task_worker_init(struct ls_vm *vm, char *err, size_t errlen);
/* Start onTask(data) in a coroutine (it may wait). */
void ls_lua_task_run(struct ls_vm *vm, const char *data, size_t len);
/* Is it done? 1 with its outcome (LS_TASK_OK with the result, or
 * LS_TASK_FAILED with the error text), else 0. */
int ls_lua_task_done(int *status, const char **res, size_t *len);

#endif
