-- The spec helpers themselves: log scanning and the buffered client.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

describe("server.scan_log", function()
    it("accepts a clean log", function()
        assert.is_nil(server.scan_log(
            "2026-11-23 09:12:01.123 [info] 1 master: started\n", {}))
    end)

    it("reports [error] lines that were not expected", function()
        local log = "2026-11-23 09:12:01.123 [error] 2 worker 0 [e]: boom\n"
        assert.is_truthy(server.scan_log(log, {}):find("unexpected: ", 1, true))
        assert.is_nil(server.scan_log(log, { "boom" }))
    end)

    it("always reports sanitizer output and crashed processes", function()
        local log = "==1==ERROR: AddressSanitizer: heap-use-after-free\n"
        assert.is_truthy(server.scan_log(log, { "." }):find("sanitizer", 1, true))
        assert.is_truthy(server.scan_log("[warn] 1 master: worker 0 [x] was " ..
            "killed by signal 11 (Segmentation fault)\n", { "." }))
        assert.is_truthy(server.scan_log("x.c:3:5: runtime error: overflow\n",
            { "." }))
    end)
end)

describe("server process helpers", function()
    it("finds a free port and sees it bound", function()
        local port = server.free_port()
        assert.is_true(server.port_free(port))
        local s = assert(socket.bind("127.0.0.1", port))
        finally(function() s:close() end)
        assert.is_false(server.port_free(port))
    end)

    it("reads our own process state", function()
        local pid = tonumber(server.readfile("/proc/self/stat"):match("^%d+"))
        assert.is_true(server.alive(pid))
        assert.is_truthy(server.cpu_ticks(pid))
        assert.is_false(server.alive(2 ^ 22 + 1))
    end)

    it("line_of finds a line number", function()
        assert.are.equal(1, server.line_of("spec/unit/helpers_spec.lua",
            "-- The spec helpers"))
    end)
end)

describe("client", function()
    local listener, port
    before_each(function()
        listener = assert(socket.bind("127.0.0.1", 0))
        local _
        _, port = listener:getsockname()
    end)
    after_each(function() listener:close() end)

    local function pair()
        local c = client.must_connect(tonumber(port))
        listener:settimeout(5)
        local s = assert(listener:accept())
        return c, s
    end

    it("reads raw lines, keeping \\r", function()
        local c, s = pair()
        finally(function() c:close(); s:close() end)
        s:send("one\r\ntwo\nthr")
        assert.are.equal("one\r", c:line(2))
        assert.are.equal("two", c:line(2))
        local line, err = c:line(0.1)
        assert.is_nil(line)
        assert.are.equal("timeout", err)
        s:send("ee\n")
        assert.are.equal("three", c:line(2))
    end)

    it("reads exact byte counts and sees the close", function()
        local c, s = pair()
        finally(function() c:close() end)
        s:send("abcdef")
        assert.are.equal("abc", c:bytes(3, 2))
        s:close()
        assert.is_true(c:wait_closed(2))
        assert.are.equal("def", c.buf)
        local b, err = c:bytes(10, 1)
        assert.is_nil(b)
        assert.are.equal("closed", err)
    end)

    it("frames and unframes frame:// messages", function()
        assert.are.equal("\0\0\0\7abc", client.frame("abc"))
        local c, s = pair()
        finally(function() c:close(); s:close() end)
        s:send(client.frame("hello") .. client.frame(""))
        assert.are.equal("hello", c:read_frame(2))
        assert.are.equal("", c:read_frame(2))
    end)

    it("wait_until polls until true or timeout", function()
        local n = 0
        assert.are.equal(3, client.wait_until(function()
            n = n + 1
            return n >= 3 and n
        end, 5, 0))
        assert.is_nil(client.wait_until(function() return false end, 0.05))
    end)
end)
