#!/usr/bin/python3
"""Clients for examples/cluster: chat clients that count every message, and
an HTTP load loop that counts every failure. Used by examples/cluster/run.sh
and spec/integration/cluster_spec.lua (Debian's python3-websockets 10.x).

  loadgen.py chat URL --clients 6 --out FILE [--room lobby] [--interval 0.1]
  loadgen.py http URL --conns 4 --out FILE

Both read commands from stdin, one a line, and write their report (JSON) to
FILE (atomically, with "seq" = how many commands were handled so far):

  chat: "send" start sending (each client one message per interval),
        "hold" stop sending, "report" write the report, "quit" (or EOF)
  http: "report", "quit" (or EOF); requests run from the start

The chat report counts, over every message the server acknowledged (ack:
it is in the Redis stream, with its id): delivered = (client, message)
pairs received, duplicated = receptions beyond the first, lost = messages
a client should have received and did not (every acked message whose id
is after the position the client joined at), out_of_order = receptions
whose id is not after the previous one. A client that loses its
connection reconnects (0.1 s back-off doubling to 1 s) with ?last= the
last id it received, and the server replays what it missed.
"""
import argparse
import asyncio
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

try:
    import websockets
except ImportError:  # http mode needs nothing else
    websockets = None


def write_report(path, report):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def sid(i):
    ms, seq = i.split("-")
    return (int(ms), int(seq))


class ChatClient:
    def __init__(self, n, url, room):
        self.n = n
        self.url = url
        self.room = room
        self.nick = "c%d" % n
        self.start = None        # stream id joined at (first welcome)
        self.last = None         # last stream id received
        self.received = []       # stream ids, in order received
        self.acked = {}          # ref -> stream id
        self.errors = {}         # ref -> error text
        self.sent = 0            # messages written to the socket
        self.hosts = []          # host of each connection
        self.connects = 0
        self.disconnects = 0
        self.connected = False
        self.caught_up = 0
        self.gaps = 0
        self.out_of_order = 0
        self.ws = None
        self.seq = 0
        self.notes = []

    def conn_url(self):
        q = {"room": self.room, "nick": self.nick}
        pos = self.last or self.start
        if pos:
            q["last"] = pos
        return self.url + "?" + urllib.parse.urlencode(q)

    async def run(self, stop):
        backoff = 0.1
        while not stop.is_set():
            try:
                async with websockets.connect(self.conn_url(), open_timeout=5,
                                              close_timeout=2,
                                              max_size=None) as ws:
                    self.ws = ws
                    backoff = 0.1
                    async for raw in ws:
                        self.on_frame(json.loads(raw))
            except (OSError, asyncio.TimeoutError,
                    websockets.exceptions.WebSocketException) as e:
                self.notes.append("%.3f %s: %s" % (time.time(),
                                                   type(e).__name__, e))
            if self.connected:
                self.disconnects += 1
            self.connected = False
            self.ws = None
            if stop.is_set():
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)

    def on_frame(self, f):
        t = f.get("type")
        if t == "welcome":
            self.connects += 1
            self.connected = True
            self.hosts.append(f["host"])
            if self.start is None:
                self.start = f.get("last") or "0-0"
        elif t == "msg":
            i = f["id"]
            if self.received and sid(i) <= sid(self.received[-1]):
                self.out_of_order += 1
            self.received.append(i)
            self.last = i
        elif t == "ack":
            self.acked[f["ref"]] = f["id"]
        elif t == "error":
            if f.get("ref"):
                self.errors[f["ref"]] = f.get("error")
            else:
                self.notes.append("%.3f server: %s" % (time.time(),
                                                       f.get("error")))
        elif t == "caught_up":
            self.caught_up += 1
        elif t == "gap":
            self.gaps += 1
            self.notes.append("%.3f gap after %s" % (time.time(), f["after"]))

    async def send_one(self):
        ws = self.ws
        if ws is None or not self.connected:
            return
        self.seq += 1
        ref = "%s-%d" % (self.nick, self.seq)
        try:
            await ws.send(json.dumps({"ref": ref, "text": "hello " + ref}))
            self.sent += 1
        except websockets.exceptions.WebSocketException:
            self.errors[ref] = "send failed: connection closed"


