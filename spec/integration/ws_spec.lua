-- websocket:// (RFC 6455): handshake, echo, fragments, ping, close, limits,
-- refusal, driven by Debian's python3-websockets (spec/fixtures/ws_client.py)
-- and raw sockets.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/ws_echo.lua"
local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"
local SCRIPT = "spec/fixtures/ws_client.py"

local function has_websockets()
    local ok, how, code = os.execute(PY .. " -c 'import websockets' " ..
                                     ">/dev/null 2>&1")
    return ok == true or (how == "exit" and code == 0)
end

-- Run one client scenario; its stdout lines (stderr appended on failure).
local function run(srv, scenario)
    local cmd = string.format("timeout 20 %s %s %d %s 2>&1", PY,
                              server.shquote(SCRIPT), srv.port, scenario)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    return out
end

-- A masked client frame (mask 0: the payload goes as it is).
local function frame(opcode, payload)
    assert(#payload < 126)
    return string.char(0x80 | opcode, 0x80 | #payload) .. "\0\0\0\0" ..
           payload
end

-- Read one unmasked server frame: opcode, payload.
local function read_frame(c)
    local h = assert(c:bytes(2, 5))
    local len = h:byte(2) & 0x7f
    assert(len < 126)
    return h:byte(1) & 0x0f, len > 0 and assert(c:bytes(len, 5)) or ""
end

-- Connect and complete the handshake on a raw socket.
local function open_raw(port)
    local c = client.must_connect(port)
    assert(c:send("GET /echo HTTP/1.1\r\nHost: t\r\n" ..
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
        "Sec-WebSocket-Version: 13\r\n\r\n"))
    assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
    repeat local l = assert(c:line(5)) until l == "\r"
    return c
end

describe("websocket://", function()
    local srv
    setup(function()
        assert(has_websockets(), "python3-websockets is not installed " ..
               "(apt-get install python3-websockets)")
        srv = server.start(APP, { wait_workers = 1 })
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("echoes a text message", function()
        assert.are.equal("str hello ☃\n", run(srv, "text"))
    end)

    it("echoes a binary message as binary", function()
        assert.are.equal("bytes 0001feff\n", run(srv, "binary"))
    end)

    it("reassembles a fragmented message", function()
        assert.are.equal("str abcdef\n", run(srv, "fragmented"))
    end)

    it("delivers every message send() took and none that it refused",
       function()
        local c = open_raw(srv.port)
        finally(function() c:close() end)
        assert(c:send(frame(1, "fill later")))     -- and do not read yet
        local line = srv:wait_log("ws filled ", 30)
        assert.is_truthy(line, server.tail(srv:log()))
        local n = tonumber(line[1]:match("ws filled (%d+)"))
        assert.is_true(n > 0)
        local got = c:bytes(n * 122, 30)            -- 2-byte header + 120
        assert.is_truthy(got, "fewer than " .. n .. " messages arrived")
        assert.are.equal(("\x81\x78" .. ("f"):rep(120)):rep(n), got)
        -- the refused one is not sent after all
        assert.are.equal("", c:drain(0.5))
    end)

    it("answers a ping with a pong", function()
        assert.are.equal("pong\nafter ping\n", run(srv, "ping"))
    end)

    it("completes the close handshake; onClose fires once", function()
        local before = srv:count_log("ws onClose")
        assert.are.equal("bye\nclosed 1000\n", run(srv, "close"))
        local id = assert(srv:log():match(".*ws connect (%d+) path=/echo"))
        assert(srv:wait_log("ws onClose " .. id, 5))
        -- give a second onClose a chance to show up
        -- (a connection that never upgrades gets its onClose too)
        local sock = client.must_connect(srv.port)
        sock:close()
        assert.is_truthy(server.wait_until(function()
            return srv:count_log("ws onClose") >= before + 2
        end, 5))
        assert.are.equal(1, srv:count_log("ws onClose " .. id .. "$"))
    end)

    -- wslay queues its close reply ahead of queued messages and drops
    -- queued pongs: what a message caused must go out before the close
    it("sends the echo of a message, then the close reply, when both " ..
       "arrive in one read", function()
        local c = open_raw(srv.port)
        finally(function() c:close() end)
        assert(c:send(frame(0x1, "hello") .. frame(0x8, "\3\232bye")))
        local op, data = read_frame(c)
        assert.are.equal(0x1, op)
        assert.are.equal("hello", data)
        op, data = read_frame(c)
        assert.are.equal(0x8, op)
        assert.are.equal("\3\232bye", data)
        assert(c:wait_closed(10))
        assert.are.equal("", c.buf)
    end)

    it("sends the pong, then the close reply, for ping + close in one read",
    function()
        local c = open_raw(srv.port)
        finally(function() c:close() end)
        assert(c:send(frame(0x9, "p1") .. frame(0x1, "m") ..
                      frame(0x9, "p2") .. frame(0x8, "\3\232")))
        local got = {}
        for _ = 1, 4 do
            local op, data = read_frame(c)
            got[#got + 1] = op .. ":" .. data
        end
        assert.are.same({ "10:p1", "1:m", "10:p2", "8:\3\232" }, got)
        assert(c:wait_closed(10))
        assert.are.equal("", c.buf)
    end)

    it("closes with 1009 on a message over maxPackageSize", function()
        assert.are.equal("closed 1009\n", run(srv, "big"))
    end)

    it("sends what onWebSocketConnect sent right after the 101", function()
        assert.are.equal("welcome /welcome\nx\n", run(srv, "welcome"))
    end)

    it("answers 403 when onWebSocketConnect returns false", function()
        assert.are.equal("status 403\n", run(srv, "deny"))
    end)

    it("answers 403 when onWebSocketConnect raises", function()
        srv:expect_error("refused by an error")
        assert.are.equal("status 403\n", run(srv, "boom"))
    end)

    local function raw(req)
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(req))
        local line = c:line(5)
        assert(c:wait_closed(5))
        return line, c.buf
    end

    it("answers 400 to a plain HTTP request, and closes", function()
        local line = raw("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert.are.equal("HTTP/1.1 400 Bad Request\r", line)
    end)

    it("answers 431 to a handshake over maxHeaderSize (default 16 KiB)",
    function()
        local line = raw("GET / HTTP/1.1\r\nHost: t\r\n" ..
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "X-Big: " .. ("b"):rep(20000) .. "\r\n\r\n")
        assert.are.equal("HTTP/1.1 431 Request Header Fields Too Large\r",
                         line)
    end)

    it("answers 400 to a malformed head (as http:// does)", function()
        local line = raw("GET / HTTP/1.1\r\nHost : t\r\n" ..
            "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        assert.are.equal("HTTP/1.1 400 Bad Request\r", line)
    end)

    it("answers 400 to a bad version, naming version 13", function()
        local line, rest = raw("GET / HTTP/1.1\r\nHost: t\r\n" ..
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
            "Sec-WebSocket-Version: 8\r\n\r\n")
        assert.are.equal("HTTP/1.1 400 Bad Request\r", line)
        assert.truthy(rest:find("Sec-WebSocket-Version: 13", 1, true))
    end)

    it("computes the RFC 6455 accept key", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("GET /chat HTTP/1.1\r\nHost: t\r\n" ..
            "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
            "Sec-WebSocket-Version: 13\r\n\r\n"))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
        local head = {}
        while true do
            local l = assert(c:line(5))
            if l == "\r" then break end
            head[#head + 1] = l
        end
        assert.truthy(table.concat(head, "\n"):find(
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1, true))
        -- an unmasked client frame is a protocol error: close 1002, then
        -- the server closes the connection
        assert(c:send("\129\002hi"))
        assert(c:wait_closed(5))
        assert.are.equal("\136", c.buf:sub(1, 1))
        assert.are.equal(1002, c.buf:byte(3) * 256 + c.buf:byte(4))
    end)
end)

describe("websocket:// graceful stop", function()
    after_each(function() server.cleanup() end)

    it("sends close 1001 to open connections on SIGQUIT", function()
        local srv = server.start(APP, { wait_workers = 1 })
        local cmd = string.format("timeout 20 %s %s %d wait 2>&1", PY,
                                  server.shquote(SCRIPT), srv.port)
        local p = assert(io.popen(cmd, "r"))
        assert.are.equal("open", p:read("l"))
        assert.are.equal(0, srv:stop("QUIT"))
        local rest = p:read("a")
        p:close()
        assert.are.equal("closed 1001\n", rest)
    end)

    it("closes with 1001 a WebSocket whose handshake ends during the stop",
    function()
        local srv = server.start(APP, { wait_workers = 1 })
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        -- the head in flight when the stop begins: no drain will see a
        -- WebSocket here
        assert(c:send("GET /echo HTTP/1.1\r\nHost: t\r\n"))
        assert(server.kill(srv.pid, "QUIT"))
        assert(srv:wait_log("stopping gracefully", 10))
        assert(c:send("Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
            "Sec-WebSocket-Version: 13\r\n\r\n"))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
        repeat local l = assert(c:line(5)) until l == "\r"
        -- at once, not when stopTimeout cuts it
        local op, data = read_frame(c)
        assert.are.equal(0x8, op)
        assert.are.equal(1001, data:byte(1) * 256 + data:byte(2))
        assert(c:send(frame(0x8, "\3\233")))
        assert(c:wait_closed(10))
        assert.are.equal("", c.buf)
        assert.are.equal(0, srv:stop("QUIT"))
    end)
end)
