-- Zero-drop hot reload: 20 reloads one after another while >= 100
-- keep-alive HTTP connections are kept busy (bench/reload --attach is the
-- load generator: python3 asyncio, reconnects on `Connection: close`).
local server = require "helpers.server"
local life = require "integration.lifecycle"

local APP = "http_version.lua"

local function field(json, name)
    return json:match('"' .. name .. '": (%-?%d+)')
end

local function run_load(srv, conns, reloads)
    local cmd = string.format(
        "LUASERV_RUN_DIR=%s LUASERV_BIN=%s timeout -k 5 600 python3 " ..
        "bench/reload --attach --json --app %s --port %d --conns %d " ..
        "--reloads %d --timeout 60 2>&1",
        server.shquote(srv.dir .. "/run"), server.shquote(server.abspath(
            server.bin)), server.shquote(srv.app), srv.port, conns, reloads)
    local out = server.capture(cmd)
    local json = out:match("{.*}") or ""
    return json, out
end

describe("reload under load", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    local function check(conns, workers, reuse_port)
        local dir = life.tmpdir()
        life.copy_fixtures(dir, APP)
        -- Measured (nstat, private netns): no close discarded unread data
        -- and no connection was dropped from the listen queue. TcpOutRsts is
        -- not zero: with hundreds of `Connection: close` exchanges, a FIN is
        -- sometimes sent twice (tail loss probe) and the last ACK of that
        -- exchange reaches a socket already closed, which answers with an
        -- RST after both sides have closed -- no byte is lost.
        local srv = life.start(dir, APP, {
            workers = workers, wait_workers = workers,
            no_resets = { "TcpExtTCPAbortOnClose", "TcpExtListenDrops",
                          "TcpExtListenOverflows" },
            env = { LUASERV_TEST_STOP_TIMEOUT = "30",
                    LUASERV_TEST_REUSEPORT = reuse_port and "1" or "0" },
        })
        local json, out = run_load(srv, conns, 20)
        local why = out .. "\n--- log ---\n" .. server.tail(srv:log(), 30)
        assert.are_not.equal("", json, why)
        assert.are.equal("0", field(json, "failed"), why)
        assert.are.equal("0", field(json, "reset"), why)
        assert.are.equal("0", field(json, "refused"), why)
        assert.are.equal("0", field(json, "bad_status"), why)
        assert.is_truthy(json:find('"reload_failures": []', 1, true), why)
        assert.is_truthy(json:find('"stale": []', 1, true), why)
        assert.is_truthy(json:find('"pass": true', 1, true), why)
        -- real traffic flowed: far more requests than connections
        assert.is_true(tonumber(field(json, "ok")) >= conns * 20, why)
        -- the last text is what a new connection gets now
        local last = json:match('"last_version": "([^"]+)"')
        assert.are.equal("r20-even", last, why)
        assert.are.equal("version=" .. last,
            json:match('"final": "([^"]*)"'), why)
        srv:wait_workers(workers, 60)
        assert.are.equal(0, srv:stop())
    end

    it("100 keep-alive connections, 20 reloads, 2 workers: nothing lost",
    function()
        check(100, 2)
    end)

    it("120 keep-alive connections, 20 reloads, 1 worker: nothing lost",
    function()
        check(120, 1)
    end)

    it("reusePort: 100 keep-alive connections, 20 reloads: nothing lost",
    function()
        check(100, 2, true)
    end)
end)
