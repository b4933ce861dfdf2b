/*
 * ws.h -- WebSocket (RFC 6455) connections: the handshake (a request that
 * http.c has parsed), then frames by libwslay.
 */
#ifndef LS_WS_H
#define LS_WS_H

#include "net/proto.h"

#include <stddef.h>

struct ls_conn;

extern const ls_proto_t ls_proto_ws;

#define LS_WS_EARLY (-10) /* ls_ws_send before the 101 */

void ls_ws_init(void);   /* http.c's upgrades go to ws.c */
int ls_ws_send(struct ls_conn *c, const char *p, size_t n, int binary);
void ls_ws_close(struct ls_conn *c, int code, const char *reason,
                 size_t rlen);
int ls_ws_close_code_ok(long long code);
int ls_ws_utf8_ok(const unsigned char *p, size_t n);

#endif
