/*
 * lua_mail.c -- messages between workers: luaserv.send(id, msg),
 * luaserv.broadcast(msg) over core/mail.c, and the listener's
 * onWorkerMessage(worker, from_id, msg) for each one received.
 *
 * Ids are luaserv.worker.id, unique across listeners. A send never waits:
 * a full queue returns nil, "queue full".
 */
#include "lua/lua_mail.h"
#include "core/mail.h"
#include "lua/binding.h"
#include "lua/co.h"

#include "lua/compat.h"

#include <errno.h>
#include <string.h>

static int mail_self = -1;
static int mail_nids;

void
ls_lua_mail_use(int self_id, int nids)
{
    mail_self = self_id;
    mail_nids = nids;
}

static const char *
mail_check(lua_State *L, int idx, const char *fn, size_t *len)
{
    const char *msg = luaL_checklstring(L, idx, len);
    if (mail_self < 0)
        luaL_error(L, "luaserv.%s: only in a worker (not while the master "
                   "validates the script)", fn);
    if (*len > LS_MAIL_MAX)
        luaL_argerror(L, idx, "message over 1048576 bytes");
    return msg;
}

static const char *
mail_errstr(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK ? "queue full"
           : e == EINVAL                   ? "no such worker"
                                           : strerror(e);
}

/* luaserv.send(worker_id, msg) -> true | nil, err   [-2, +1..2, e] */
static int
lmail_send(lua_State *L)
{
    lua_Integer to = luaL_checkinteger(L, 1);
    size_t len;
    const char *msg = mail_check(L, 2, "send", &len);

    if (to < 0 || to >= mail_nids) {
        lua_pushnil(L);
        lua_pushliteral(L, "no such worker");
        return 2;
    }
    if (ls_mail_send((int)to, mail_self, msg, len) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, mail_errstr(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* luaserv.broadcast(msg) -> true | nil, err   [-1, +1..2, e]: to every
 * worker of every listener, this one included; the first failure is
 * returned after all were tried. */
static int
lmail_broadcast(lua_State *L)
{
    size_t len;
    const char *msg = mail_check(L, 1, "broadcast", &len);
    int err = 0;

    for (int to = 0; to < mail_nids; to++)
        if (ls_mail_send(to, mail_self, msg, len) < 0 && err == 0)
            err = errno;
    if (err) {
        lua_pushnil(L);
        lua_pushstring(L, mail_errstr(err));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

void
ls_lua_mail_register(lua_State *L)
{
    lua_pushcfunction(L, lmail_broadcast);
    lua_setfield(L, -2, "broadcast");
    lua_pushcfunction(L, lmail_send);
    lua_setfield(L, -2, "send");
}

int
ls_lua_mail_deliver(ls_vm_t *vm, int from, const char *msg, size_t len)
{
    ls_co_t *co = ls_co_get();
    lua_State *L;

    if (co == NULL)
        return -1;
    L = co->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->serve_ref);    /* srv */
    if (lua_getfield(L, -1, "onWorkerMessage") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        ls_co_put(co);
        return 0;
    }
    lua_remove(L, -2);                                   /* f */
    ls_lua_push_worker(L);                          /* f worker */
    lua_pushinteger(L, from);                            /* f worker from */
    lua_pushlstring(L, msg, len);                        /* f worker from msg */
    return ls_co_start(co, 3, "onWorkerMessage", NULL, 0) == LS_EV_ERROR
               ? -1
               : 0;
}
