-- WebSocket on an http:// listener (the app defines onWebSocketConnect):
-- the upgrade, HTTP and WebSocket side by side, conn:close(code, reason)
-- and its close-handshake timeout, handshake limits. Driven by Debian's
-- python3-websockets (spec/fixtures/ws_client.py) and raw sockets.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/ws_upgrade.lua"
local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"
local SCRIPT = "spec/fixtures/ws_client.py"

local function run(srv, scenario)
    local cmd = string.format("timeout 20 %s %s %d %s 2>&1", PY,
                              server.shquote(SCRIPT), srv.port,
                              server.shquote(scenario))
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    p:close()
    return out
end

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

local function handshake(path, extra)
    return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" ..
           "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
           "Sec-WebSocket-Key: " .. KEY .. "\r\n" ..
           "Sec-WebSocket-Version: 13\r\n" .. (extra or "") .. "\r\n"
end

-- A masked client frame (mask 0: the payload goes as it is).
local function frame(opcode, payload)
    assert(#payload < 126)
    return string.char(0x80 | opcode, 0x80 | #payload) .. "\0\0\0\0" ..
           payload
end

-- Read the response head; returns its status line and the head.
local function read_head(c)
    local status = c:line(5)
    local head = {}
    while true do
        local l = c:line(5)
        if l == nil or l == "\r" then break end
        head[#head + 1] = l
    end
    return status, table.concat(head, "\n")
end

-- Read one unmasked server frame: opcode, payload.
local function read_frame(c)
    local h = assert(c:bytes(2, 5))
    local len = h:byte(2) & 0x7f
    assert(len < 126)
    return h:byte(1) & 0x0f, len > 0 and assert(c:bytes(len, 5)) or ""
end

describe("websocket upgrade on http://", function()
    local srv
    setup(function()
        srv = server.start(APP, { wait_workers = 1 })
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("echoes text, binary and fragmented messages, answers pings", function()
        assert.are.equal("str hello ☃\n", run(srv, "text"))
        assert.are.equal("bytes 0001feff\n", run(srv, "binary"))
        assert.are.equal("str abcdef\n", run(srv, "fragmented"))
        assert.are.equal("pong\nafter ping\n", run(srv, "ping"))
    end)

    it("completes a close handshake the client starts", function()
        assert.are.equal("bye\nclosed 1000\n", run(srv, "close"))
    end)

    it("closes with the app's code and reason: conn:close(code, reason)",
    function()
        assert.are.equal("closed 4001 going away\n",
                         run(srv, "srvclose 4001 going away"))
        assert.are.equal("closed 1000 \n", run(srv, "srvclose 1000"))
        assert(srv:wait_log("wsup send after close: false closed", 5))
    end)

    it("conn:close(data) sends data, then closes with 1000", function()
        assert.are.equal("so long\nclosed 1000\n", run(srv, "lastwords"))
    end)

    it("closes with 1009 over maxPackageSize", function()
        assert.are.equal("closed 1009\n", run(srv, "big"))
    end)

    it("lets onWebSocketConnect refuse with false (403) or a status",
    function()
        assert.are.equal("status 403\n", run(srv, "deny"))
        assert.are.equal("status 401\n", run(srv, "/status/401"))
        assert.are.equal("welcome /welcome\nx\n", run(srv, "welcome"))
    end)

    it("serves HTTP and WebSocket on the same listener at once", function()
        assert.are.equal("one\n200 http GET /page; 200 http GET /page\ntwo\n",
                         run(srv, "mixed"))
    end)

    it("gives the bytes pipelined behind the handshake to the WebSocket",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo") .. frame(1, "first") ..
                      frame(1, "second")))
        local status, head = read_head(c)
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", status)
        assert.truthy(head:find(
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 1, true))
        assert.are.same({1, "first"}, {read_frame(c)})
        assert.are.same({1, "second"}, {read_frame(c)})
    end)

    it("serves an HTTP request, then upgrades the same connection", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("GET /before HTTP/1.1\r\nHost: t\r\n\r\n"))
        local status, head = read_head(c)
        assert.are.equal("HTTP/1.1 200 OK\r", status)
        local len = tonumber(head:match("Content%-Length: (%d+)"))
        assert.are.equal("http GET /before", c:bytes(len, 5))
        assert(c:send(handshake("/echo") .. frame(1, "now ws")))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", read_head(c))
        assert.are.same({1, "now ws"}, {read_frame(c)})
    end)

    it("serves other upgrades (h2c) as ordinary requests", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n" ..
                      "Upgrade: h2c\r\n\r\n"))
        local status, head = read_head(c)
        assert.are.equal("HTTP/1.1 200 OK\r", status)
        local len = tonumber(head:match("Content%-Length: (%d+)"))
        assert.are.equal("http GET /x upgrade=h2c", c:bytes(len, 5))
    end)

    it("closes a peer that never answers the close frame, after a timeout",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo") .. frame(1, "close 4000 no answer")))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", read_head(c))
        local op, payload = read_frame(c)
        assert.are.equal(8, op)
        assert.are.equal(4000, string.unpack(">I2", payload))
        assert.are.equal("no answer", payload:sub(3))
        -- we neither answer nor close: the server gives up after ~3 s
        assert(c:wait_closed(15))
        assert(srv:wait_log("no close frame from the peer", 5))
    end)

    it("bounds the wait after wslay's own close (1009) too", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local big = ("z"):rep(2000)
        assert(c:send(handshake("/echo") .. string.char(0x81, 0x80 | 126) ..
                      string.pack(">I2", #big) .. "\0\0\0\0" .. big))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", read_head(c))
        local op, payload = read_frame(c)
        assert.are.equal(8, op)
        assert.are.equal(1009, string.unpack(">I2", payload))
        assert(c:wait_closed(15))
    end)

    it("closes with 1011 after a Lua error in onMessage", function()
        srv:expect_error("boom in onMessage")
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo") .. frame(1, "boom") ..
                      frame(1, "dropped")))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", read_head(c))
        local op, payload = read_frame(c)
        assert.are.equal(8, op)
        assert.are.equal(1011, string.unpack(">I2", payload))
        assert(c:send(frame(8, payload:sub(1, 2))))
        assert(c:wait_closed(10))
        assert.are.equal("", c.buf)
    end)

    it("survives conn:destroy() from onBufferFull, in and out of onMessage",
    function()
        local before = srv:count_log("wsup flooded")
        for _, msg in ipairs { "flood", "flood later" } do
            local c = client.must_connect(srv.port)
            assert(c:send(handshake("/echo")))
            assert.are.equal("HTTP/1.1 101 Switching Protocols\r",
                             read_head(c))
            assert(c:send(frame(1, msg)))
            -- destroyed: whatever was not written yet is dropped
            assert(c:wait_closed(10))
            c:close()
        end
        assert.is_truthy(server.wait_until(function()
            return srv:count_log("wsup flooded") >= before + 2
        end, 5))
        -- sends stopped at the 64 KiB limit in both cases
        for n in srv:log():gmatch("wsup flooded (%d+)") do
            assert.is_true(tonumber(n) < 100, n)
        end
    end)

    it("raises on a close code or reason a server may not send", function()
        srv:expect_error("not a close code")
        srv:expect_error("close reason must be UTF%-8")
        -- (binary frames: a text frame must be UTF-8 itself)
        for _, msg in ipairs { "close 1005", "close 1000 \255" } do
            local c = client.must_connect(srv.port)
            assert(c:send(handshake("/echo") .. frame(2, msg)))
            assert.are.equal("HTTP/1.1 101 Switching Protocols\r",
                             read_head(c))
            assert(c:wait_closed(10))
            c:close()
        end
        assert(srv:wait_log("not a close code", 5))
        assert(srv:wait_log("close reason must be UTF-8", 5))
    end)

    it("closes at once when the peer answers the close frame", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo") .. frame(1, "close 1000")))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", read_head(c))
        local op, payload = read_frame(c)
        assert.are.equal(8, op)
        assert(c:send(frame(8, payload)))
        local t0 = client.gettime()
        assert(c:wait_closed(15))
        -- well before the 3 s timeout (generous for loaded machines)
        assert.is_true(client.gettime() - t0 < 2.5)
    end)

    it("answers 431 to a handshake over maxHeaderSize", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo", "X-Big: " .. ("a"):rep(8000) ..
                                          "\r\n")))
        assert.are.equal("HTTP/1.1 431 Request Header Fields Too Large\r",
                         c:line(5))
        assert(c:wait_closed(5))
    end)

    it("answers 400 to a malformed handshake and closes", function()
        for _, req in ipairs {
            handshake("/echo"):gsub("Sec%-WebSocket%-Key: [^\r]*\r\n", ""),
            handshake("/echo"):gsub(KEY, "short=="),
            handshake("/echo"):gsub("HTTP/1.1", "HTTP/1.0"),
            handshake("/echo"):gsub("^GET", "POST"),
        } do
            local c = client.must_connect(srv.port)
            -- bytes still coming after the bad request must not reset the
            -- reply away (lingering close)
            assert(c:send(req .. frame(1, "ignored")))
            assert.are.equal("HTTP/1.1 400 Bad Request\r", c:line(5))
            assert(c:wait_closed(5))
            c:close()
        end
    end)

    it("names version 13 when the client asks for another", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(handshake("/echo"):gsub("Version: 13", "Version: 8")))
        local status, head = read_head(c)
        assert.are.equal("HTTP/1.1 400 Bad Request\r", status)
        assert.truthy(head:find("Sec-WebSocket-Version: 13", 1, true))
    end)
