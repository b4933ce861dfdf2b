-- idleTimeout closes connections without traffic (onClose still fires) and
-- keeps active ones; maxConnections stops accepting at the limit and
-- resumes once a connection closes.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/idle.lua"

describe("idleTimeout and maxConnections", function()
    local srv, port2
    before_each(function()
        srv, port2 = server.start_two(APP)
    end)
    after_each(function() server.cleanup() end)

    it("closes an idle connection and fires onClose", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local id = assert(c:request("id", 5))
        assert.is_true(c:wait_closed(30), "idle connection not closed")
        assert.are.equal("", c.buf)
        assert.is_truthy(srv:wait_log("onClose idle conn=" .. id, 10),
            server.tail(srv:log()))
        assert.are.equal(1, srv:count_log("onClose idle conn=" .. id .. "$"))
    end)

    it("keeps a connection with traffic every 0.1 s", function()
        local idle = client.must_connect(srv.port)
        local c = client.must_connect(srv.port)
        finally(function() idle:close(); c:close() end)
        local idle_id = assert(idle:request("id", 5))
        local id = assert(c:request("id", 5))
        local deadline = client.gettime() + 2
        local n = 0
        while client.gettime() < deadline do
            n = n + 1
            assert.are.equal("ping " .. n, c:request("ping " .. n, 5))
            client.sleep(0.1)
        end
        -- the idle one went meanwhile (or goes soon), the active one stayed
        assert.is_true(idle:wait_closed(30))
        assert.is_truthy(srv:wait_log("onClose idle conn=" .. idle_id, 10))
        assert.are.equal(id, c:request("id", 5))
        assert.are.equal(0, srv:count_log("onClose idle conn=" .. id .. "$"))
    end)

    it("serves at most maxConnections and recovers below it", function()
        local a = client.must_connect(port2)
        local b = client.must_connect(port2)
        local c
        finally(function() a:close(); b:close(); if c then c:close() end end)
        local aid = assert(a:request("id", 5))
        assert.is_truthy(b:request("id", 5))
        assert.is_truthy(srv:wait_log("maxConnections (2) reached", 10),
            server.tail(srv:log()))

        -- the kernel completes the handshake, but the worker does not accept
        c = client.must_connect(port2)
        assert(c:send("id\n"))
        assert.are.equal("", c:drain(0.5))
        -- the first two are still served
        assert.are.equal("still a", a:request("still a", 5))

        a:close()
        assert.is_truthy(srv:wait_log("onClose capped conn=" .. aid, 10))
        local cid = c:line(30)
        assert.is_truthy(cid and tonumber(cid), tostring(cid))
        assert.is_truthy(srv:wait_log("below maxConnections (2) again", 10))
        assert.are.equal("c here", c:request("c here", 5))
        assert.are.equal("b here", b:request("b here", 5))

        -- at the limit again (b, c): a fourth waits until b goes
        local d = client.must_connect(port2)
        finally(function() d:close() end)
        assert(d:send("id\n"))
        assert.are.equal("", d:drain(0.5))
        b:close()
        assert.is_truthy(d:line(30))
    end)
end)

-- The idle close done the protocol's way: a WebSocket gets close 1001 and
-- the close handshake; an HTTP connection with a request pending (input
-- possibly unread) gets the lingering close, not a reset.
describe("idleTimeout on websocket:// and http://", function()
    local srv, port2
    before_each(function()
        port2 = server.free_port()
        srv = server.start("spec/fixtures/apps/ws_idle.lua", {
            wait_workers = 2,
            env = { LUASERV_TEST_PORT2 = tostring(port2) },
        })
        assert.is_truthy(server.wait_until(function()
            local c = client.connect(port2, 1)
            if c then c:close() return true end
        end, server.START_TIMEOUT, 0.05))
    end)
    after_each(function() server.cleanup() end)

    -- a masked client frame (mask 0), and one unmasked server frame
    local function frame(opcode, payload)
        return string.char(0x80 | opcode, 0x80 | #payload) .. "\0\0\0\0" ..
               payload
    end
    local function read_frame(c, timeout)
        local h = assert(c:bytes(2, timeout))
        local len = h:byte(2) & 0x7f
        assert(len < 126)
        return h:byte(1) & 0x0f, len > 0 and assert(c:bytes(len, 5)) or ""
    end

    it("sends an idle WebSocket close 1001, then ends it once answered",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n" ..
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
            "Sec-WebSocket-Version: 13\r\n\r\n"))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
        repeat local l = assert(c:line(5)) until l == "\r"
        assert(c:send(frame(0x1, "hi")))
        local op, data = read_frame(c, 5)
        assert.are.equal(0x1, op)
        assert.are.equal("hi", data)
        -- then silence: the server closes, the WebSocket way
        op, data = read_frame(c, 30)
        assert.are.equal(0x8, op)
        assert.are.equal(1001, data:byte(1) * 256 + data:byte(2))
        assert.are.equal("idle timeout", data:sub(3))
        -- not cut before our answer: the TCP close follows it
        assert.are.equal("", c:drain(0.3))
        assert.is_false(c.eof)
        assert(c:send(frame(0x8, "\3\233")))
        assert(c:wait_closed(10))
        assert.are.equal("closed", c.err)
        assert.are.equal("", c.buf)
        assert.is_truthy(srv:wait_log("onClose ws conn=", 10))
    end)

    it("ends an idle WebSocket that does not answer the close frame",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n" ..
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
            "Sec-WebSocket-Version: 13\r\n\r\n"))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
        repeat local l = assert(c:line(5)) until l == "\r"
        local op, data = read_frame(c, 30)
        assert.are.equal(0x8, op)
        assert.are.equal(1001, data:byte(1) * 256 + data:byte(2))
        assert(c:wait_closed(30))
        assert.is_truthy(srv:wait_log("no close frame from the peer", 10))
    end)

    it("closes an idle HTTP request in flight without a reset; a late " ..
       "conn:send reports closed", function()
        local c = client.must_connect(port2)
        finally(function() c:close() end)
        assert(c:send("GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert(srv:wait_log("hold conn=", 10))
        local id = assert(srv:log():match(".*hold conn=(%d+)"))
        -- pipelined behind it: held, reading paused ...
        assert(c:send("GET /a HTTP/1.1\r\nHost: t\r\n\r\n"))
        client.sleep(0.2)
        -- ... so this one stays unread in the kernel
        assert(c:send("GET /b HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert(c:wait_closed(30))
        assert.are.equal("", c.buf)
        -- a FIN (the lingering close) leaves our side writable, and the
        -- server reads on while we send; after a reset the socket is gone
        -- and send fails at once. Sending keeps the linger going until the
        -- app's late answer (2.5 s after the request) has been tried.
        assert.is_truthy(server.wait_until(function()
            assert.is_truthy(c.sock:send("x"), "the idle close was a reset")
            return srv:count_log("late send conn=" .. id .. ":") > 0
        end, 10, 0.1))
        assert.are.equal(0, srv:count_log("onClose http conn=" .. id .. "$"))
        assert.are.equal(1, srv:count_log("late send conn=" .. id ..
                                          ": false closed"))
        assert.is_truthy(srv:wait_log("onClose http conn=" .. id, 10))
        srv:assert_no_resets("idle close with a request in flight",
                             { "TcpOutRsts", "TcpExtTCPAbortOnClose" })
    end)
end)
