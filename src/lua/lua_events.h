/*
 * lua_events.h -- the app's side of the connection and HTTP layers: their
 * event tables, implemented by calling the listener's Lua callbacks.
 */
#ifndef LS_LUA_EVENTS_H
#define LS_LUA_EVENTS_H

#include "http/http.h"
#include "net/conn.h"

extern const ls_conn_events_t ls_lua_conn_events;
extern const ls_http_events_t ls_lua_http_events;

struct ls_vm;
int ls_lua_events_worker(struct ls_vm *vm, const char *name, int *done);

#endif
