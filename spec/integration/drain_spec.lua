-- onDrain(conn): a graceful stop or reload tells stream clients to go.
local server = require "helpers.server"
local client = require "helpers.client"
local life = require "integration.lifecycle"

local APP = "drain.lua"

local function setup(mode)
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP)
    local srv = life.start(dir, APP, { wait_workers = 1, no_resets = true,
                                       env = { LUASERV_TEST_DRAIN = mode } })
    return srv, dir .. "/" .. APP
end

local function clients(srv, n)
    local cs = {}
    for i = 1, n do
        cs[i] = client.must_connect(srv.port)
        assert.is_truthy(cs[i]:request("hello", 10), "client " .. i)
    end
    return cs
end

describe("onDrain", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("a graceful stop says bye to every client and ends long before " ..
       "stopTimeout (60 s)", function()
        local srv = setup("bye")
        local cs = clients(srv, 3)
        server.kill(srv.pid, "QUIT")
        for i, c in ipairs(cs) do
            assert.are.equal("bye v1", c:line(10), "client " .. i)
            assert.is_true(c:wait_closed(10), "client " .. i .. " not closed")
            c:close()
        end
        assert.are.equal(0, srv:wait_exit(20), srv:log())
        srv:stop()
    end)

    it("a reload sends clients off, and they come back to the new code",
    function()
        local srv, app = setup("bye")
        local cs = clients(srv, 2)
        life.edit(app, 'local VERSION = "v1"', 'local VERSION = "v2"')
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        for i, c in ipairs(cs) do
            assert.are.equal("bye v1", c:line(10), "client " .. i)
            assert.is_true(c:wait_closed(10))
            c:close()
        end
        local again = client.must_connect(srv.port)
        assert.is_truthy(again:request("hi", 10):find("^v2 "))
        again:close()
        assert.are.equal(0, srv:stop())
    end)

    it("onDrain may wait", function()
        local srv = setup("wait")
        local cs = clients(srv, 2)
        server.kill(srv.pid, "QUIT")
        for _, c in ipairs(cs) do
            assert.are.equal("bye after a wait", c:line(10))
            assert.is_true(c:wait_closed(10))
            c:close()
        end
        assert.are.equal(0, srv:wait_exit(20), srv:log())
        srv:stop()
    end)

    it("an error in onDrain is logged with the listener and closes that " ..
       "connection", function()
        local srv = setup("error")
        srv:expect_error("drain failed on purpose")
        local cs = clients(srv, 2)
        server.kill(srv.pid, "QUIT")
        for _, c in ipairs(cs) do
            assert.is_true(c:wait_closed(10))
            c:close()
        end
        assert.are.equal(0, srv:wait_exit(20), srv:log())
        local lines = srv:log_lines("drain failed on purpose")
        assert.is_truthy(lines[1] and lines[1]:find("[drainer]", 1, true),
                         srv:log())
        assert.is_truthy(lines[1]:find("onDrain", 1, true), lines[1])
        srv:stop()
    end)

    it("without onDrain a connection stays and is served until its client " ..
       "closes it", function()
        local srv = setup(nil)
        local c = clients(srv, 1)[1]
        server.kill(srv.pid, "QUIT")
        assert.is_truthy(srv:wait_log("stopping gracefully", 10))
        assert.is_truthy(c:request("still there?", 10):find("^v1 "))
        assert.is_true(server.alive(srv.pid))
        c:close()
        assert.are.equal(0, srv:wait_exit(20), srv:log())
        srv:stop()
    end)
end)
