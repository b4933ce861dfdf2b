-- count = N runs N worker processes, each with its own Lua state.
local server = require "helpers.server"
local client = require "helpers.client"

-- Open connections (kept open) until `n` distinct workers have answered
-- "get", or the bound passes. Returns pid -> {conn=, id=, value=}.
local function reach_workers(port, n, conns)
    local by_pid, count = {}, 0
    client.wait_until(function()
        local c = client.must_connect(port)
        conns[#conns + 1] = c
        local reply = assert(c:request("get", 5))
        local value, id, pid = reply:match("^(%S+) (%d+) (%d+)$")
        assert(pid, "bad reply: " .. reply)
        pid = tonumber(pid)
        if not by_pid[pid] then
            by_pid[pid] = { conn = c, id = tonumber(id), value = value }
            count = count + 1
        end
        return count >= n or #conns >= 300
    end, 20, 0.01)
    return by_pid, count
end

describe("workers", function()
    after_each(function() server.cleanup() end)

    it("count = 3 gives 3 worker processes with distinct ids serving",
    function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 3, wait_workers = 3 })
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)

        local by_pid, count = reach_workers(srv.port, 3, conns)
        assert.are.equal(3, count,
            "only " .. count .. " distinct workers answered over " ..
            #conns .. " connections")

        local children = srv:workers()
        local ids = {}
        for pid, w in pairs(by_pid) do
            assert.is_true(server.ppid(pid) == srv.pid,
                "pid " .. pid .. " is not a child of the master")
            ids[#ids + 1] = w.id
            assert.are.equal("nil", w.value)
        end
        table.sort(ids)
        assert.are.same({ 0, 1, 2 }, ids)
        assert.are.equal(3, #children)
    end)

    it("gives each worker its own Lua state", function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 3, wait_workers = 3 })
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        local by_pid, count = reach_workers(srv.port, 3, conns)
        assert.are.equal(3, count)

        local pids = {}
        for pid in pairs(by_pid) do pids[#pids + 1] = pid end
        table.sort(pids)
        local a = by_pid[pids[1]]
        assert.are.equal("ok " .. a.id .. " " .. pids[1],
            a.conn:request("set hello", 5))
        assert.are.equal("hello " .. a.id .. " " .. pids[1],
            a.conn:request("get", 5))
        for i = 2, 3 do
            local w = by_pid[pids[i]]
            assert.are.equal("nil " .. w.id .. " " .. pids[i],
                w.conn:request("get", 5))
        end
    end)

    it("exposes the listener name as luaserv.worker.name", function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 1 })
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert.are.equal("state", c:request("name", 5))
    end)

    it("-w N overrides the worker count", function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 3, args = { "-w", "2" }, wait_workers = 2 })
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        local _, count = reach_workers(srv.port, 2, conns)
        assert.are.equal(2, count)
        -- still exactly two after a while of serving
        assert.are.equal(2, #srv:workers())
    end)
end)
