/*
 * proto.h -- the protocol layer between a connection's bytes and Lua.
 *
 * A connection reads bytes and hands them to its listener's protocol; the
 * protocol turns them into messages and tells the app (ls_conn_emit_messages,
 * ls_conn_events), and turns what the app sends back into bytes
 * (ls_conn_outbuf + ls_conn_commit). The stream protocols (tcp://, text://,
 * frame://, declarative framing) live in proto.c; http:// and websocket://
 * (http/) plug in the same way, and so does a protocol written in Lua
 * (lua/lua_proto.c). A connection carries its own protocol (conn->proto):
 * an HTTP request may switch it to WebSocket.
 *
 * Nothing here knows Lua: conn:send's and conn:close's Lua arguments are
 * turned into C by the Lua layer's adapter for the protocol's kind.
 */
#ifndef LS_PROTO_H
#define LS_PROTO_H

#include <stddef.h>

struct ls_conn;

/* Which Lua adapter serves conn:send / conn:close (lua/lua_conn.c). */
enum { LS_PROTO_STREAM, LS_PROTO_HTTP, LS_PROTO_WS, LS_PROTO_CUSTOM };

typedef struct ls_proto {
    const char *name;
    int kind;                   /* LS_PROTO_* */
    /* Bytes that arrived, after whatever was left over from before. Return
     * how many were used; the rest is offered again with more. The
     * connection may be closed or paused on return: the caller checks. */
    size_t (*input)(struct ls_conn *c, const char *buf, size_t len);
    /* How many more bytes the message at the head of buf needs, if known
     * (lets a large message be read in large pieces); may be NULL. */
    size_t (*missing)(struct ls_conn *c, const char *buf, size_t len);
    /* Queue one message of n bytes, framed as the protocol frames what the
     * app sends (raw: as it is). Returns an LS_SEND_* code. */
    int (*send)(struct ls_conn *c, const char *p, size_t n, int raw);
    /* The worker is stopping gracefully: end this connection as soon as
     * the protocol allows (may be NULL: wait for the peer). */
    void (*drain)(struct ls_conn *c);
    /* A connection was accepted (or connected), before onConnect: e.g.
     * start a timeout (may be NULL). */
    void (*start)(struct ls_conn *c);
    /* The connection is gone: free per-connection state (may be NULL). */
    void (*release)(struct ls_conn *c);
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

extern const ls_proto_t ls_proto_stream;
int ls_proto_stream_send(struct ls_conn *c, const char *p, size_t n, int raw);

#endif
