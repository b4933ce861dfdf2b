-- Hot reload through `luaserv APP reload`: changed code, broken code,
-- required modules, worker counts, and respawns after a reload.
local server = require "helpers.server"
local life = require "integration.lifecycle"

local APP = "reload_app.lua"
local MOD = "reload_mod.lua"

local function setup(opts)
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP, MOD)
    opts = opts or {}
    local srv = life.start(dir, APP, { wait_workers = opts.workers or 2 })
    return srv, dir .. "/" .. APP, dir .. "/" .. MOD
end

local function set_version(app, v)
    life.edit(app, 'local VERSION = "[^"]*"', 'local VERSION = "' .. v .. '"')
end

local function set_tag(mod, t)
    life.edit(mod, 'TAG = "[^"]*"', 'TAG = "' .. t .. '"')
end

local function set_count(app, n)
    life.edit(app, "local COUNT = %d+", "local COUNT = " .. n)
end

local function reload_ok(srv)
    local r = life.cmd(srv, "reload")
    assert.are.equal(0, r.code, life.describe_run(r) .. "\n--- log ---\n" ..
        server.tail(srv:log()))
    local gen = tonumber(r.stdout:match("reloaded, generation (%d+)"))
    assert.is_truthy(gen, life.describe_run(r))
    return gen
end

-- Right after `reload` returned, every new connection gets `want`.
local function assert_fresh(srv, want, n)
    for i = 1, n or 10 do
        local reply, err = life.text_request(srv.port, "q", 10)
        assert.are.equal(want, reply, "fresh connection " .. i .. ": " ..
            tostring(err))
    end
end

local function status_rows(srv)
    local r = life.cmd(srv, "status")
    assert.are.equal(0, r.code, life.describe_run(r))
    return life.parse_status(r.stdout), r
end

