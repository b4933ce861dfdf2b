#!/usr/bin/python3
"""bench/soak driver: mixed HTTP, WebSocket and text traffic against a running
luaserv master (bench/soak/app.lua), a reload every --reload-every seconds and
a kill -9 of one worker every --kill-every seconds, for --duration seconds.

Every reply names the worker pid that produced it, so each client knows which
worker its connection is on. A request that fails (an error, an EOF or a
timeout in the middle of it) on a connection whose worker was killed counts
as "killed-worker failure"; any other failure counts as a failure, and there
must be none. A connection the server ends cleanly (text "bye", WebSocket
close 1001, HTTP "Connection: close", or the server closing an idle
keep-alive connection before any byte of the next response) is reconnected,
and the request that got no answer is sent again: counted as a retry.

Writes DIR/samples.csv (one row a second) and DIR/summary.json.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

import websockets

P = argparse.ArgumentParser()
P.add_argument("--master", type=int, required=True)
P.add_argument("--port", type=int, required=True)
P.add_argument("--duration", type=float, default=600)
P.add_argument("--reload-every", type=float, default=10)
P.add_argument("--kill-every", type=float, default=30)
P.add_argument("--clients", type=int, default=6, help="per kind")
P.add_argument("--out", required=True)
A = P.parse_args()

HOST = "127.0.0.1"
T0 = time.monotonic()
STOP = False
killed = {}          # pid -> monotonic time of its kill -9
ok = {"http": 0, "ws": 0, "text": 0}
fail = {"http": 0, "ws": 0, "text": 0}
killed_fail = {"http": 0, "ws": 0, "text": 0}
retries = {"http": 0, "ws": 0, "text": 0}
reconnects = {"http": 0, "ws": 0, "text": 0}
failures = []        # the first few, for the report
events = {"reloads": 0, "kills": 0}


def now():
    return time.monotonic() - T0


def failed(kind, pid, what):
    """A request failed on a connection served by pid (None: not known yet)."""
    recent_kill = any(now() - (t - T0) < 2.0 for t in killed.values())
    if (pid is not None and pid in killed) or (pid is None and recent_kill):
        killed_fail[kind] += 1
        return
    fail[kind] += 1
    if len(failures) < 50:
        failures.append({"t": round(now(), 3), "kind": kind, "pid": pid,
                         "what": what})


def served(reply):
    pid, _, rest = reply.partition(" ")
    return int(pid), rest


async def text_client(i):
    seq = 0
    while not STOP:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(HOST, A.port + 2), 10)
        except (OSError, asyncio.TimeoutError) as e:
            failed("text", None, "connect: %s" % e)
            await asyncio.sleep(0.1)
            continue
        pid = None
        pending = None
        try:
            while not STOP:
                if pending is None:
                    seq += 1
                    pending = "t%d-%d" % (i, seq)
                w.write((pending + "\n").encode())
                line = await asyncio.wait_for(r.readline(), 10)
                if not line:
                    failed("text", pid, "EOF waiting for %s" % pending)
                    pending = None
                    break
                line = line.decode().rstrip("\n")
                if line == "bye":          # drained: go elsewhere, resend
                    retries["text"] += 1
                    reconnects["text"] += 1
                    break
                p, rest = served(line)
                if rest != pending:
                    failed("text", p, "got %r for %r" % (rest, pending))
                    pending = None
                    break
                pid = p
                ok["text"] += 1
                pending = None
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            failed("text", pid, "%s: %s" % (type(e).__name__, e))
        finally:
            w.close()


async def http_client(i):
    seq = 0
    while not STOP:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(HOST, A.port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            failed("http", None, "connect: %s" % e)
            await asyncio.sleep(0.1)
            continue
        pid = None
        used = 0
        try:
            while not STOP:
                seq += 1
                path = "/h%d-%d" % (i, seq)
                w.write(("GET %s HTTP/1.1\r\nHost: soak\r\n\r\n" % path)
                        .encode())
                status = await asyncio.wait_for(r.readline(), 10)
                if not status:
                    if used > 0:           # an idle keep-alive closed by the
                        retries["http"] += 1   # server: send again elsewhere
                        reconnects["http"] += 1
                        seq -= 1
                    else:
                        failed("http", pid, "EOF before a response")
                    break
                head = {}
                while True:
                    line = await asyncio.wait_for(r.readline(), 10)
                    if not line:
                        raise ValueError("EOF in the response head")
                    line = line.decode().rstrip("\r\n")
                    if line == "":
                        break
                    k, _, v = line.partition(":")
                    head[k.strip().lower()] = v.strip()
                body = await asyncio.wait_for(
                    r.readexactly(int(head["content-length"])), 10)
                if b" 200 " not in status:
                    raise ValueError("status %r" % status)
                p, rest = served(body.decode())
                if rest != path:
                    raise ValueError("got %r for %r" % (rest, path))
                pid = p
                used += 1
                ok["http"] += 1
                if head.get("connection", "").lower() == "close":
                    reconnects["http"] += 1
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                ValueError, KeyError) as e:
            failed("http", pid, "%s: %s" % (type(e).__name__, e))
        finally:
            w.close()


async def ws_client(i):
    seq = 0
    pending = None
    while not STOP:
        pid = None
        try:
            ws = await asyncio.wait_for(
                websockets.connect("ws://%s:%d/" % (HOST, A.port + 1),
                                   max_size=None, ping_interval=None), 10)
        except (OSError, asyncio.TimeoutError,
                websockets.exceptions.WebSocketException) as e:
            failed("ws", None, "connect: %s" % e)
            await asyncio.sleep(0.1)
            continue
        try:
            while not STOP:
                if pending is None:
                    seq += 1
                    pending = "w%d-%d" % (i, seq)
                await ws.send(pending)
                reply = await asyncio.wait_for(ws.recv(), 10)
                p, rest = served(reply)
                if rest != pending:
                    raise ValueError("got %r for %r" % (rest, pending))
                pid = p
                ok["ws"] += 1
                pending = None
        except websockets.exceptions.ConnectionClosed as e:
            code = e.rcvd.code if e.rcvd else None
            if code == 1001:               # server going away: go elsewhere
                reconnects["ws"] += 1
                if pending is not None:
                    retries["ws"] += 1
            else:
                failed("ws", pid, "closed: %s" % e)
                pending = None
        except (OSError, asyncio.TimeoutError, ValueError) as e:
            failed("ws", pid, "%s: %s" % (type(e).__name__, e))
            pending = None
        finally:
            await ws.close()


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            if ppid != pid:
                continue
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            out.append((int(p), cmd))
        except (OSError, ValueError):
            pass
    return out


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def chaos():
    next_reload = A.reload_every
    next_kill = A.kill_every
    while not STOP:
        await asyncio.sleep(0.2)
        t = now()
        if t >= next_reload:
            next_reload += A.reload_every
            os.kill(A.master, signal.SIGHUP)
            events["reloads"] += 1
        if t >= next_kill:
            next_kill += A.kill_every
            workers = [p for p, cmd in children(A.master) if "worker" in cmd]
            if workers:
                victim = random.choice(workers)
                killed[victim] = time.monotonic()
                try:
                    os.kill(victim, signal.SIGKILL)
                    events["kills"] += 1
                except ProcessLookupError:
                    pass


async def sampler(csv):
    last = sum(ok.values())
    csv.write("t,reqs_per_s,master_rss_kb,workers,workers_rss_total_kb,"
              "workers_rss_max_kb,failures,killed_failures\n")
    peak = {}
    while not STOP:
        await asyncio.sleep(1)
        total = sum(ok.values())
        ws = [p for p, cmd in children(A.master) if "worker" in cmd]
        rss = [rss_kb(p) for p in ws]
        for p, r in zip(ws, rss):
            peak[p] = max(peak.get(p, 0), r)
        csv.write("%.1f,%d,%d,%d,%d,%d,%d,%d\n" % (
            now(), total - last, rss_kb(A.master), len(ws), sum(rss),
            max(rss) if rss else 0, sum(fail.values()),
            sum(killed_fail.values())))
        csv.flush()
        last = total
    return peak


async def main():
    global STOP
    os.makedirs(A.out, exist_ok=True)
    csv = open(os.path.join(A.out, "samples.csv"), "w")
    tasks = []
    for i in range(A.clients):
        tasks += [asyncio.create_task(text_client(i)),
                  asyncio.create_task(http_client(i)),
                  asyncio.create_task(ws_client(i))]
    tasks.append(asyncio.create_task(chaos()))
    samp = asyncio.create_task(sampler(csv))
    await asyncio.sleep(A.duration)
    STOP = True
    peak = await samp
    await asyncio.wait(tasks, timeout=15)
    csv.close()
    summary = {
        "duration_s": A.duration, "reloads": events["reloads"],
        "kills": events["kills"], "requests": ok, "failures": fail,
        "killed_worker_failures": killed_fail, "retries": retries,
        "reconnects": reconnects, "first_failures": failures,
        "worker_peak_rss_kb": {str(k): v for k, v in sorted(peak.items())},
    }
    with open(os.path.join(A.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: summary[k] for k in
                      ("reloads", "kills", "requests", "failures",
                       "killed_worker_failures", "retries")}))
    return 1 if sum(fail.values()) else 0


sys.exit(asyncio.run(main()))
