-- headerTimeout, bodyTimeout (http://) and sendTimeout (every protocol):
-- what fires, what the client sees, and what keeps working.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/slow_clients.lua"

-- Wait until the server has closed c; returns the seconds it took (from
-- t0) or nil. What arrived is left in c.buf.
local function closed_after(c, t0, timeout)
    if not c:wait_closed(timeout or 15) then return nil end
    return client.gettime() - t0
end

describe("client timeouts", function()
    local srv, port2
    before_each(function()
        srv, port2 = server.start_two(APP)
    end)
    after_each(function() server.cleanup() end)

    local function connect(port)
        local c = client.must_connect(port or srv.port)
        finally(function() c:close() end)
        return c
    end

    it("answers a head not complete within headerTimeout with 408", function()
        local c = connect()
        local t0 = client.gettime()
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "))
        local took = closed_after(c, t0)
        assert.is_truthy(took, "not closed")
        assert.truthy(c.buf:find("^HTTP/1%.1 408 Request Timeout\r\n"), c.buf)
        assert.truthy(c.buf:find("Connection: close\r\n", 1, true), c.buf)
        -- not before the timeout (2 s; the timer never fires early)
        assert.is_true(took > 1.8, tostring(took))
        assert.is_truthy(srv:wait_log("onError web 5 408 Request Timeout: " ..
            "request head not complete within headerTimeout (2 s)", 5),
            server.tail(srv:log()))
    end)

    it("does not restart headerTimeout for a head that trickles in",
       function()
        local c = connect()
        local t0 = client.gettime()
        assert(c:send("GET / HTTP/1.1\r\n"))
        -- a header byte every 0.25 s would go on for 10 s
        local closed = false
        for i = 1, 40 do
            local ok = c:send(i % 2 == 0 and "a" or "X")
            if not ok or not c:fill(0.25) then closed = true break end
            if c.buf:find("408", 1, true) then closed = true break end
        end
        assert.is_true(closed, "still open after 10 s of trickling")
        local took = closed_after(c, t0)
        assert.is_truthy(took)
        assert.is_true(took < 12, tostring(took))
        assert.truthy(c.buf:find("^HTTP/1%.1 408 "), c.buf)
    end)

    it("closes a silent connection and an idle keep-alive one without a " ..
       "reply", function()
        local silent = connect()
        local ka = connect()
        local t0 = client.gettime()
        assert(ka:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        local head = assert(ka:line(5))
        assert.truthy(head:find("^HTTP/1%.1 200 "), head)
        ka:drain(0.1)
        local t1 = client.gettime()
        assert.is_truthy(closed_after(silent, t0), "silent conn not closed")
        assert.are.equal("", silent.buf)
        local took = closed_after(ka, t1)
        assert.is_truthy(took, "keep-alive conn not closed")
        assert.are.equal("", ka.buf)
        assert.is_true(took > 1.5, tostring(took))
        -- no onError for these: nothing was asked
        assert.are.equal(0, srv:count_log("onError web"))
    end)

    it("keeps a keep-alive connection that asks within headerTimeout",
       function()
        local c = connect()
        for i = 1, 6 do
            assert(c:send("GET /?n=" .. i .. " HTTP/1.1\r\nHost: t\r\n\r\n"))
            local head = assert(c:line(5))
            assert.truthy(head:find("^HTTP/1%.1 200 "), head)
            c:drain(0.05)
            c.buf = ""
            client.sleep(0.5) -- 3 s in all, more than headerTimeout
        end
        assert.is_false(c.eof)
    end)

    -- The head timer is not moved for each request: it checks, when it
    -- fires, when the last response ended. These two fail if it does not.
    it("gives an idle keep-alive connection the whole headerTimeout after " ..
       "its last response, not after the first", function()
        local c = connect()
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert.truthy(assert(c:line(5)):find("^HTTP/1%.1 200 "))
        c:drain(0.05)
        client.sleep(1.5)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert.truthy(assert(c:line(5)):find("^HTTP/1%.1 200 "))
        c:drain(0.05)
        local t1 = client.gettime()
        local took = closed_after(c, t1)
        assert.is_truthy(took, "idle keep-alive conn not closed")
        -- headerTimeout is 2 s from the second response (the first
        -- arming would have closed it about 0.5 s after it)
        assert.is_true(took > 1.8, tostring(took))
        assert.is_true(took < 8, tostring(took))
    end)

    it("does not time out a request the app answers after more than " ..
       "headerTimeout, and then waits the whole headerTimeout", function()
        local c = connect()
        local t0 = client.gettime()
        assert(c:send("GET /later?s=2.6 HTTP/1.1\r\nHost: t\r\n\r\n"))
        local head = assert(c:line(10))
        assert.truthy(head:find("^HTTP/1%.1 200 "), head)
        assert.is_true(client.gettime() - t0 > 2.4)
        local rest = c:drain(0.05)
        assert.truthy(rest:find("later", 1, true), rest)
        local t1 = client.gettime()
        -- still served within headerTimeout after the late response
        client.sleep(1)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        head = assert(c:line(5))
        assert.truthy(head:find("^HTTP/1%.1 200 "), head)
        c:drain(0.05)
        assert.is_true(client.gettime() - t1 < 2)
        assert.are.equal(0, srv:count_log("onError web"))
    end)

    it("answers a body that stalls with 408 after bodyTimeout", function()
        local c = connect()
        local t0 = client.gettime()
        assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 100" ..
                      "\r\n\r\n" .. string.rep("b", 10)))
        local took = closed_after(c, t0)
        assert.is_truthy(took, "not closed")
        assert.truthy(c.buf:find("^HTTP/1%.1 408 "), c.buf)
        assert.is_true(took > 1.8, tostring(took))
        assert.is_truthy(srv:wait_log("onError web 5 408 Request Timeout: " ..
            "no request body data for bodyTimeout (2 s)", 5))
    end)

    it("lets a body arrive slowly as long as each part comes within " ..
       "bodyTimeout", function()
        local c = connect()
        assert(c:send("POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 50" ..
                      "\r\n\r\n"))
        -- 10 parts, 0.5 s apart: 5 s in all, longer than bodyTimeout (2 s)
        for _ = 1, 10 do
            client.sleep(0.5)
            assert(c:send("12345"))
        end
        local head = assert(c:line(5))
        assert.truthy(head:find("^HTTP/1%.1 200 "), head)
        local rest = c:drain(0.2)
        assert.truthy(rest:find("\r\n\r\n50$"), rest)
    end)

    it("closes an http client that stops reading after sendTimeout, and " ..
       "serves others meanwhile", function()
        local slow = connect()
        assert(slow:send("GET /big?mb=32 HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert.is_truthy(srv:wait_log("big response conn=", 5))
        -- others are served while it waits
        local other = connect()
        assert(other:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n"))
        assert.truthy(assert(other:line(5)):find(" 200 "))
        local lines = srv:wait_log("onError web 5 sendTimeout (1 s): the " ..
                                   "peer took none of", 15)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(srv:wait_log("onClose web", 5))
        -- the client finds the connection gone once it reads
        local deadline = client.gettime() + 20
        while not slow.eof and client.gettime() < deadline do
            slow.buf = ""
            slow:fill(0.05)
        end
        assert.is_true(slow.eof)
    end)

    it("closes a text:// client that stops reading after sendTimeout",
       function()
        local slow = connect(port2)
        assert(slow:send("big 32\n"))
        assert.is_truthy(srv:wait_log("big text conn=", 5))
        local other = connect(port2)
        assert.are.equal("still here", other:request("still here", 5))
        assert.is_truthy(srv:wait_log("onError text 5 sendTimeout (1 s)", 15),
                         server.tail(srv:log()))
        assert.is_truthy(srv:wait_log("onClose text", 5))
        assert.are.equal("again", other:request("again", 5))
    end)

    it("closes an outbound connection whose peer stops reading after " ..
       "sendTimeout", function()
        local socket = require "socket"
        local peer = assert(socket.bind("127.0.0.1", 0))
        local _, pport = peer:getsockname()
        local c = connect(port2)
        finally(function() peer:close() end)
        assert(c:send("connect " .. pport .. "\n"))
        peer:settimeout(10)
        local accepted = assert(peer:accept())
        finally(function() accepted:close() end)
        assert.are.equal("connected", c:line(10))
        -- accepted, never read
        assert.is_truthy(srv:wait_log("onError out 5 sendTimeout (1 s)", 15),
                         server.tail(srv:log()))
        assert.are.equal("out closed", c:line(10))
    end)
end)

describe("timeout options", function()
    it("are checked at startup", function()
        for _, opt in ipairs({ "HEADER_TIMEOUT", "BODY_TIMEOUT",
                               "SEND_TIMEOUT" }) do
            local r = server.run({ APP, "check" },
                                 { env = { [opt] = "-1" } })
            assert.are.equal(1, r.code, r.stderr)
            local name = opt:lower():gsub("_(%a)", string.upper)
            assert.truthy(r.stderr:find("bad option '" .. name .. "'", 1,
                                        true), r.stderr)
        end
        local ok = server.run({ APP, "check" },
                              { env = { HEADER_TIMEOUT = "0", BODY_TIMEOUT = "0",
                                        SEND_TIMEOUT = "0.5" } })
        assert.are.equal(0, ok.code, ok.stderr)
    end)
end)
