#!/usr/bin/env python3
"""A steady stream of numbered datagrams, and the count of their echoes.

udp_stream.py PORT MAX INTERVAL PROGRESS STOP RESULT [SOCKETS]

Sends "n <k>" (k = 1, 2, ...) to 127.0.0.1:PORT every INTERVAL seconds,
from SOCKETS (8) sockets in turn (so that with reusePort the kernel spreads
them over the listener's sockets), until the file STOP exists or MAX are
sent, reading the echoes
("n <k> <generation>") meanwhile; writes how many were sent to PROGRESS
as it goes. Then waits (at most 15 s) for the echoes still missing and
writes RESULT as JSON: sent, got (distinct k echoed), dup, missing (the
first 50 k never echoed), gens (echoes per generation).
"""
import json
import os
import select
import socket
import sys
import time


def main():
    port, most, interval = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    progress, stop, result = sys.argv[4], sys.argv[5], sys.argv[6]
    nsock = int(sys.argv[7]) if len(sys.argv) > 7 else 8
    socks = []
    for _ in range(nsock):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    got, gens, dup = set(), {}, 0
    sent = 0

    def read_all():
        nonlocal dup
        for s in socks:
            while True:
                try:
                    d = s.recv(2048)
                except BlockingIOError:
                    break
                parts = d.decode().split()
                k, g = int(parts[1]), parts[2]
                if k in got:
                    dup += 1
                got.add(k)
                gens[g] = gens.get(g, 0) + 1

    def note():
        with open(progress + ".tmp", "w") as f:
            f.write("%d %d\n" % (sent, len(got)))
        os.replace(progress + ".tmp", progress)

    nxt = time.monotonic()
    while sent < most and not os.path.exists(stop):
        now = time.monotonic()
        if now >= nxt:
            sent += 1
            socks[sent % nsock].sendto(b"n %d" % sent, ("127.0.0.1", port))
            nxt += interval
            if sent % 25 == 0:
                note()
            continue
        select.select(socks, [], [], nxt - now)
        read_all()
    note()
    deadline = time.monotonic() + 15
    while len(got) < sent and time.monotonic() < deadline:
        select.select(socks, [], [], 0.1)
        read_all()
    note()
    missing = [k for k in range(1, sent + 1) if k not in got][:50]
    with open(result + ".tmp", "w") as f:
        json.dump({"sent": sent, "got": len(got), "dup": dup,
                   "missing": missing, "gens": gens}, f)
    os.replace(result + ".tmp", result)


main()
