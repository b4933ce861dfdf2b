-- Lua guards: callbackTimeout stops a runaway handler, luaMemoryLimit stops
-- one that allocates without bound, os.exit retires the worker. In each case
-- the other connections of that worker keep being served.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/guards.lua"

local function start(env)
    return server.start(APP, { wait_workers = 1, env = env })
end

-- Connection b of the same (only) worker, and its pid.
local function bystander(srv)
    local b = client.must_connect(srv.port)
    local pid = assert(b:request("pid", 10))
    return b, pid
end

-- Send msg on a fresh connection; it must be closed by the server.
local function must_be_closed(srv, msg)
    local a = client.must_connect(srv.port)
    assert(a:send(msg .. "\n"))
    local ok = a:wait_closed(20)
    a:close()
    assert.is_true(ok, msg .. ": the connection was not closed\n" ..
        server.tail(srv:log()))
end

describe("callbackTimeout", function()
    after_each(function() server.cleanup() end)

    it("stops while true do end, closes that connection, keeps the worker",
    function()
        local srv = start()
        srv:expect_error("callback exceeded callbackTimeout %(1 s%)")
        local b, pid = bystander(srv)
        finally(function() b:close() end)

        must_be_closed(srv, "spin")
        assert.are.equal("still here", b:request("still here", 10))
        assert.are.equal(pid, b:request("pid", 10))
        local lines = assert(srv:wait_log("callbackTimeout (1 s)", 5))
        assert.is_truthy(lines[1]:find("worker 0 %[guards%]: conn %d+: " ..
            "onMessage: callback exceeded callbackTimeout"), lines[1])
        -- the traceback points at the loop
        local line = server.line_of(server.abspath(APP), "MARK:spin")
        assert.is_truthy(srv:log():find("guards.lua:" .. line .. ":", 1,
            true), server.tail(srv:log()))
        -- a new connection is served by the same process
        local c = client.must_connect(srv.port)
        finally(function() b:close(); c:close() end)
        assert.are.equal(pid, c:request("pid", 10))
        assert.are.same({ tonumber(pid) }, srv:workers())
        assert.are.equal(0, srv:stop())
    end)

    it("stops a loop running as compiled code (LuaJIT builds)", function()
        -- LuaJIT runs no hook inside a trace; the over-time signal has the
        -- profiler's checks make the trace leave for the interpreter
        local srv = start()
        local b, pid = bystander(srv)
        finally(function() b:close() end)
        local jit = b:request("jit", 10)
        if jit == "none" then
            assert.are.equal(0, srv:stop())
            pending("the server runs Lua 5.4")
            return
        end
        assert.are.equal("true", jit) -- the JIT is on: the loop is compiled
        srv:expect_error("callback exceeded callbackTimeout %(1 s%)")
        for _ = 1, 2 do
            must_be_closed(srv, "spin-hot")
            assert.are.equal(pid, b:request("pid", 10))
        end
        assert.are.equal(2, srv:count_log("callback exceeded callbackTimeout"))
        local line = server.line_of(server.abspath(APP), "MARK:spin-hot")
        assert.is_truthy(srv:log():find("guards.lua:" .. line .. ":", 1,
            true), server.tail(srv:log()))
        assert.are.equal(0, srv:stop())
    end)

    it("times each message of a batch on its own", function()
        -- eight messages in one write are delivered in one batch (one
        -- protected call): 8 x 0.4 s of CPU is over the 2.5 s limit in all,
        -- but no single callback is. (callbackTimeout counts wall time and
        -- the busy loop CPU time: the margin lets a callback be slowed 6x by
        -- a loaded machine.)
        local srv = start({ LUASERV_TEST_CBTIMEOUT = "2.5" })
        local a = client.must_connect(srv.port)
        finally(function() a:close() end)
        assert(a:send(("busy:0.4\n"):rep(8)))
        for i = 1, 8 do
            assert.are.equal("done", a:line(30), "answer " .. i)
        end
        assert.is_nil(srv:log():find("callbackTimeout", 1, true),
            server.tail(srv:log()))
        assert.are.equal(0, srv:stop())
    end)

    it("stops a loop that catches the timeout error with pcall", function()
        local srv = start()
        srv:expect_error("callback exceeded callbackTimeout")
        local b, pid = bystander(srv)
        finally(function() b:close() end)
        must_be_closed(srv, "spin-pcall")
        assert.are.equal(pid, b:request("pid", 10))
        -- and the next runaway is stopped again
        must_be_closed(srv, "spin")
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(2, srv:count_log("callback exceeded callbackTimeout"))
        assert.are.equal(0, srv:stop())
    end)
end)

