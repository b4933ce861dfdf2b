/*
 * fuzz_ws.c -- libFuzzer target for websocket:// connections: the real
 * conn.c and ws.c (handshake, then frames through libwslay), with the app in
 * fuzz/apps/ws.lua echoing messages and sending pings' worth of traffic.
 *
 * Input: [flags][split seed][bytes ...]. flags bit 0: half-close at the end;
 * bit 1: prepend a valid handshake, so that the bytes are frames; bit 2: the
 * bytes are a list of frames to build, each [fin|rsv|opcode][len][len bytes
 * of payload], sent masked (with a mask from the flags), so that the fuzzer
 * reaches message handling without having to learn masking.
 */
#include "worker_harness.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char handshake[] =
    "GET /chat HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "\r\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fh_init("ws.lua", "ws");
    return 0;
}

/* Build masked frames from [b0][len][payload] records. */
static size_t
build_frames(const uint8_t *p, size_t n, uint8_t key, uint8_t *out)
{
    size_t o = 0, i = 0;
    uint8_t mask[4] = {key, (uint8_t)(key * 3), (uint8_t)(key ^ 0x5a), 0x21};

    while (i + 2 <= n) {
        uint8_t b0 = p[i], len = p[i + 1];
        size_t plen;

        i += 2;
        plen = len > n - i ? n - i : len;
        out[o++] = b0;
        if (plen < 126) {
            out[o++] = (uint8_t)(0x80 | plen);
        } else {
            out[o++] = 0x80 | 126;
            out[o++] = 0;
            out[o++] = (uint8_t)plen;
        }
        memcpy(out + o, mask, 4);
        o += 4;
        for (size_t k = 0; k < plen; k++)
            out[o++] = p[i + k] ^ mask[k & 3];
        i += plen;
    }
    return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags;
    uint8_t *buf;
    size_t n = 0;

    if (size < 2)
        return 0;
    flags = data[0];
    /* frames grow by at most 8 bytes per 2-byte record */
    buf = malloc(sizeof(handshake) + 5 * size + 16);
    if (buf == NULL)
        return 0;
    if (flags & 6) {
        memcpy(buf, handshake, sizeof(handshake) - 1);
        n = sizeof(handshake) - 1;
    }
    if (flags & 4)
        n += build_frames(data + 2, size - 2, flags, buf + n);
    else {
        memcpy(buf + n, data + 2, size - 2);
        n += size - 2;
    }
    fh_run(buf, n, data[1], flags & 1);
    free(buf);
    return 0;
}
