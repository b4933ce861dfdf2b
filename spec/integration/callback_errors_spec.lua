-- An error in each callback has a defined outcome (README "Guards"): it is
-- logged with a traceback, the connection it concerns (if any) is closed,
-- and the worker keeps serving. onMessage errors are in lua_error_spec,
-- HTTP's 500 in http_raw_spec, timer errors also in timers_more_spec.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/callback_errors.lua"

local function start(fail, env)
    env = env or {}
    env.LUASERV_TEST_FAIL = fail
    return server.start(APP, { env = env, wait_workers = env.LUASERV_TEST_PORT2
        and 2 or 1 })
end

local function pid_of(port)
    local c = client.connect(port, 5)
    if not c then return nil end
    local r = c:request("pid", 5)
    c:close()
    return r and tonumber(r)
end

-- The [error] line of callback `what`, with its traceback naming the script.
local function error_line(srv, what, text)
    local lines = srv:wait_log(what .. ": ", 10)
    assert.is_truthy(lines, "no error logged for " .. what .. "\n" ..
        server.tail(srv:log()))
    local line
    for _, l in ipairs(lines) do
        if l:find(text, 1, true) then line = l end
    end
    assert.is_truthy(line, "no line with " .. text .. "\n" ..
        server.tail(srv:log()))
    assert.is_truthy(line:find("[error]", 1, true), line)
    assert.is_truthy(line:find("callback_errors.lua:%d+: " .. text), line)
    return line
end

