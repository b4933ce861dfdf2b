-- Task workers: luaserv.task / luaserv.onTask in processes of their own;
-- results under concurrency, timeout, failure, a full queue, a task worker
-- killed mid-task, reload, and the check of a script without onTask.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/tasks.lua"

local function decode(line)
    local t = assert(load("return " .. line, "=reply"))()
    if t.err then error("worker: " .. t.err, 2) end
    return t
end

local function ev(c, code, timeout)
    return decode(assert(c:request(code, timeout or 20)))
end

describe("task workers", function()
    after_each(function() server.cleanup() end)

    it("run tasks from many callbacks at once, each result to its caller", function()
        local srv = server.start(APP, { wait_workers = 4 })
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        for i = 1, 24 do
            conns[i] = client.must_connect(srv.port)
            assert(conns[i]:send("return luaserv.task('echo:" .. i .. "')\n"))
        end
        local tids = {}
        for i = 1, 24 do
            local t = decode(assert(conns[i]:line(20)))
            assert.are.equal(2, t.n)
            assert.is_nil(t[2])
            local arg, tid, pid = t[1]:match("^echo:(%d+):(%d+):(%d+)$")
            assert.are.equal(tostring(i), arg, t[1])
            tids[tid .. ":" .. pid] = true
        end
        local n = 0
        for _ in pairs(tids) do n = n + 1 end
        assert.are.equal(2, n, "both task workers took tasks")
        assert.same({ n = 2, "task true 1", nil },
                    ev(conns[1], "return luaserv.task('who')"))
    end)

    it("gives nil, 'timeout', 'task failed: ...' and refuses misuse", function()
        local srv = server.start(APP, { wait_workers = 4 })
        srv:expect_error("onTask: eval")
        srv:expect_error("onTask: .*boom")
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local t0 = socket.gettime()
        assert.same({ n = 2, nil, "timeout" },
                    ev(c, "return luaserv.task('sleep:3', 0.2)"))
        assert.is_true(socket.gettime() - t0 < 2)
        local t = ev(c, "return luaserv.task('fail:x')")
        assert.is_nil(t[1])
        assert.matches("^task failed: .*boom x", t[2])
        assert.same({ n = 2, nil, "task failed: onTask returned table (a string expected)" },
                    ev(c, "return luaserv.task('table')"))
        -- the task workers go on
        assert.matches("^echo:ok:", ev(c, "return luaserv.task('echo:ok')")[1])
        -- misuse raises
        t = ev(c, "return pcall(luaserv.task, {})")
        assert.is_false(t[1])
        assert.matches("string expected", t[2])
        t = ev(c, "return pcall(luaserv.task, ('x'):rep(1048577))")
        assert.matches("data over 1048576 bytes", t[2])
        t = ev(c, "return pcall(luaserv.task, 'echo:x', -1)")
        assert.matches("seconds from 0", t[2])
    end)

    it("a full queue gives nil, 'queue full' at once", function()
        local srv = server.start(APP, { wait_workers = 3,
            env = { TASK_WORKERS = "1", TASK_QUEUE = "2" } })
        local conns = {}
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        -- the one task worker holds a task; then two wait; the rest are refused
        conns[1] = client.must_connect(srv.port)
        assert(conns[1]:send("return luaserv.task('hold:3')\n"))
        local c0 = client.must_connect(srv.port)
        conns[#conns + 1] = c0
        assert(client.wait_until(function()
            return ev(c0, "return luaserv.shared.t:get('pid')")[1] ~= nil
        end, 10, 0.02), "the task worker took the first task")
        for i = 2, 6 do
            conns[i] = client.must_connect(srv.port)
            assert(conns[i]:send("return luaserv.task('sleep:0.01')\n"))
        end
        -- status shows the two waiting (while the first task holds)
        local seen
        assert(client.wait_until(function()
            local r = server.run({ "-p", srv.master_pidfile, APP, "status" })
            seen = r.stdout
            return r.stdout:find("task queue: 2 waiting of 2\n", 1, true)
        end, 2.5, 0.05), "status: " .. tostring(seen))
        local ok, full = 0, 0
        for i = 2, 6 do
            local t = decode(assert(conns[i]:line(20)))
            if t[1] == "slept" then ok = ok + 1 end
            if t[2] == "queue full" then full = full + 1 end
        end
        assert.are.equal(2, ok)
        assert.are.equal(3, full)
        assert.same({ n = 2, "late", nil }, decode(assert(conns[1]:line(20))))
    end)

    it("a task worker killed mid-task fails that task with 'task worker died'",
    function()
        local srv = server.start(APP, { wait_workers = 4 })
        srv:expect_error("%] %d+ master: ")
        local c = client.must_connect(srv.port)
        local c0 = client.must_connect(srv.port)
        finally(function() c:close(); c0:close() end)
        assert(c:send("return luaserv.task('hold:30')\n"))
        local pid
        assert(client.wait_until(function()
            pid = ev(c0, "return luaserv.shared.t:get('pid')")[1]
            return pid ~= nil
        end, 10, 0.02), "the task started")
        local t0 = socket.gettime()
        server.kill(pid, "KILL")
        assert.same({ n = 2, nil, "task worker died" }, decode(assert(c:line(10))))
        assert.is_true(socket.gettime() - t0 < 5)
        assert.truthy(srv:wait_log("was killed by signal 9 (Killed) during a task: " ..
                                   "that task failed", 10))
        -- replaced: both task workers serve again
        srv:wait_workers(4)
        for i = 1, 4 do
            assert.matches("^echo:" .. i, ev(c0, "return luaserv.task('echo:" .. i .. "')")[1])
        end
    end)

    it("a reload replaces the task workers; tasks go on", function()
        local srv = server.start(APP, { wait_workers = 4 })
        local c = client.must_connect(srv.port)
        local before = ev(c, "return luaserv.task('echo:a')")[1]:match(":(%d+)$")
        c:close()
        local gen = srv:reload()
        c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert.same({ n = 2, "task true " .. gen, nil },
                    ev(c, "return luaserv.task('who')"))
        local after = ev(c, "return luaserv.task('echo:b')")[1]:match(":(%d+)$")
        assert.are_not.equal(before, after)
    end)

    it("check refuses taskWorkers without luaserv.onTask", function()
        local path = os.tmpname() .. ".lua"
        local f = assert(io.open(path, "w"))
        f:write("local luaserv = require 'luaserv'\n" ..
                "luaserv.settings { taskWorkers = 1 }\n" ..
                "luaserv.listen('text://127.0.0.1:1')\n")
        f:close()
        local r = server.run({ path, "check" })
        os.remove(path)
        assert.are.equal(1, r.code)
        assert.matches("taskWorkers is set but the script defines no function " ..
                       "luaserv.onTask", r.stdout .. r.stderr, 1, true)
    end)
end)
