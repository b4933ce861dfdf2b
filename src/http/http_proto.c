/*
 * http_proto.c -- the http:// protocol as the connection layer sees it:
 * requests in (http.c), responses out (http_send.c). A websocket:// listener
 * starts with it too: ws.c takes a handshake over (ls_http_upgrade).
 */
#include "http/http.h"

const ls_proto_t ls_proto_http = {
    .name = "http",
    .kind = LS_PROTO_HTTP,
    .input = ls_http_input,
    .missing = ls_http_missing,
    .send = ls_http_send,
    .drain = ls_http_drain,
    .start = ls_http_start,
    .release = ls_http_release,
    .idle = ls_http_idle,
};
