/*
 * ws.c -- websocket:// listeners (RFC 6455).
 *
 * The GET request head is parsed here, minimally but strictly; the app's
 * onWebSocketConnect(conn, req) may refuse (403). After the 101 answer,
 * libwslay does the frames: input() feeds it bytes through its recv
 * callback, its send callback appends to the connection's output buffer.
 * wslay answers pings, enforces client masking, reassembles fragmented
 * messages, closes with 1009 over maxPackageSize and runs the close
 * handshake; onMessage(conn, data) gets text and binary messages.
 */
#include "ws.h"
#include "conn.h"
#include "log.h"

#include <lauxlib.h>
#include <wslay/wslay.h>

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WS_MAX_HEAD (16 * 1024)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

typedef struct ws_state {
    wslay_event_context_ptr ctx;
    ls_conn_t *c;
    const char *rbuf;   /* bytes being offered to wslay */
    size_t rlen, roff;
    int busy;           /* inside wslay: release() must wait */
    int dead;           /* released while busy */
} ws_state_t;

/* ---- SHA-1 (FIPS 180-1) and base64, for Sec-WebSocket-Accept ---- */

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a, b, c, d, e, f, k, t;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (; i < 80; i++)
        w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (i = 0; i < 80; i++) {
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        t = ROL(a, 5) + f + e + k + w[i];
        e = d, d = c, c = ROL(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void
sha1(const unsigned char *msg, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476,
                     0xC3D2E1F0};
    unsigned char blk[64];
    uint64_t bits = (uint64_t)len * 8;
    size_t off = 0, r;
    int i;

    for (; len - off >= 64; off += 64)
        sha1_block(h, msg + off);
    r = len - off;
    memset(blk, 0, sizeof(blk));
    memcpy(blk, msg + off, r);
    blk[r] = 0x80;
    if (r >= 56) {
        sha1_block(h, blk);
        memset(blk, 0, sizeof(blk));
    }
    for (i = 0; i < 8; i++)
        blk[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, blk);
    for (i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* out must hold 4 * ((n + 2) / 3) + 1 bytes. */
static void
base64(const unsigned char *p, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;

    for (i = 0; i + 2 < n; i += 3) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
        *out++ = tab[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        *out++ = tab[p[i + 2] & 63];
    }
    if (n - i == 1) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        *out++ = tab[p[i] >> 2];
        *out++ = tab[(p[i] & 3) << 4 | p[i + 1] >> 4];
        *out++ = tab[(p[i + 1] & 15) << 2];
        *out++ = '=';
    }
    *out = '\0';
}

/* ---- wslay callbacks ---- */

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
           void *user)
{
    ws_state_t *s = user;
    size_t n = s->rlen - s->roff;

    (void)flags;
    if (n == 0 || !ls_conn_receiving(s->c)) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n > len)
        n = len;
    memcpy(buf, s->rbuf + s->roff, n);
    s->roff += n;
    return (ssize_t)n;
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
           int flags, void *user)
{
    ws_state_t *s = user;
    struct evbuffer *out;

    (void)flags;
    if ((s->c->flags & LS_CONN_CLOSED) || (out = ls_conn_outbuf(s->c)) ==
        NULL || evbuffer_add(out, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ls_conn_commit(s->c);
    return (ssize_t)len;
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
          const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    ws_state_t *s = user;

    (void)ctx;
    if (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME)
        return;
    if (s->c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))
        return;
    ls_conn_emit_message(s->c, (const char *)arg->msg, arg->msg_length);
}

static const struct wslay_event_callbacks ws_callbacks = {
    ws_recv_cb, ws_send_cb, NULL, NULL, NULL, NULL, ws_msg_cb,
};

static void
ws_free(ws_state_t *s)
{
    if (s->ctx)
        wslay_event_context_free(s->ctx);
    free(s);
}

/* Write what wslay has queued; end the connection once both sides have
 * closed, or on a wslay error. */
static void
ws_pump(ls_conn_t *c, ws_state_t *s)
{
    if (c->flags & LS_CONN_CLOSED)
        return;
    if (wslay_event_send(s->ctx) != 0) {
        ls_conn_close(c);
        return;
    }
    if (!wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx))
        ls_conn_close(c);
}

/* ---- the handshake ---- */

static void
ws_reply(ls_conn_t *c, const char *status, const char *extra)
{
    struct evbuffer *out = ls_conn_outbuf(c);

    if (out != NULL) {
        evbuffer_add_printf(out, "HTTP/1.1 %s\r\nConnection: close\r\n%s"
                            "Content-Length: 0\r\n\r\n", status, extra);
        ls_conn_commit(c);
    }
    ls_conn_close(c);
}

/* Does the comma-separated list v (length n) hold token tok? */
static int
has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);

    while (*v) {
        const char *e;
        size_t n;
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        e = v;
        while (*e && *e != ',')
            e++;
        n = (size_t)(e - v);
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n == tl && strncasecmp(v, tok, tl) == 0)
            return 1;
        v = e;
    }
    return 0;
}

