--- A real redis-server (Debian's) for integration specs: started on a free
-- loopback port without persistence, waited for with PING, stopped by pid.
--
--     local redis_server = require "helpers.redis"
--     local rs = redis_server.start { password = "pw", unix = true }
--     rs.port, rs.sock (unix socket path), rs:command("GET", "k")
--     rs:stop()      -- in teardown / finally
--
-- rs:command(...) is a small blocking RESP client over lua-socket, for a
-- spec to prepare or check state behind the back of the code under test;
-- it decodes replies with lua/luaserv/protocols/resp.lua.

local socket = require "socket"
local server = require "helpers.server"
local external = require "helpers.external"
local resp = require "luaserv.protocols.resp"

local _M = {}

_M.BIN = os.getenv("LUASERV_REDIS_SERVER") or "redis-server"

local Redis = {}
Redis.__index = Redis

--- Is redis-server installed?
function _M.available()
    return external.have(_M.BIN)
end

-- Connect and authenticate; returns the lua-socket or nil, err.
local function open(self, timeout)
    local c = socket.tcp()
    c:settimeout(timeout or 5)
    local ok, err = c:connect("127.0.0.1", self.port)
    if not ok then c:close() return nil, err end
    return c
end

local function roundtrip(c, words)
    local ok, err = c:send(resp.encode(words))
    if not ok then return nil, err end
    local buf = ""
    while true do
        local n, e = resp.input(buf)
        if n == nil then return nil, e end
        if n > 0 and n <= #buf then
            return resp.decode(buf:sub(1, n))
        end
        local data, rerr, partial = c:receive(n > #buf and n - #buf or 1)
        data = data or partial
        if data and data ~= "" then
            buf = buf .. data
        elseif rerr then
            return nil, rerr
        end
    end
end

--- Run one command on a connection of its own (AUTH first when the
-- server has a password). Returns the decoded reply (resp's values: an
-- error reply is resp.error(text), a null resp.null), or nil, err.
function Redis:command(...)
    local c, err = open(self)
    if not c then return nil, err end
    local words = {}
    for i, v in ipairs { ... } do words[i] = tostring(v) end
    if self.password then
        local a = roundtrip(c, { "AUTH", self.password })
        if a ~= "OK" then c:close() return nil, "AUTH: " .. tostring(a) end
    end
    local v, e = roundtrip(c, words)
    c:close()
    return v, e
end

--- Stop the server (by pid) and remove its files. Raises if it had to be
-- killed or left a crash in its log.
function Redis:stop()
    if self.stopped then return end
    self.stopped = true
    local polite = external.stop(self.pid)
    local log = server.readfile(self.dir .. "/redis.log") or ""
    if not polite then
        error("redis-server " .. self.pid .. " did not stop on SIGTERM; " ..
              "killed\n--- log ---\n" .. server.tail(log), 2)
    end
    external.rmdir(self.dir)
end

--- Start redis-server. opts: password (requirepass), unix (also listen on
-- a unix socket: handle.sock), port. Returns the handle.
function _M.start(opts)
    opts = opts or {}
    assert(_M.available(), _M.BIN .. " is not installed (apt-get install " ..
           "redis-server)")
    local dir = external.tmpdir("redis")
    local self = setmetatable({
        port = opts.port or server.free_port(), dir = dir,
        password = opts.password,
    }, Redis)
    local argv = { _M.BIN, "--port", tostring(self.port),
                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--daemonize", "no", "--dir", dir,
                   "--logfile", dir .. "/redis.log" }
    if opts.password then
        argv[#argv + 1] = "--requirepass"
        argv[#argv + 1] = opts.password
    end
    if opts.unix then
        self.sock = dir .. "/redis.sock"
        argv[#argv + 1] = "--unixsocket"
        argv[#argv + 1] = self.sock
        argv[#argv + 1] = "--unixsocketperm"
        argv[#argv + 1] = "700"
    end
    self.pid = external.spawn(argv, dir .. "/stdout.log")
    -- Ready when it answers; with a password an unauthenticated PING gets
    -- NOAUTH, which is an answer too.
    local up = server.wait_until(function()
        if not server.alive(self.pid) then return "exited" end
        local c = open(self, 0.5)
        if not c then return nil end
        local v = roundtrip(c, { "PING" })
        c:close()
        if v == "PONG" or resp.is_error(v) then return "ok" end
    end, server.START_TIMEOUT, 0.05)
    if up ~= "ok" then
        local log = (server.readfile(dir .. "/redis.log") or "") ..
                    (server.readfile(dir .. "/stdout.log") or "")
        external.stop(self.pid, 2)
        external.rmdir(dir)
        error("redis-server on 127.0.0.1:" .. self.port .. " " ..
              (up or "did not answer PING within " .. server.START_TIMEOUT ..
               "s") .. "\n--- log ---\n" .. server.tail(log), 2)
    end
    return self
end

return _M