describe("reload", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("new connections get the new reply after each reload", function()
        local srv, app = setup()
        assert_fresh(srv, "v1 m1", 3)
        local last = 1
        for i = 2, 5 do
            set_version(app, "v" .. i)
            local gen = reload_ok(srv)
            assert.is_true(gen > last, "generation did not grow: " .. gen)
            last = gen
            assert_fresh(srv, "v" .. i .. " m1")
            srv:wait_workers(2, 30)
        end
        -- workers listed by status are all of the last generation
        local rows = status_rows(srv)
        assert.are.equal(2, #rows)
        for _, row in ipairs(rows) do
            assert.are.equal(last, row.gen)
        end
        assert.are.equal(0, srv:stop())
    end)

    it("a syntax error: reload exits 1 with the error, old code serves",
    function()
        local srv, app = setup()
        srv:expect_error("reload")
        srv:expect_error(APP)
        local old = srv:workers()
        local good = server.readfile(app)
        life.writefile(app, good:gsub('local VERSION = "v1"',
            'local VERSION = = "v2"'))
        local r = life.cmd(srv, "reload")
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find(APP, 1, true), life.describe_run(r))
        assert.is_truthy(r.stderr:find(":" .. server.line_of(app, "VERSION ="),
            1, true), "error names the line: " .. life.describe_run(r))
        -- the old workers are untouched and answer with the old code
        assert_fresh(srv, "v1 m1")
        assert.are.same(old, srv:wait_workers(2))
        -- also a runtime error in the top level
        life.writefile(app, good:gsub('local VERSION = "v1"',
            'local VERSION = "v2"; error("boom at top level")'))
        r = life.cmd(srv, "reload")
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find("boom at top level", 1, true),
            life.describe_run(r))
        assert_fresh(srv, "v1 m1")
        assert.are.same(old, srv:wait_workers(2))

        -- fixed: the reload goes through
        life.writefile(app, good:gsub('local VERSION = "v1"',
            'local VERSION = "v3"'))
        reload_ok(srv)
        assert_fresh(srv, "v3 m1")
        assert.are.equal(0, srv:stop())
    end)

    it("new workers failing in onWorkerStart abort the rollout", function()
        local srv, app = setup()
        srv:expect_error("reload aborted")
        srv:expect_error("onWorkerStart")
        srv:expect_error("start failed on purpose")
        local old = srv:workers()
        set_version(app, "fail-start")
        local r = life.cmd(srv, "reload")
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find("abort", 1, true),
            life.describe_run(r))
        assert_fresh(srv, "v1 m1")
        assert.are.same(old, srv:wait_workers(2, 30))
        set_version(app, "v2")
        reload_ok(srv)
        assert_fresh(srv, "v2 m1")
        assert.are.equal(0, srv:stop())
    end)

    it("a required module changed on disk is picked up", function()
        local srv, _, mod = setup()
        assert_fresh(srv, "v1 m1", 2)
        set_tag(mod, "m2")
        reload_ok(srv)
        assert_fresh(srv, "v1 m2")
        set_tag(mod, "m3")
        reload_ok(srv)
        assert_fresh(srv, "v1 m3")
        assert.are.equal(0, srv:stop())
    end)

    it("a broken required module fails the reload, old code serves",
    function()
        local srv, _, mod = setup()
        srv:expect_error("reload")
        srv:expect_error(MOD)
        life.writefile(mod, "return { TAG = }\n")
        local r = life.cmd(srv, "reload")
        assert.are.equal(1, r.code, life.describe_run(r))
        assert.is_truthy(r.stderr:find(MOD, 1, true), life.describe_run(r))
        assert_fresh(srv, "v1 m1")
        life.writefile(mod, 'return { TAG = "m9" }\n')
        reload_ok(srv)
        assert_fresh(srv, "v1 m9")
        assert.are.equal(0, srv:stop())
    end)

    it("a changed count takes effect", function()
        local srv, app = setup()
        set_count(app, 3)
        set_version(app, "v3")
        local gen = reload_ok(srv)
        local w = srv:wait_workers(3, 30)
        local rows = status_rows(srv)
        assert.are.equal(3, #rows)
        local ids = {}
        for _, row in ipairs(rows) do
            ids[#ids + 1] = row.id
            assert.are.equal(gen, row.gen)
            assert.are.equal(srv.pid, server.ppid(row.pid))
        end
        table.sort(ids)
        assert.are.same({ 0, 1, 2 }, ids)
        assert.are.equal(3, #w)
        assert_fresh(srv, "v3 m1")

        set_count(app, 1)
        set_version(app, "v1again")
        reload_ok(srv)
        srv:wait_workers(1, 30)
        rows = status_rows(srv)
        assert.are.equal(1, #rows)
        assert_fresh(srv, "v1again m1")
        assert.are.equal(0, srv:stop())
    end)

    it("a worker killed after a reload is replaced by the new code",
    function()
        local srv, app = setup()
        srv:expect_error("signal 9")
        srv:expect_error("Killed")
        set_version(app, "v2")
        local gen = reload_ok(srv)
        local before = srv:wait_workers(2, 30)
        assert.is_true(server.kill(before[1], "KILL"))
        local after = server.wait_until(function()
            local w = srv:workers()
            if #w == 2 and w[1] ~= before[1] and w[2] ~= before[1] then
                return w
            end
        end, 30)
        assert.is_truthy(after, "killed worker not replaced\n" ..
            server.tail(srv:log()))
        srv:wait_workers(2, 30)
        -- the replacement runs the new code: every worker answers v2 ...
        for _ = 1, 20 do
            assert.are.equal("v2 m1", (life.text_request(srv.port, "q", 10)))
        end
        -- ... and status shows it in the current generation
        local rows = status_rows(srv)
        assert.are.equal(2, #rows)
        for _, row in ipairs(rows) do assert.are.equal(gen, row.gen) end
        assert.are.equal(0, srv:stop())
    end)

    it("reloads asked for back to back are all carried out", function()
        local srv, app = setup()
        -- three SIGUSR1 at once, then the command: the last code wins
        set_version(app, "vq")
        for _ = 1, 3 do server.kill(srv.pid, "USR1") end
        set_version(app, "vlast")
        reload_ok(srv)
        server.wait_until(function()
            return #srv:workers() == 2
        end, 30)
        assert_fresh(srv, "vlast m1")
        srv:wait_workers(2, 30)
        assert.are.equal(0, srv:stop())
    end)
end)
