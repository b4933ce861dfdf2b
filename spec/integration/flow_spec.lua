-- Send-side flow control (issue 5): a client that stops reading while the
-- app keeps sending. onBufferFull fires once, send() returns false,
-- "buffer full" (the message is dropped), the worker's memory stays bounded
-- by maxSendBufferSize (1 MiB in the fixture), and onBufferDrain fires once
-- the client reads again. close() flushes queued data; destroy() drops it.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/flow.lua"
local LINE = 64 * 1024 + 1          -- a 64 KiB chunk plus text://'s "\n"
local MiB = 1024 * 1024

local function rss_kib(pid)
    local s = server.readfile("/proc/" .. tostring(pid) .. "/status")
    return s and tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- Read from c until n bytes arrived (or EOF / timeout); returns the count.
-- Only counts: the data is discarded as it comes in.
local function read_bytes(c, n, timeout)
    local got = #c.buf
    c.buf = ""
    local deadline = client.gettime() + timeout
    while got < n and not c.eof and client.gettime() < deadline do
        c:fill(0.05)
        got = got + #c.buf
        c.buf = ""
    end
    return got
end

describe("send-side flow control", function()
    local srv
    before_each(function()
        -- a small ASan quarantine, so that a sanitizer build's RSS shows
        -- live memory (harmless for a normal build)
        local o = os.getenv("ASAN_OPTIONS")
        srv = server.start(APP, { wait_workers = 1, env = {
            ASAN_OPTIONS = (o and o ~= "" and o .. ":" or "") ..
                "quarantine_size_mb=8",
        } })
    end)
    after_each(function() server.cleanup() end)

    it("fires onBufferFull, refuses with 'buffer full', then onBufferDrain",
    function()
        local c = client.must_connect(srv.port)
        local ctl = client.must_connect(srv.port)
        finally(function() c:close(); ctl:close() end)
        local id = assert(c:request("id", 5))

        assert(c:send("flood\n"))   -- and stop reading
        local lines = srv:wait_log("flood stopped conn=" .. id .. " ", 60)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("err=buffer full", 1, true), lines[1])
        assert.is_truthy(srv:wait_log("onBufferFull conn=" .. id, 5))

        local st = assert(ctl:request("stats " .. id, 5))
        local full, drain, ok, fail, err =
            st:match("^full=(%d+) drain=(%d+) ok=(%d+) fail=(%d+) err=(.*)$")
        assert.is_truthy(full, st)
        assert.are.equal("1", full)
        assert.are.equal("0", drain)
        assert.are.equal("1", fail)
        assert.are.equal("buffer full", err)
        -- the dropped message is in the log, for an app that does not look
        local refused = srv:wait_log("conn " .. id .. ": send refused, " ..
                                     "message dropped: ", 5)
        assert.is_truthy(refused, server.tail(srv:log()))
        assert.is_truthy(refused[1]:find("%(maxSendBufferSize %d+%)"),
                         refused[1])
        -- the buffer took about maxSendBufferSize (+ one message), no more
        -- than kernel buffers + the limit + one chunk
        ok = tonumber(ok)
        assert.is_true(ok >= 1)

        -- read again: everything accepted arrives, then onBufferDrain
        local want = ok * LINE
        local got = read_bytes(c, want, 60)
        assert.are.equal(want, got)
        assert.is_truthy(srv:wait_log("onBufferDrain conn=" .. id, 10),
            server.tail(srv:log()))
        st = assert(ctl:request("stats " .. id, 5))
        assert.is_truthy(st:find("^full=1 drain=1 "), st)
        -- nothing beyond what was accepted
        assert.are.equal("", c:drain(0.3))
        -- and the connection is usable again
        assert.are.equal(id, c:request("id", 10))
    end)

    it("keeps the worker's RSS bounded while a reader is stuck", function()
        local c = client.must_connect(srv.port)
        local ctl = client.must_connect(srv.port)
        finally(function() c:close(); ctl:close() end)
        local pid = assert(ctl:request("pid", 5))
        local id = assert(c:request("id", 5))
        local base = assert(rss_kib(pid), "no VmRSS for " .. pid)

        -- 1600 x 64 KiB = 100 MiB offered to a client that does not read
        assert(c:send("push 1600\n"))
        local peak = base
        local done = server.wait_until(function()
            local r = rss_kib(pid)
            if r and r > peak then peak = r end
            return #srv:log_lines("push done conn=" .. id .. " ") > 0
        end, 240, 0.05)
        assert.is_truthy(done, "push did not finish\n" ..
            server.tail(srv:log()))
        local r = rss_kib(pid)
        if r and r > peak then peak = r end

        -- bounded: 64 MiB, or the idle worker's RSS + 48 MiB when a
        -- sanitizer build starts out larger
        local limit = math.max(64 * 1024, base + 48 * 1024)
        assert.is_true(peak < limit, string.format(
            "worker RSS peaked at %d KiB (start %d KiB, limit %d KiB)",
            peak, base, limit))

        local line = srv:log_lines("push done conn=" .. id .. " ")[1]
        local ok, fail, err = line:match("ok=(%d+) fail=(%d+) err=(.*)$")
        ok, fail = tonumber(ok), tonumber(fail)
        assert.are.equal(1600, ok + fail)
        assert.is_true(fail > 0, line)
        assert.are.equal("buffer full", err)
        -- accepted data is far below what was offered
        assert.is_true(ok * LINE < 100 * MiB, line)
        assert.are.equal(1, srv:count_log("onBufferFull conn=" .. id .. "$"))

        -- the reader wakes up: exactly the accepted messages arrive
        local want = ok * LINE
        assert.are.equal(want, read_bytes(c, want, 60))
        assert.is_truthy(srv:wait_log("onBufferDrain conn=" .. id, 10))
        assert.are.equal("", c:drain(0.3))
        assert.are.equal(pid, ctl:request("pid", 5))
    end)

    it("close() flushes queued data before closing", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local id = assert(c:request("id", 5))
        assert(c:send("fillclose\n"))
        local lines = srv:wait_log("fillclose conn=" .. id .. " ", 10)
        assert.is_truthy(lines, server.tail(srv:log()))
        local ok = tonumber(lines[1]:match("ok=(%d+)"))
        assert.is_truthy(lines[1]:find("err=buffer full", 1, true), lines[1])
        assert.is_true(ok * LINE >= MiB, lines[1])  -- the buffer was full
        client.sleep(0.3)                           -- still not reading
        local got = read_bytes(c, ok * LINE + 1, 60)
        assert.are.equal(ok * LINE, got)
        assert.is_true(c:wait_closed(10))
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))
    end)

    it("close(data) sends data larger than a socket buffer, then closes",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("closedata 800000\n"))
        client.sleep(0.3)
        local data = c:bytes(800001, 60)
        assert.is_truthy(data)
        assert.are.equal(string.rep("z", 800000) .. "\n", data)
        assert.is_true(c:wait_closed(10))
        assert.are.equal("", c.buf)
    end)

    it("destroy() closes at once and drops queued data", function()
        local c = client.must_connect(srv.port)
        local ctl = client.must_connect(srv.port)
        finally(function() c:close(); ctl:close() end)
        local pid = assert(ctl:request("pid", 5))
        local id = assert(c:request("id", 5))
        assert(c:send("filldestroy\n"))
        local lines = srv:wait_log("filldestroy conn=" .. id .. " ", 10)
        assert.is_truthy(lines, server.tail(srv:log()))
        local ok = tonumber(lines[1]:match("ok=(%d+)"))
        assert.is_true(ok * LINE >= MiB, lines[1])
        local got = read_bytes(c, ok * LINE, 30)
        assert.is_true(c:wait_closed(10), "destroyed connection still open")
        assert.is_true(got < ok * LINE, string.format(
            "destroy() delivered all %d queued bytes", got))
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))
        assert.are.equal(pid, ctl:request("pid", 5))
    end)
end)
