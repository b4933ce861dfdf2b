-- Timers beyond spec/integration/timers_spec.lua: deadline order, exactly
-- one call of after(), every() armed in onWorkerStart, an error in a timer
-- logged as [error] with a traceback while the worker keeps serving (also
-- for a repeating timer), double cancel, nested and zero-delay timers.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/timers_more.lua"

describe("timers (more)", function()
    local srv, c
    before_each(function()
        srv = server.start(APP, { wait_workers = 1 })
        c = client.must_connect(srv.port)
    end)
    after_each(function()
        c:close()
        server.cleanup()
    end)

    it("fires after() timers in deadline order", function()
        assert(c:send("order\n"))
        assert.are.equal("A", c:line(10))
        assert.are.equal("B", c:line(10))
        assert.are.equal("C", c:line(10))
        assert.are.equal("", c:drain(0.2))
    end)

    it("calls an after() callback exactly once", function()
        assert.are.equal("armed", c:request("once", 5))
        assert.is_truthy(client.wait_until(function()
            return c:request("count", 5) == "1"
        end, 10, 0.05))
        client.sleep(0.3)
        assert.are.equal("1", c:request("count", 5))
    end)

    it("runs an every() armed in onWorkerStart", function()
        local first
        assert.is_truthy(client.wait_until(function()
            first = tonumber(c:request("startticks", 5))
            return first and first > 0
        end, 10, 0.05))
        assert.is_truthy(client.wait_until(function()
            return tonumber(c:request("startticks", 5)) > first + 2
        end, 10, 0.05))
    end)

    it("logs an error in a timer with a traceback; the worker serves on",
    function()
        srv:expect_error("timer_more boom")
        local pid = assert(c:request("pid", 5))
        assert.are.equal("armed", c:request("raise", 5))
        local line = server.line_of(server.abspath(APP), "MARK:raise")
        local lines = srv:wait_log("timers_more.lua:" .. line ..
            ": timer_more boom", 10)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("[error]", 1, true), lines[1])
        assert.is_truthy(srv:wait_log("stack traceback", 5),
            "no traceback\n" .. server.tail(srv:log()))
        -- same worker, same connection, and new connections
        assert.are.equal(pid, c:request("pid", 5))
        local d = client.must_connect(srv.port)
        finally(function() d:close() end)
        assert.are.equal(pid, d:request("pid", 5))
        -- timers still work
        assert(c:send("zero\n"))
        assert.are.equal("zero", c:line(5))
    end)

    it("an error in one every() call is logged; the worker serves on",
    function()
        srv:expect_error("every boom 2")
        local pid = assert(c:request("pid", 5))
        assert(c:send("raiseevery\n"))
        assert.are.equal("tick 1", c:line(5))
        assert.is_truthy(srv:wait_log("every boom 2", 10))
        -- whether the failing every() goes on is up to the implementation;
        -- the worker must, and must not log the error more than once per call
        local l = c:line(1)
        if l then
            assert.are.equal("tick 3", l)
            assert.are.equal("tick 4", c:line(10))
            assert.are.equal("cancelled", c:line(10))
        end
        assert.are.equal(1, srv:count_log("every boom 2"))
        local d = client.must_connect(srv.port)
        finally(function() d:close() end)
        assert.are.equal(pid, d:request("pid", 5))
    end)

    it("cancel twice, or after firing, is harmless", function()
        local pid = assert(c:request("pid", 5))
        assert(c:send("cancel2\n"))
        assert.are.equal("ok", c:line(5))
        assert.are.equal("", c:drain(0.2))
        assert.are.equal(pid, c:request("pid", 5))
    end)

    it("arms timers from timer callbacks and with zero delay", function()
        assert(c:send("nested\n"))
        assert.are.equal("inner", c:line(5))
        assert(c:send("zero\n"))
        assert.are.equal("zero", c:line(5))
    end)
end)