describe("luaMemoryLimit", function()
    after_each(function() server.cleanup() end)

    for _, what in ipairs({ "table", "concat", "rep" }) do
        it("stops unbounded allocation (" .. what .. "), worker not restarted",
        function()
            local srv = start()
            srv:expect_error("Lua memory limit %(16 MiB%) reached")
            local b, pid = bystander(srv)
            finally(function() b:close() end)

            must_be_closed(srv, what)
            assert.are.equal("after " .. what,
                b:request("after " .. what, 10))
            assert.are.equal(pid, b:request("pid", 10))
            local lines = assert(srv:wait_log("Lua memory limit", 5))
            assert.is_truthy(lines[1]:find("[error]", 1, true), lines[1])
            assert.is_truthy(lines[1]:find("worker 0 %[guards%]: conn %d+: " ..
                "onMessage: Lua memory limit %(16 MiB%) reached"), lines[1])
            -- the state is usable again: what the call held was collected
            local kb = tonumber(b:request("mem", 10))
            assert.is_truthy(kb and kb < 8 * 1024, "Lua holds " ..
                tostring(kb) .. " KiB after the failed call")
            -- the same runaway again: stopped again, same process
            must_be_closed(srv, what)
            assert.are.equal(pid, b:request("pid", 10))
            assert.are.same({ tonumber(pid) }, srv:workers())
            assert.are.equal(0, srv:stop())
        end)
    end

    it("survives running out in C functions, coroutines, recursion, " ..
       "error objects, nested onClose and timers", function()
        local srv = start()
        srv:expect_error("Lua memory limit %(16 MiB%) reached")
        local b, pid = bystander(srv)
        finally(function() b:close() end)
        local n = 0
        for _, what in ipairs({ "gsub", "coroutine", "deep", "errobj",
                                "onclose" }) do
            must_be_closed(srv, what)
            n = n + 1
            assert.is_truthy(srv:wait_log("Lua memory limit", 10, n), what)
            assert.are.equal("echo " .. what, b:request("echo " .. what, 10))
        end
        -- onClose ran inside conn:close() in onMessage
        assert.is_truthy(srv:log():find("conn %d+: onClose: Lua memory limit"),
            server.tail(srv:log()))
        local t = client.must_connect(srv.port)
        finally(function() b:close(); t:close() end)
        assert.are.equal("armed", t:request("timer", 10))
        assert.is_truthy(srv:wait_log("timer (after): Lua memory limit", 10))
        assert.are.equal("after timer", t:request("after timer", 10))
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.same({ tonumber(pid) }, srv:workers())
        assert.are.equal(0, srv:stop())
    end)

    it("memory the app keeps stays used until the app drops it", function()
        local srv = start()
        srv:expect_error("Lua memory limit %(16 MiB%) reached")
        local b, pid = bystander(srv)
        finally(function() b:close() end)
        must_be_closed(srv, "hoard")
        local lines = assert(srv:wait_log("Lua memory limit", 5))
        local held = tonumber(lines[1]:match("; (%d+) KiB in use"))
        assert.is_truthy(held and held > 8 * 1024, lines[1])
        -- near the limit small requests may still fail; once the app drops
        -- the table, everything works again
        server.wait_until(function()
            local c = client.connect(srv.port)
            if not c then return false end
            local r = c:request("unhoard", 5)
            c:close()
            return r == "unhoarded"
        end, 20)
        server.wait_until(function()
            local c = client.connect(srv.port)
            if not c then return false end
            local r = c:request("echo", 5)
            c:close()
            return r == "echo"
        end, 20)
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)

    it("a limit of 0 turns the guard off", function()
        local srv = start({ LUASERV_TEST_MEMLIMIT = "0",
            LUASERV_TEST_CBTIMEOUT = "0" })
        local b = bystander(srv)
        finally(function() b:close() end)
        -- 64 MiB in one string is fine without a limit
        assert.are.equal(tostring(64 << 20), b:request("rep", 30))
        assert.are.equal(0, srv:stop())
    end)
end)