end)

describe("websocket upgrade on http:// graceful stop", function()
    after_each(function() server.cleanup() end)

    it("sends close 1001 to upgraded connections on SIGQUIT", function()
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

    it("examples/ws_chat.lua serves its page and the chat on one port",
    function()
        local srv = server.start("examples/ws_chat.lua", { wait_workers = 1 })
        local c = client.must_connect(srv.port)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        local status, head = read_head(c)
        assert.are.equal("HTTP/1.1 200 OK\r", status)
        local len = tonumber(head:match("Content%-Length: (%d+)"))
        local page = c:bytes(len, 5)
        c:close()
        assert.truthy(page:find("new WebSocket", 1, true))
        assert.truthy(page:find('"/chat"', 1, true))
        local out = run(srv, "chat")
        local lines = {}
        for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal(6, #lines, out)
        assert.truthy(lines[1]:match("^welcome, user%d+ "), out)
        local b = assert(lines[2]:match("^welcome, (user%d+) "), out)
        assert.are.equal("* " .. b .. " joined", lines[3])
        assert.are.equal(b .. ": hi all", lines[4])
        assert.are.equal(b .. ": hi all", lines[5])
        assert.are.equal("* " .. b .. " left", lines[6])
        assert.are.equal(0, srv:stop())
    end)
end)
