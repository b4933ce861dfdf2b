--- Helpers shared by the life-cycle specs (daemon, reload, graceful,
-- recycle). Not a spec itself (no "_spec" in the name).
--
-- Apps are copied into a fresh temp dir per test, and LUASERV_RUN_DIR points
-- at a run dir inside it, so the control socket, default pid file and daemon
-- log never collide with other tests or suites.
local server = require "helpers.server"
local socket = require "socket"

local _M = {}

local shquote = server.shquote
local readfile = server.readfile

local dirs = {}
local daemons = {}
local seq = 0

local function sh(cmd)
    local ok, how, code = os.execute(cmd)
    if how == "exit" then return code end
    return ok and 0 or 128 + (code or 0)
end
_M.sh = sh

--- A new temp dir (removed by cleanup()) with a run/ dir inside.
function _M.tmpdir()
    local d = server.capture("mktemp -d " ..
        shquote((os.getenv("TMPDIR") or "/tmp") .. "/luaserv-life-XXXXXX"))
    assert(d ~= "", "mktemp failed")
    sh("mkdir -p " .. shquote(d .. "/run"))
    dirs[#dirs + 1] = d
    return d
end

function _M.writefile(path, text)
    local tmp = path .. ".tmp"
    local f = assert(io.open(tmp, "wb"))
    f:write(text)
    f:close()
    assert(os.rename(tmp, path))
end

--- Copy fixture files (names under spec/fixtures/apps) into dir.
function _M.copy_fixtures(dir, ...)
    for _, name in ipairs({ ... }) do
        local src = server.abspath("spec/fixtures/apps/" .. name)
        local text = assert(readfile(src), "no fixture " .. name)
        _M.writefile(dir .. "/" .. name, text)
    end
end

--- Replace the first match of Lua pattern pat in file with repl.
function _M.edit(path, pat, repl)
    local text = assert(readfile(path))
    local new, n = text:gsub(pat, repl, 1)
    assert(n == 1, "pattern " .. pat .. " not found in " .. path)
    _M.writefile(path, new)
end

--- Run `luaserv args...` to completion (bounded by timeout, default 60 s);
-- unlike server.run it does not kill what the command leaves running (a
-- daemon), but tags it with tag (LUASERV_TEST_ID) so cleanup finds it.
-- Returns {code, stdout, stderr}.
function _M.ctl(args, env, tag, timeout)
    seq = seq + 1
    local base = os.tmpname()
    local parts = {}
    local e = {}
    for k, v in pairs(env or {}) do e[k] = v end
    e.LUASERV_TEST_ID = tag or e.LUASERV_TEST_ID or
        ("ctl-" .. os.time() .. "-" .. seq)
    for k, v in pairs(e) do parts[#parts + 1] = k .. "=" .. shquote(v) end
    local argv = {}
    for i, a in ipairs(args) do argv[i] = shquote(a) end
    local cmd = string.format("%s timeout -k 5 %d %s %s </dev/null >%s 2>%s",
        table.concat(parts, " "), timeout or 60, shquote(server.bin),
        table.concat(argv, " "), shquote(base .. ".out"),
        shquote(base .. ".err"))
    local code = sh(cmd)
    local r = {
        code = code,
        stdout = readfile(base .. ".out") or "",
        stderr = readfile(base .. ".err") or "",
    }
    os.remove(base)
    os.remove(base .. ".out")
    os.remove(base .. ".err")
    return r
end

function _M.describe_run(r)
    return string.format("exit %s\n--- stdout ---\n%s\n--- stderr ---\n%s",
        tostring(r.code), r.stdout, r.stderr)
end

--- A daemon handle: d.app, d.dir, d.env, d.tag; d:ctl(cmd...) runs a
-- command against it. Started with start_daemon, stopped by cleanup().
local Daemon = {}
Daemon.__index = Daemon

function Daemon:ctl(...)
    local args = { ... }
    local argv = {}
    for _, a in ipairs(self.pre or {}) do argv[#argv + 1] = a end
    argv[#argv + 1] = self.app
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    return _M.ctl(argv, self.env, self.tag)
end

function Daemon:procs()
    return server.tagged(self.tag)
end

function Daemon:log()
    local f = server.capture("ls " .. shquote(self.dir .. "/run") ..
        "/*.log 2>/dev/null | head -1")
    return f ~= "" and (readfile(f) or "") or ""
end

--- A daemon-ready handle for app (an absolute path in dir): nothing runs
-- yet; h:ctl("-d") would start it.
function _M.daemon(dir, app, extra_env)
    seq = seq + 1
    local port = server.free_port()
    local env = {
        LUASERV_RUN_DIR = dir .. "/run",
        LUASERV_TEST_PORT = tostring(port),
        LUASERV_PORT = tostring(port),
    }
    for k, v in pairs(extra_env or {}) do env[k] = v end
    local d = setmetatable({
        app = app, dir = dir, env = env, port = port,
        tag = string.format("life-%d-%d-%d", os.time(),
            math.random(1, 1e9), seq),
    }, Daemon)
    daemons[#daemons + 1] = d
    return d
end

--- Stop every daemon (stop command, then SIGKILL by pid of whatever is
-- left), remove temp dirs. Returns a list of leftover pids found.
function _M.cleanup()
    local left = {}
    for _, d in ipairs(daemons) do
        if #d:procs() > 0 then
            d:ctl("stop")
            server.wait_until(function() return #d:procs() == 0 end, 10)
            for _, p in ipairs(d:procs()) do
                left[#left + 1] = p
                server.kill(p, "KILL")
            end
        end
    end
    daemons = {}
    if not os.getenv("LUASERV_TEST_KEEP_LOGS") then
        for _, d in ipairs(dirs) do sh("rm -rf " .. shquote(d)) end
    end
    dirs = {}
    return left
end

--- Start a foreground instance (server.start, so its log is checked on
-- stop) of dir/name, with LUASERV_RUN_DIR in dir and the default pid file,
-- so that `luaserv APP reload|status|stop` find it.
function _M.start(dir, name, opts)
    opts = opts or {}
    opts.env = opts.env or {}
    opts.env.LUASERV_RUN_DIR = dir .. "/run"
    opts.pidfile = false
    local srv = server.start(dir .. "/" .. name, opts)
    srv.dir = dir
    srv.ctl_env = { LUASERV_RUN_DIR = dir .. "/run",
                    LUASERV_TEST_PORT = tostring(srv.port) }
    return srv
end

--- Run `luaserv APP cmd...` against a foreground instance from start().
function _M.cmd(srv, ...)
    local argv = { srv.app }
    for _, a in ipairs({ ... }) do argv[#argv + 1] = a end
    return _M.ctl(argv, srv.ctl_env)
end

--- Parse `status` output: list of {id=, pid=, listener=, gen=, state=, ...}.
function _M.parse_status(out)
    local rows = {}
    local cols
    for line in out:gmatch("[^\n]+") do
        if line:match("^id%s+pid") then
            cols = {}
            for w in line:gmatch("%S+") do cols[#cols + 1] = w end
        elseif cols and line:match("^%d+%s+%d+") then
            local row, i = {}, 0
            for w in line:gmatch("%S+") do
                i = i + 1
                if cols[i] then
                    row[cols[i]] = tonumber(w) or w
                end
            end
            rows[#rows + 1] = row
        end
    end
    return rows
end

--- One text:// request on a new connection: returns the reply line or
-- nil, err.
function _M.text_request(port, line, timeout)
    local c = socket.tcp()
    c:settimeout(timeout or 10)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then c:close(); return nil, "connect: " .. tostring(err) end
    ok, err = c:send(line .. "\n")
    if not ok then c:close(); return nil, "send: " .. tostring(err) end
    local reply, rerr = c:receive("*l")
    c:close()
    if not reply then return nil, "receive: " .. tostring(rerr) end
    return reply
end

--- Poll until a fresh connection gets reply `want` for `line`.
function _M.wait_reply(port, line, want, timeout)
    local last
    local got = server.wait_until(function()
        local r, err = _M.text_request(port, line, 5)
        last = r or err
        return r == want
    end, timeout or 20, 0.05)
    return got, last
end

return _M
