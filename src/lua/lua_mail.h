/*
 * lua_mail.h -- luaserv.send / luaserv.broadcast, and onWorkerMessage.
 */
#ifndef LS_LUA_MAIL_H
#define LS_LUA_MAIL_H

#include <stddef.h>

struct lua_State;
struct ls_vm;

/* This worker's id and how many ids there are (0: not a worker). */
void ls_lua_mail_use(int self_id, int nids);
/* core.send and core.broadcast; the core table on top. */
void ls_lua_mail_register(struct lua_State *L);
/* listener.onWorkerMessage(worker, from_id, msg) in a coroutine; 0, or -1
 * when it raised (logged). No such callback: the message is dropped. */
int ls_lua_mail_deliver(struct ls_vm *vm, int from, const char *msg,
                        size_t len);

#endif
