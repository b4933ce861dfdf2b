-- Log hygiene, continued (see log_flood_spec.lua): bad WebSocket input
-- (protocol errors, messages over maxPackageSize, refused handshakes) and
-- Lua memory limit hits are logged at most 10 lines a second per cause,
-- the rest summed up in one "suppressed N similar messages" line.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local HEAD = "GET /x HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n" ..
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
local GOOD = HEAD .. "Sec-WebSocket-Version: 13\r\n\r\n"
local BAD_VERSION = HEAD .. "Sec-WebSocket-Version: 12\r\n\r\n"
-- an unmasked client frame: protocol error, close 1002
local UNMASKED = "\129\002hi"
-- a masked 200-byte text frame (mask 0): over maxPackageSize 64, close 1009
local OVERSIZE = "\129\254\0\200\0\0\0\0" .. string.rep("x", 200)

-- n connections that each send data, read the first response line and go,
-- 50 at a time.
local function flood(port, n, data)
    local done = 0
    while done < n do
        local batch = {}
        for i = 1, math.min(50, n - done) do
            local c = assert(client.connect(port, 5))
            c.sock:send(data)
            batch[i] = c
        end
        for _, c in ipairs(batch) do
            c:line(5)
            c:close()
        end
        done = done + #batch
    end
end

-- Lines of luaserv's own (the guards fixture logs each onClose itself).
local function count_lines(text)
    local n = 0
    for l in text:gmatch("[^\n]*\n") do
        if not l:find("onClose conn=", 1, true) then n = n + 1 end
    end
    return n
end

-- Wait until every one of n events is either logged (plain text `line`)
-- or counted in a summary of `cause`; returns shown, suppressed.
local function all_in(srv, line, cause, n)
    local shown, suppressed
    server.wait_until(function()
        shown, suppressed = #srv:log_lines(line), 0
        for _, l in ipairs(srv:log_lines(cause .. ": suppressed ")) do
            suppressed = suppressed +
                tonumber(l:match("suppressed (%d+) similar"))
        end
        return shown + suppressed == n
    end, 20)
    return shown, suppressed
end

describe("log rate limit for WebSocket input", function()
    after_each(function() server.cleanup() end)

    it("keeps the log small under 2000 bad WebSocket inputs", function()
        local srv = server.start("spec/fixtures/apps/ws_flood.lua",
                                 { wait_workers = 1 })
        -- one of each first: each cause is named, with its close code
        flood(srv.port, 1, GOOD .. UNMASKED)
        assert.is_truthy(srv:wait_log("websocket: protocol error from the " ..
                                      "client; closing with 1002", 10))
        flood(srv.port, 1, GOOD .. OVERSIZE)
        assert.is_truthy(srv:wait_log("websocket: message over maxPackageSize " ..
                                      "from the client; closing with 1009",
                                      10))
        local before = count_lines(srv:log())
        local t0 = socket.gettime()
        flood(srv.port, 1000, GOOD .. UNMASKED)
        flood(srv.port, 500, GOOD .. OVERSIZE)
        flood(srv.port, 500, BAD_VERSION)
        local took = socket.gettime() - t0

        local shown, suppressed = all_in(srv, "from the client; closing with",
                                         "websocket bad input", 1502)
        assert.are.equal(1502, shown + suppressed, server.tail(srv:log()))
        assert.is_true(suppressed > 0)
        shown, suppressed = all_in(srv, "websocket handshake refused",
                                   "websocket handshakes refused", 500)
        assert.are.equal(500, shown + suppressed, server.tail(srv:log()))
        assert.is_true(suppressed > 0)

        local added = count_lines(srv:log()) - before
        print(string.format("\n  ws log flood: 2000 bad inputs in %.1f s " ..
                            "added %d log lines", took, added))
        -- at most 10 lines + 1 summary per cause and second
        local secs = math.ceil(took) + 2
        assert.is_true(added <= secs * 11 * 2, tostring(added))
        if took < 3 then
            assert.is_true(added < 100, tostring(added))
        end

        -- and a well-behaved client is still served
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(GOOD))
        assert.are.equal("HTTP/1.1 101 Switching Protocols\r", c:line(5))
        repeat local l = assert(c:line(5)) until l == "\r"
        assert(c:send("\129\130\0\0\0\0ok"))
        assert.are.equal("\129\002ok", c:bytes(4, 5))
        assert.are.equal(0, srv:stop())
    end)
end)

describe("log rate limit for the Lua memory limit", function()
    after_each(function() server.cleanup() end)

    it("keeps the log small when clients hit luaMemoryLimit in bulk",
    function()
        local srv = server.start("spec/fixtures/apps/guards.lua",
                                 { wait_workers = 1 })
        srv:expect_error("Lua memory limit %(16 MiB%) reached")
        local before = count_lines(srv:log())
        local t0 = socket.gettime()
        -- "rep": one 64 MiB string.rep, refused; the connection is closed
        local done = 0
        while done < 300 do
            local batch = {}
            for i = 1, 50 do
                batch[i] = assert(client.connect(srv.port, 5))
                batch[i].sock:send("rep\n")
            end
            for _, c in ipairs(batch) do
                c:wait_closed(20)
                c:close()
            end
            done = done + #batch
        end
        local took = socket.gettime() - t0
        local shown, suppressed = all_in(srv, "Lua memory limit (16 MiB) " ..
                                         "reached", "Lua memory limit", 300)
        assert.are.equal(300, shown + suppressed, server.tail(srv:log()))
        assert.is_true(suppressed > 0)
        local added = count_lines(srv:log()) - before
        print(string.format("\n  memory limit flood: 300 hits in %.1f s " ..
                            "added %d log lines", took, added))
        local secs = math.ceil(took) + 2
        assert.is_true(added <= secs * 11, tostring(added))
        assert.are.equal(0, srv:stop())
    end)
end)
