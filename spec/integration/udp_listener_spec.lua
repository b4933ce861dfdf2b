-- udp:// listeners: onMessage(peer, datagram), peer:send, maxPackageSize,
-- errors, callbacks that wait, count/reusePort, and reloads that lose
-- nothing queued in the socket the master keeps.
local server = require "helpers.server"
local socket = require "socket"
local cjson = require "cjson"

local APP = "spec/fixtures/apps/udp.lua"

-- Start the fixture; readiness is the master's "ready" line (there is no
-- TCP port to poll).
local function start(opts)
    opts = opts or {}
    local env = {}
    for k, v in pairs(opts.env or {}) do env[k] = v end
    local srv = server.start(APP, { env = env, wait = false, reload = false,
                                    workers = opts.workers })
    if not srv:wait_log("master: ready:", server.START_TIMEOUT) then
        local log = srv:log()
        srv:kill()
        error("udp fixture did not get ready\n" .. log, 2)
    end
    return srv
end

local function udp()
    local u = assert(socket.udp())
    assert(u:setsockname("127.0.0.1", 0))
    u:settimeout(10)
    return u
end

-- Send d from u to the server, return the answer (or nil, err).
local function ask(u, port, d, timeout)
    assert(u:sendto(d, "127.0.0.1", port))
    u:settimeout(timeout or 10)
    return u:receivefrom(65536)
end

