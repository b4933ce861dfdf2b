-- A reload that lowers a reusePort listener's count (4 -> 2) under a churn
-- of new connections loses none: the surplus sockets close only after the
-- old workers are gone, and the kernel moves what is queued on them to the
-- sockets left in the group (net.ipv4.tcp_migrate_req = 1, which the spec
-- sets inside its private network namespace). Without that setting the
-- reload says, in the log, what will happen.
local server = require "helpers.server"
local life = require "integration.lifecycle"
local socket = require "socket"

local APP = "reuse_count.lua"
local SYSCTL = "/proc/sys/net/ipv4/tcp_migrate_req"

local function read(path)
    local f = io.open(path)
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

local function set_migrate(v)
    local f = assert(io.open(SYSCTL, "w"))
    f:write(tostring(v) .. "\n")
    f:close()
end

-- The listening sockets on port (ss).
local function listeners(port)
    local out = server.capture("ss -Hltn 'sport = :" .. port .. "'")
    local n = 0
    for _ in out:gmatch("LISTEN") do n = n + 1 end
    return n
end

describe("reusePort count lowered by a reload", function()
    local saved
    before_each(function()
        local ok, why = server.private_netns()
        if not ok then pending("needs a private network namespace: " .. why) end
        saved = read(SYSCTL)
        if not saved then pending("no " .. SYSCTL .. " (Linux < 5.14)") end
    end)
    after_each(function()
        server.cleanup()
        life.cleanup()
        if saved then set_migrate(saved:match("%d")) end
    end)

    local function setup()
        local dir = life.tmpdir()
        life.copy_fixtures(dir, APP)
        life.writefile(dir .. "/count", "4\n")
        local srv = life.start(dir, APP, {
            wait_workers = 4,
            no_resets = { "TcpExtListenDrops", "TcpExtListenOverflows" },
        })
        return srv, dir
    end

    it("4 -> 2 under a churn of new connections: none fails", function()
        if not saved then return end
        set_migrate(1)
        local srv, dir = setup()
        assert.are.equal(4, listeners(srv.port))
        local stop = dir .. "/stop-churn"
        local out = dir .. "/churn.json"
        os.execute(string.format("/usr/bin/python3 %s %d 8 %s >%s 2>&1 &",
            server.abspath("spec/fixtures/conn_churn.py"), srv.port,
            server.shquote(stop), server.shquote(out)))
        socket.sleep(1)     -- a second of load before the reload
        life.writefile(dir .. "/count", "2\n")
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert.is_truthy(srv:wait_log("the kernel moves what is queued", 5),
                         srv:log())
        -- the old workers go, then their sockets: 2 listeners left
        assert.is_truthy(server.wait_until(function()
            return listeners(srv.port) == 2
        end, 30), "listeners: " .. listeners(srv.port) .. "\n" .. srv:log())
        srv:wait_workers(2, 30)
        socket.sleep(1)     -- and a second after it
        life.writefile(stop, "")
        local json = server.wait_until(function()
            local s = read(out)
            return s and s:match("{.*}")
        end, 30)
        assert.is_truthy(json, "the churn client did not finish: " ..
                         tostring(read(out)))
        local okn = tonumber(json:match('"ok": (%d+)'))
        local failed = tonumber(json:match('"failed": (%d+)'))
        print(("\nreusePort 4 -> 2 under churn: %d requests, %d failed"):format(
            okn, failed))
        assert.are.equal(0, failed, json)
        assert.is_true(okn > 100, json)
        assert.are.equal(0, srv:stop())
    end)

    it("without tcp_migrate_req the reload warns", function()
        if not saved then return end
        set_migrate(0)
        local srv, dir = setup()
        life.writefile(dir .. "/count", "2\n")
        local r = life.cmd(srv, "reload")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert.is_truthy(srv:wait_log("set sysctl net.ipv4.tcp_migrate_req=1",
                                      5), srv:log())
        assert.is_truthy(srv:wait_log('listener "reuse": reusePort count 4 -> 2',
                                      5), srv:log())
        assert.are.equal(0, srv:stop())
    end)
end)