describe("os.exit in a worker", function()
    after_each(function() server.cleanup() end)

    it("retires the worker: open connections are served, a replacement " ..
       "takes new ones", function()
        local srv = start()
        local b, pid = bystander(srv)
        finally(function() b:close() end)

        must_be_closed(srv, "exit")
        assert.is_truthy(srv:wait_log("os.exit(3) called in worker: stopping " ..
            "this worker gracefully, a replacement starts", 5))
        -- the open connection of the old worker is still answered
        assert.are.equal("still served", b:request("still served", 10))
        assert.are.equal(pid, b:request("pid", 10))
        -- new connections go to the replacement
        local newpid = server.wait_until(function()
            local c = client.connect(srv.port)
            if not c then return nil end
            local r = c:request("pid", 10)
            c:close()
            if r and r ~= pid then return r end
        end, 30)
        assert.is_truthy(newpid, "no replacement answered\n" ..
            server.tail(srv:log()))
        assert.are.equal(pid, b:request("pid", 10))
        -- once its last connection closes, the old worker is gone
        b:close()
        assert.is_truthy(server.wait_until(function()
            return not server.alive(tonumber(pid))
        end, 30), "old worker still alive")
        srv:wait_workers(1, 30)
        -- not a crash: no respawn, no abnormal exit
        local log = srv:log()
        assert.is_falsy(log:find("respawning", 1, true), log)
        assert.is_falsy(log:find("killed by signal", 1, true), log)
        assert.are.equal(0, srv:stop())
    end)

    it("at the top level of the script, is an error (broken script)",
    function()
        local r = server.run({ "spec/fixtures/apps/guards_exit_top.lua",
            "check" })
        assert.are.equal(1, r.code, r.stderr)
        assert.is_truthy(r.stderr:find("os.exit(0) called while loading " ..
            "the script", 1, true), r.stderr)
        assert.are.same({}, r.leftover)
        r = server.run({ "spec/fixtures/apps/guards_exit_top.lua" })
        assert.are.equal(1, r.code, r.stderr)
        assert.is_truthy(r.stderr:find("os.exit(0) called", 1, true), r.stderr)
        assert.are.same({}, r.leftover)
    end)
end)

describe("guard listener options", function()
    after_each(function() server.cleanup() end)

    it("override the settings for that listener's workers", function()
        local srv = start({ LUASERV_TEST_MEMLIMIT = "0",
            LUASERV_TEST_CBTIMEOUT = "0",
            LUASERV_TEST_L_MEMLIMIT = tostring(8 * 1024 * 1024),
            LUASERV_TEST_L_CBTIMEOUT = "0.5" })
        srv:expect_error("callback exceeded callbackTimeout %(0.5 s%)")
        srv:expect_error("Lua memory limit %(8 MiB%) reached")
        local b, pid = bystander(srv)
        finally(function() b:close() end)
        must_be_closed(srv, "spin")
        must_be_closed(srv, "table")
        assert.is_truthy(srv:wait_log("callbackTimeout (0.5 s)", 5))
        assert.is_truthy(srv:wait_log("Lua memory limit (8 MiB)", 5))
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)
end)

describe("guard settings", function()
    after_each(function() server.cleanup() end)

    for _, case in ipairs({
        { "luaMemoryLimit = 1000", "setting 'luaMemoryLimit" },
        { "luaMemoryLimit = -1", "setting 'luaMemoryLimit" },
        { "callbackTimeout = 'x'", "setting 'callbackTimeout" },
        { "watchdogTimeout = 0.5", "setting 'watchdogTimeout" },
        { "callbackTimeout = -1", "option 'callbackTimeout", true },
        { "luaMemoryLimit = 2.5", "option 'luaMemoryLimit", true },
    }) do
        it("rejects " .. case[1], function()
            local dir = os.getenv("TMPDIR") or "/tmp"
            local path = string.format("%s/luaserv-guards-%d-%d.lua", dir,
                os.time(), math.random(1, 1e9))
            local f = assert(io.open(path, "w"))
            f:write('local luaserv = require "luaserv"\n',
                case[3] and "" or "luaserv.settings { " .. case[1] .. " }\n",
                'luaserv.listen("text://127.0.0.1:" .. ',
                'os.getenv("LUASERV_TEST_PORT")',
                case[3] and ", { " .. case[1] .. " })\n" or ")\n")
            f:close()
            local r = server.run({ path, "check" })
            os.remove(path)
            assert.are.equal(1, r.code, r.stderr)
            assert.is_truthy(r.stderr:find("bad " .. case[2] .. "'", 1, true),
                r.stderr)
        end)
    end
end)

describe("a batch of messages from one read", function()
    after_each(function() server.cleanup() end)

    it("sees srv.onMessage replaced by the message before", function()
        local srv = start()
        local a = client.must_connect(srv.port)
        finally(function() a:close() end)
        assert(a:send("swap\nx\ny\n"))
        assert.are.equal("swapped x", a:line(10))
        assert.are.equal("y", a:line(10))
        assert.are.equal(0, srv:stop())
    end)

    it("stops at an error: the connection closes, later messages are " ..
       "not delivered, others are served", function()
        local srv = start()
        srv:expect_error("boom")
        local b, pid = bystander(srv)
        local a = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        assert(a:send("first\nboom\nnot delivered\n"))
        assert.are.equal("first", a:line(10))
        assert.is_true(a:wait_closed(20), server.tail(srv:log()))
        assert.is_nil(a:line(0.5)) -- "not delivered" was not echoed
        local lines = assert(srv:wait_log("onMessage: ", 10))
        assert.is_truthy(lines[1]:find("boom", 1, true), lines[1])
        assert.are.equal(pid, b:request("pid", 10))
        assert.are.equal(0, srv:stop())
    end)
end)
