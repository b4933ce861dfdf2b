-- `-d`, the pid file, and stop/status/reload against a daemon.
local server = require "helpers.server"
local life = require "integration.lifecycle"

local function new_daemon(workers)
    local dir = life.tmpdir()
    life.copy_fixtures(dir, "echo_text.lua")
    return life.daemon(dir, dir .. "/echo_text.lua",
        { LUASERV_TEST_WORKERS = tostring(workers or 2) })
end

local function pidfiles(d)
    local out = server.capture("ls " .. server.shquote(d.dir .. "/run") ..
        " 2>/dev/null")
    local t = {}
    for f in out:gmatch("[^\n]+") do
        if f:match("%.pid$") then t[#t + 1] = d.dir .. "/run/" .. f end
    end
    return t
end

local function start_ok(d)
    local r = d:ctl("-d")
    assert.are.equal(0, r.code, life.describe_run(r))
    local pid = tonumber((r.stdout .. r.stderr):match(
        "started in the background, pid (%d+)"))
    assert.is_truthy(pid, life.describe_run(r))
    return pid, r
end

local function assert_clean_log(d)
    local bad = server.scan_log(d:log())
    assert.is_nil(bad, "daemon log: " .. tostring(bad) .. "\n" ..
        server.tail(d:log()))
end

local function a_dead_pid()
    local pid = tonumber(server.capture("sh -c 'echo $$'"))
    assert.is_false(server.alive(pid))
    return pid
end

describe("daemon", function()
    after_each(function()
        local left = life.cleanup()
        assert.are.same({}, left, "processes left behind")
    end)

    it("-d returns once listening; status lists workers; stop cleans up",
    function()
        local d = new_daemon(2)
        local pid = start_ok(d)
        -- no waiting: the port answers right after -d returned
        local reply, err = life.text_request(d.port, "hello", 10)
        assert.are.equal("hello", reply, err)
        assert.is_true(server.alive(pid))
        -- the default pid file (in LUASERV_RUN_DIR) names the master
        assert.are_not.equal(0, #pidfiles(d))
        local pf = pidfiles(d)[1]
        assert.are.equal(pid, tonumber(server.readfile(pf):match("%d+")))

        local workers = server.wait_until(function()
            local c = server.children(pid)
            return #c == 2 and c or nil
        end, 20)
        assert.is_truthy(workers, "master has no 2 workers")

        local st = d:ctl("status")
        assert.are.equal(0, st.code, life.describe_run(st))
        assert.is_truthy(st.stdout:find(tostring(pid), 1, true),
            life.describe_run(st))
        local rows = life.parse_status(st.stdout)
        assert.are.equal(2, #rows, life.describe_run(st))
        local ids = {}
        for _, row in ipairs(rows) do
            ids[#ids + 1] = row.id
            assert.are.equal(pid, server.ppid(row.pid),
                "status pid " .. tostring(row.pid) .. " not a worker")
        end
        table.sort(ids)
        assert.are.same({ 0, 1 }, ids)

        local stop = d:ctl("stop")
        assert.are.equal(0, stop.code, life.describe_run(stop))
        -- stop waits until the master is gone
        assert.is_false(server.alive(pid))
        assert.is_truthy(server.wait_until(function()
            return #d:procs() == 0
        end, 10), "processes left: " .. table.concat(d:procs(), ","))
        for _, w in ipairs(workers) do assert.is_false(server.alive(w)) end
        assert.are.same({}, pidfiles(d))
        assert.is_nil(server.readfile(pf))
        assert.is_truthy(server.wait_until(function()
            return server.port_free(d.port)
        end, 10), "port still bound")
        assert_clean_log(d)
    end)

    it("a stale pid file does not block a start", function()
        local d = new_daemon(1)
        local pid = start_ok(d)
        local pf = pidfiles(d)[1]
        assert.is_truthy(pf)
        assert.are.equal(0, d:ctl("stop").code)
        assert.is_false(server.alive(pid))

        -- a crashed master leaves its pid file; the pid is long dead
        life.writefile(pf, tostring(a_dead_pid()) .. "\n")
        local st = d:ctl("status")
        assert.are.equal(3, st.code, life.describe_run(st))

        local pid2 = start_ok(d)
        assert.are_not.equal(pid, pid2)
        assert.are.equal("again", life.text_request(d.port, "again", 10))
        assert.are.equal(pid2, tonumber(server.readfile(pf):match("%d+")))
        assert.are.equal(0, d:ctl("status").code)
        assert.are.equal(0, d:ctl("stop").code)
        assert.is_false(server.alive(pid2))
        assert.are.same({}, pidfiles(d))
        assert_clean_log(d)
    end)

    it("a garbage pid file does not block a start", function()
        local d = new_daemon(1)
        start_ok(d)
        local pf = pidfiles(d)[1]
        assert.are.equal(0, d:ctl("stop").code)
        life.writefile(pf, "not a pid\n")
        local pid = start_ok(d)
        assert.are.equal("x", life.text_request(d.port, "x", 10))
        assert.are.equal(0, d:ctl("stop").code)
        assert.is_false(server.alive(pid))
    end)

    it("a second -d start is refused and the first keeps serving",
    function()
        local d = new_daemon(1)
        local pid = start_ok(d)
        local r = d:ctl("-d")
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy((r.stdout .. r.stderr):find("already running", 1,
            true), life.describe_run(r))
        assert.is_true(server.alive(pid))
        assert.are.equal("still", life.text_request(d.port, "still", 10))
        -- the pid file still names the first master
        local pf = pidfiles(d)[1]
        assert.are.equal(pid, tonumber(server.readfile(pf):match("%d+")))
        -- a foreground start is refused the same way
        local fg = d:ctl()
        assert.are.equal(1, fg.code, life.describe_run(fg))
        assert.is_truthy((fg.stdout .. fg.stderr):find("already running", 1,
            true), life.describe_run(fg))
        assert.is_true(server.alive(pid))
        assert.are.equal(0, d:ctl("stop").code)
        assert.is_false(server.alive(pid))
        assert_clean_log(d)
    end)

    it("stop, status and reload of an app that is not running exit 3",
    function()
        local d = new_daemon(1)
        for _, cmd in ipairs({ "stop", "status", "reload" }) do
            local r = d:ctl(cmd)
            assert.are.equal(3, r.code, cmd .. ": " .. life.describe_run(r))
        end
        local gs = d:ctl("stop", "-g")
        assert.are.equal(3, gs.code, life.describe_run(gs))
        -- and again after a start + stop
        start_ok(d)
        assert.are.equal(0, d:ctl("stop").code)
        for _, cmd in ipairs({ "stop", "status", "reload" }) do
            local r = d:ctl(cmd)
            assert.are.equal(3, r.code, cmd .. ": " .. life.describe_run(r))
        end
    end)

    it("stop -g stops a daemon", function()
        local d = new_daemon(2)
        local pid = start_ok(d)
        assert.are.equal("g", life.text_request(d.port, "g", 10))
        local r = d:ctl("stop", "-g")
        assert.are.equal(0, r.code, life.describe_run(r))
        assert.is_false(server.alive(pid))
        assert.is_truthy(server.wait_until(function()
            return #d:procs() == 0
        end, 10))
        assert.are.same({}, pidfiles(d))
        assert_clean_log(d)
    end)
end)
