-- stopDelay: a graceful stop keeps serving, accepting included, for that
-- long with luaserv.worker.stopping = "stop", so that a health check can
-- answer "draining" before the host stops accepting; a reload marks the
-- old workers "reload" and does not wait.
local socket = require "socket"
local server = require "helpers.server"

local APP = "spec/fixtures/apps/stop_delay.lua"

-- One request on a connection of its own: status, body (or nil, err).
local function get(port, path)
    local c = socket.tcp()
    c:settimeout(5)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then c:close() return nil, err end
    c:send("GET " .. path .. " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    local text = c:receive("*a")
    c:close()
    local status = tonumber((text or ""):match("^HTTP/1%.1 (%d+)"))
    if not status then return nil, "no response" end
    return status, text:match("\r\n\r\n(.*)$")
end

describe("stopDelay and luaserv.worker.stopping", function()
    after_each(function() server.cleanup() end)

    it("is false while serving", function()
        local srv = server.start(APP, { wait_workers = 1 })
        local status, body = get(srv.port, "/")
        assert.are.equal(200, status)
        assert.matches("stopping false", body)
        assert.are.equal(0, srv:stop())
    end)

    it("SIGQUIT with stopDelay: health answers draining, then it stops", function()
        local srv = server.start(APP, { workers = 2, wait_workers = 2,
            env = { LUASERV_TEST_STOP_DELAY = "1.5" }, no_resets = true })
        assert.are.equal(200, (get(srv.port, "/health")))
        server.kill(srv.pid, "QUIT")
        -- both workers accept on and say draining until the delay ends
        local drained = server.wait_until(function()
            local st, body = get(srv.port, "/health")
            return st == 503 and body == "draining\n"
        end, 5)
        assert.is_true(drained, srv:log())
        assert.truthy(srv:wait_log("stopping gracefully in 1.5 s (stopDelay)",
                                   5, 2))
        assert.are.equal(0, srv:wait_exit(15))
        assert.truthy(srv:wait_log("onWorkerStop: stopping=stop", 1, 2))
        assert.are.equal(0, srv:stop())
    end)

    it("SIGQUIT without stopDelay stops accepting at once", function()
        local srv = server.start(APP, { wait_workers = 1 })
        server.kill(srv.pid, "QUIT")
        assert.are.equal(0, srv:wait_exit(10))
        assert.are.equal(0, #srv:log_lines("(stopDelay)"))
        assert.truthy(srv:wait_log("onWorkerStop: stopping=stop", 1))
        assert.are.equal(0, srv:stop())
    end)

    it("a reload marks the old workers 'reload' and does not delay", function()
        local srv = server.start(APP, { wait_workers = 1, reload = false,
            env = { LUASERV_TEST_STOP_DELAY = "30" } })
        srv:reload()
        assert.truthy(srv:wait_log("onWorkerStop: stopping=reload", 10))
        local status, body = get(srv.port, "/health")
        assert.are.equal(200, status)
        assert.matches("gen 2 stopping false", body)
        assert.are.equal(0, #srv:log_lines("(stopDelay)"))
        assert.are.equal(0, srv:stop())
    end)

    it("SIGTERM during the delay stops at once", function()
        local srv = server.start(APP, { wait_workers = 1,
            env = { LUASERV_TEST_STOP_DELAY = "60" } })
        server.kill(srv.pid, "QUIT")
        assert.truthy(srv:wait_log("(stopDelay)", 5))
        server.kill(srv.pid, "TERM")
        assert.are.equal(0, srv:wait_exit(10))
        assert.are.equal(0, srv:stop())
    end)

    it("rejects a bad stopDelay", function()
        local r = server.run({ APP, "check" },
            { env = { LUASERV_TEST_STOP_DELAY = "-1" } })
        assert.are.equal(1, r.code)
        assert.matches("bad setting 'stopDelay' %(seconds from 0 to 3600",
                       r.stdout .. r.stderr)
    end)
end)
