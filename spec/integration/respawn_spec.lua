-- The master replaces dead workers in the same slot, with back-off for
-- workers that keep crashing.
local server = require "helpers.server"
local client = require "helpers.client"

local function who(port)
    local c = client.connect(port, 2)
    if not c then return nil end
    local reply = c:request("get", 2)
    c:close()
    if not reply then return nil end
    local id, pid = reply:match("^%S+ (%d+) (%d+)$")
    if not pid then return nil end
    return { id = tonumber(id), pid = tonumber(pid) }
end

local function zombies(master)
    local out = server.capture("ps -o pid=,stat= --ppid " .. master)
    local z = {}
    for pid, stat in out:gmatch("(%d+)%s+(%S+)") do
        if stat:find("Z") then z[#z + 1] = pid end
    end
    return z
end

describe("worker respawn", function()
    after_each(function() server.cleanup() end)

    it("replaces a worker killed with SIGKILL in the same slot", function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 1, wait_workers = 1 })
        local before = assert(who(srv.port))
        assert.are.equal(0, before.id)
        assert.are.same({ before.pid }, srv:workers())

        -- the worker that died is logged; that is not an [error] of the app
        srv:expect_error("%] %d+ master: ")
        assert.is_true(server.kill(before.pid, "KILL"))

        local after = client.wait_until(function()
            local w = who(srv.port)
            if w and w.pid ~= before.pid then return w end
        end, 10)
        assert.is_truthy(after, "no replacement worker answered\n" ..
            server.tail(srv:log()))
        assert.are.equal(0, after.id)
        assert.are_not.equal(before.pid, after.pid)
        assert.is_false(server.alive(before.pid))

        -- the old one is reaped: no zombie among the master's children
        local clean = client.wait_until(function()
            return #zombies(srv.pid) == 0
        end, 10)
        assert.is_truthy(clean, "zombie children: " ..
            table.concat(zombies(srv.pid), ","))
        assert.are.same({ after.pid }, srv:wait_workers(1))
        assert.is_true(srv:running())
    end)

    it("keeps the other workers and their ids when one of two dies",
    function()
        local srv = server.start("spec/fixtures/apps/globals.lua",
            { workers = 2, wait_workers = 2 })
        local old = srv:workers()
        srv:expect_error("%] %d+ master: ")
        assert.is_true(server.kill(old[1], "KILL"))
        local now = client.wait_until(function()
            local w = srv:workers()
            if #w == 2 and w[1] ~= old[1] and w[2] ~= old[1] then return w end
        end, 10)
        assert.is_truthy(now, "worker not replaced\n" .. server.tail(srv:log()))
        local kept = (now[1] == old[2] or now[2] == old[2])
        assert.is_true(kept, "the surviving worker was replaced too")

        -- both slots, 0 and 1, answer again
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        local ids = {}
        local n = 0
        client.wait_until(function()
            local c = client.must_connect(srv.port)
            conns[#conns + 1] = c
            local reply = c:request("get", 5)
            local id = reply and tonumber(reply:match("^%S+ (%d+)"))
            if id and not ids[id] then ids[id] = true; n = n + 1 end
            return n == 2 or #conns > 200
        end, 15, 0.01)
        assert.is_true(ids[0] and ids[1], "ids seen: " ..
            table.concat((function()
                local t = {}
                for k in pairs(ids) do t[#t + 1] = k end
                return t
            end)(), ","))
        assert.are.equal(0, #zombies(srv.pid))
    end)

    it("backs off a worker that crashes at start-up (no spinning)",
    function()
        local srv = server.start("spec/fixtures/apps/crash_start.lua",
            { wait = false })
        srv:expect_error("onWorkerStart")
        srv:expect_error("%] %d+ master: ")

        -- it crashes, and is started again at least once
        local first = srv:wait_log("crash in onWorkerStart", 15, 2)
        assert.is_truthy(first, "worker was not respawned after crashing\n" ..
            server.tail(srv:log()))

        local count0 = #srv:log_lines("crash in onWorkerStart")
        local cpu0 = assert(server.cpu_ticks(srv.pid))
        client.sleep(3)   -- observation window, not an assertion on speed
        local count1 = #srv:log_lines("crash in onWorkerStart")
        local cpu1 = assert(server.cpu_ticks(srv.pid))

        assert.is_true(srv:running(), "master exited\n" ..
            server.tail(srv:log()))
        local spawns = count1 - count0
        assert.is_true(spawns <= 15, spawns ..
            " crashing spawns within 3 s: no back-off")
        -- a spinning master burns ~100 ticks/s; allow a generous 1 s total
        assert.is_true(cpu1 - cpu0 < 100, "master used " .. (cpu1 - cpu0) ..
            " CPU ticks in 3 s")
        -- the worker's traceback names the script line
        local line = server.line_of("spec/fixtures/apps/crash_start.lua",
            "error(\"crash in onWorkerStart")
        assert.is_truthy(srv:log():find("crash_start.lua:" .. line .. ":", 1,
            true), "no script line in the log")
        assert.are.equal(0, #zombies(srv.pid))
    end)
end)
