-- The lingering close (RFC 9112 section 9.6): closing a socket that still
-- has unread input makes the kernel send a reset, and a client that is
-- still sending then fails on send() and may lose the reply. Error replies
-- (413, 431, 400) and the last response of a connection (Connection: close,
-- graceful stop) must reach a client that keeps sending, and the connection
-- must end with a FIN, not a reset. lua-socket reports both as "closed", so
-- the client is spec/fixtures/linger_client.py.
local server = require "helpers.server"
local socket = require "socket"

local APP = "spec/fixtures/apps/http_app.lua"
local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"
local SCRIPT = "spec/fixtures/linger_client.py"

local function tmpname()
    return (os.getenv("TMPDIR") or "/tmp") .. "/luaserv-linger-" ..
           math.random(1, 1e9)
end

-- Start the probe in the background: send `request`, then `filler` for
-- `secs` seconds, then read to the end. Returns a function that waits for
-- it and returns {sent=, send_error=, ending=, data=}.
local function probe(port, request, filler, secs)
    local req, out = tmpname(), tmpname()
    local f = assert(io.open(req, "wb"))
    f:write(request)
    f:close()
    os.execute(string.format("%s %s %d %s %s %s >%s 2>&1 &", PY,
        server.shquote(SCRIPT), port, server.shquote(req),
        server.shquote(filler), tostring(secs), server.shquote(out .. ".tmp") ..
        " && mv " .. server.shquote(out .. ".tmp") .. " " ..
        server.shquote(out)))
    return function(timeout)
        local text = server.wait_until(function()
            return server.readfile(out)
        end, timeout or 40, 0.05)
        os.remove(req)
        os.remove(out)
        assert(text, "linger_client.py did not finish")
        local head, data = text:match("^(.-)\n\n(.*)$")
        assert(head, "bad probe output: " .. text)
        return {
            sent = tonumber(head:match("sent (%d+)")),
            send_error = head:match("send%-error (%S+)"),
            ending = head:match("end (%S+)"),
            data = data,
        }
    end
end

describe("http:// lingering close", function()
    local srv
    setup(function() srv = server.start(APP) end)
    teardown(function() if srv then srv:stop() end end)

    it("delivers 413 to a client that goes on sending its body for 3 s",
       function()
        local r = probe(srv.port, "POST /size HTTP/1.1\r\nHost: t\r\n" ..
                        "Content-Length: 900000000\r\n\r\n", "x", 3)()
        print(string.format("\n  413: %.1f MB sent after the reply, send " ..
                            "error %s, end %s", r.sent / 1e6, r.send_error,
                            r.ending))
        assert.are.equal("none", r.send_error,
                         "the server closed while the client was sending")
        assert.is_true(r.sent > 1e6, tostring(r.sent))
        assert.truthy(r.data:find("^HTTP/1%.1 413 Content Too Large\r\n.*" ..
                                  "\r\n\r\n413 Content Too Large\n$"), r.data)
        assert.are.equal("eof", r.ending)
        assert.is_truthy(srv:wait_log("onError 1 413", 5))
    end)

    it("delivers 431 to a client that goes on sending its head for 3 s",
       function()
        local r = probe(srv.port, "GET / HTTP/1.1\r\nHost: t\r\nX-Huge: ",
                        "h", 3)()
        assert.are.equal("none", r.send_error)
        assert.is_true(r.sent > 1e6, tostring(r.sent))
        assert.truthy(r.data:find("^HTTP/1%.1 431 .*\r\n\r\n431 Request " ..
                                  "Header Fields Too Large\n$"), r.data)
        assert.are.equal("eof", r.ending)
    end)

    it("delivers 400 followed by garbage, and closes about a second after " ..
       "the client stops sending", function()
        local t0 = socket.gettime()
        local r = probe(srv.port, "GET / HTTP/1.1\r\nHost : t\r\n\r\n",
                        "garbage\r\n", 0.5)()
        assert.are.equal("none", r.send_error)
        assert.truthy(r.data:find("^HTTP/1%.1 400 "), r.data)
        assert.are.equal("eof", r.ending)
        assert.is_true(socket.gettime() - t0 < 8)
    end)

    it("retires a connection after Connection: close without resetting " ..
       "what was pipelined behind", function()
        -- far more than one read: most of it is still in the kernel when
        -- the response is written
        local behind = string.rep("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 5000)
        local r = probe(srv.port, "GET /close HTTP/1.1\r\nHost: t\r\n\r\n" ..
                        behind, "", 0)()
        assert.truthy(r.data:find("^HTTP/1%.1 200 OK\r\n.*\r\n\r\nbye$"), r.data)
        assert.are.equal("eof", r.ending)
    end)

    it("retires a connection on graceful stop without resetting what " ..
       "was pipelined behind the request in flight", function()
        local own = server.start(APP)
        finally(function() own:stop() end)
        local behind = string.rep("GET / HTTP/1.1\r\nHost: t\r\n\r\n", 5000)
        local wait = probe(own.port, "GET /later?ms=500&id=7 HTTP/1.1\r\n" ..
                           "Host: t\r\n\r\n" .. behind, "", 0)
        assert.is_truthy(own:wait_log("request GET /later", 10))
        server.kill(own.pid, "QUIT")
        local r = wait()
        assert.truthy(r.data:find("^HTTP/1%.1 200 OK\r\n"), r.data)
        assert.truthy(r.data:find("Connection: close\r\n", 1, true), r.data)
        assert.truthy(r.data:find("\r\n\r\nlater 7$"), r.data)
        assert.are.equal("eof", r.ending)
        assert.are.equal(0, own:wait_exit(10))
    end)
end)