def chat_report(clients, seq, sending):
    acked = {}                   # stream id -> ref
    for c in clients:
        for ref, i in c.acked.items():
            acked[i] = ref
    ordered = sorted(acked, key=sid)
    delivered = duplicated = lost = 0
    per = []
    for c in clients:
        got = {}
        for i in c.received:
            got[i] = got.get(i, 0) + 1
        start = sid(c.start) if c.start else None
        expected = [i for i in ordered if start is not None and sid(i) > start]
        d = sum(1 for i in expected if i in got)
        dup = sum(n - 1 for n in got.values())
        missing = [i for i in expected if i not in got]
        delivered += d
        duplicated += dup
        lost += len(missing)
        per.append({"client": c.nick, "hosts": c.hosts, "connected":
                    c.connected, "connects": c.connects, "disconnects":
                    c.disconnects, "start": c.start, "last": c.last,
                    "received": len(c.received), "expected": len(expected),
                    "delivered": d, "duplicated": dup, "lost": len(missing),
                    "missing": missing[:10], "out_of_order": c.out_of_order,
                    "caught_up": c.caught_up, "gaps": c.gaps,
                    "written": c.sent,
                    "acked": len(c.acked), "errors": len(c.errors),
                    "error_samples": list(c.errors.values())[:3],
                    "notes": c.notes[-5:]})
    unconfirmed = set()
    for c in clients:
        for i in c.received:
            if i not in acked:
                unconfirmed.add(i)
    return {"seq": seq, "sending": sending,
            "sent": len(acked), "max_id": ordered[-1] if ordered else None,
            "written": sum(c.sent for c in clients),
            "send_errors": sum(len(c.errors) for c in clients),
            "delivered": delivered, "duplicated": duplicated, "lost": lost,
            "out_of_order": sum(c.out_of_order for c in clients),
            "gaps": sum(c.gaps for c in clients),
            "unconfirmed_delivered": len(unconfirmed),
            "connected": sum(1 for c in clients if c.connected),
            "hosts": [c.hosts[-1] if c.hosts and c.connected else None
                      for c in clients],
            "clients": per}


async def chat_main(args):
    clients = [ChatClient(n, args.url, args.room)
               for n in range(1, args.clients + 1)]
    stop = asyncio.Event()
    sending = asyncio.Event()
    tasks = [asyncio.ensure_future(c.run(stop)) for c in clients]

    async def sender():
        while not stop.is_set():
            if sending.is_set():
                for c in clients:
                    await c.send_one()
            await asyncio.sleep(args.interval)

    tasks.append(asyncio.ensure_future(sender()))
    loop = asyncio.get_running_loop()
    seq = 0
    write_report(args.out, chat_report(clients, seq, False))
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        cmd = line.strip()
        if line == "" or cmd == "quit":
            break
        seq += 1
        if cmd == "send":
            sending.set()
        elif cmd == "hold":
            sending.clear()
        write_report(args.out, chat_report(clients, seq, sending.is_set()))
    stop.set()
    for c in clients:
        if c.ws is not None:
            try:
                await asyncio.wait_for(c.ws.close(), 3)
            except Exception:
                pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    seq += 1
    write_report(args.out, chat_report(clients, seq, False))


class HttpLoad:
    """conns threads, each a keep-alive connection doing a mix of session
    requests: create one, read it back a few times, delete it."""

    def __init__(self, url, conns):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.conns = conns
        self.lock = threading.Lock()
        self.requests = 0
        self.ok = 0
        self.failures = {}
        self.samples = []
        self.served = {}
        self.stop = threading.Event()

    def count(self, ok, what=None, served=None):
        with self.lock:
            self.requests += 1
            if ok:
                self.ok += 1
            else:
                self.failures[what] = self.failures.get(what, 0) + 1
                if len(self.samples) < 10:
                    self.samples.append("%.3f %s" % (time.time(), what))
            if served:
                h = served.split("/")[0]
                self.served[h] = self.served.get(h, 0) + 1

    def one(self, h, method, path, body=None, expect=(200,)):
        try:
            hdrs = {"Content-Type": "application/json"} if body else {}
            h.request(method, path, body=body, headers=hdrs)
            r = h.getresponse()
            data = r.read()
            good = r.status in expect
            self.count(good, None if good else "status %d %s" % (
                r.status, data[:80].decode(errors="replace").strip()),
                r.getheader("X-Served-By"))
            return r.status, data
        except (OSError, http.client.HTTPException) as e:
            self.count(False, "%s %s" % (type(e).__name__, e))
            h.close()
            return None, None

    def loop(self):
        h = http.client.HTTPConnection(self.host, self.port, timeout=10)
        while not self.stop.is_set():
            st, data = self.one(h, "POST", "/sessions",
                                json.dumps({"user": "load"}), (201,))
            if st != 201:
                continue
            sid_ = json.loads(data)["id"]
            for _ in range(3):
                self.one(h, "GET", "/sessions/" + sid_)
            self.one(h, "DELETE", "/sessions/" + sid_, expect=(204,))
        h.close()

    def report(self, seq):
        with self.lock:
            return {"seq": seq, "requests": self.requests, "ok": self.ok,
                    "failed": self.requests - self.ok,
                    "failures": dict(self.failures),
                    "samples": list(self.samples),
                    "served_by": dict(self.served)}


def http_main(args):
    load = HttpLoad(args.url, args.conns)
    threads = [threading.Thread(target=load.loop, daemon=True)
               for _ in range(args.conns)]
    for t in threads:
        t.start()
    seq = 0
    write_report(args.out, load.report(seq))
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        seq += 1
        write_report(args.out, load.report(seq))
    load.stop.set()
    for t in threads:
        t.join(15)
    write_report(args.out, load.report(seq + 1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["chat", "http"])
    p.add_argument("url")
    p.add_argument("--out", required=True)
    p.add_argument("--pidfile")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--room", default="lobby")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--conns", type=int, default=4)
    args = p.parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    if args.mode == "chat":
        asyncio.run(chat_main(args))
    else:
        http_main(args)


if __name__ == "__main__":
    main()
