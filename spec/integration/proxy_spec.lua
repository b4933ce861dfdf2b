-- examples/proxy.lua relays a 100 MB transfer byte-exact to a real backend
-- (a second luaserv: spec/fixtures/apps/bp_echo.lua, a tcp:// echo that
-- pauses reading while its send buffer is full), with end-to-end
-- backpressure keeping the proxy worker's memory bounded. A python3 script
-- sends and reads at once (two threads), compares sha256 digests and
-- samples the proxy worker's VmRSS meanwhile.
local server = require "helpers.server"

local PROXY = "examples/proxy.lua"
local BACKEND = "spec/fixtures/apps/bp_echo.lua"

local DRIVER = [==[
import hashlib, os, socket, sys, threading, time

port, pid, total = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.time() + float(sys.argv[4])
peak = [0]

def rss():
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    v = int(line.split()[1])
                    if v > peak[0]:
                        peak[0] = v
    except OSError:
        pass

# 1 MiB of pseudo-random bytes, each block varied so that shifted or
# repeated blocks change the digest
seed = hashlib.sha256(b"luaserv").digest()
base = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest()
                for i in range(32768))

s = socket.create_connection(("127.0.0.1", port), timeout=30)
s.settimeout(5)
sent_hash = hashlib.sha256()
err = []

def sender():
    try:
        off, n = 0, 0
        while off < total and time.time() < deadline and not err:
            blk = n.to_bytes(8, "big") + base[8:]
            blk = blk[:min(len(blk), total - off)]
            sent_hash.update(blk)
            view = memoryview(blk)
            while view and time.time() < deadline and not err:
                try:
                    k = s.send(view)
                except socket.timeout:
                    continue
                view = view[k:]
            off += len(blk)
            n += 1
    except Exception as e:
        err.append("send: %r" % e)

t = threading.Thread(target=sender)
t.start()
got, recv_hash, last = 0, hashlib.sha256(), 0
progress = time.time()
stalled = False
while got < total and time.time() < deadline:
    try:
        d = s.recv(1 << 20)
    except socket.timeout:
        rss()
        if time.time() - progress > 60:
            err.append("recv: stalled after %d bytes" % got)
            break
        continue
    except Exception as e:
        err.append("recv: %r" % e)
        break
    if not d:
        err.append("recv: EOF after %d bytes" % got)
        break
    recv_hash.update(d)
    got += len(d)
    progress = time.time()
    if not stalled and got >= total // 3:
        # a slow reader for a while: backpressure must reach the sender
        stalled = True
        for _ in range(20):
            time.sleep(0.05)
            rss()
        progress = time.time()
    if got - last >= (1 << 20):
        last = got
        rss()
t.join(max(1.0, deadline - time.time()))
rss()
s.close()
print("got=%d sent_sha=%s recv_sha=%s peak_kib=%d err=%s" % (
    got, sent_hash.hexdigest(), recv_hash.hexdigest(), peak[0],
    ";".join(err) or "-"))
]==]

-- ASan keeps freed memory in a quarantine (256 MiB by default), which
-- would show up as RSS of a sanitizer build; keep it small for the proxy.
-- Harmless for a normal build.
local function asan_env(env)
    local o = os.getenv("ASAN_OPTIONS")
    env.ASAN_OPTIONS = (o and o ~= "" and o .. ":" or "") ..
        "quarantine_size_mb=8"
    return env
end

describe("examples/proxy.lua", function()
    after_each(function() server.cleanup() end)

    it("relays 100 MB byte-exact with bounded memory", function()
        local backend = server.start(BACKEND, { wait_workers = 1 })
        local proxy = server.start(PROXY, {
            wait_workers = 1,
            env = asan_env({
                LUASERV_BACKEND = "tcp://127.0.0.1:" .. backend.port,
            }),
        })
        local pid = proxy:workers()[1]
        local base = tonumber(server.readfile("/proc/" .. pid .. "/status")
            :match("VmRSS:%s*(%d+)"))

        local script = os.tmpname()
        finally(function() os.remove(script) end)
        local f = assert(io.open(script, "w"))
        f:write(DRIVER)
        f:close()

        local total = 100 * 1000 * 1000
        local out = server.capture(string.format(
            "timeout -k 5 600 python3 %s %d %d %d 540 2>&1",
            server.shquote(script), proxy.port, pid, total))
        local got, ssha, rsha, peak, err = out:match(
            "got=(%d+) sent_sha=(%x+) recv_sha=(%x+) peak_kib=(%d+) err=(.*)$")
        assert.is_truthy(got, "driver output: " .. out)
        if os.getenv("PROXY_SPEC_DEBUG") then print(out) end
        assert.are.equal("-", err)
        assert.are.equal(total, tonumber(got))
        assert.are.equal(ssha, rsha)

        -- proxy buffers are 256 KiB per direction: 64 MiB is generous
        peak = tonumber(peak)
        local limit = math.max(64 * 1024, base + 48 * 1024)
        assert.is_true(peak < limit, string.format(
            "proxy worker RSS peaked at %d KiB (start %d, limit %d)",
            peak, base, limit))
        -- the proxy and the backend are still up and serving
        assert.is_true(proxy:running())
        assert.is_true(backend:running())
        assert.are.equal(pid, proxy:workers()[1])
    end)
end)
