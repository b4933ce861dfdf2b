-- `luaserv APP connections` (every open connection, per worker) and
-- `luaserv APP status --watch` (the live table).
local server = require "helpers.server"
local client = require "helpers.client"
local life = require "integration.lifecycle"

local APP = "spec/fixtures/apps/metrics.lua"

describe("connections and status --watch", function()
    local srv, env
    setup(function()
        env = { METRICS_ADDR = "127.0.0.1:" .. server.free_port() }
        srv = server.start(APP, { wait_workers = 2, env = env })
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("lists every open connection with its peer, age, bytes and state",
    function()
        local cs, ports = {}, {}
        for i = 1, 3 do
            cs[i] = client.must_connect(srv.port)
            assert.are.equal("hello" .. i, cs[i]:request("hello" .. i, 10))
            ports[select(2, cs[i].sock:getsockname())] = i
        end
        local r = life.ctl({ "-p", srv.master_pidfile, APP, "connections" },
                           env)
        assert.are.equal(0, r.code, r.stderr)
        local lines = {}
        for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
        assert.are.equal("worker conn peer age_s bytes_in bytes_out state " ..
                         "protocol listener", lines[1])
        local found = 0
        for i = 2, #lines do
            local w, id, port, age, bin, bout, state, proto, lname =
                lines[i]:match("^(%d+) (%d+) 127%.0%.0%.1:(%d+) ([%d.]+) " ..
                               "(%d+) (%d+) (%a+) (%S+) (%S+)$")
            assert.is_truthy(w, "line: " .. lines[i])
            assert.is_truthy(tonumber(id) > 0 and tonumber(age) >= 0)
            local mine = ports[tostring(port)]
            if mine then
                found = found + 1
                assert.are.equal(#("hello" .. mine) + 1, tonumber(bin))
                assert.are.equal(tonumber(bin), tonumber(bout))
                assert.are.equal("open", state)
                assert.are.equal("stream", proto)
                assert.are.equal("echo", lname)
            end
        end
        assert.are.equal(3, found, r.stdout)
        for _, c in ipairs(cs) do c:close() end
    end)

    it("status --watch redraws the table every second until stopped",
    function()
        local r = life.ctl({ "-p", srv.master_pidfile, APP, "status",
                             "--watch" }, env, nil, 3)
        local n = select(2, r.stdout:gsub("master pid %d+", ""))
        assert.is_true(n >= 2, r.stdout)
        assert.is_truthy(r.stdout:find("ready", 1, true), r.stdout)
        -- --watch is for status only
        local bad = life.ctl({ APP, "connections", "--watch" }, env)
        assert.are.equal(2, bad.code)
        assert.is_truthy(bad.stderr:find("--watch goes with status", 1, true))
    end)

    it("answers exit 3 when the instance is not running", function()
        local r = life.ctl({ "-p", os.tmpname() .. ".none", APP,
                             "connections" }, env)
        assert.are.equal(3, r.code, r.stderr)
    end)
end)
