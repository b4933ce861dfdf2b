-- The validator of a reload runs beside the master's loop: while a slow top
-- level loads, the master still answers its control socket, reaps and
-- replaces workers, takes signals, and a stop does not wait for it.
local server = require "helpers.server"
local life = require "integration.lifecycle"

local APP = "slow_top.lua"

local function setup()
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP)
    local srv = life.start(dir, APP, { wait_workers = 2 })
    return srv, dir
end

local function hold(dir)
    assert(io.open(dir .. "/hold", "w")):close()
end

-- SIGHUP, then wait until the validator is inside the held top level (a
-- child of the master beside its two workers); returns its pid.
local function reload_held(srv)
    local workers = {}
    for _, p in ipairs(srv:workers()) do workers[p] = true end
    server.kill(srv.pid, "HUP")
    assert.is_truthy(srv:wait_log("reloading", 10), srv:log())
    local pid = server.wait_until(function()
        for _, p in ipairs(server.children(srv.pid)) do
            if not workers[p] then return p end
        end
    end, 10)
    assert.is_truthy(pid, "no validator running: " ..
                     table.concat(server.children(srv.pid), ","))
    return pid
end

describe("validator in the background", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("status, reaping, respawning and signals work while a reload's " ..
       "validator is held", function()
        local srv, dir = setup()
        hold(dir)
        local validator = reload_held(srv)

        -- the control socket answers (it would wait for the validator if
        -- the master were blocked; 10 s is well below the validator's 30)
        local r = life.ctl({ srv.app, "status" }, srv.ctl_env, nil, 10)
        assert.are.equal(0, r.code, life.describe_run(r))
        local rows = life.parse_status(r.stdout)
        assert.are.equal(2, #rows, r.stdout)
        for _, row in ipairs(rows) do assert.are.equal(1, row.gen, r.stdout) end

        -- a worker killed now is reaped and replaced now
        local victim = rows[1].pid
        server.kill(victim, "KILL")
        assert.is_truthy(server.wait_until(function()
            local n = 0
            for _, p in ipairs(srv:workers()) do
                if p == victim then return false end
                if p ~= validator then n = n + 1 end
            end
            return n == 2
        end, 15), "worker " .. victim .. " not replaced\n" .. srv:log())
        assert.is_true(server.alive(validator), "the validator is still held")
        srv:expect_error("killed by signal 9")

        -- a second reload is queued behind this one
        server.kill(srv.pid, "HUP")
        assert.is_truthy(srv:wait_log("reload requested during a reload", 10))

        os.remove(dir .. "/hold")
        assert.is_truthy(srv:wait_log("reloaded: generation 2 serving", 30),
                         srv:log())
        assert.is_truthy(srv:wait_log("reloaded: generation 3 serving", 30),
                         srv:log())
        local reply = life.text_request(srv.port, "q", 10)
        assert.is_truthy(reply and reply:find("^v1 "), tostring(reply))
        assert.are.equal(0, srv:stop())
    end)

    it("a stop while the validator is held ends it and the reload",
    function()
        local srv, dir = setup()
        hold(dir)
        local validator = reload_held(srv)
        assert.are.equal(0, srv:stop())
        assert.is_truthy(server.wait_until(function()
            return not server.alive(validator)
        end, 5), "validator " .. validator .. " left running")
    end)
end)
