-- systemd's side of Type=notify, played with a unix datagram socket in
-- NOTIFY_SOCKET: READY=1 only once every worker serves, RELOADING=1 with
-- MONOTONIC_USEC then READY=1 around a reload (also a failed one, whose
-- STATUS= says so), STOPPING=1 on stop.
local server = require "helpers.server"
local life = require "integration.lifecycle"
local unix = require "socket.unix"

local APP = "reload_app.lua"
local MOD = "reload_mod.lua"

-- CLOCK_MONOTONIC in microseconds, as the master reads it.
local function monotonic_usec()
    local p = assert(io.popen("python3 -c 'import time; " ..
                              "print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)'"))
    local s = p:read("a")
    p:close()
    return assert(tonumber(s:match("%d+")), s)
end

-- A notify socket: :next(timeout) returns the next datagram parsed into
-- { raw = text, READY = "1", STATUS = ..., ... } or nil on timeout.
local function listener(path)
    local u = assert(unix.dgram())
    assert(u:bind(path))
    return {
        sock = u,
        next = function(_, timeout)
            u:settimeout(timeout)
            local d = u:receive()
            if not d then return nil end
            local m = { raw = d }
            for line in d:gmatch("[^\n]+") do
                local k, v = line:match("^([A-Z_]+)=(.*)$")
                assert(k, "not KEY=VALUE: " .. line .. " in " .. d)
                m[k] = v
            end
            return m
        end,
        close = function() u:close(); os.remove(path) end,
    }
end

describe("systemd notify", function()
    local notify
    after_each(function()
        server.cleanup()
        if notify then notify.close(); notify = nil end
        life.cleanup()
    end)

    local function setup()
        local dir = life.tmpdir()
        life.copy_fixtures(dir, APP, MOD)
        notify = listener(dir .. "/notify.sock")
        local srv = life.start(dir, APP, {
            env = { NOTIFY_SOCKET = dir .. "/notify.sock" }, wait = false,
            reload = false })
        return srv, dir .. "/" .. APP
    end

    it("READY=1 once serving, RELOADING=1 with MONOTONIC_USEC and READY=1 " ..
       "around a reload, STOPPING=1", function()
        local srv = setup()
        local m = notify:next(30)
        assert.is_truthy(m, "no READY=1 within 30 s\n" .. srv:log())
        assert.are.equal("1", m.READY, m.raw)
        assert.is_truthy(m.STATUS and m.STATUS:find("serving", 1, true), m.raw)
        -- ready means serving: both workers are up and the port answers
        assert.are.equal(2, #srv:workers())
        assert.are.equal("v1 m1", life.text_request(srv.port, "q", 10))

        local before = monotonic_usec()
        local r = life.cmd(srv, "reload")
        local after = monotonic_usec()
        assert.are.equal(0, r.code, life.describe_run(r))
        m = notify:next(10)
        assert.is_truthy(m, "no RELOADING=1")
        assert.are.equal("1", m.RELOADING, m.raw)
        local usec = tonumber(m.MONOTONIC_USEC)
        assert.is_truthy(usec, "no MONOTONIC_USEC: " .. m.raw)
        assert.is_true(usec >= before and usec <= after,
            ("MONOTONIC_USEC %d not within the reload [%d, %d]"):format(
                usec, before, after))
        m = notify:next(10)
        assert.is_truthy(m, "no READY=1 after the reload")
        assert.are.equal("1", m.READY, m.raw)
        assert.is_truthy(m.STATUS:find("generation 2", 1, true), m.raw)

        srv:stop()
        m = notify:next(10)
        assert.is_truthy(m, "no STOPPING=1")
        assert.are.equal("1", m.STOPPING, m.raw)
        assert.is_nil(notify:next(0.5), "nothing after STOPPING=1")
    end)

    it("a failed reload is RELOADING=1 then READY=1 with a STATUS " ..
       "saying the old generation keeps serving", function()
        local srv, app = setup()
        srv:expect_error("reload failed")
        srv:expect_error("unexpected symbol")
        assert.are.equal("1", assert(notify:next(30), srv:log()).READY)
        life.writefile(app, "local x = = 1\n")
        local r = life.cmd(srv, "reload")
        assert.are.equal(1, r.code, life.describe_run(r))
        local m = assert(notify:next(10), "no RELOADING=1")
        assert.are.equal("1", m.RELOADING, m.raw)
        m = assert(notify:next(10), "no READY=1 after the failed reload")
        assert.are.equal("1", m.READY, m.raw)
        assert.is_truthy(m.STATUS:find("reload failed, generation 1 keeps " ..
                                       "serving", 1, true), m.raw)
        assert.are.equal("v1 m1", life.text_request(srv.port, "q", 10))
        srv:stop()
        assert.are.equal("1", assert(notify:next(10)).STOPPING)
    end)

    it("a NOTIFY_SOCKET nobody listens on costs a warning, not the server",
    function()
        local dir = life.tmpdir()
        life.copy_fixtures(dir, APP, MOD)
        local srv = life.start(dir, APP, {
            env = { NOTIFY_SOCKET = dir .. "/nobody.sock" }, reload = false,
            wait_workers = 2 })
        assert.is_truthy(srv:wait_log("sd_notify(READY=1) failed", 10),
                         srv:log())
        assert.are.equal("v1 m1", life.text_request(srv.port, "q", 10))
        assert.are.equal(0, srv:stop())
    end)
end)
