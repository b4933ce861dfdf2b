--- Start and stop external servers (redis-server, nginx) for integration
-- specs: in the foreground of a detached shell, output to a log file,
-- tracked by pid and stopped by pid with a bounded SIGTERM -> SIGKILL
-- escalation, the way spec/helpers/server.lua treats luaserv.
--
-- They do not carry LUASERV_TEST_ID: server.cleanup() (run after every
-- test by many specs) would otherwise count a redis-server that lives for
-- a whole describe block as left behind.

local server = require "helpers.server"

local _M = {}

local shquote, readfile, wait_until = server.shquote, server.readfile,
    server.wait_until

--- Is the command on PATH?
function _M.have(cmd)
    return server.capture("command -v " .. shquote(cmd) .. " 2>/dev/null") ~= ""
end

--- A fresh temp directory (mode 0700) for one server's files.
function _M.tmpdir(what)
    local dir = server.capture("mktemp -d " ..
        shquote((os.getenv("TMPDIR") or "/tmp") .. "/luaserv-" .. what ..
                "-XXXXXX"))
    assert(dir ~= "" and dir:find("/luaserv-" .. what .. "-", 1, true),
           "mktemp -d failed")
    return dir
end

--- Remove a directory made by tmpdir (and only such a one).
function _M.rmdir(dir)
    if dir and dir:find("/luaserv%-[%w_]+%-%w+$") and
       not os.getenv("LUASERV_TEST_KEEP_LOGS") then
        os.execute("rm -rf " .. shquote(dir))
    end
end

--- Run argv in the background with output to logfile. Returns the pid.
function _M.spawn(argv, logfile)
    local pidfile = logfile .. ".pid"
    local t = {}
    for i, a in ipairs(argv) do t[i] = shquote(a) end
    -- The inner `&` makes sh fork and exec the program, so $! is its pid;
    -- the outer `&` detaches the waiting shell from busted.
    local inner = string.format("%s </dev/null >%s 2>&1 & echo $! >%s; wait $!",
        table.concat(t, " "), shquote(logfile), shquote(pidfile))
    os.execute("sh -c " .. shquote(inner) .. " >/dev/null 2>&1 </dev/null &")
    local pid = wait_until(function()
        local s = readfile(pidfile)
        return s and tonumber(s:match("%d+"))
    end, 5)
    os.remove(pidfile)
    assert(pid, "could not start " .. argv[1])
    return pid
end

--- Stop pid: SIGTERM, wait up to timeout seconds, then SIGKILL. Returns
-- true when it stopped on SIGTERM.
function _M.stop(pid, timeout)
    if not server.alive(pid) then return true end
    server.kill(pid, "TERM")
    if wait_until(function() return not server.alive(pid) end,
                  timeout or 10) then
        return true
    end
    server.kill(pid, "KILL")
    wait_until(function() return not server.alive(pid) end, 5)
    return false
end

return _M
