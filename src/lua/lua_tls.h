/*
 * lua_tls.h -- the `ssl` listener option: its table checked and turned into
 * an ls_tls_conf_t, the certificates loaded (net/tls.c).
 */
#ifndef LS_LUA_TLS_H
#define LS_LUA_TLS_H

#include "core/config.h"
#include "net/tls.h"

struct lua_State;

/* The ssl table at idx: its fields checked (raises "bad option 'ssl' ...");
 * relative paths are taken from appdir. If build, the certificates are
 * loaded and the context returned (raises with the reason when a file is
 * missing, unreadable or does not match); else NULL. record (the
 * validator's conf, or NULL) gets every file named, for listener. */
ls_tls_t *ls_lua_tls_server(struct lua_State *L, int idx, const char *appdir,
                            int alpn_http, int build, ls_conf_t *record,
                            const char *listener);

/* "luaserv.ssl_session": what sock:sslhandshake returns and takes. */
void ls_lua_tls_register(struct lua_State *L);
void ls_lua_tls_session_push(struct lua_State *L, ls_tls_session_t *box);
ls_tls_session_t *ls_lua_tls_session_check(struct lua_State *L, int idx);

#endif
