--- Build the example cluster on one machine: redis-server, three luaserv
-- hosts running examples/cluster/app.lua, HAProxy in front, and the
-- clients of loadgen.py; used by run.lua (examples/cluster/run.sh) and by
-- spec/integration/cluster_spec.lua. Plain Lua 5.4 + lua-socket + cjson.
--
-- Meant for a network namespace of its own (`unshare -n`, lo up): each
-- "host" binds its own loopback address, 127.0.1.1-3; Redis is on
-- 127.0.2.1 and HAProxy on 127.0.3.1. Every process is started in the
-- background with its output in a file under the cluster's directory,
-- tracked by pid, and stopped by pid (SIGTERM, then SIGKILL).
--
--     local cluster = require "cluster"
--     local c = cluster.new { luaserv = "build/luaserv" }
--     c:start()                       -- redis, h1..h3, haproxy; all UP
--     c:kill_host(2)                  -- kill -9 the master and its workers
--     c:teardown()                    -- everything, by pid
local socket = require "socket"
local cjson = require "cjson"

local _M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"

local function sh(cmd)
    local ok, how, code = os.execute(cmd)
    if how == "exit" then return code end
    return ok and 0 or 128 + (code or 0)
end

local function q(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shquote = q

local function capture(cmd)
    local p = io.popen(cmd, "r")
    local out = p:read("a")
    p:close()
    return (out:gsub("\n$", ""))
end

local function readfile(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end
_M.readfile = readfile

local function abspath(p)
    if p:sub(1, 1) == "/" then return p end
    return capture("pwd") .. "/" .. p
end

--- Poll fn until it returns a truthy value, or timeout seconds pass.
local function wait_until(fn, timeout, interval)
    local deadline = socket.gettime() + (timeout or 10)
    while true do
        local v, x = fn()
        if v then return v, x end
        if socket.gettime() >= deadline then return nil, x end
        socket.sleep(interval or 0.05)
    end
end
_M.wait_until = wait_until
_M.now = socket.gettime

--- Is pid alive (a zombie is not)?
local function alive(pid)
    local s = readfile("/proc/" .. tostring(pid) .. "/stat")
    local st = s and s:match("^%d+ %(.*%) (%a)")
    return st ~= nil and st ~= "Z" and st ~= "X"
end
_M.alive = alive

local function kill(pid, sig)
    return sh("kill -" .. sig .. " " .. math.tointeger(pid) ..
              " 2>/dev/null") == 0
end

local function children(pid)
    local t = {}
    for p in capture("pgrep -P " .. math.tointeger(pid) ..
                     " 2>/dev/null"):gmatch("%d+") do
        t[#t + 1] = tonumber(p)
    end
    return t
end

--- Stop pid: SIGTERM, up to timeout s, then SIGKILL. True when it went on
-- SIGTERM.
local function stop_pid(pid, timeout)
    if not pid or not alive(pid) then return true end
    kill(pid, "TERM")
    if wait_until(function() return not alive(pid) end, timeout or 10) then
        return true
    end
    kill(pid, "KILL")
    wait_until(function() return not alive(pid) end, 5)
    return false
end

-- Run argv (a shell-quoted string) in the background, in the environment
-- env, output to log; returns its pid. A detached shell waits for it (so
-- it is reaped) and is not our child.
local function spawn(env, argv, log)
    local pidfile = log .. ".pid"
    os.remove(pidfile)
    local e = {}
    for k, v in pairs(env or {}) do e[#e + 1] = k .. "=" .. q(v) end
    table.sort(e)
    local inner = string.format("env %s %s </dev/null >>%s 2>&1 & " ..
        "echo $! >%s; wait $!", table.concat(e, " "), argv, q(log),
        q(pidfile))
    sh("sh -c " .. q(inner) .. " >/dev/null 2>&1 </dev/null &")
    local pid = wait_until(function()
        local s = readfile(pidfile)
        return s and tonumber(s:match("%d+"))
    end, 5)
    assert(pid, "could not start " .. argv)
    return pid
end

-- A port free on every address given (bind + listen on each).
local function free_port(addrs)
    for _ = 1, 50 do
        local s = assert(socket.tcp4())
        assert(s:bind("127.0.0.1", 0))
        local _, port = s:getsockname()
        s:close()
        port = tonumber(port)
        local ok = true
        for _, a in ipairs(addrs) do
            local t = assert(socket.tcp4())
            t:setoption("reuseaddr", true)
            if not t:bind(a, port) or not t:listen(1) then ok = false end
            t:close()
        end
        if ok then return port end
    end
    error("no port free on " .. table.concat(addrs, ", "))
end

--- A plain HTTP request on a connection of its own: status, body, headers
-- (or nil, err).
local function http(addr, method, path, body, timeout)
    local host, port = addr:match("^(.+):(%d+)$")
    local c = socket.tcp()
    c:settimeout(timeout or 5)
    local ok, err = c:connect(host, tonumber(port))
    if not ok then c:close() return nil, err end
    c:send(string.format("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close" ..
        "\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s",
        method, path, addr, body and #body or 0, body or ""))
    local text = c:receive("*a")
    c:close()
    local status = tonumber((text or ""):match("^HTTP/1%.%d (%d+)"))
    if not status then return nil, "no response" end
    local head, rest = text:match("^(.-)\r\n\r\n(.*)$")
    local hdrs = {}
    for k, v in (head or ""):gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do
        hdrs[k:lower()] = v
    end
    return status, rest, hdrs
end
_M.http = http

local Cluster = {}
Cluster.__index = Cluster

--- A cluster description; nothing runs yet. opts: luaserv (the binary),
-- redis_server, haproxy, python (paths or names), workers (per host, 2),
-- dir (default: a fresh mktemp -d).
function _M.new(opts)
    opts = opts or {}
    local dir = opts.dir or capture("mktemp -d /tmp/luaserv-cluster-XXXXXX")
    assert(dir ~= "", "mktemp failed")
    local self = setmetatable({
        dir = dir,
        bin = abspath(opts.luaserv or "build/luaserv"),
        redis_bin = opts.redis_server or "redis-server",
        haproxy_bin = opts.haproxy or "haproxy",
        python = opts.python or (io.open("/usr/bin/python3") and
                                 "/usr/bin/python3" or "python3"),
        app = abspath(HERE .. "app.lua"),
        cfg = abspath(HERE .. "haproxy.cfg"),
        loadgen_py = abspath(HERE .. "loadgen.py"),
        workers = opts.workers or 2,
        hosts = {}, loadgens = {}, started = {},
    }, Cluster)
    local port = free_port { "127.0.1.1", "127.0.1.2", "127.0.1.3",
                             "127.0.3.1" }
    local sport = free_port { "127.0.3.1" }
    local rport = free_port { "127.0.2.1" }
    self.lb = "127.0.3.1:" .. port
    self.stats = "127.0.3.1:" .. (sport ~= port and sport or port + 1)
    self.redis = { host = "127.0.2.1", port = rport,
                   addr = "127.0.2.1:" .. rport, dir = dir .. "/redis" }
    for i = 1, 3 do
        local h = { i = i, name = "h" .. i, addr = "127.0.1." .. i .. ":" .. port,
                    rundir = dir .. "/h" .. i }
        h.log = h.rundir .. "/luaserv.log"
        self.hosts[i] = h
    end
    sh("mkdir -p " .. q(self.redis.dir) .. " " .. q(dir .. "/h1") .. " " ..
       q(dir .. "/h2") .. " " .. q(dir .. "/h3"))
    return self
end

-- ---- Redis -----------------------------------------------------------------

local function redis_ping(addr)
    local host, port = addr:match("^(.+):(%d+)$")
    local c = socket.tcp()
    c:settimeout(0.5)
    if not c:connect(host, tonumber(port)) then c:close() return false end
    c:send("PING\r\n")
    local l = c:receive("*l")
    c:close()
    return l == "+PONG"
end

--- Start redis-server on 127.0.2.1, with an append-only file in its
-- directory (so a restart keeps the sessions and the stream).
function Cluster:start_redis()
    local r = self.redis
    r.log = r.dir .. "/redis.log"
    r.pid = spawn(nil, table.concat({ q(self.redis_bin), "--bind", r.host,
        "--port", r.port, "--dir", q(r.dir), "--save", "''",
        "--appendonly", "yes", "--appendfsync", "everysec",
        "--daemonize", "no", "--logfile", q(r.log) }, " "),
        r.dir .. "/stdout.log")
    self.started[r.pid] = "redis-server"
    assert(wait_until(function()
        assert(alive(r.pid), "redis-server exited: " ..
               (readfile(r.log) or ""):sub(-2000))
        return redis_ping(r.addr)
    end, 15), "redis-server did not answer PING on " .. r.addr)
end

--- Stop redis-server (SIGTERM: it writes its AOF and exits).
function Cluster:stop_redis()
    local ok = stop_pid(self.redis.pid, 10)
    self.started[self.redis.pid] = nil
    return ok
end

-- ---- luaserv hosts ---------------------------------------------------------

function Cluster:host_env(h)
    return { CLUSTER_LISTEN = h.addr, CLUSTER_HOST = h.name,
             CLUSTER_REDIS = self.redis.addr,
             CLUSTER_WORKERS = tostring(self.workers),
             LUASERV_RUN_DIR = h.rundir }
end

--- The host's master and its workers, now.
function Cluster:host_pids(i)
    local h = self.hosts[i]
    if not h.pid or not alive(h.pid) then return {} end
    local t = { h.pid }
    for _, p in ipairs(children(h.pid)) do
        t[#t + 1] = p
        h.seen[p] = true
    end
    return t
end

--- Start host i (in the foreground of a detached shell) and wait until it
-- answers /health.
function Cluster:start_host(i)
    local h = self.hosts[i]
    h.pid = spawn(self:host_env(h), q(self.bin) .. " " .. q(self.app), h.log)
    h.seen = {}
    self.started[h.pid] = h.name
    local ok = wait_until(function()
        if not alive(h.pid) then return nil, "exited" end
        self:host_pids(i)
        return http(h.addr, "GET", "/health", nil, 1) == 200
    end, 20)
    assert(ok, h.name .. " did not answer /health on " .. h.addr ..
           "\n" .. (readfile(h.log) or ""):sub(-3000))
end

--- kill -9 host i: its master and every worker at once, as a machine that
-- loses power. Returns the pids killed.
function Cluster:kill_host(i)
    local h = self.hosts[i]
    local pids = self:host_pids(i)
    for _, p in ipairs(pids) do kill(p, "KILL") end
    wait_until(function()
        for _, p in ipairs(pids) do if alive(p) then return false end end
        return true
    end, 5)
    self.started[h.pid] = nil
    return pids
end

--- Run `luaserv APP CMD [args]` for host i (its LUASERV_RUN_DIR finds
-- the instance). Returns exit code, output.
function Cluster:luaserv_cmd(i, ...)
    local h = self.hosts[i]
    local e = {}
    for k, v in pairs(self:host_env(h)) do e[#e + 1] = k .. "=" .. q(v) end
    local args = {}
    for n, a in ipairs { ... } do args[n] = q(a) end
    local out = h.rundir .. "/cmd.out"
    local code = sh(string.format("env %s timeout -k 5 120 %s %s %s >%s 2>&1",
        table.concat(e, " "), q(self.bin), q(self.app),
        table.concat(args, " "), q(out)))
    return code, readfile(out) or ""
end

--- Graceful reload of host i; returns exit code, output.
function Cluster:reload_host(i)
    return self:luaserv_cmd(i, "reload")
end

--- Stop host i: `luaserv APP stop [-g]` (waits until it is gone), then
-- whatever is left is killed by pid. Returns exit code, output.
function Cluster:stop_host(i, graceful)
    local h = self.hosts[i]
    if not h.pid then return 0, "" end
    local code, out = 0, ""
    -- (a master that is gone, kill -9, leaves only leftovers, by pid)
    if alive(h.pid) then
        self:host_pids(i)
        code, out = self:luaserv_cmd(i, "stop", graceful and "-g" or nil)
    end
    stop_pid(h.pid, 10)
    for p in pairs(h.seen) do stop_pid(p, 5) end
    self.started[h.pid] = nil
    return code, out
end

--- Start `luaserv APP stop -g` for host i in the background; returns the
-- pid of that command (it exits once the host is gone).
function Cluster:stop_host_async(i)
    local h = self.hosts[i]
    self:host_pids(i)
    local pid = spawn(self:host_env(h), q(self.bin) .. " " .. q(self.app) ..
                      " stop -g", h.rundir .. "/stop.out")
    self.started[pid] = "luaserv stop -g"
    return pid
end

--- After stop_host_async: wait for the host to be gone, then clean up.
function Cluster:reap_host(i, stop_pid_, timeout)
    local h = self.hosts[i]
    local gone = wait_until(function()
        return not alive(h.pid) and not alive(stop_pid_)
    end, timeout or 30)
    stop_pid(stop_pid_, 5)
    self.started[stop_pid_] = nil
    stop_pid(h.pid, 5)
    for p in pairs(h.seen) do stop_pid(p, 5) end
    self.started[h.pid] = nil
    return gone and true or false
end

-- ---- HAProxy ---------------------------------------------------------------

function Cluster:haproxy_env()
    return { CLUSTER_LB = self.lb, CLUSTER_STATS = self.stats,
             CLUSTER_H1 = self.hosts[1].addr, CLUSTER_H2 = self.hosts[2].addr,
             CLUSTER_H3 = self.hosts[3].addr, CLUSTER_DIR = self.dir }
end

--- Start HAProxy in the foreground (-db) and wait until it sees every
-- running host UP.
function Cluster:start_haproxy()
    self.haproxy_log = self.dir .. "/haproxy.log"
    self.haproxy_pid = spawn(self:haproxy_env(), q(self.haproxy_bin) ..
        " -db -f " .. q(self.cfg), self.haproxy_log)
    self.started[self.haproxy_pid] = "haproxy"
    assert(wait_until(function()
        assert(alive(self.haproxy_pid), "haproxy exited: " ..
               (readfile(self.haproxy_log) or ""):sub(-2000))
        local st = self:status()
        if not st then return false end
        for i, h in ipairs(self.hosts) do
            if h.pid and alive(h.pid) and st["h" .. i] ~= "UP" then
                return false
            end
        end
        return true
    end, 20), "haproxy did not see the hosts UP:\n" ..
        (readfile(self.haproxy_log) or ""):sub(-2000))
end

--- The api backend's view of each host: {h1 = "UP", h2 = "DOWN", ...}
-- (HAProxy's status words: UP, DOWN, "UP 1/2", "DOWN 1/2", MAINT), or nil.
function Cluster:status()
    local code, body = http(self.stats, "GET", "/stats;csv", nil, 1)
    if code ~= 200 then return nil end
    local cols, out
    for line in body:gmatch("[^\n]+") do
        local f = {}
        for v in (line .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
        if line:sub(1, 2) == "# " then
            cols = {}
            f[1] = f[1]:sub(3)
            for n, name in ipairs(f) do cols[name] = n end
        elseif cols and f[cols.pxname] == "api" and
               f[cols.svname]:match("^h%d$") then
            out = out or {}
            out[f[cols.svname]] = f[cols.status]
        end
    end
    return out
end

-- ---- clients ---------------------------------------------------------------

local Loadgen = {}
Loadgen.__index = Loadgen

--- Start loadgen.py MODE through HAProxy (chat: ws://LB/chat, http:
-- http://LB) with extra argv; it takes commands on its stdin.
function Cluster:loadgen(mode, args)
    local n = #self.loadgens + 1
    local lg = setmetatable({ out = self.dir .. "/loadgen" .. n .. ".json",
                              pidfile = self.dir .. "/loadgen" .. n .. ".pid",
                              log = self.dir .. "/loadgen" .. n .. ".log",
                              seq = 0 }, Loadgen)
    local url = mode == "chat" and ("ws://" .. self.lb .. "/chat") or
                ("http://" .. self.lb)
    local a = {}
    for k, v in ipairs(args or {}) do a[k] = q(v) end
    lg.pipe = assert(io.popen(string.format(
        "exec timeout -k 5 900 %s %s %s %s --out %s --pidfile %s %s " ..
        ">%s 2>&1", q(self.python), q(self.loadgen_py), mode, q(url),
        q(lg.out), q(lg.pidfile), table.concat(a, " "), q(lg.log)), "w"))
    lg.pid = wait_until(function()
        local s = readfile(lg.pidfile)
        return s and tonumber(s:match("%d+"))
    end, 10)
    self.loadgens[n] = lg
    assert(lg.pid, "loadgen.py did not start: " .. (readfile(lg.log) or ""))
    assert(wait_until(function() return lg:report_now() end, 10),
           "loadgen.py wrote no report: " .. (readfile(lg.log) or ""))
    return lg
end

--- The last report written (or nil).
function Loadgen:report_now()
    local s = readfile(self.out)
    local ok, r = pcall(cjson.decode, s or "")
    return ok and type(r) == "table" and r or nil
end

--- Send a command and wait for the report it writes.
function Loadgen:cmd(line, timeout)
    self.seq = self.seq + 1
    self.pipe:write(line .. "\n")
    self.pipe:flush()
    local want = self.seq
    return assert(wait_until(function()
        local r = self:report_now()
        return r and r.seq >= want and r
    end, timeout or 20), "loadgen.py did not answer '" .. line .. "': " ..
        (readfile(self.log) or ""):sub(-2000))
end

--- Poll reports ("report" commands) until fn(report) is true; returns the
-- report (or nil, the last one, on timeout).
function Loadgen:wait(fn, timeout)
    local last
    local r = wait_until(function()
        last = self:cmd("report")
        return fn(last) and last
    end, timeout or 20, 0.2)
    return r, last
end

--- "quit": the final report, and the process gone.
function Loadgen:finish()
    if self.done then return self.final end
    self.done = true
    local ok = pcall(function()
        self.pipe:write("quit\n")
        self.pipe:flush()
    end)
    local gone = ok and wait_until(function() return not alive(self.pid) end,
                                   30)
    if not gone then stop_pid(self.pid, 5) end
    self.pipe:close()
    self.final = self:report_now()
    return self.final
end

-- ---- everything ------------------------------------------------------------

--- Start redis, the three hosts and HAProxy; wait until all are UP.
function Cluster:start()
    self:start_redis()
    for i = 1, 3 do self:start_host(i) end
    self:start_haproxy()
end

--- Start again whatever is not running (redis, a host) and wait until
-- HAProxy sees every host UP; so that one failed scenario does not spoil
-- the next.
function Cluster:heal()
    if not self.redis.pid or not alive(self.redis.pid) then
        self:start_redis()
    end
    for i, h in ipairs(self.hosts) do
        if not h.pid or not alive(h.pid) then
            self:stop_host(i)       -- what is left of it, by pid
            self:start_host(i)
        end
    end
    for i = 1, 3 do
        assert(self:wait_status(i, "UP", 10), "h" .. i .. " is not UP")
    end
end

--- End the clients still running (their final reports are kept).
function Cluster:finish_loadgens()
    for _, lg in ipairs(self.loadgens) do
        if not lg.done then pcall(lg.finish, lg) end
    end
end

--- Wait until HAProxy's api backend shows host i as want ("UP", "DOWN");
-- returns the seconds it took, or nil.
function Cluster:wait_status(i, want, timeout)
    local t0 = socket.gettime()
    local ok = wait_until(function()
        local st = self:status()
        return st and st["h" .. i] == want
    end, timeout or 10, 0.02)
    return ok and socket.gettime() - t0 or nil
end

--- Lines of the hosts' logs at [error], [crit] or [alert] (and crashes)
-- that no pattern in expected matches.
function Cluster:bad_log_lines(expected)
    local bad = {}
    for _, h in ipairs(self.hosts) do
        for line in (readfile(h.log) or ""):gmatch("[^\n]+") do
            local hit = line:find("[error]", 1, true) or
                line:find("[crit]", 1, true) or line:find("[alert]", 1, true) or
                line:find("(Segmentation fault)", 1, true) or
                line:find("AddressSanitizer", 1, true) or
                line:find("runtime error:", 1, true)
            if hit then
                local ok = false
                for _, p in ipairs(expected or {}) do
                    if line:find(p) then ok = true end
                end
                if not ok then bad[#bad + 1] = h.name .. ": " .. line end
            end
        end
    end
    return bad
end

--- Stop every process this cluster started, by pid: clients, HAProxy, the
-- hosts (luaserv stop, then SIGKILL for anything left), redis. Returns a
-- list of what had to be killed. Safe to call more than once.
function Cluster:teardown()
    local killed = {}
    for _, lg in ipairs(self.loadgens) do
        if not lg.done then pcall(lg.finish, lg) end
    end
    if self.haproxy_pid and not stop_pid(self.haproxy_pid, 5) then
        killed[#killed + 1] = "haproxy " .. self.haproxy_pid
    end
    self.started[self.haproxy_pid or -1] = nil
    for i, h in ipairs(self.hosts) do
        if h.pid then
            self:host_pids(i)
            if alive(h.pid) and not stop_pid(h.pid, 15) then
                killed[#killed + 1] = h.name .. " master " .. h.pid
            end
            for p in pairs(h.seen) do
                if not stop_pid(p, 5) then
                    killed[#killed + 1] = h.name .. " worker " .. p
                end
            end
            self.started[h.pid] = nil
        end
    end
    if self.redis.pid and not stop_pid(self.redis.pid, 10) then
        killed[#killed + 1] = "redis-server " .. self.redis.pid
    end
    self.started[self.redis.pid or -1] = nil
    for pid, what in pairs(self.started) do
        if not stop_pid(pid, 5) then killed[#killed + 1] = what .. " " .. pid end
    end
    self.started = {}
    return killed
end

--- Remove the cluster's directory (unless keep).
function Cluster:remove(keep)
    if not keep and self.dir:match("^/tmp/luaserv%-cluster%-%w+$") then
        sh("rm -rf " .. q(self.dir))
    end
end

return _M
