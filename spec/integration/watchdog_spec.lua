-- watchdogTimeout: the master kills (SIGKILL) and replaces a worker whose
-- event loop stopped turning, and leaves alone workers that are busy
-- starting or simply idle.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/guards.lua"

local function pid_of(port)
    local c = client.connect(port, 5)
    if not c then return nil end
    local r = c:request("pid", 5)
    c:close()
    return r and tonumber(r)
end

describe("watchdogTimeout", function()
    after_each(function() server.cleanup() end)

    it("replaces a stopped worker (SIGSTOP)", function()
        local srv = server.start(APP, { wait_workers = 1,
            env = { LUASERV_TEST_WATCHDOG = "2" } })
        srv:expect_error("event loop has not turned")
        local old = assert(pid_of(srv.port))
        assert.are.same({ old }, srv:workers())
        assert(server.kill(old, "STOP"))
        finally(function() server.kill(old, "CONT") end)

        local lines = srv:wait_log("its event loop has not turned", 30)
        assert.is_truthy(lines, "watchdog did not fire\n" ..
            server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("[error]", 1, true), lines[1])
        assert.is_truthy(lines[1]:find("worker 0 [guards] pid " .. old, 1,
            true), lines[1])
        assert.is_truthy(lines[1]:find("watchdogTimeout 2 s", 1, true),
            lines[1])
        local stuck = tonumber(lines[1]:match("not turned for ([%d.]+) s"))
        assert.is_truthy(stuck and stuck >= 2, lines[1])

        assert.is_truthy(server.wait_until(function()
            return not server.alive(old)
        end, 30), "old worker still alive")
        local new = server.wait_until(function()
            local p = pid_of(srv.port)
            if p and p ~= old then return p end
        end, 30)
        assert.is_truthy(new, "no replacement answers\n" ..
            server.tail(srv:log()))
        assert.are.same({ new }, srv:wait_workers(1, 30))
        assert.is_truthy(srv:wait_log("was killed by signal 9", 5))
        assert.are.equal(0, srv:stop())
    end)

    it("replaces a worker stuck in an endless loop with callbackTimeout off",
    function()
        local srv = server.start(APP, { wait_workers = 1,
            env = { LUASERV_TEST_WATCHDOG = "2", LUASERV_TEST_CBTIMEOUT = "0" } })
        srv:expect_error("event loop has not turned")
        local old = assert(pid_of(srv.port))
        local a = client.must_connect(srv.port)
        finally(function() a:close() end)
        assert(a:send("spin\n"))
        -- the killed worker's connections are cut
        assert.is_true(a:wait_closed(30), "spinning connection not closed")
        local new = server.wait_until(function()
            local p = pid_of(srv.port)
            if p and p ~= old then return p end
        end, 30)
        assert.is_truthy(new, server.tail(srv:log()))
        assert.is_false(server.alive(old))
        assert.are.equal(1, srv:count_log("event loop has not turned"))
        assert.are.equal(0, srv:stop())
    end)

    it("leaves a slow onWorkerStart and an idle worker alone", function()
        local srv = server.start(APP, { wait_workers = 1,
            env = { LUASERV_TEST_WATCHDOG = "2", LUASERV_TEST_CBTIMEOUT = "0",
                    LUASERV_TEST_START_BUSY = "3" } })
        local pid = server.wait_until(function() return pid_of(srv.port) end,
            30)
        assert.is_truthy(pid, server.tail(srv:log()))
        -- idle for a few watchdog periods
        client.sleep(5)
        assert.are.equal(pid, pid_of(srv.port))
        assert.are.same({ pid }, srv:workers())
        assert.are.equal(0, srv:count_log("event loop has not turned"))
        assert.are.equal(0, srv:stop())
    end)

    it("is off with watchdogTimeout = 0", function()
        local srv = server.start(APP, { wait_workers = 1,
            env = { LUASERV_TEST_WATCHDOG = "0" } })
        local old = assert(pid_of(srv.port))
        assert(server.kill(old, "STOP"))
        client.sleep(3)
        assert.are.same({ old }, srv:workers())
        assert(server.kill(old, "CONT"))
        assert.are.equal(old, server.wait_until(function()
            return pid_of(srv.port)
        end, 10))
        assert.are.equal(0, srv:count_log("event loop has not turned"))
        assert.are.equal(0, srv:stop())
    end)
end)
