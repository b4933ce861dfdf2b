-- Log line format and luaserv.log.
local server = require "helpers.server"
local client = require "helpers.client"

local LINE = "^(%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d) %[(%a+)%] (%d+) (.*)$"

describe("logging", function()
    after_each(function() server.cleanup() end)

    it("writes 'date [level] pid who: message' lines", function()
        local srv = server.start("spec/fixtures/apps/logging.lua",
            { wait_workers = 1 })
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local pid = assert(c:request("levels", 5)):match("^logged (%d+)$")
        assert.is_truthy(pid)
        assert.is_truthy(srv:wait_log("lvl warn w", 5))

        local saw = {}
        for line in srv:log():gmatch("[^\n]+") do
            local _, level, lpid, rest = line:match(LINE)
            if level then
                assert.is_truthy(({ debug = 1, info = 1, warn = 1,
                    error = 1 })[level], line)
                if rest:match("^master: ") then
                    assert.are.equal(tostring(srv.pid), lpid, line)
                    saw.master = true
                elseif rest:match("^worker 0 %[logger%]") then
                    assert.are.equal(pid, lpid, line)
                    saw.worker = true
                end
                if rest:find("lvl info 42", 1, true) then
                    assert.are.equal("info", level)
                    saw.info = true
                end
                if rest:find("lvl warn w", 1, true) then
                    assert.are.equal("warn", level)
                    saw.warn = true
                end
                if rest:find("started worker 0 pid " .. pid, 1, true) then
                    saw.start = true
                end
            end
        end
        assert.is_true(saw.master, "no master line\n" .. srv:log())
        assert.is_true(saw.worker, "no worker line\n" .. srv:log())
        assert.is_true(saw.info, "luaserv.log info missing\n" .. srv:log())
        assert.is_true(saw.warn)
        assert.is_true(saw.start, "onWorkerStart log missing\n" .. srv:log())
    end)

    it("an unexpected [error] line fails stop()", function()
        local srv = server.start("spec/fixtures/apps/logging.lua",
            { wait_workers = 1 })
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert.are.equal("ok", c:request("error", 5))
        assert.is_truthy(srv:wait_log("app-level error line", 5))
        local ok, err = pcall(srv.stop, srv)
        assert.is_false(ok)
        assert.is_truthy(tostring(err):find("unexpected: .*app%-level error line"))
    end)
end)
