-- A fast stop (SIGTERM or SIGINT to the master) still says goodbye to
-- every open WebSocket: close 1001, best effort, without waiting for the
-- peer's answer; on websocket:// listeners and on http:// listeners whose
-- connections were upgraded by onWebSocketConnect.
local server = require "helpers.server"
local client = require "helpers.client"

local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"
local SCRIPT = "spec/fixtures/ws_client.py"

-- python3-websockets held open until the server goes ("wait" scenario).
local function open_waiting(srv)
    local cmd = string.format("timeout 20 %s %s %d wait 2>&1", PY,
                              server.shquote(SCRIPT), srv.port)
    local p = assert(io.popen(cmd, "r"))
    assert.are.equal("open", p:read("l"))
    return p
end

-- Connect and complete the handshake on a raw socket.
local function open_raw(port, path)
    local c = client.must_connect(port)
    assert(c:send("GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" ..
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
        "Sec-WebSocket-Version: 13\r\n\r\n"))
    assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
    repeat local l = assert(c:line(5)) until l == "\r"
    return c
end

-- Read one unmasked server frame: opcode, payload.
local function read_frame(c)
    local h = assert(c:bytes(2, 10))
    local len = h:byte(2) & 0x7f
    assert(len < 126)
    return h:byte(1) & 0x0f, len > 0 and assert(c:bytes(len, 10)) or ""
end

describe("fast stop with open WebSockets", function()
    after_each(function() server.cleanup() end)

    for _, case in ipairs {
        { "websocket://", "spec/fixtures/apps/ws_echo.lua", "TERM" },
        { "websocket://", "spec/fixtures/apps/ws_echo.lua", "INT" },
        { "http:// (upgraded)", "spec/fixtures/apps/ws_upgrade.lua", "TERM" },
    } do
        local what, app, sig = case[1], case[2], case[3]
        it("sends close 1001 on " .. what .. " for SIG" .. sig, function()
            local srv = server.start(app, { wait_workers = 1 })
            local p = open_waiting(srv)
            local c = open_raw(srv.port, "/echo")
            finally(function() c:close() end)
            assert.are.equal(0, srv:stop(sig))
            local rest = p:read("a")
            p:close()
            assert.are.equal("closed 1001\n", rest)
            -- the raw client gets the frame itself, then the socket ends
            -- without waiting for an answer
            local op, data = read_frame(c)
            assert.are.equal(0x8, op)
            assert.are.equal(1001, data:byte(1) * 256 + data:byte(2))
            assert.are.equal("server stopping", data:sub(3))
            assert(c:wait_closed(10))
            assert.are.equal("", c.buf)
        end)
    end

    it("ends with a FIN, not a reset, when input is left unread", function()
        local srv = server.start("spec/fixtures/apps/ws_echo.lua",
                                 { wait_workers = 1 })
        local p = assert(io.popen(string.format("timeout 20 %s %s %d 2>&1",
            PY, server.shquote("spec/fixtures/ws_unread_client.py"),
            srv.port), "r"))
        -- "ready": a frame sits unread in the server's socket (paused)
        assert.are.equal("ready", p:read("l"))
        client.sleep(0.2)
        assert.are.equal(0, srv:stop("TERM"))
        local rest = p:read("a")
        p:close()
        -- a reset could make the client's stack drop the close frame
        assert.are.equal("close 1001\nend eof\n", rest)
    end)

    it("does not wait for a peer that never answers", function()
        local srv = server.start("spec/fixtures/apps/ws_echo.lua",
                                 { wait_workers = 1 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 5 do cs[i] = open_raw(srv.port, "/echo") end
        -- none of them reads or answers: the stop still ends at once, not
        -- after the close handshake's timeout
        assert.are.equal(0, srv:stop("TERM"))
        assert.are.equal(0, srv:count_log("no close frame from the peer"))
        for _, c in ipairs(cs) do
            local op, data = read_frame(c)
            assert.are.equal(0x8, op)
            assert.are.equal(1001, data:byte(1) * 256 + data:byte(2))
        end
    end)
end)
