-- Slowloris and slow-read against one http:// worker: normal clients are
-- still answered quickly, and headerTimeout / sendTimeout clear the slow
-- ones out. The figures are printed for the record; the bounds asserted are
-- generous (two shared cores, other specs running at once).
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/slow_clients.lua"
local SLOWLORIS = 500

-- One plain GET on a fresh connection; returns the seconds to the whole
-- response, or nil, err.
local function timed_get(port, path)
    local t0 = socket.gettime()
    local c, err = client.connect(port, 5)
    if not c then return nil, err end
    local ok, serr = c:send("GET " .. (path or "/") ..
                            " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    if not ok then c:close() return nil, serr end
    c:wait_closed(10)
    c:close()
    if not c.buf:find("^HTTP/1%.1 200 OK\r\n.*\r\n\r\nhello$") then
        return nil, "bad response: " .. c.buf
    end
    return socket.gettime() - t0
end

-- Open n connections that each send a partial request head.
local function open_slowloris(port, n)
    local t = {}
    for i = 1, n do
        local c = client.connect(port, 5)
        assert(c, "slowloris connect " .. i .. " failed")
        assert(c:send("GET /?slow=" .. i .. " HTTP/1.1\r\nHost: t\r\n"))
        t[i] = c
    end
    return t
end

-- Poll all of them without blocking; returns how many are still open.
local function poll_open(conns)
    local open = 0
    for _, c in ipairs(conns) do
        if not c.eof then
            c.sock:settimeout(0)
            local data, err, partial = c.sock:receive(65536)
            local got = data or partial
            if got and #got > 0 then c.buf = c.buf .. got end
            if err and err ~= "timeout" then c.eof = true else open = open + 1 end
        end
    end
    return open
end

describe("slow clients against one http:// worker", function()
    local srv
    before_each(function()
        srv = server.start(APP, { wait_workers = 1 })
    end)
    after_each(function() server.cleanup() end)

    it("answers a normal client within a second while " .. SLOWLORIS ..
       " slowloris connections trickle their heads, then times them out",
       function()
        local pid = srv:workers()[1]
        assert.is_truthy(timed_get(srv.port, "/"))

        local t0 = socket.gettime()
        local slow = open_slowloris(srv.port, SLOWLORIS)
        finally(function() for _, c in ipairs(slow) do c:close() end end)
        local opened = socket.gettime() - t0

        -- While they are connected (and keep trickling), normal clients.
        local times = {}
        for round = 1, 4 do
            for _, c in ipairs(slow) do
                if not c.eof then c.sock:settimeout(0); c.sock:send("X") end
            end
            local took, err = timed_get(srv.port, "/")
            assert.is_truthy(took, err)
            times[round] = took
        end
        local still_open = poll_open(slow)
        local worst = math.max(table.unpack(times))
        print(string.format("\n  slowloris: %d opened in %.2f s; normal " ..
            "request latencies %s s (worst %.3f s) with %d of them still open",
            SLOWLORIS, opened, table.concat((function()
                local t = {}
                for i, v in ipairs(times) do t[i] = string.format("%.3f", v) end
                return t
            end)(), " "), worst, still_open))
        assert.is_true(still_open > SLOWLORIS / 2,
            "the slowloris connections were gone before the measurement")
        assert.is_true(worst < 3, "a normal request took " .. worst .. " s")

        -- headerTimeout (2 s) answers every one of them with 408 and closes.
        local left = server.wait_until(function()
            local n = poll_open(slow)
            if n == 0 then return 0 end
        end, 30, 0.1)
        local cleared = socket.gettime() - t0
        local got408 = 0
        for _, c in ipairs(slow) do
            if c.buf:find("^HTTP/1%.1 408 Request Timeout\r\n") then
                got408 = got408 + 1
            end
        end
        print(string.format("  slowloris: all closed %.2f s after the first " ..
            "connect; %d answered 408", cleared, got408))
        assert.are.equal(0, left, "slowloris connections still open")
        assert.are.equal(SLOWLORIS, got408)

        -- Logged, but rate-limited: a few lines and a summary.
        assert.is_truthy(srv:wait_log("request timeouts: suppressed", 10),
                         server.tail(srv:log()))
        local lines = srv:count_log("%[info%].*: 408 Request Timeout: request " ..
                                    "head not complete")
        assert.is_true(lines >= 1 and lines < 100, tostring(lines))
        -- the same worker, still serving
        assert.are.same({ pid }, srv:workers())
        assert.is_truthy(timed_get(srv.port, "/"))
    end)

    it("closes slow readers by sendTimeout while serving others", function()
        local readers = {}
        finally(function() for _, c in ipairs(readers) do c:close() end end)
        for i = 1, 10 do
            local c = client.must_connect(srv.port)
            assert(c:send("GET /big?mb=16 HTTP/1.1\r\nHost: t\r\n\r\n"))
            readers[i] = c
        end
        assert.is_truthy(srv:wait_log("big response conn=", 10, 10))
        local times = {}
        for round = 1, 4 do
            local took, err = timed_get(srv.port, "/")
            assert.is_truthy(took, err)
            times[round] = took
        end
        local worst = math.max(table.unpack(times))
        print(string.format("\n  slow-read: normal request latencies with 10 " ..
            "stalled 16 MiB responses: worst %.3f s", worst))
        assert.is_true(worst < 3, "a normal request took " .. worst .. " s")
        -- all ten closed by sendTimeout (1 s without progress)
        assert.is_truthy(srv:wait_log("onError web 5 sendTimeout (1 s)", 20, 10),
                         server.tail(srv:log()))
        assert.is_truthy(srv:wait_log("onClose web", 10, 10))
        assert.is_truthy(timed_get(srv.port, "/"))
    end)
end)
