/*
 * ws.h -- WebSocket (RFC 6455) connections: the handshake (a request that
 * http.c has parsed), then frames by libwslay.
 */
#ifndef LS_WS_H
#define LS_WS_H

#include "proto.h"

#include <stddef.h>

struct ls_conn;

extern const ls_proto_t ls_proto_ws;

int ls_ws_upgrade(struct ls_conn *c, int req);
int ls_ws_token(const char *v, size_t n, const char *tok);

#endif
