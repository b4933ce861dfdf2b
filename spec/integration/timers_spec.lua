-- luaserv.after / luaserv.every (optional in the first release: the spec is
-- pending when the app reports they are missing).
local server = require "helpers.server"
local client = require "helpers.client"

describe("timers", function()
    local srv, c
    before_each(function()
        srv = server.start("spec/fixtures/apps/timers.lua", { wait_workers = 1 })
        c = client.must_connect(srv.port)
    end)
    after_each(function()
        c:close()
        server.cleanup()
    end)

    local function has_timers()
        assert(c:send("pid\n"))
        local reply = c:line(5)
        if reply == "notimers" then
            pending("luaserv.after/every not implemented")
            return false
        end
        return true
    end

    it("after() fires once", function()
        if not has_timers() then return end
        assert(c:send("after\n"))
        assert.are.equal("fired", c:line(5))
        assert.are.equal("", c:drain(0.3))
    end)

    it("every() repeats until cancelled", function()
        if not has_timers() then return end
        assert(c:send("every\n"))
        for i = 1, 3 do assert.are.equal("tick " .. i, c:line(5)) end
        assert.are.equal("stopped", c:line(5))
        assert.are.equal("", c:drain(0.2))
    end)

    it("a cancelled timer never fires", function()
        if not has_timers() then return end
        assert(c:send("cancel\n"))
        assert.are.equal("done", c:line(5))
        assert.are.equal("", c:drain(0.2))
    end)

    it("a timer outliving its connection gets false, 'closed'", function()
        if not has_timers() then return end
        assert(c:send("closed\n"))
        assert.is_true(c:wait_closed(5))
        local lines = srv:wait_log("late send: ", 5)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("late send: false closed", 1, true),
            lines[1])
    end)

    it("an error in a timer callback is logged and the worker survives",
    function()
        if not has_timers() then return end
        srv:expect_error("timer boom")
        local pid = c:request("pid", 5)
        assert.are.equal("armed", c:request("raise", 5))
        assert.is_truthy(srv:wait_log("timer boom", 5))
        assert.are.equal(pid, c:request("pid", 5))
    end)
end)
