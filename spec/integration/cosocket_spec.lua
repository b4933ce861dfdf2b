-- Coroutines and cosockets: callbacks that wait (luaserv.sleep,
-- luaserv.tcp) while the worker serves others; order, errors and guards
-- across waits. The peers are the fixture's own listeners.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/cosocket.lua"

local function get(port, path, timeout)
    local c = client.must_connect(port)
    assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n" ..
                  "Connection: close\r\n\r\n"))
    c:wait_closed(timeout or 10)
    local all = c:drain(0)
    c:close()
    local status, body = all:match("^HTTP/1%.1 (%d+).-\r\n\r\n(.*)$")
    return tonumber(status), body
end

describe("coroutines and cosockets", function()
    local srv, env, sock
    setup(function()
        sock = os.tmpname()
        os.remove(sock)
        env = {
            BACKEND_PORT = tostring(server.free_port()),
            BACKEND_PORT6 = tostring(server.free_port()),
            STREAM_PORT = tostring(server.free_port()),
            BACKEND_SOCK = sock,
        }
        srv = server.start(APP, { env = env, wait_workers = 5 })
    end)
    teardown(function()
        if srv then srv:stop() end
        os.remove(sock)
    end)

    it("accepts nothing before an onWorkerStart that waits is done",
    function()
        assert.are.equal("true\n", select(2, get(srv.port, "/ready")))
    end)

    it("luaserv.sleep waits without holding up the worker", function()
        local c = client.must_connect(srv.port)
        assert(c:send("GET /sleep?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n"))
        local t0 = socket.gettime()
        -- meanwhile the same worker answers another request at once
        local status, body = get(srv.port, "/sleep?s=0")
        assert.are.equal(200, status)
        assert.are.equal("slept 0\n", body)
        assert.is_true(socket.gettime() - t0 < 0.4)
        local head = c:line(10)
        assert.are.equal("HTTP/1.1 200 OK\r", head)
        assert.is_true(socket.gettime() - t0 >= 0.45)
        c:close()
    end)

    it("answers pipelined requests in order when the first waits", function()
        local c = client.must_connect(srv.port)
        assert(c:send("GET /sleep?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                      "GET /sleep?s=0 HTTP/1.1\r\nHost: x\r\n\r\n" ..
                      "GET /sleep?s=0.1 HTTP/1.1\r\nHost: x\r\n" ..
                      "Connection: close\r\n\r\n"))
        c:wait_closed(10)
        local all = c:drain(0)
        c:close()
        local bodies = {}
        for b in all:gmatch("\r\n\r\n(slept [%d.]+)\n") do
            bodies[#bodies + 1] = b
        end
        assert.are.same({ "slept 0.3", "slept 0", "slept 0.1" }, bodies)
    end)

    it("keeps a stream connection's messages in order across waits",
    function()
        local c = client.must_connect(tonumber(env.STREAM_PORT))
        -- sent before onConnect (which waits 0.2 s) has answered
        assert(c:send("wait:0.2\nsecond\nwait:0\nfourth\n"))
        local got = {}
        for _ = 1, 5 do got[#got + 1] = c:line(10) end
        assert.are.same({ "welcome", "got wait:0.2", "got second",
                          "got wait:0", "got fourth" }, got)
        c:close()
    end)

    it("counts callbackTimeout in running time, not waiting time",
    function()
        local status, body = get(srv.port, "/longwait")
        assert.are.equal(200, status)
        assert.are.equal("done\n", body)
        assert.is_nil(srv:log():find("callbackTimeout", 1, true))
    end)

    it("logs an error after a wait with its traceback and the listener; " ..
       "HTTP answers 500, a stream connection closes", function()
        srv:expect_error("failed after a wait")
        srv:expect_error("boom after a wait")
        local status = get(srv.port, "/error")
        assert.are.equal(500, status)
        local lines = assert(srv:wait_log("failed after a wait", 5))
        assert.is_truthy(lines[1]:find("%[error%].-worker %d+ %[api%]: conn " ..
            "%d+: onMessage: .-cosocket%.lua:%d+: failed after a wait"),
            lines[1])
        assert.is_truthy(srv:log():find("stack traceback:.-in function " ..
            "'error'.-cosocket%.lua"), server.tail(srv:log()))
        local c = client.must_connect(tonumber(env.STREAM_PORT))
        assert.are.equal("welcome", c:line(10))
        assert(c:send("boom\n"))
        assert.is_nil(c:line(5)) -- closed
        c:close()
        assert.is_truthy(server.wait_until(function()
            return srv:count_log("worker %d+ %[stream%]: conn %d+: onMessage: " ..
                ".-boom after a wait") > 0
        end, 5))
    end)

    it("connects, sends and receives lines, byte counts and patterns",
    function()
        local status, body = get(srv.port, "/lines")
        assert.are.equal(200, status)
        assert.are.equal("reused=0|echo:one|echo:tw0|echo:three|" ..
            "echo:four|echo:|12345\n|echo:a|b|\n", body)
    end)

    it("reuses pooled connections (getreusedtimes)", function()
        local seen = {}
        for i = 1, 3 do
            local status, body = get(srv.port, "/pooled")
            assert.are.equal(200, status, body)
            seen[i] = body
        end
        -- the first may come from /lines' connection; each is pooled again
        local first = tonumber(seen[1]:match("^(%d+)"))
        assert.are.equal(tostring(first + 1) .. " echo:p\n", seen[2])
        assert.are.equal(tostring(first + 2) .. " echo:p\n", seen[3])
    end)

    it("receives everything until the peer closes ('*a')", function()
        local _, body = get(srv.port, "/all")
        assert.are.equal("bye\n nil closed\n", body)
    end)

    it("times out a read without closing; per-phase timeouts", function()
        local status, body = get(srv.port, "/timeouts")
        assert.are.equal(200, status, body)
        assert.are.equal("nil timeout [] echo:after timeout\n", body)
    end)

    it("reports a refused connection and a name that does not resolve; " ..
       "resolves localhost without blocking", function()
        local port = server.free_port()
        local _, body = get(srv.port, "/refused?port=" .. port)
        assert.are.equal("nil connection refused closed\n", body)
        _, body = get(srv.port, "/names")
        -- NXDOMAIN where a name server answers, else the connect timeout
        -- (1 s), which covers the lookup
        local first, second = body:match("^(.-)|(.*)\n$")
        assert.are.equal("echo:by name", first)
        assert.is_truthy(second == "nil timeout" or second ==
            "nil no-such-host.invalid could not be resolved (host not found)",
            second)
    end)

    it("connects over IPv6 and over a unix socket", function()
        local _, body = get(srv.port, "/ipv6?port=" .. env.BACKEND_PORT6)
        assert.are.equal("echo:six\n", body)
        _, body = get(srv.port, "/unix")
        assert.are.equal("echo:over unix reused=1\n", body)
    end)

    it("refuses a socket another coroutine waits on: socket busy", function()
        local _, body = get(srv.port, "/busy")
        assert.are.equal("slept 0.3 | other: nil socket busy\n", body)
    end)

    it("answers closed for a closed socket, not connected for a new one",
    function()
        local _, body = get(srv.port, "/closed")
        assert.are.equal("send=nil,closed receive=nil,closed " ..
            "close=nil,closed setkeepalive=nil,closed " ..
            "getreusedtimes=nil,closed fresh=not connected\n", body)
    end)

    it("bounds a line without a newline", function()
        local _, body = get(srv.port, "/longline")
        assert.are.equal("nil line too long (more than 4194304 bytes " ..
            "without a newline) partial over the limit closed\n", body)
    end)

    it("raises a clear error where nothing may wait", function()
        local _, body = get(srv.port, "/misuse")
        assert.is_truthy(body:find("luaserv.sleep: cannot wait inside a " ..
            "coroutine of the app's own", 1, true), body)
        assert.is_truthy(body:find("element 1 is a table", 1, true), body)
        assert.is_truthy(body:find("seconds must be a number", 1, true), body)
        -- onWebSocketConnect needs its answer at once: the wait raises, 403
        srv:expect_error("cannot wait here")
        local c = client.must_connect(srv.port)
        assert(c:send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" ..
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
        assert.are.equal("HTTP/1.1 403 Forbidden\r", c:line(10))
        c:close()
        assert.is_truthy(server.wait_until(function()
            return srv:count_log("onWebSocketConnect: .-luaserv%.sleep: " ..
                "cannot wait here") > 0
        end, 5))
    end)

    it("a client that leaves while its handler waits breaks nothing",
    function()
        local c = client.must_connect(srv.port)
        assert(c:send("GET /sleep?s=0.3 HTTP/1.1\r\nHost: x\r\n\r\n"))
        c:close()
        assert.is_truthy(srv:wait_log("late send: closed", 5))
        local status = get(srv.port, "/sleep?s=0")
        assert.are.equal(200, status)
    end)

    it("sends and receives datagrams (luaserv.udp) by address and by name",
    function()
        -- a real UDP peer: python3 echoing "echo:" .. datagram, except
        -- "quiet"; stopped by pid
        local port = server.free_port()
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write([[
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    d, a = s.recvfrom(65536)
    if d != b"quiet":
        s.sendto(d if len(d) > 100 else b"echo:" + d, a)
]])
        f:close()
        local pid = tonumber(server.capture("python3 " .. script .. " " ..
            port .. " >/dev/null 2>&1 & echo $!"))
        finally(function()
            server.kill(pid, "KILL")
            os.remove(script)
        end)
        assert.is_truthy(server.wait_until(function()
            return server.capture("ss -Hlun 'sport = :" .. port .. "'") ~= ""
        end, 10))
        local _, body = get(srv.port, "/udp?port=" .. port)
        assert.are.equal("echo:d1 echo:d2 echo:d3 60000 timeout not " ..
            "connected\n", body)
        _, body = get(srv.port, "/udp?host=localhost&port=" .. port)
        assert.are.equal("echo:d1 echo:d2 echo:d3 60000 timeout not " ..
            "connected\n", body)
    end)

    it("keeps {pool = name} connections apart from host:port's", function()
        local _, body = get(srv.port, "/pools")
        assert.are.equal("0 1\n", body)
    end)

    it("keeps its memory while many callbacks wait side by side", function()
        -- 20 requests at a time, each in a coroutine of its own that waits:
        -- what a request leaves behind shows after 2,000 of them
        local conns = {}
        for i = 1, 20 do conns[i] = client.must_connect(srv.port) end
        local function round()
            for _, c in ipairs(conns) do
                assert(c:send("GET /sleep?s=0 HTTP/1.1\r\nHost: x\r\n\r\n"))
            end
            for _, c in ipairs(conns) do -- lines, without fill's pauses
                c.sock:settimeout(10)
                assert.are.equal("HTTP/1.1 200 OK", c.sock:receive("*l"))
                repeat until assert(c.sock:receive("*l")) == ""
                assert.are.equal("slept 0", c.sock:receive("*l"))
            end
        end
        round()
        local before = tonumber(select(2, get(srv.port, "/mem")))
        for _ = 1, 100 do round() end
        local after = tonumber(select(2, get(srv.port, "/mem")))
        for _, c in ipairs(conns) do c:close() end
        assert.is_true(after - before < 300, before .. " KB, then " ..
            after .. " KB")
    end)

    it("keeps pool_size, drops idle ones that time out, close or speak",
    function()
        local _, body = get(srv.port, "/poolrules")
        assert.are.equal("size 1 1 0 | idle 0 | bye 0 | talk 0 | " ..
            "ok 1 echo:again\n", body)
    end)

    it("lets waiting callbacks finish on a graceful stop", function()
        assert.are.equal("started\n", select(2, get(srv.port, "/bgwait")))
        local c = client.must_connect(srv.port)
        assert(c:send("GET /sleep?s=0.5 HTTP/1.1\r\nHost: x\r\n\r\n"))
        socket.sleep(0.1)
        local s = srv
        srv = nil
        assert(server.kill(s.pid, "QUIT"))
        assert.are.equal("HTTP/1.1 200 OK\r", c:line(10))
        c:wait_closed(10)
        local all = c:drain(0)
        assert.is_truthy(all:find("slept 0.5", 1, true), all)
        c:close()
        assert.is_truthy(s:wait_exit(10))
        assert.is_truthy(s:log():find("background wait done", 1, true),
            server.tail(s:log()))
    end)
end)