describe("an error in", function()
    after_each(function() server.cleanup() end)

    it("onConnect closes that connection (onClose fires once)", function()
        local srv = start("onConnect")
        srv:expect_error("boom in onConnect")
        local pid = srv:workers()[1]
        for i = 1, 2 do
            local a = client.must_connect(srv.port)
            assert.is_true(a:wait_closed(10), "connection " .. i .. " open")
            a:close()
        end
        local line = error_line(srv, "onConnect", "boom in onConnect")
        assert.is_truthy(line:find("conn %d+: onConnect:"), line)
        -- every connection (the start-up probe's too) got one onClose
        local ids = {}
        for _, l in ipairs(srv:log_lines("onConnect conn=")) do
            ids[#ids + 1] = l:match("onConnect conn=(%d+)")
        end
        assert.is_true(#ids >= 2)
        for _, id in ipairs(ids) do
            assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))
        end
        client.sleep(0.1)
        for _, id in ipairs(ids) do
            assert.are.equal(1, srv:count_log("onClose conn=" .. id .. "$"))
        end
        assert.are.same({ pid }, srv:workers())
        assert.are.equal(0, srv:stop())
    end)

    it("onClose is logged; nothing else changes", function()
        local srv = start("onClose")
        srv:expect_error("boom in onClose")
        local a = client.must_connect(srv.port)
        local pid = assert(tonumber(a:request("pid", 10)))
        local id = a:request("id", 10)
        a:close()
        assert.is_truthy(srv:wait_log("conn " .. id .. ": onClose: ", 10))
        error_line(srv, "onClose", "boom in onClose")
        local b = client.must_connect(srv.port)
        finally(function() b:close() end)
        assert.are.equal("next", b:request("next", 10))
        assert.are.equal(pid, tonumber(b:request("pid", 10)))
        assert.are.equal(1, srv:count_log("onClose conn=" .. id .. "$"))
        assert.are.equal(0, srv:stop())
    end)

    it("onError closes the connection (it is closing anyway)", function()
        local srv = start("onError")
        srv:expect_error("boom in onError")
        local b = client.must_connect(srv.port)
        finally(function() b:close() end)
        local pid = b:request("pid", 10)
        local a = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local id = a:request("id", 10)
        assert(a:send(("x"):rep(100) .. "\n")) -- over maxPackageSize
        assert.is_true(a:wait_closed(10))
        error_line(srv, "onError", "boom in onError")
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))
        client.sleep(0.1)
        assert.are.equal(1, srv:count_log("onClose conn=" .. id .. "$"))
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)

    it("onBufferFull closes the connection after what was queued", function()
        local srv = start("onBufferFull")
        srv:expect_error("boom in onBufferFull")
        local b = client.must_connect(srv.port)
        finally(function() b:close() end)
        local pid = b:request("pid", 10)
        local a = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        assert(a:send("flood\n"))
        assert.is_true(a:wait_closed(20))
        local got = a:drain(0)
        -- whole messages up to the one that crossed maxSendBufferSize; the
        -- sends after it were refused ("closed")
        assert.are.equal(0, #got % (16 * 1024), #got)
        assert.is_true(#got >= 64 * 1024 and #got < 256 * 1024, #got)
        error_line(srv, "onBufferFull", "boom in onBufferFull")
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)

    it("onBufferDrain closes the connection (its output was written)",
    function()
        local srv = start("onBufferDrain")
        srv:expect_error("boom in onBufferDrain")
        local b = client.must_connect(srv.port)
        finally(function() b:close() end)
        local pid = b:request("pid", 10)
        local a = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        assert(a:send("flood\n"))
        assert.is_true(a:wait_closed(20))
        assert.are.equal(64 * 1024, #a:drain(0))
        assert.is_truthy(srv:wait_log("onBufferFull conn=", 5))
        error_line(srv, "onBufferDrain", "boom in onBufferDrain")
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)

    it("onWorkerStart: that worker exits, the master respawns it", function()
        local state = os.tmpname()
        os.remove(state)
        finally(function() os.remove(state) end)
        local srv = start("onWorkerStart", { LUASERV_TEST_STATE = state })
        srv:expect_error("boom in onWorkerStart")
        srv:expect_error("onWorkerStart failed; this worker exits")
        local pid = server.wait_until(function() return pid_of(srv.port) end,
            30)
        assert.is_truthy(pid, server.tail(srv:log()))
        error_line(srv, "onWorkerStart", "boom in onWorkerStart")
        assert.is_truthy(srv:wait_log("onWorkerStart failed; this worker " ..
            "exits", 5))
        assert.is_truthy(srv:wait_log("during start-up", 5))
        assert.are.equal(2, srv:count_log("onWorkerStart pid="))
        assert.are.same({ pid }, srv:workers())
        assert.are.equal(0, srv:stop())
    end)

    it("onWorkerStop is logged; the worker still stops cleanly", function()
        local srv = start("onWorkerStop")
        srv:expect_error("boom in onWorkerStop")
        local a = client.must_connect(srv.port)
        finally(function() a:close() end)
        assert(a:request("pid", 10))
        assert(server.kill(srv.pid, "TERM"))
        assert.are.equal(0, srv:wait_exit(20))
        error_line(srv, "onWorkerStop", "boom in onWorkerStop")
        assert.is_true(a:wait_closed(10))
        assert.are.equal(0, srv:stop())
    end)

    it("onWorkerReload is logged; the old worker still drains", function()
        local srv = start("onWorkerReload")
        srv:expect_error("boom in onWorkerReload")
        local old = assert(pid_of(srv.port))
        assert(server.kill(srv.pid, "HUP"))
        assert.is_truthy(srv:wait_log("reloaded: generation 2", 30),
            server.tail(srv:log()))
        error_line(srv, "onWorkerReload", "boom in onWorkerReload")
        assert.is_truthy(server.wait_until(function()
            return not server.alive(old)
        end, 30))
        local new = pid_of(srv.port)
        assert.is_truthy(new and new ~= old)
        assert.are.equal(0, srv:stop())
    end)

    it("an after() timer is logged; no connection is touched", function()
        local srv = start("after")
        srv:expect_error("boom in after")
        local b = client.must_connect(srv.port)
        finally(function() b:close() end)
        local pid = b:request("pid", 10)
        error_line(srv, "timer (after)", "boom in after")
        assert.are.equal("x", b:request("x", 10))
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)

    it("an every() timer is logged and the timer keeps running", function()
        local srv = start("every")
        srv:expect_error("boom in every")
        assert.is_truthy(srv:wait_log("every tick 3", 10))
        error_line(srv, "timer (every)", "boom in every 1")
        error_line(srv, "timer (every)", "boom in every 2")
        assert.are.equal(2, srv:count_log("%[error%].*boom in every"))
        assert.is_truthy(pid_of(srv.port))
        assert.are.equal(0, srv:stop())
    end)

    it("protocol input, decode and encode closes that connection", function()
        local port2 = server.free_port()
        local srv = start("", { LUASERV_TEST_PORT2 = tostring(port2) })
        srv:expect_error("boom in input")
        srv:expect_error("boom in decode")
        srv:expect_error("boom in encode")
        local b = client.must_connect(port2)
        finally(function() b:close() end)
        local pid = b:request("pid", 10)
        for _, case in ipairs({ { "!input", "protocol input" },
                                { "!decode", "protocol decode" },
                                { "!encode", "onMessage" } }) do
            local a = client.must_connect(port2)
            assert(a:send(case[1] .. "\n"))
            assert.is_true(a:wait_closed(10), case[1])
            a:close()
            -- encode runs inside conn:send: the error is raised there, in
            -- the callback that sent
            error_line(srv, case[2], "boom in " .. case[1]:sub(2))
        end
        assert.are.equal("still", b:request("still", 10))
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(3, srv:count_log("cbp onClose conn="))
        assert.are.equal(0, srv:stop())
    end)
end)