local function snmp_udp()
    local f = io.open("/proc/net/snmp")
    if not f then return {} end
    local text = f:read("a")
    f:close()
    local names, values = text:match("Udp: (%a[^\n]*)\nUdp: ([^\n]*)")
    local t, vs = {}, {}
    for v in (values or ""):gmatch("%S+") do vs[#vs + 1] = tonumber(v) end
    local i = 0
    for n in (names or ""):gmatch("%S+") do i = i + 1; t[n] = vs[i] end
    return t
end

describe("udp:// listener", function()
    after_each(function() server.cleanup() end)

    it("echoes datagrams to each of several senders, and the peer's " ..
       "address and port are the sender's", function()
        local srv = start()
        local us = {}
        for i = 1, 5 do us[i] = udp() end
        for round = 1, 20 do
            for i, u in ipairs(us) do
                assert(u:sendto("from " .. i .. " #" .. round, "127.0.0.1",
                                srv.port))
            end
            for i, u in ipairs(us) do
                local d, ip, port = u:receivefrom(65536)
                assert.are.equal("from " .. i .. " #" .. round, d)
                assert.are.equal("127.0.0.1", ip)
                assert.are.equal(srv.port, tonumber(port))
            end
        end
        local _, myport = us[1]:getsockname()
        assert.are.equal(string.format("127.0.0.1 %d 127.0.0.1:%d", myport,
                                       myport),
                         ask(us[1], srv.port, "peer"))
        -- an empty datagram is a message too
        assert.are.equal("", ask(us[2], srv.port, ""))
        -- udp:// is no address for an outbound connection
        assert.is_truthy(ask(us[3], srv.port, "connect"):find("^false .*" ..
            "udp:// has no connections %(use luaserv.udp%(%) to send"))
        srv:stop()
    end)

    it("on a wildcard address, answers from the address the datagram " ..
       "was sent to", function()
        local srv = start({ env = { UDP_HOST = "0.0.0.0" } })
        for _, dst in ipairs({ "127.0.0.1", "127.0.0.2", "127.9.8.7" }) do
            local u = udp()
            assert(u:sendto("to " .. dst, dst, srv.port))
            local d, ip, port = u:receivefrom(100)
            assert.are.equal("to " .. dst, d)
            assert.are.equal(dst, ip)
            assert.are.equal(srv.port, tonumber(port))
            -- a connected client takes only answers from where it wrote
            local c = assert(socket.udp())
            c:settimeout(10)
            assert(c:setpeername(dst, srv.port))
            assert(c:send("connected " .. dst))
            assert.are.equal("connected " .. dst, c:receive())
            c:close()
            u:close()
        end
        srv:stop()
    end)

    it("echoes a datagram of 65507 bytes intact", function()
        local srv = start()
        local u = udp()
        local t = {}
        for i = 1, 65507 do t[i] = string.char((i * 7 + i // 256) % 256) end
        local big = table.concat(t)
        local got = ask(u, srv.port, big)
        assert.is_truthy(got, "no answer")
        assert.are.equal(#big, #got)
        assert.is_true(got == big)
        -- an answer too large for UDP is refused, not sent
        assert.are.equal("nil message too long", ask(u, srv.port, "toolong"))
        srv:stop()
    end)

    it("drops datagrams over maxPackageSize, counted and logged", function()
        local mport = server.free_port()
        local srv = start({ env = { UDP_MAX = "1000",
                                    UDP_METRICS = "127.0.0.1:" .. mport } })
        local u = udp()
        assert.are.equal(string.rep("a", 1000),
                         ask(u, srv.port, string.rep("a", 1000)))
        for _ = 1, 3 do
            assert(u:sendto(string.rep("b", 1001), "127.0.0.1", srv.port))
        end
        -- the next one that fits is the next answer: the big ones got none
        assert.are.equal("after", ask(u, srv.port, "after"))
        assert.is_truthy(srv:wait_log("3 dropped so far", 10), srv:log())
        assert.is_truthy(srv:log():find("dropped a 1001%-byte datagram from " ..
            "127.0.0.1:%d+ %(over maxPackageSize, 1000 bytes%)"))
        -- and in the metrics: 3 dropped, the 2 that fit received and sent
        local function metric(body, name)
            return tonumber(body:match("\n" .. name .. "{[^}]*} (%d+)"))
        end
        local body = server.wait_until(function()
            local c = socket.connect("127.0.0.1", mport)
            if not c then return nil end
            c:settimeout(5)
            c:send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            local all = c:receive("*a") or ""
            c:close()
            return metric(all, "luaserv_udp_dropped_total") == 3 and all
        end, 10)
        assert.is_truthy(body, "luaserv_udp_dropped_total 3")
        assert.are.equal(2, metric(body, "luaserv_messages_received_total"))
        assert.are.equal(2, metric(body, "luaserv_messages_sent_total"))
        srv:stop()
    end)

    it("logs an error in onMessage with its traceback and serves the " ..
       "next datagram", function()
        local srv = start()
        srv:expect_error("boom in onMessage")
        local u = udp()
        assert(u:sendto("boom", "127.0.0.1", srv.port))
        assert.are.equal("still here", ask(u, srv.port, "still here"))
        local lines = srv:wait_log("boom in onMessage", 10)
        assert.is_truthy(lines)
        assert.is_truthy(lines[1]:find("%[error%].-worker 0 %[udp%]: " ..
                                       "onMessage: .-udp%.lua:%d+: boom"))
        assert.is_truthy(srv:log():find("stack traceback", 1, true))
        srv:stop()
    end)

    it("runs onMessage in a coroutine: one that waits does not hold up " ..
       "the next datagrams", function()
        local srv = start()
        local a, b = udp(), udp()
        local t0 = socket.gettime()
        assert(a:sendto("sleep 0.5 late", "127.0.0.1", srv.port))
        assert.are.equal("quick", ask(b, srv.port, "quick"))
        assert.is_true(socket.gettime() - t0 < 0.45)
        assert.are.equal("late", (a:receivefrom(100)))
        assert.is_true(socket.gettime() - t0 >= 0.45)
        srv:stop()
    end)

    it("count = 2 with reusePort: both workers serve", function()
        local srv = start({ workers = 2, env = { UDP_REUSEPORT = "1" } })
        local ids = {}
        -- 32 source ports: the kernel hashes each to one of the sockets
        for _ = 1, 32 do
            local u = udp()
            local d = ask(u, srv.port, "who")
            ids[d:match("^(%d+) ")] = true
            u:close()
        end
        assert.is_true(ids["0"] and ids["1"], "both workers answered")
        srv:stop()
    end)

    it("maxRequests counts datagrams: the worker is replaced after them",
    function()
        local srv = start({ env = { UDP_MAXREQ = "5" } })
        local u = udp()
        local first = ask(u, srv.port, "who"):match("^%d+ (%d+)")
        for i = 2, 5 do assert.are.equal("d" .. i, ask(u, srv.port, "d" .. i)) end
        -- the 5th asked for a replacement; once it serves, "who" says so
        local other = server.wait_until(function()
            local pid = ask(u, srv.port, "who", 2)
            pid = pid and pid:match("^%d+ (%d+)")
            return pid ~= first and pid
        end, 20)
        assert.is_truthy(other, "no replacement answered\n" .. srv:log())
        srv:stop()
    end)

    it("a reload lowering a reusePort count warns that datagrams reaching " ..
       "the surplus sockets are lost, then serves on", function()
        local cf = os.tmpname()
        local function set(n)
            local f = assert(io.open(cf, "w"))
            f:write(n, "\n")
            f:close()
        end
        set(2)
        local srv = start({ env = { UDP_REUSEPORT = "1",
                                    UDP_COUNT_FILE = cf } })
        srv:wait_workers(2)
        set(1)
        srv:reload()
        os.remove(cf)
        assert.is_truthy(srv:wait_log("reusePort count 2 -> 1: datagrams " ..
            "that reach the 1 surplus socket(s) until their old workers " ..
            "are gone are lost", 10), srv:log())
        srv:wait_workers(1)
        for i = 1, 8 do
            local u = udp()
            assert.are.equal("after " .. i, ask(u, srv.port, "after " .. i))
            u:close()
        end
        srv:stop()
    end)

    it("counts datagrams in and out in status", function()
        local srv = start()
        local u = udp()
        for i = 1, 7 do assert.are.equal("s" .. i, ask(u, srv.port, "s" .. i)) end
        local life = require "integration.lifecycle"
        local r = life.ctl({ "-p", srv.master_pidfile, APP, "status" },
                           { LUASERV_TEST_PORT = tostring(srv.port) })
        assert.are.equal(0, r.code, r.stderr)
        -- id pid listener gen state conns total msgs_in msgs_out
        local msgs_in, msgs_out = r.stdout:match(
            "\n0%s+%d+%s+udp%s+%d+%s+%a+%s+%d+%s+%d+%s+(%d+)%s+(%d+)")
        assert.are.equal("7", msgs_in, r.stdout)
        assert.are.equal("7", msgs_out, r.stdout)
        srv:stop()
    end)

    -- Zero-drop for UDP: every datagram the kernel queued in the listening
    -- socket is answered across a reload. The socket is the master's and
    -- the same for both generations; the old workers read until they are
    -- told to drain (their waiting callbacks may still answer), the new
    -- ones read from their start, so what is queued meanwhile is read by
    -- one of them. Datagrams the kernel itself drops for a full receive
    -- buffer (Udp RcvbufErrors) are outside that promise: the stream is a
    -- modest 333 datagrams/s, so the buffer (about 200 KiB) fills only if
    -- the workers get no CPU for half a second or more; a shortfall is
    -- accepted only as far as the kernel counted such drops (in a network
    -- namespace of the suite's own they are all ours).
    local function reload_stream(workers, reuse)
        local srv = start({ workers = workers,
                            env = { UDP_REUSEPORT = reuse and "1" or "0" } })
        local base = os.tmpname()
        local progress, stop, result = base .. ".progress", base .. ".stop",
                                       base .. ".result"
        local before = snmp_udp()
        os.execute(string.format("python3 spec/helpers/udp_stream.py %d " ..
            "100000 0.003 %s %s %s >/dev/null 2>&1 &", srv.port, progress,
            stop, result))
        local function sent()
            local f = io.open(progress)
            if not f then return 0 end
            local n = tonumber((f:read("l") or ""):match("^%d+")) or 0
            f:close()
            return n
        end
        assert.is_truthy(server.wait_until(function()
            return sent() >= 200
        end, 20), "the stream did not start")
        -- callbacks of the first generation that wait through the reloads
        -- still answer from the socket their worker kept (from 8 source
        -- ports: with reusePort, each worker likely gets one, and stays
        -- on, draining, for those 2 s)
        local waiters = {}
        for i = 1, 8 do
            waiters[i] = udp()
            assert(waiters[i]:sendto("sleep 2 from generation 1",
                                     "127.0.0.1", srv.port))
        end
        srv:reload()
        srv:reload()
        local at = sent()
        assert.is_truthy(server.wait_until(function()
            return sent() >= at + 200
        end, 20))
        io.open(stop, "w"):close()
        local res = server.wait_until(function()
            local f = io.open(result)
            if not f then return nil end
            local r = cjson.decode(f:read("a"))
            f:close()
            return r
        end, 30)
        local after = snmp_udp()
        os.remove(base); os.remove(progress); os.remove(stop)
        os.remove(result)
        assert.is_truthy(res, "the stream wrote no result")
        local kdrops = (after.RcvbufErrors or 0) - (before.RcvbufErrors or 0)
        local why = string.format("sent %d, echoed %d, missing %s, per " ..
            "generation %s, kernel RcvbufErrors +%d", res.sent, res.got,
            cjson.encode(res.missing), cjson.encode(res.gens), kdrops)
        io.stderr:write("udp reload stream (" .. workers .. " worker(s)): " ..
                        why .. "\n")
        assert.is_true(res.sent - res.got <= kdrops, why)
        assert.are.equal(0, res.dup, why)
        assert.are.equal(3, srv:generation())
        for _, w in ipairs(waiters) do
            assert.are.equal("from generation 1", (w:receivefrom(100)))
        end
        -- the stream went through all three generations
        assert.is_truthy(res.gens["1"] and res.gens["2"] and res.gens["3"],
                         why)
        srv:stop()
        return res
    end

    it("loses no datagram through two reloads (one worker)", function()
        reload_stream(1, false)
    end)

    it("loses no datagram through two reloads (count = 2, reusePort)",
    function()
        reload_stream(2, true)
    end)
end)

describe("udp:// listener declarations", function()
    local function check(src)
        local path = os.tmpname() .. ".lua"
        local f = assert(io.open(path, "w"))
        f:write('local luaserv = require "luaserv"\n', src)
        f:close()
        local r = server.run({ path, "check" })
        os.remove(path)
        return r, path
    end

    it("refuses stream callbacks on a udp listener at the script's line",
    function()
        for _, cb in ipairs({ "onConnect", "onClose", "onError",
                              "onBufferFull", "onBufferDrain",
                              "onDrain" }) do
            local r, path = check(
                'local u = luaserv.listen("udp://127.0.0.1:9")\n' ..
                "function u.onMessage(peer, d) peer:send(d) end\n" ..
                "function u." .. cb .. "() end\n")
            assert.are.equal(1, r.code)
            assert.is_truthy(r.stderr:find(path .. ":4: " .. cb ..
                " does not apply to udp:// listeners", 1, true), r.stderr)
        end
        -- onWorkerStart and friends do apply
        local r = check('local u = luaserv.listen("udp://127.0.0.1:9")\n' ..
                        "function u.onWorkerStart() end\n" ..
                        "function u.onWorkerStop() end\n" ..
                        "function u.onMessage() end\n")
        assert.are.equal(0, r.code, r.stderr)
    end)

    it("refuses stream options, a maxPackageSize over 65535 and " ..
       "udp over unix sockets", function()
        local r = check('luaserv.listen("udp://127.0.0.1:9", ' ..
                        '{ idleTimeout = 5 })\n')
        assert.are.equal(1, r.code)
        assert.is_truthy(r.stderr:find("option 'idleTimeout' does not " ..
            "apply to udp:// listeners", 1, true), r.stderr)
        r = check('luaserv.listen("udp://127.0.0.1:9", ' ..
                  '{ maxPackageSize = 65536 })\n')
        assert.are.equal(1, r.code)
        assert.is_truthy(r.stderr:find("bad option 'maxPackageSize'", 1,
                                       true), r.stderr)
        r = check('luaserv.listen("udp+unix:///tmp/x.sock")\n')
        assert.are.equal(1, r.code)
        assert.is_truthy(r.stderr:find("udp is for host:port", 1, true),
                         r.stderr)
        r = check('luaserv.listen("udp://127.0.0.1:9", { count = 2, ' ..
                  'reusePort = true, maxPackageSize = 512 })\n')
        assert.are.equal(0, r.code, r.stderr)
    end)
end)