static int
is_tchar(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Parse head[0..n) (ending in CRLF CRLF) into a req table left on the Lua
 * stack; 0 if malformed (nothing pushed). */
static int
ws_parse_head(lua_State *L, const char *head, size_t n)
{
    const char *p = head, *end = head + n, *eol, *sp;
    int top = lua_gettop(L);

    eol = memchr(p, '\r', (size_t)(end - p));
    if (eol == NULL || eol[1] != '\n' || eol - p < 14 ||
        memcmp(p, "GET ", 4) != 0 || memcmp(eol - 9, " HTTP/1.1", 9) != 0)
        return 0;
    sp = p + 4;
    if (*sp != '/' || eol - 9 <= sp)
        return 0;
    for (const char *q = sp; q < eol - 9; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return 0;
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "GET");
    lua_setfield(L, -2, "method");
    lua_pushlstring(L, sp, (size_t)(eol - 9 - sp));
    lua_setfield(L, -2, "url");
    {
        const char *qm = memchr(sp, '?', (size_t)(eol - 9 - sp));
        lua_pushlstring(L, sp, (size_t)((qm ? qm : eol - 9) - sp));
        lua_setfield(L, -2, "path");
    }
    lua_newtable(L); /* headers */
    p = eol + 2;
    for (;;) {
        const char *colon, *v, *ve;
        char name[256];
        size_t nl, i;

        eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            goto bad;
        if (eol == p)
            break;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p ||
            (nl = (size_t)(colon - p)) >= sizeof(name))
            goto bad;
        for (i = 0; i < nl; i++) {
            if (!is_tchar((unsigned char)p[i]))
                goto bad;
            name[i] = (char)tolower((unsigned char)p[i]);
        }
        v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *q = v; q < ve; q++)
            if ((unsigned char)*q < ' ' && *q != '\t')
                goto bad;
        lua_pushlstring(L, name, nl);
        if (lua_getfield(L, -2, lua_tostring(L, -1)) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, v, (size_t)(ve - v));
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, v, (size_t)(ve - v));
        }
        lua_rawset(L, -3);
        p = eol + 2;
    }
    lua_setfield(L, -2, "headers");
    return 1;
bad:
    lua_settop(L, top);
    return 0;
}

static const char *
hdr(lua_State *L, int req, const char *name)
{
    const char *v;

    lua_getfield(L, req, "headers");
    lua_getfield(L, -1, name);
    v = lua_tostring(L, -1); /* stays alive: the table holds it */
    lua_pop(L, 2);
    return v;
}

/* Returns the head length used, or 0 with the connection closing. */
static size_t
ws_handshake(ls_conn_t *c, const char *buf, size_t hlen)
{
    lua_State *L = ls_worker->vm->L;
    int top = lua_gettop(L), req;
    const char *v, *key;
    char cat[128], accept[32], extra[128];
    unsigned char dig[20];
    ws_state_t *s;

    if (!ws_parse_head(L, buf, hlen)) {
        ws_reply(c, "400 Bad Request", "");
        return 0;
    }
    req = lua_gettop(L);
    if ((v = hdr(L, req, "upgrade")) == NULL || !has_token(v, "websocket") ||
        (v = hdr(L, req, "connection")) == NULL || !has_token(v, "upgrade") ||
        (key = hdr(L, req, "sec-websocket-key")) == NULL ||
        strlen(key) != 24 || hdr(L, req, "host") == NULL) {
        lua_settop(L, top);
        ws_reply(c, "400 Bad Request", "");
        return 0;
    }
    if ((v = hdr(L, req, "sec-websocket-version")) == NULL ||
        strcmp(v, "13") != 0) {
        lua_settop(L, top);
        ws_reply(c, "400 Bad Request", "Sec-WebSocket-Version: 13\r\n");
        return 0;
    }
    snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    sha1((const unsigned char *)cat, strlen(cat), dig);
    base64(dig, sizeof(dig), accept);

    /* The context comes first, so that onWebSocketConnect may already
     * conn:send (a welcome): busy holds the frames until after the 101. */
    if ((s = calloc(1, sizeof(*s))) == NULL ||
        wslay_event_context_server_init(&s->ctx, &ws_callbacks, s) != 0) {
        free(s);
        lua_settop(L, top);
        ls_log(LS_LOG_WARN, 0, "conn %llu: websocket: out of memory",
               (unsigned long long)c->id);
        ws_reply(c, "500 Internal Server Error", "");
        return 0;
    }
    s->c = c;
    wslay_event_config_set_max_recv_msg_length(s->ctx,
                                               c->srv->conf.max_package_size);
    c->pstate = s;
    if (ls_conn_push_callback(c, "onWebSocketConnect")) { /* f conn */
        int ok;
        lua_pushvalue(L, req);
        ls_conn_incref(c);
        s->busy = 1;
        ok = ls_vm_call(ls_worker->vm, 2, 1, "onWebSocketConnect", c->id) ==
             LUA_OK;
        s->busy = 0;
        if (ok && lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
            ok = 0;
        lua_settop(L, top);
        if (s->dead) {                   /* conn:destroy() */
            ws_free(s);
            ls_conn_decref(c);
            return 0;
        }
        if (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED)) {
            ls_conn_decref(c);           /* conn:close(): release() frees */
            return 0;
        }
        ls_conn_decref(c);
        if (!ok) {
            c->pstate = NULL;
            ws_free(s);
            ws_reply(c, "403 Forbidden", "");
            return 0;
        }
    }
    lua_settop(L, top);
    snprintf(extra, sizeof(extra), "Sec-WebSocket-Accept: %s\r\n", accept);
    {
        struct evbuffer *out = ls_conn_outbuf(c);
        if (out == NULL)
            return 0;
        evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            "%s\r\n", extra);
        ls_conn_commit(c);
    }
    ws_pump(c, s); /* what onWebSocketConnect sent */
    return hlen;
}

