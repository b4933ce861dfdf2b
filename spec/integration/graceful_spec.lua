-- Graceful stop (`stop -g`, SIGQUIT) lets in-flight work finish, bounded by
-- stopTimeout; a plain stop does not wait.
local server = require "helpers.server"
local client = require "helpers.client"
local life = require "integration.lifecycle"

local APP = "slow_reply.lua"

local function setup(stop_timeout, workers)
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP)
    return life.start(dir, APP, {
        workers = workers or 1, wait_workers = workers or 1, no_resets = true,
        env = { LUASERV_TEST_STOP_TIMEOUT = tostring(stop_timeout or 30) },
    })
end

-- A connection with "slow N" in flight: the pong to the ping sent behind it
-- proves the worker has read the slow request and armed its timer.
local function in_flight(srv, secs)
    local c = client.must_connect(srv.port)
    assert(c:send("slow " .. secs .. "\nping\n"))
    assert.are.equal("pong ping", c:line(20))
    return c
end

local function assert_gone(srv)
    assert.is_false(server.alive(srv.pid))
    assert.is_truthy(server.wait_until(function()
        return #srv:procs() == 0
    end, 10), "processes left: " .. table.concat(srv:procs(), ","))
end

describe("graceful stop", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("stop -g waits for an in-flight slow reply", function()
        local srv = setup(60)
        local c = in_flight(srv, 2)
        finally(function() c:close() end)
        local r = life.cmd(srv, "stop", "-g")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert_gone(srv)
        -- the reply was written before the worker went away
        assert.are.equal("done slow 2", c:line(10))
        assert.is_true(c:wait_closed(10))
        assert.are.equal(0, srv:wait_exit(10))
        assert.are.equal(0, srv:stop())
    end)

    it("SIGQUIT waits for an in-flight slow reply", function()
        local srv = setup(60, 2)
        local c = in_flight(srv, 2)
        finally(function() c:close() end)
        assert.are.equal(0, srv:stop("QUIT"))
        assert_gone(srv)
        assert.are.equal("done slow 2", c:line(10))
    end)

    it("plain stop does not wait for the slow reply", function()
        local srv = setup(60)
        local c = in_flight(srv, 30)
        finally(function() c:close() end)
        local r = life.cmd(srv, "stop")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert_gone(srv)
        -- closed without the reply
        assert.is_true(c:wait_closed(10))
        assert.are.equal("", c:drain(0.1))
        assert.are.equal(0, srv:stop())
    end)

    it("stopTimeout bounds the wait of stop -g", function()
        local srv = setup(2)
        local c = in_flight(srv, 3600)
        finally(function() c:close() end)
        -- ctl's own bound (60 s) is far beyond stopTimeout (2 s): exit 0
        -- means the master gave up waiting by itself.
        local r = life.cmd(srv, "stop", "-g")
        assert.are.equal(0, r.code, life.describe_run(r) ..
            "\n--- log ---\n" .. server.tail(srv:log()))
        assert_gone(srv)
        assert.is_true(c:wait_closed(10))
        assert.are.equal("", c:drain(0.1))
        assert.are.equal(0, srv:wait_exit(10))
        srv:stop("QUIT")
    end)

    it("a reload lets the old worker finish an in-flight reply", function()
        local srv = setup(60)
        local c = in_flight(srv, 2)
        finally(function() c:close() end)
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert.are.equal("done slow 2", c:line(20))
        -- new connections are served by the new generation meanwhile
        assert.are.equal("pong x", (life.text_request(srv.port, "x", 10)))
        assert.are.equal(0, srv:stop())
    end)
end)
