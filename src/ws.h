/*
 * ws.h -- websocket:// (RFC 6455) listeners: the HTTP/1.1 upgrade
 * handshake here, frames by libwslay.
 */
#ifndef LS_WS_H
#define LS_WS_H

#include "proto.h"

extern const ls_proto_t ls_proto_ws;

#endif