/* ---- the protocol ---- */

static size_t
ws_input(ls_conn_t *c, const char *buf, size_t len)
{
    ws_state_t *s = c->pstate;
    size_t off = 0;
    int err;

    if (s == NULL) {
        const char *e;
        size_t scan = len < WS_MAX_HEAD ? len : WS_MAX_HEAD;

        e = memmem(buf, scan, "\r\n\r\n", 4);
        if (e == NULL) {
            if (len >= WS_MAX_HEAD) {
                ls_log(LS_LOG_WARN, 0, "conn %llu: websocket: request head "
                       "over %d bytes", (unsigned long long)c->id,
                       WS_MAX_HEAD);
                ws_reply(c, "431 Request Header Fields Too Large", "");
                return len;
            }
            return 0;
        }
        off = ws_handshake(c, buf, (size_t)(e + 4 - buf));
        if (off == 0 || c->pstate == NULL)
            return len;
        s = c->pstate;
    }
    if (off == len || !ls_conn_receiving(c))
        return off;

    ls_conn_incref(c);
    s->rbuf = buf + off;
    s->rlen = len - off;
    s->roff = 0;
    s->busy = 1;
    err = wslay_event_recv(s->ctx);
    s->busy = 0;
    off += s->roff;
    s->rbuf = NULL;
    if (s->dead) {
        ws_free(s);
    } else {
        ws_pump(c, s); /* replies, and a close frame wslay queued */
        if (err != 0 && !(c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))) {
            ls_log(LS_LOG_DEBUG, 0, "conn %llu: websocket: protocol error "
                   "(%d)", (unsigned long long)c->id, err);
            ls_conn_close(c);
        }
    }
    ls_conn_decref(c);
    return (c->flags & LS_CONN_CLOSED) ? len : off;
}

/* conn:send(string) -> text frame; conn:send{binary = s} / {text = s}. */
static int
ws_send(ls_conn_t *c, lua_State *L, int idx, int raw)
{
    ws_state_t *s = c->pstate;
    struct wslay_event_msg msg;
    const char *p;
    size_t n;
    int t = lua_type(L, idx);

    (void)raw;
    msg.opcode = WSLAY_TEXT_FRAME;
    if (t == LUA_TTABLE) {
        idx = lua_absindex(L, idx);
        if (lua_getfield(L, idx, "binary") != LUA_TNIL) {
            msg.opcode = WSLAY_BINARY_FRAME;
        } else {
            lua_pop(L, 1);
            lua_getfield(L, idx, "text");
        }
        t = lua_type(L, -1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            return luaL_error(L, "websocket send: want {binary = string} "
                              "or {text = string}");
        p = lua_tolstring(L, -1, &n);
    } else {
        if (t != LUA_TSTRING && t != LUA_TNUMBER)
            luaL_typeerror(L, idx, "string or table");
        p = lua_tolstring(L, idx, &n);
    }
    if (c->flags & (LS_CONN_CLOSING | LS_CONN_CLOSED))
        return LS_SEND_CLOSED;
    if (s == NULL)
        return luaL_error(L, "websocket send: the handshake is not done");
    msg.msg = (const uint8_t *)p;
    msg.msg_length = n;
    if (wslay_event_queue_msg(s->ctx, &msg) != 0)
        return LS_SEND_CLOSED;
    if (!s->busy)
        ws_pump(c, s);
    if (c->flags & LS_CONN_CLOSED)
        return LS_SEND_CLOSED;
    return (c->flags & LS_CONN_FULL) ? LS_SEND_FULL : LS_SEND_OK;
}

static void
ws_drain(ls_conn_t *c)
{
    ws_state_t *s = c->pstate;

    if (s == NULL) {
        ls_conn_close(c);
        return;
    }
    wslay_event_queue_close(s->ctx, WSLAY_CODE_GOING_AWAY,
                            (const uint8_t *)"server stopping", 15);
    if (!s->busy) {
        ws_pump(c, s);
        ls_worker_flush(); /* called from a signal, not a read */
    }
}

static void
ws_release(ls_conn_t *c)
{
    ws_state_t *s = c->pstate;

    c->pstate = NULL;
    if (s == NULL)
        return;
    if (s->busy)
        s->dead = 1;
    else
        ws_free(s);
}

const ls_proto_t ls_proto_ws = {
    .name = "websocket",
    .input = ws_input,
    .missing = NULL,
    .send = ws_send,
    .drain = ws_drain,
    .release = ws_release,
};
