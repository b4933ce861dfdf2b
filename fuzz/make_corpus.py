#!/usr/bin/env python3
"""Write the seed corpus in fuzz/corpus/ (committed; rerun after editing).

Each file is one input in the layout its target documents."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# framing: [kind][p1][p2][p3][p4][p5][ncuts][cuts...][stream]
def framing(name, kind, p, cuts, stream):
    put("framing", name, bytes([kind] + p + [len(cuts) - 1] + cuts) + stream)


framing("text", 0, [0, 0, 0, 10, 0], [3, 1, 7],
        b"hello\r\nworld\n\n\rx\r\nlast")
framing("text_big", 0, [0, 0, 0, 3, 0], [5], b"short\nthis one is too long\n")
framing("frame", 1, [0, 0, 0, 12, 0], [2, 9],
        struct.pack(">I", 9) + b"hello" + struct.pack(">I", 4) +
        struct.pack(">I", 6) + b"ab")
framing("delim_crlf", 2, [1, 0b0100, 0, 8, 0], [1, 2, 3],
        b"a|b\r\nccc\r\n\r\n\r")
framing("delim_pipe", 2, [0, 2, 0, 16, 1], [4], b"x|yy||zzz|")
framing("length_le2", 3, [0b0101, 0, 2, 10, 0], [1],
        struct.pack("<H", 3) + b"abc" + struct.pack("<H", 0) +
        struct.pack("<H", 1000))
framing("length_off_adj", 3, [0b11010, 0xfe, 3, 12, 1], [2, 5],
        b"\x07" + struct.pack(">I", 7) + b"hello!!" + b"\x01" +
        struct.pack(">I", 2))
framing("length_8", 3, [0b1111, 0, 8, 20, 1], [3],
        struct.pack(">Q", 12) + b"abcd" + struct.pack(">Q", 0xffffffffffffffff))
framing("raw", 4, [0, 0, 0, 0, 0], [1, 9], b"anything at all")

# http: [flags][split seed][bytes]
def http(name, data, flags=0, seed=7):
    put("http", name, bytes([flags, seed]) + data)


H = b"Host: a\r\n"
http("get", b"GET /?a=1&b=%20x&a=2&c HTTP/1.1\r\n" + H +
     b"Cookie: x=1\r\nCookie: y=2\r\n\r\n", seed=0)
http("pipelined", b"GET /stream HTTP/1.1\r\n" + H + b"\r\n"
     b"POST /status?code=201&h=v HTTP/1.1\r\n" + H +
     b"Content-Length: 5\r\n\r\nhello"
     b"HEAD / HTTP/1.1\r\n" + H + b"\r\n"
     b"GET /raw HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
     b"GET /close HTTP/1.1\r\n" + H + b"\r\n", flags=1)
http("keep", b"GET /keep?k=%41&k=2 HTTP/1.1\r\n" + H + b"X-K: 1\r\n\r\n"
     b"GET /?z=1 HTTP/1.1\r\n" + H + b"X-K: 2\r\n\r\n", flags=1, seed=2)
http("chunked", b"POST /x HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n3;ext=1\r\n abc\r\n0\r\nTrailer: t\r\n\r\n"
     b"GET /error HTTP/1.1\r\n" + H + b"\r\n", seed=3)
http("smuggle_cl_te", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
http("smuggle_te_te", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
     b"0\r\n\r\n")
http("smuggle_space", b"GET / HTTP/1.1\r\nHost : a\r\n"
     b"Content-Length : 3\r\n\r\nabc")
http("obs_fold", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", seed=1)
http("expect", b"PUT /size HTTP/1.1\r\n" + H +
     b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", flags=1)
http("big_body", b"POST / HTTP/1.1\r\n" + H +
     b"Content-Length: 99999\r\n\r\nxx")
http("v10_upgrade", b"GET / HTTP/1.0\r\n\r\nGET /u HTTP/1.1\r\n" + H +
     b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET / HTTP/2.0\r\n\r\n")

# ws: [flags][split seed][bytes]; flags 2: handshake prepended (raw frames),
# 4: handshake + frames built from [b0][len][payload] records
def ws(name, data, flags, seed=5):
    put("ws", name, bytes([flags, seed]) + data)


def masked(b0, payload, key=b"\x01\x02\x03\x04"):
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    else:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


ws("handshake_only", b"GET /x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
   b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: "
   b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 0)
ws("deny", b"GET /deny HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
   b"Connection: Upgrade\r\nSec-WebSocket-Key: "
   b"dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 1)
ws("text_binary", masked(0x81, b"hello") + masked(0x82, b"\xff\xfe") +
   masked(0x89, b"ping") + masked(0x88, b"\x03\xe8bye"), 2)
ws("fragmented", masked(0x01, b"hel") + masked(0x89, b"") +
   masked(0x00, b"l") + masked(0x80, b"o") + masked(0x81, b"x" * 300), 2, 1)
ws("unmasked", bytes([0x81, 5]) + b"hello", 2)
ws("built", bytes([0x81, 5]) + b"hello" + bytes([0x01, 2]) + b"ab" +
   bytes([0x80, 1]) + b"c" + bytes([0x8A, 0]) + bytes([0x81, 5]) + b"close",
   4, 9)
ws("bad_utf8_close", bytes([0x81, 2]) + b"\xc3\x28" +
   bytes([0x88, 2]) + b"\x03\xf3", 4)

# proto_lua / proto_decl: [flags][split seed][bytes]
def proto(target, name, data, flags=0, seed=3):
    put(target, name, bytes([flags, seed]) + data)


proto("proto_lua", "small", bytes([1 | 8 * 2]) + b"ab" + bytes([1]) +
      bytes([7, 5]) + b"hello" + bytes([7, 5]) + b"close")
proto("proto_lua", "need_more", bytes([7, 200]) + b"x" * 50, flags=1)
proto("proto_lua", "bad", bytes([1, 3]) + b"zz")
proto("proto_lua", "raise", bytes([9, 0xff]) + bytes([4]))
proto("proto_lua", "too_big", bytes([5]) + b"x" * 30)
proto("proto_lua", "negative", bytes([6, 1, 2]))
proto("proto_lua", "all", bytes([2]) + b"rest of it", seed=0)
# decl: [1 byte][len LE16][payload of len-1 bytes]
proto("proto_decl", "two", b"\x00" + struct.pack("<H", 6) + b"hello" +
      b"\x01" + struct.pack("<H", 3) + b"ab" + b"\x02\x06\x00clos", seed=1)
proto("proto_decl", "zero", b"\x00\x00\x00")
proto("proto_decl", "huge", b"\x00\xff\xff" + b"x" * 20, flags=1)
proto("proto_decl", "close", b"\x00" + struct.pack("<H", 6) + b"close", seed=0)
