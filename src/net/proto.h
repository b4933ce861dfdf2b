/*
 * proto.h -- the protocol layer between a connection's bytes and Lua.
 *
 * A connection reads bytes and hands them to its listener's protocol; the
 * protocol turns them into messages and calls the app (ls_conn_emit_*), and
 * turns what the app sends back into bytes (ls_conn_outbuf + ls_conn_commit).
 * The stream protocols (tcp://, text://, frame://, declarative framing) live
 * in proto.c; http:// and websocket:// plug in the same way. A connection
 * carries its own protocol (conn->proto): an HTTP request may switch it to
 * WebSocket (ws.c).
 */
#ifndef LS_PROTO_H
#define LS_PROTO_H

#include <lua.h>
#include <stddef.h>

struct ls_conn;

typedef struct ls_proto {
    const char *name;
    /* Bytes that arrived, after whatever was left over from before. Return
     * how many were used; the rest is offered again with more. The
     * connection may be closed or paused on return: the caller checks. */
    size_t (*input)(struct ls_conn *c, const char *buf, size_t len);
    /* How many more bytes the message at the head of buf needs, if known
     * (lets a large message be read in large pieces); may be NULL. */
    size_t (*missing)(struct ls_conn *c, const char *buf, size_t len);
    /* conn:send(value [, raw]): encode the Lua value at idx and queue it.
     * Returns an LS_SEND_* code; raises on a bad value. */
    int (*send)(struct ls_conn *c, lua_State *L, int idx, int raw);
    /* The worker is stopping gracefully: end this connection as soon as
     * the protocol allows (may be NULL: wait for the peer). */
    void (*drain)(struct ls_conn *c);
    /* A connection was accepted (or connected), before onConnect: e.g.
     * start a timeout (may be NULL). */
    void (*start)(struct ls_conn *c);
    /* The connection is gone: free per-connection state (may be NULL). */
    void (*release)(struct ls_conn *c);
    /* conn:close(...), the Lua arguments from idx on: end the connection
     * as the protocol does (may be NULL: send the optional data, then
     * close once the output is written). May raise on bad arguments. */
    void (*close)(struct ls_conn *c, lua_State *L, int idx);
    /* idleTimeout: the server ends a quiet connection on its own, as the
     * protocol does (may be NULL: ls_conn_close). Called again on each
     * sweep until the connection is gone or has traffic. */
    void (*idle)(struct ls_conn *c);
    /* The worker is stopping fast: the connection is destroyed right after
     * this returns. Queue a last word (a WebSocket close frame) and try one
     * non-blocking write of what is pending; never wait for the peer and
     * never close the connection here (may be NULL). */
    void (*stop)(struct ls_conn *c);
} ls_proto_t;

struct ls_listen_conf;
const ls_proto_t *ls_proto_find(const char *name);
const ls_proto_t *ls_proto_for(const struct ls_listen_conf *l);
struct ls_server;
void ls_proto_attach(struct ls_server *srv);

extern const ls_proto_t ls_proto_stream;
extern const ls_proto_t ls_proto_lua;

#endif
