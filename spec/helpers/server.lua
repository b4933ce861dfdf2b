--- Spawn, watch and stop the real `luaserv` binary from integration specs.
--
-- Redis' `start_server`/`kill_server` and Test::Nginx's `no_error_log` are the
-- models: every instance gets a free loopback port, runs in the foreground
-- with its stderr in a log file, is tracked by pid (never by name), and is
-- stopped with a bounded SIGTERM -> SIGKILL escalation. `stop()` fails the
-- spec when the log holds sanitizer reports or `[error]` lines that the spec
-- did not announce with `srv:expect_error(pattern)`.
--
-- There is no luaposix for Lua 5.4 here, so process control goes through the
-- shell and /proc. Every process we start carries a unique `LUASERV_TEST_ID`
-- in its environment; scanning /proc/*/environ for it finds the master and
-- all its workers, even orphaned ones, so cleanup is always by pid.
--
-- Stricter checks (issue 7): stop() also fails on [crit]/[alert] lines not
-- announced with expect_error, on a zombie child of the master that is not
-- reaped, and cleanup() on any process of this busted run left behind
-- (tagged with the run's LUASERV_TEST_ID prefix) and on zombie children of
-- busted itself. When the suite runs in a network namespace of its own
-- (root: .ci/run uses `unshare -n`), the kernel TCP counters (nstat) are
-- recorded at start and stop, and `no_resets = true` (or
-- srv:assert_no_resets()) demands that no reset, abort-on-close or listen
-- drop happened meanwhile. LUASERV_TEST_RELOAD=1 makes start() reload every
-- server once it is up, so the suite runs against a second generation.

local socket = require "socket"

local _M = {}

local BIN = os.getenv("LUASERV_BIN") or "./build/luaserv"
_M.bin = BIN

-- Generous bounds: the machine has two shared cores and may run sanitizer
-- builds. These bound waits; no spec asserts on elapsed time.
_M.START_TIMEOUT = tonumber(os.getenv("LUASERV_TEST_START_TIMEOUT")) or 15
_M.STOP_TIMEOUT = 10

local live = {}        -- handles not yet stopped, for server.cleanup()
local seq = 0
local strays = {}      -- processes server.run() found left behind
-- Every LUASERV_TEST_ID of this busted run starts with this, so that one
-- /proc scan finds whatever any of its tests left running.
local SESSION = string.format("%d-%d", os.time(), math.random(1, 1e9))
_M.session = SESSION

-- Remember the running test's name so failures raised from after_each
-- (server.cleanup) still say which test started the server.
local current_test = "?"
do
    local ok, busted = pcall(require, "busted")
    if ok and type(busted) == "table" and busted.subscribe then
        local function full_name(element)
            local t = {}
            local ctx = busted.context
            while element and element.name do
                table.insert(t, 1, element.name)
                element = ctx and ctx.parent and ctx.parent(element)
            end
            return table.concat(t, " ")
        end
        busted.subscribe({ "test", "start" }, function(element)
            local okn, name = pcall(full_name, element)
            current_test = okn and name or tostring(element.name)
            return nil, true
        end)
    end
end

local function tmpdir()
    return os.getenv("TMPDIR") or "/tmp"
end

local function shquote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shquote = shquote

local function readfile(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end
_M.readfile = readfile

local function sh(cmd)
    local ok, how, code = os.execute(cmd)
    if how == "exit" then return code end
    return ok and 0 or 128 + (code or 0)
end

--- Run a shell command and return its stdout (trailing newline stripped).
local function capture(cmd)
    local p = io.popen(cmd, "r")
    local out = p:read("a")
    p:close()
    return (out:gsub("\n$", ""))
end
_M.capture = capture

--- Poll fn() until it returns a truthy value or timeout seconds pass.
-- Returns fn's first result (or nil on timeout) and its second.
function _M.wait_until(fn, timeout, interval)
    local deadline = socket.gettime() + (timeout or 10)
    interval = interval or 0.02
    while true do
        local v, extra = fn()
        if v then return v, extra end
        if socket.gettime() >= deadline then return nil, extra end
        socket.sleep(interval)
    end
end
local wait_until = _M.wait_until

--- The state letter from /proc/PID/stat ("R", "S", "Z", ...) or nil. The
-- command name in parentheses may itself hold parentheses (a worker's
-- "worker api #0 (new generation)" cut to 15 bytes): match to the last one.
function _M.proc_state(pid)
    local s = readfile("/proc/" .. tostring(pid) .. "/stat")
    if not s then return nil end
    return s:match("^%d+ %(.*%) (%a)")
end

--- Is pid a live process? A zombie counts as dead: an orphan reparented to
-- a pid 1 that does not reap would otherwise look alive forever.
function _M.alive(pid)
    local st = _M.proc_state(pid)
    return st ~= nil and st ~= "Z" and st ~= "X"
end
local alive = _M.alive

--- Parent pid of pid, or nil.
function _M.ppid(pid)
    local s = readfile("/proc/" .. tostring(pid) .. "/stat")
    if not s then return nil end
    return tonumber(s:match("^%d+ %(.*%) %a (%d+)"))
end

--- utime + stime of pid in clock ticks (see proc(5)), or nil.
function _M.cpu_ticks(pid)
    local s = readfile("/proc/" .. tostring(pid) .. "/stat")
    if not s then return nil end
    local rest = s:match("^%d+ %(.*%) (%a .*)$")
    local f = {}
    for w in rest:gmatch("%S+") do f[#f + 1] = w end
    -- rest starts at field 3 (state); utime is field 14, stime field 15.
    return tonumber(f[12]) + tonumber(f[13])
end

--- Direct children of pid (any state but zombie), sorted.
function _M.children(pid)
    local out = capture("pgrep -P " .. tonumber(pid) .. " 2>/dev/null")
    local t = {}
    for p in out:gmatch("%d+") do
        p = tonumber(p)
        if alive(p) then t[#t + 1] = p end
    end
    table.sort(t)
    return t
end

--- Children of pid that are zombies (exited, not reaped), sorted.
function _M.zombies(pid)
    local out = capture("ps -eo pid=,ppid=,stat= 2>/dev/null")
    local t = {}
    for p, pp, st in out:gmatch("(%d+)%s+(%d+)%s+(%S+)") do
        if tonumber(pp) == tonumber(pid) and st:sub(1, 1) == "Z" then
            t[#t + 1] = tonumber(p)
        end
    end
    table.sort(t)
    return t
end

--- This (busted) process's pid: /proc/self is the reader.
function _M.self_pid()
    local s = readfile("/proc/self/stat")
    return s and tonumber(s:match("^(%d+)"))
end

--- All live processes whose environment carries LUASERV_TEST_ID=id (with
-- prefix = true: an id that starts with id).
function _M.tagged(id, prefix)
    local needle = "\0LUASERV_TEST_ID=" .. id .. (prefix and "" or "\0")
    local out = capture("ls /proc 2>/dev/null")
    local t = {}
    for p in out:gmatch("%d+") do
        local env = readfile("/proc/" .. p .. "/environ")
        if env and ("\0" .. env .. "\0"):find(needle, 1, true) then
            p = tonumber(p)
            if alive(p) then t[#t + 1] = p end
        end
    end
    table.sort(t)
    return t
end

function _M.kill(pid, sig)
    return sh("kill -" .. (sig or "TERM") .. " " .. tonumber(pid) ..
              " 2>/dev/null") == 0
end

--- A loopback TCP port that nobody listens on right now.
function _M.free_port()
    local s = assert(socket.tcp())
    assert(s:bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return tonumber(port)
end

--- Can we bind + listen on 127.0.0.1:port (is it free)?
function _M.port_free(port)
    -- tcp4(): socket.tcp() creates its fd lazily, so setoption before bind
    -- would silently fail and TIME_WAIT leftovers would block the bind.
    local s = assert(socket.tcp4())
    assert(s:setoption("reuseaddr", true))
    local ok = s:bind("127.0.0.1", port)
    if ok then ok = s:listen(1) end
    s:close()
    return ok and true or false
end

local function can_connect_tcp(port)
    local c = socket.tcp()
    c:settimeout(0.5)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    return ok and true or false
end

local function can_connect_unix(path)
    local unix = require "socket.unix"
    local c = unix.stream()
    c:settimeout(0.5)
    local ok = c:connect(path)
    c:close()
    return ok and true or false
end

local function new_id()
    seq = seq + 1
    return string.format("%s-%d", SESSION, seq)
end

local function env_prefix(env)
    local parts = {}
    local keys = {}
    for k in pairs(env) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
        parts[#parts + 1] = k .. "=" .. shquote(env[k])
    end
    return table.concat(parts, " ")
end

local function argv_string(args)
    local t = {}
    for i, a in ipairs(args) do t[i] = shquote(a) end
    return table.concat(t, " ")
end

local function tail(s, n)
    n = n or 60
    local lines = {}
    for l in (s or ""):gmatch("[^\n]*\n?") do
        if l ~= "" then lines[#lines + 1] = l end
    end
    local from = math.max(1, #lines - n + 1)
    return table.concat(lines, "", from)
end
_M.tail = tail

-- Plain strings that always fail a spec: sanitizer reports, and a process
-- of ours dying of a crash signal (the master logs "killed by signal 11
-- (Segmentation fault)"; kill -9 from a spec is "Killed" and not listed).
_M.SANITIZER = {
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "(Segmentation fault)",
    "(Aborted)",
    "(Bus error)",
    "(Floating point exception)",
    "(Illegal instruction)",
    "core dumped",
}

--- Check a log text: sanitizer reports, crashes, and [error], [crit] or
-- [alert] lines that no expected pattern matches.
-- Returns nil when clean, or a message describing what was found.
function _M.scan_log(text, expected)
    local bad = {}
    for line in (text or ""):gmatch("[^\n]+") do
        for _, pat in ipairs(_M.SANITIZER) do
            if line:find(pat, 1, true) then
                bad[#bad + 1] = "crash/sanitizer: " .. line
                break
            end
        end
        if line:find("[error]", 1, true) or line:find("[crit]", 1, true) or
           line:find("[alert]", 1, true) then
            local ok = false
            for _, pat in ipairs(expected or {}) do
                if line:find(pat) then ok = true break end
            end
            if not ok then bad[#bad + 1] = "unexpected: " .. line end
        end
    end
    if #bad == 0 then return nil end
    return table.concat(bad, "\n")
end

-- ---- kernel TCP counters (nstat) ----------------------------------------

-- What "no connection was reset" means, measured: RSTs sent (by anyone in
-- the namespace: server and test clients), closes that discarded unread
-- data (those send an RST), and connections the listen queue dropped.
_M.TCP_COUNTERS = { "TcpOutRsts", "TcpExtTCPAbortOnClose",
                    "TcpExtListenDrops", "TcpExtListenOverflows" }

local netns_state   -- nil: not checked yet; else { ok = bool, why = str }

--- Is this process in a network namespace of its own (so that the kernel
-- counters are the suite's)? Returns ok, reason.
function _M.private_netns()
    if netns_state == nil then
        local mine = capture("readlink /proc/self/ns/net 2>/dev/null")
        local init = capture("readlink /proc/1/ns/net 2>/dev/null")
        -- A namespace made by `unshare -n` has nothing but lo; used when
        -- pid 1's namespace cannot be read (some sandboxes hide it).
        local links = capture("ip -o link show 2>/dev/null")
        local only_lo = links:match("^%d+: lo[:@]") and
            not links:find("\n", 1, true)
        if capture("id -u") ~= "0" then
            netns_state = { ok = false, why = "not root" }
        elseif capture("command -v nstat") == "" then
            netns_state = { ok = false, why = "nstat not installed" }
        elseif (init ~= "" and mine ~= init) or (init == "" and only_lo) then
            netns_state = { ok = true, why = "private netns " .. mine }
        else
            netns_state = { ok = false,
                            why = "not in a network namespace of its own" }
        end
    end
    return netns_state.ok, netns_state.why
end

local noted = false
local function note_skip(why)
    if noted then return end
    noted = true
    io.stderr:write("note: TCP reset checks skipped (" .. why .. "); run " ..
        "as root inside `unshare -n` to enable them (.ci/run does)\n")
end

--- The counters now, as a table name -> number (absolute, history kept
-- untouched: -s).
function _M.tcp_counters()
    local out = capture("nstat -asz " .. table.concat(_M.TCP_COUNTERS, " ") ..
        " 2>/dev/null")
    local t = {}
    for _, name in ipairs(_M.TCP_COUNTERS) do
        t[name] = tonumber(out:match(name .. "%s+(%d+)")) or 0
    end
    return t
end

-- Counters once they stop moving (a probe connection of start() may still
-- be closing): two equal readings in a row, within a second.
local function settled_counters()
    local prev = _M.tcp_counters()
    for _ = 1, 10 do
        socket.sleep(0.1)
        local cur = _M.tcp_counters()
        local same = true
        for k, v in pairs(cur) do if prev[k] ~= v then same = false end end
        if same then return cur end
        prev = cur
    end
    return prev
end

local Server = {}
Server.__index = Server

--- (Re)start counting TCP resets from now (start() does it once ready).
function Server:mark_counters()
    if _M.private_netns() then self.tcp0 = settled_counters() end
end

--- Counters that moved since the mark: name -> delta (only non-zero ones);
-- nil when there is no private namespace to measure in.
function Server:tcp_delta()
    if not self.tcp0 then return nil end
    local now, d = _M.tcp_counters(), {}
    for k, v in pairs(now) do
        if v ~= self.tcp0[k] then d[k] = v - self.tcp0[k] end
    end
    return d
end

-- The counters a no_resets option covers: true means all of them, a list
-- names some (a client that closes with a response unread resets by design).
local function pick(d, which)
    if type(which) ~= "table" then return d end
    local t = {}
    for _, k in ipairs(which) do t[k] = d[k] end
    return t
end

local function describe_delta(d)
    local t = {}
    for _, k in ipairs(_M.TCP_COUNTERS) do
        if d[k] then t[#t + 1] = k .. " +" .. d[k] end
    end
    return table.concat(t, ", ")
end

--- Fail unless no TCP reset, abort-on-close or listen drop happened since
-- the server started (or since mark_counters()); which: a list of counter
-- names to check (default all). Skipped, with a note,
-- outside a private network namespace.
function Server:assert_no_resets(what, which)
    local ok, why = _M.private_netns()
    if not ok then note_skip(why) return end
    local d = self:tcp_delta()
    d = d and pick(d, which)
    if d and next(d) then
        error(string.format("%sTCP counters moved: %s\n--- log ---\n%s",
            what and (what .. ": ") or "", describe_delta(d),
            tail(self:log(), 30)), 2)
    end
end

-- The log as written, every line (what stop() scans).
function Server:rawlog()
    return readfile(self.logfile) or ""
end

--- The whole log (stdout + stderr of the master and its workers). After
-- the reload LUASERV_TEST_RELOAD makes start() do, the lines of the workers
-- that reload retired are left out: they ran before the test began, and
-- their per-worker connection ids would collide with the new workers'.
function Server:log()
    local text = self:rawlog()
    if not self.hidden then return text end
    local keep = {}
    for line in text:gmatch("[^\n]*\n?") do
        local pid = line:match("^%S+ %S+ %[%a+%] (%d+) ")
        if line ~= "" and not (pid and self.hidden[tonumber(pid)]) then
            keep[#keep + 1] = line
        end
    end
    return table.concat(keep)
end

--- Lines of the log that contain plain text s.
function Server:log_lines(s)
    local t = {}
    for line in self:log():gmatch("[^\n]+") do
        if line:find(s, 1, true) then t[#t + 1] = line end
    end
    return t
end

--- Number of log lines matching Lua pattern pat.
function Server:count_log(pat)
    local n = 0
    for line in self:log():gmatch("[^\n]+") do
        if line:find(pat) then n = n + 1 end
    end
    return n
end

--- Poll until the log contains plain text s (at least n times). Returns
-- the matching lines or nil on timeout.
function Server:wait_log(s, timeout, n)
    n = n or 1
    return wait_until(function()
        local lines = self:log_lines(s)
        if #lines >= n then return lines end
    end, timeout or 10)
end

--- Declare an [error] (or [crit]/[alert]) log line as expected (Lua
-- pattern).
function Server:expect_error(pattern)
    self.expected[#self.expected + 1] = pattern
    return self
end

--- The master's live children: its workers (and, briefly at start, the
-- validator). Every pid seen is remembered for cleanup.
function Server:workers()
    local t = _M.children(self.pid)
    for _, p in ipairs(t) do self.seen[p] = true end
    return t
end

--- Poll until the master has exactly n children (on two consecutive polls,
-- so a short-lived validator is not counted). Returns them or fails.
function Server:wait_workers(n, timeout)
    local prev
    local got = wait_until(function()
        local w = self:workers()
        local key = table.concat(w, ",")
        if #w == n and key == prev then return w end
        prev = key
    end, timeout or _M.START_TIMEOUT, 0.05)
    if not got then
        error(string.format("expected %d workers of master %d, have {%s}\n" ..
            "--- log ---\n%s", n, self.pid, table.concat(self:workers(), ","),
            tail(self:log())), 2)
    end
    return got
end

--- Is the master still running?
function Server:running()
    return alive(self.pid)
end

--- Wait for the master to exit; returns its exit code (128+sig when
-- killed by a signal) or nil on timeout.
function Server:wait_exit(timeout)
    if self.rc then return self.rc end
    local rc = wait_until(function()
        local s = readfile(self.rcfile)
        if s and s:match("%d+") then return tonumber(s:match("%d+")) end
    end, timeout or _M.STOP_TIMEOUT)
    self.rc = rc
    return rc
end

--- All live processes of this instance (master, workers, orphans).
function Server:procs()
    return _M.tagged(self.id)
end

local function kill_leftovers(self)
    local left = self:procs()
    for _, p in ipairs(left) do _M.kill(p, "KILL") end
    for p in pairs(self.seen) do
        if alive(p) then left[#left + 1] = p; _M.kill(p, "KILL") end
    end
    return left
end

--- Remove the instance's temp files, unless LUASERV_TEST_KEEP_LOGS is set.
function Server:remove_files()
    if os.getenv("LUASERV_TEST_KEEP_LOGS") then return end
    os.remove(self.logfile)
    os.remove(self.pidfile)
    os.remove(self.rcfile)
    if self.master_pidfile then os.remove(self.master_pidfile) end
    if self.sock then
        os.remove(self.sock)
        os.remove(self.sock .. ".text")
    end
end

--- Forcefully remove everything of this instance; no checks. Safe to call
-- more than once.
function Server:kill()
    if self.pid and alive(self.pid) then _M.kill(self.pid, "KILL") end
    kill_leftovers(self)
    self:wait_exit(5)
    live[self] = nil
    self.stopped = true
end

--- Stop: SIGTERM (or `sig`), bounded wait, SIGKILL escalation, then kill
-- any leftover process by pid. Raises (failing the spec) if the master did
-- not exit on its own, processes were left behind, or the log holds
-- sanitizer reports or unexpected [error] lines. Returns the exit code.
function Server:stop(sig)
    if self.stopped then return self.rc end
    self.stopped = true
    live[self] = nil
    local problems = {}

    self:workers()   -- remember the current workers' pids
    -- A child the master has not reaped for a while is a reaping bug (a
    -- fresh one may be waiting for its SIGCHLD to be handled).
    if alive(self.pid) and #_M.zombies(self.pid) > 0 then
        local z = wait_until(function()
            local t = _M.zombies(self.pid)
            return #t == 0, t
        end, 3)
        if not z then
            local t = _M.zombies(self.pid)
            if #t > 0 then
                problems[#problems + 1] = "master " .. self.pid ..
                    " leaves zombie children unreaped: " .. table.concat(t, ",")
            end
        end
    end
    if alive(self.pid) then
        _M.kill(self.pid, sig or "TERM")
    end
    local rc = self:wait_exit(_M.STOP_TIMEOUT)
    if not rc then
        problems[#problems + 1] = "master " .. self.pid ..
            " did not exit within " .. _M.STOP_TIMEOUT .. "s of SIG" ..
            (sig or "TERM") .. "; killed"
        _M.kill(self.pid, "KILL")
        rc = self:wait_exit(5)
    end

    -- Workers must be gone shortly after the master.
    local gone = wait_until(function()
        for p in pairs(self.seen) do if alive(p) then return false end end
        return #self:procs() == 0
    end, 5)
    if not gone then
        local left = kill_leftovers(self)
        problems[#problems + 1] = "processes left after master exit: " ..
            table.concat(left, ",")
    end

    local bad = _M.scan_log(self:rawlog(), self.expected)
    if bad then problems[#problems + 1] = bad end
    if self.no_resets then
        local ok, why = _M.private_netns()
        local d = ok and self:tcp_delta()
        d = d and pick(d, self.no_resets)
        if not ok then
            note_skip(why)
        elseif d and next(d) then
            problems[#problems + 1] = "no_resets: TCP counters moved " ..
                "between start and stop: " .. describe_delta(d)
        end
    end
    -- A plain stop must not need the master's own SIGKILL escalation:
    -- that means a worker hung instead of stopping.
    if (sig or "TERM") == "TERM" or sig == "INT" then
        for line in self:log():gmatch("[^\n]+") do
            if line:find(" master: ", 1, true) and
               line:find("sending SIGKILL", 1, true) then
                problems[#problems + 1] = "worker hung on stop: " .. line
            end
        end
    end

    if #problems > 0 then
        error("luaserv " .. self.app .. " (in or after test: " ..
            current_test .. ")\n" .. table.concat(problems, "\n") ..
            "\n--- log (" .. self.logfile ..
            ") ---\n" .. tail(self:rawlog()), 2)
    end
    self:remove_files()
    return rc
end

-- LUASERV_TEST_RELOAD=1: every start() reloads the server once it is up.
_M.RELOAD = (os.getenv("LUASERV_TEST_RELOAD") or "0") ~= "0"

--- The master's generation, from its process title ("luaserv: master APP
-- (generation N)" after a reload), or 1.
function Server:generation()
    local cmd = readfile("/proc/" .. self.pid .. "/cmdline") or ""
    return tonumber(cmd:match("%(generation (%d+)%)")) or 1
end

--- Reload (SIGHUP) and wait until the next generation serves; fails on a
-- failed or aborted reload. Returns the new generation.
function Server:reload(timeout)
    local gen = self:generation()
    local fails = self:count_log("reload failed") +
                  self:count_log("reload aborted")
    _M.kill(self.pid, "HUP")
    local got = wait_until(function()
        if not alive(self.pid) then return "exited" end
        if self:count_log("reload failed") +
           self:count_log("reload aborted") > fails then
            return "failed"
        end
        if self:generation() > gen then return "ok" end
    end, timeout or 60, 0.05)
    if got ~= "ok" then
        error(string.format("reload of master %d: %s\n--- log ---\n%s",
            self.pid, got or "timed out", tail(self:log())), 2)
    end
    return self:generation()
end

--- Start `luaserv [args...] APP [start]` in the background.
-- opts.env: extra environment; opts.args: extra argv before APP;
-- opts.command: command after APP (default none = start);
-- opts.workers: sets LUASERV_TEST_WORKERS (fixture apps use it as count);
-- opts.bin: the binary to run (default LUASERV_BIN, or ./build/luaserv);
-- opts.unix: true to give the app a socket path in LUASERV_TEST_SOCK and
--   wait on it instead of the TCP port;
-- opts.pidfile: false to not pass "-p <temp file>" (the default pid file,
--   derived from the app path, is then used);
-- opts.wait: false to return without waiting for the port;
-- opts.wait_workers: also wait until the master has that many children;
-- opts.no_resets: stop() fails if TCP counters moved (true: any of
--   TCP_COUNTERS, or a list of names; see assert_no_resets);
-- opts.reload: false to opt out of LUASERV_TEST_RELOAD for this server.
local function check_bin(level, bin)
    local f = io.open(bin, "rb")
    if not f then
        error("luaserv binary not found at " .. bin .. " (build it with " ..
              "cmake, or set LUASERV_BIN)", level + 1)
    end
    f:close()
end

function _M.start(app, opts)
    opts = opts or {}
    local bin = opts.bin or BIN
    check_bin(2, bin)
    local id = new_id()
    local dir = tmpdir()
    local base = dir .. "/luaserv-spec-" .. id
    local self = setmetatable({
        id = id, app = app, expected = {}, seen = {},
        logfile = base .. ".log", pidfile = base .. ".pid",
        rcfile = base .. ".rc",
        port = opts.port or _M.free_port(),
    }, Server)

    local env = {
        LUASERV_TEST_ID = id,
        LUASERV_TEST_PORT = tostring(self.port),
        LUASERV_PORT = tostring(self.port),
    }
    if opts.workers then env.LUASERV_TEST_WORKERS = tostring(opts.workers) end
    if opts.unix then
        self.sock = base .. ".sock"
        env.LUASERV_TEST_SOCK = self.sock
    end
    for k, v in pairs(opts.env or {}) do env[k] = v end

    -- A pid file of its own, so that two instances of one app (two suites
    -- running at once) do not collide on the default, path-derived one.
    local argv = {}
    if opts.pidfile ~= false then
        self.master_pidfile = base .. ".master.pid"
        argv[#argv + 1] = "-p"
        argv[#argv + 1] = self.master_pidfile
    end
    for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
    argv[#argv + 1] = app
    if opts.command then argv[#argv + 1] = opts.command end

    -- The inner `&` makes sh fork and exec the binary, so $! is the master's
    -- pid; the wrapper then waits and records the exit status.
    local inner = string.format(
        "%s %s %s </dev/null >%s 2>&1 & echo $! >%s; wait $!; echo $? >%s",
        env_prefix(env), shquote(bin), argv_string(argv),
        shquote(self.logfile), shquote(self.pidfile), shquote(self.rcfile))
    local cmd = "sh -c " .. shquote(inner) .. " >/dev/null 2>&1 </dev/null &"
    sh(cmd)

    local pid = wait_until(function()
        local s = readfile(self.pidfile)
        return s and tonumber(s:match("%d+"))
    end, 5)
    if not pid then error("luaserv did not start (no pid file)", 2) end
    self.pid = pid
    live[self] = true

    if opts.wait ~= false then
        local ready = wait_until(function()
            if not alive(pid) then return "exited" end
            if self.sock then return can_connect_unix(self.sock) end
            return can_connect_tcp(self.port)
        end, opts.timeout or _M.START_TIMEOUT, 0.05)
        if ready ~= true then
            local why = alive(pid) and "did not accept on " ..
                (self.sock or ("127.0.0.1:" .. self.port)) .. " within " ..
                (opts.timeout or _M.START_TIMEOUT) .. "s" or
                ("exited with code " .. tostring(self:wait_exit(2)))
            local log = self:log()
            self:kill()
            error(string.format("luaserv %s: master %d %s\n--- log ---\n%s",
                app, pid, why, tail(log)), 2)
        end
    end
    if opts.wait_workers then
        local ok, err = pcall(self.wait_workers, self, opts.wait_workers)
        if not ok then self:kill(); error(err, 2) end
    end
    if _M.RELOAD and opts.wait ~= false and not opts.command and
       opts.reload ~= false then
        -- every first-generation worker is up (and so known) once the
        -- master says "ready" (an app may log warnings only: then go on
        -- after a while); theirs are the lines log() will leave out
        local ok, err = pcall(function()
            self:wait_log("master: ready:", 5)
            local old = {}
            for _, p in ipairs(self:workers()) do old[p] = true end
            self:reload()
            self.hidden = old
        end)
        if not ok then self:kill(); error(err, 2) end
        if opts.wait_workers then
            ok, err = pcall(self.wait_workers, self, opts.wait_workers)
            if not ok then self:kill(); error(err, 2) end
        end
    end
    self.no_resets = opts.no_resets
    if opts.wait ~= false then self:mark_counters() end
    return self
end

--- Stop every instance still running (for after_each). Raises like stop()
-- after all of them have been stopped.
function _M.cleanup()
    local errs = {}
    local list = {}
    for s in pairs(live) do list[#list + 1] = s end
    for _, s in ipairs(list) do
        local ok, err = pcall(s.stop, s)
        if not ok then errs[#errs + 1] = tostring(err) end
    end
    for _, e in ipairs(strays) do errs[#errs + 1] = e end
    strays = {}
    -- Anything of this busted run still alive was left behind by a test.
    local left = _M.tagged(SESSION .. "-", true)
    if #left > 0 then
        for _, p in ipairs(left) do _M.kill(p, "KILL") end
        errs[#errs + 1] = "processes of this test run left behind " ..
            "(killed): " .. table.concat(left, ",") .. " (in or after test: " ..
            current_test .. ")"
    end
    local me = _M.self_pid()
    local z = me and wait_until(function()
        local t = _M.zombies(me)
        return #t == 0, t
    end, 2)
    if me and not z then
        errs[#errs + 1] = "zombie children of busted (pid " .. me .. "): " ..
            table.concat(_M.zombies(me), ",")
    end
    if #errs > 0 then error(table.concat(errs, "\n"), 2) end
end

--- Kill every instance still running without any checks.
function _M.kill_all()
    local list = {}
    for s in pairs(live) do list[#list + 1] = s end
    for _, s in ipairs(list) do s:kill() end
end

--- Run a one-shot command: `luaserv args...` in the foreground, bounded by
-- `timeout`. Returns a table {code=, stdout=, stderr=, leftover={pids}}.
-- Any process it left behind is killed (by pid) and listed in leftover.
-- opts.env, opts.timeout (default 30 s), opts.port.
function _M.run(args, opts)
    check_bin(2, BIN)
    opts = opts or {}
    local id = new_id()
    local base = tmpdir() .. "/luaserv-spec-" .. id
    local port = opts.port or _M.free_port()
    local env = {
        LUASERV_TEST_ID = id,
        LUASERV_TEST_PORT = tostring(port),
        LUASERV_PORT = tostring(port),
        LUASERV_TEST_SOCK = base .. ".sock",
    }
    for k, v in pairs(opts.env or {}) do env[k] = v end
    local cmd = string.format("%s timeout -k 5 %d %s %s </dev/null >%s 2>%s",
        env_prefix(env), opts.timeout or 30, shquote(BIN), argv_string(args),
        shquote(base .. ".out"), shquote(base .. ".err"))
    local code = sh(cmd)
    -- Give processes that outlive the command a moment to show up/vanish.
    local leftover = wait_until(function()
        local t = _M.tagged(id)
        return #t == 0 and {} or nil, t
    end, 3)
    local left = {}
    if not leftover then
        left = _M.tagged(id)
        for _, p in ipairs(left) do _M.kill(p, "KILL") end
        if #left > 0 then
            strays[#strays + 1] = "luaserv " .. table.concat(args, " ") ..
                " left " .. table.concat(left, ",") .. " running (killed)"
        end
    end
    local r = {
        code = code,
        stdout = readfile(base .. ".out") or "",
        stderr = readfile(base .. ".err") or "",
        leftover = left,
        port = port,
    }
    os.remove(base .. ".out")
    os.remove(base .. ".err")
    return r
end

--- Absolute path of a repo-relative file.
function _M.abspath(p)
    if p:sub(1, 1) == "/" then return p end
    return (os.getenv("PWD") or capture("pwd")) .. "/" .. p
end

--- The line number of the first line of file that contains plain text s.
function _M.line_of(file, s)
    local n = 0
    for line in io.lines(file) do
        n = n + 1
        if line:find(s, 1, true) then return n end
    end
    error("'" .. s .. "' not found in " .. file, 2)
end

--- Start APP whose fixture declares a second listener on
-- $LUASERV_TEST_PORT2 (one worker each by default), and wait until that one
-- accepts too. Returns the handle and the second port.
function _M.start_two(app, opts)
    opts = opts or {}
    local port2 = _M.free_port()
    opts.env = opts.env or {}
    opts.env.LUASERV_TEST_PORT2 = tostring(port2)
    opts.wait_workers = opts.wait_workers or 2
    local srv = _M.start(app, opts)
    assert(_M.wait_until(function()
        local c = socket.tcp()
        c:settimeout(1)
        local ok = c:connect("127.0.0.1", port2)
        c:close()
        return ok
    end, _M.START_TIMEOUT, 0.05), "the second listener did not accept")
    return srv, port2
end

return _M
