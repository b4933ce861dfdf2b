--- luaserv.redis: a Redis client (RESP2) on luaserv's cosockets, with
-- lua-resty-redis's names and conventions.
--
--     local redis = require "luaserv.redis"
--     local r = redis.new { host = "127.0.0.1", port = 6379, timeout = 1000 }
--     local ok, err = r:connect()
--     if not ok then return nil, err end
--     local v, err = r:get("k")        -- "value", luaserv.null, or nil, err
--     r:set_keepalive(10000, 100)       -- back to the worker's pool
--
-- Any Redis command is a method: the method's name, upper-cased, is the
-- command (`r:hmget("h", "a", "b")` sends HMGET h a b; `r["json.get"]`
-- works for module commands). Arguments are strings or numbers (integers
-- as they are, other numbers with 17 significant digits); anything else
-- raises. `r:hmset(key, {field = value, ...})` takes a table too.
--
-- Replies: a status is a string ("OK", "PONG"), an integer an integer, a
-- bulk string a string, a null bulk or null array `luaserv.null`, an array a
-- Lua array. An error reply is nil, "ERR ..." (the text as Redis sent it);
-- inside an array (EXEC, pipelines) it is `{false, "ERR ..."}`, as in
-- lua-resty-redis. Failures of the connection are nil, err with the
-- cosocket's words ("timeout", "closed", "connection refused", ...) or
-- "protocol error: ..." for a reply that is not RESP2.
--
-- A connection whose reply was lost or cut (a timeout while waiting, a
-- closed socket, a malformed reply) can no longer be trusted to pair
-- requests with replies: it is closed, and later commands return nil,
-- "not connected" until `r:connect()` is called again. The one exception is
-- `read_reply()` in the subscribed state: a timeout before any byte of the
-- next message arrived leaves the connection as it was, so a subscriber can
-- poll with a short timeout.
--
-- Pipelines: after `r:init_pipeline()` command methods only queue (and
-- return 1); `r:commit_pipeline()` sends them in one write and returns the
-- array of their replies (error replies as `{false, "ERR ..."}`), or nil,
-- err when the connection failed; `r:cancel_pipeline()` drops the queue.
--
-- Pub/sub: `r:subscribe(ch, ...)`, `r:psubscribe(pat, ...)` return the
-- confirmation `{"subscribe", ch, count}` (one channel) or an array of
-- them (several); `r:read_reply()` then returns the next message
-- (`{"message", ch, payload}`, `{"pmessage", pat, ch, payload}`);
-- `r:unsubscribe(...)` / `r:punsubscribe(...)` leave (all, without
-- arguments). Messages that arrive while a confirmation is awaited are
-- kept for read_reply. Other commands are refused with nil,
-- "subscribed state" while subscribed.
--
-- The keep-alive pool is the cosocket's, one per address, user, password
-- and db (`{pool = ...}`): AUTH and SELECT are sent only on a fresh
-- connection (getreusedtimes() == 0), and a pooled one was set up the same
-- way. A connection on which `r:select()` was called to change the db
-- should be closed rather than pooled.
--
-- Limits: arrays nest at most `resp.MAX_DEPTH` deep and hold at most
-- `resp.MAX_ELEMENTS` elements; a bulk string is at most `_M.MAX_BULK`
-- bytes (Redis' own proto-max-bulk-len default, 512 MiB).
-- @module luaserv.redis

local luaserv = require "luaserv"
local resp = require "luaserv.protocols.resp"

local sbyte, sfind, ssub, supper, sformat = string.byte, string.find,
    string.sub, string.upper, string.format
local sort, remove = table.sort, table.remove
local mtype, tointeger = math.type, math.tointeger
local type, tostring, tonumber, select, setmetatable, error, rawget =
    type, tostring, tonumber, select, setmetatable, error, rawget

local null = luaserv.null

local _M = {
    _VERSION = "0.1.0",
    --- The largest bulk string a reply may carry, in bytes.
    MAX_BULK = 512 * 1024 * 1024,
    --- `luaserv.null`, for comparisons: `if v == redis.null then`.
    null = null,
}

local methods = {}

local function bad_option(name, expected, got)
    error(sformat("bad option '%s' (%s expected, got %s)", name, expected,
                  tostring(got)), 3)
end

--- A client object; nothing is connected yet.
-- @tparam table opts `host` (default "127.0.0.1"), `port` (default 6379),
--   or `path` (a unix socket path, instead of host and port); `timeout`
--   (ms, for connect, send and read; default the cosocket's, 60000);
--   `password` (AUTH on a fresh connection), `user` (AUTH user password,
--   Redis 6 ACLs); `db` (SELECT on a fresh connection when not 0);
--   `ssl` (true: TLS on a fresh connection, before AUTH), `sslVerify`
--   (with ssl: check the certificate against the system's CA store and the
--   sslTrustedCertificate setting, and its name against `serverName`,
--   default `host`; default false, as lua-resty-redis), `serverName` (SNI).
-- @return the client
-- @raise on a bad option
function _M.new(opts, more)
    if opts == _M then opts = more end      -- redis:new{...} works too
    opts = opts or {}
    if type(opts) ~= "table" then
        error("bad argument #1 to 'new' (table expected, got " ..
              type(opts) .. ")", 2)
    end
    local host, port, path = opts.host, opts.port, opts.path
    if path ~= nil then
        if type(path) ~= "string" or path == "" then
            bad_option("path", "non-empty string", path)
        end
        if host ~= nil or port ~= nil then
            error("bad options: 'path' excludes 'host' and 'port'", 2)
        end
    else
        host = host or "127.0.0.1"
        port = port or 6379
        if type(host) ~= "string" or host == "" then
            bad_option("host", "non-empty string", host)
        end
        if mtype(port) ~= "integer" or port < 1 or port > 65535 then
            bad_option("port", "integer from 1 to 65535", port)
        end
    end
    local timeout = opts.timeout
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
        bad_option("timeout", "non-negative number of ms", timeout)
    end
    if opts.password ~= nil and type(opts.password) ~= "string" then
        bad_option("password", "string", opts.password)
    end
    if opts.user ~= nil then
        if type(opts.user) ~= "string" then
            bad_option("user", "string", opts.user)
        end
        if opts.password == nil then
            error("bad options: 'user' needs 'password'", 2)
        end
    end
    local db = opts.db
    if db ~= nil and (mtype(db) ~= "integer" or db < 0) then
        bad_option("db", "non-negative integer", db)
    end
    if opts.ssl ~= nil and type(opts.ssl) ~= "boolean" then
        bad_option("ssl", "boolean", opts.ssl)
    end
    if opts.sslVerify ~= nil and type(opts.sslVerify) ~= "boolean" then
        bad_option("sslVerify", "boolean", opts.sslVerify)
    end
    local sni = opts.serverName
    if sni ~= nil and (type(sni) ~= "string" or sni == "") then
        bad_option("serverName", "non-empty string", sni)
    end
    -- Every field exists (false when unset): __index makes commands of
    -- missing names, so state is never looked up through it.
    return setmetatable({
        _host = host or false, _port = port or false, _path = path or false,
        _timeouts = timeout and { timeout, timeout, timeout } or false,
        _password = opts.password or false, _user = opts.user or false,
        _db = db or 0,
        _ssl = opts.ssl or false, _verify = opts.sslVerify or false,
        _sni = sni or (not path and host) or false,
        _sock = false,
        _reqs = false,          -- the pipeline's queued requests
        _subscribed = false,
        _channels = false,      -- subscribed channels / patterns, as sets
        _patterns = false,
        _pending = false,       -- messages read while awaiting a confirmation
    }, _M.mt)
end

-- ---- requests --------------------------------------------------------

local function arg_string(v, i, name)
    local tv = type(v)
    if tv == "string" then
        return v
    elseif tv == "number" then
        if mtype(v) == "integer" then
            return tostring(v)
        end
        return sformat("%.17g", v)
    end
    error(sformat("bad argument #%d to '%s' (string or number expected, " ..
                  "got %s)", i, name, tv), 4)
end

-- The RESP bytes of command `name` with the arguments in args[1..n].
local function gen_req_any(name, n, args)
    local words = { supper(name) }
    if name == "hmset" and n == 2 and type(args[2]) == "table" then
        -- hmset(key, {field = value, ...}); sorted, so a request is the
        -- same bytes every time
        local keys = {}
        for k in pairs(args[2]) do keys[#keys + 1] = k end
        sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        words[2] = arg_string(args[1], 1, name)
        for _, k in ipairs(keys) do
            words[#words + 1] = arg_string(k, 2, name)
            words[#words + 1] = arg_string(args[2][k], 2, name)
        end
    else
        for i = 1, n do
            words[i + 1] = arg_string(args[i], i, name)
        end
    end
    return resp.encode(words)
end

-- What every request repeats, made once: "$N\r\n" for small
-- N (an integer's text costs a snprintf each time), and each command's
-- own "$3\r\nGET\r\n".
local function cached_line(prefix, limit)
    return setmetatable({}, { __index = function(t, n)
        local l = prefix .. n .. "\r\n"
        if n < limit then
            t[n] = l
        end
        return l
    end })
end
local len_line = cached_line("$", 1024)
local cmd_head = setmetatable({}, { __index = function(t, name)
    local up = supper(name)
    local h = len_line[#up] .. up .. "\r\n"
    t[name] = h
    return h
end })

-- The RESP bytes of command `name` with the n arguments that follow:
-- strings written at once for up to three of them (a GET, a SET), the
-- rest by gen_req_any.
local function gen_req(name, n, a, b, c, ...)
    if n <= 3 and name ~= "hmset" then
        if n == 1 and type(a) == "string" then
            return "*2\r\n" .. cmd_head[name] .. len_line[#a] .. a .. "\r\n"
        elseif n == 2 and type(a) == "string" and type(b) == "string" then
            return "*3\r\n" .. cmd_head[name] .. len_line[#a] .. a ..
                "\r\n" .. len_line[#b] .. b .. "\r\n"
        elseif n == 0 then
            return "*1\r\n" .. cmd_head[name]
        elseif n == 3 and type(a) == "string" and type(b) == "string" and
               type(c) == "string" then
            return "*4\r\n" .. cmd_head[name] .. len_line[#a] .. a ..
                "\r\n" .. len_line[#b] .. b .. "\r\n" .. len_line[#c] ..
                c .. "\r\n"
        end
    end
    return gen_req_any(name, n, { a, b, c, ... })
end

-- ---- replies ---------------------------------------------------------

local PLUS, MINUS, COLON, DOLLAR, STAR = 43, 45, 58, 36, 42

local function int_of(line)
    local s = ssub(line, 2)
    if #s > 20 or not sfind(s, "^%-?%d+$") then
        return nil
    end
    return tointeger(tonumber(s))
end

local function proto_error(what)
    return nil, "protocol error: " .. what, true
end

-- Read one value from sock. Returns the value; or false, text for an
-- error reply; or nil, err, cut where cut tells whether any byte of the
-- value had been read (the stream is then out of step).
local read_value
read_value = function(sock, depth)
    local line, err, partial = sock:receive("*l")
    if not line then
        return nil, err, partial ~= nil and partial ~= ""
    end
    local t = sbyte(line, 1)
    if t == PLUS then
        return ssub(line, 2)
    elseif t == MINUS then
        return false, ssub(line, 2)
    elseif t == COLON then
        local n = int_of(line)
        if not n then
            return proto_error("bad integer")
        end
        return n
    elseif t == DOLLAR then
        local n = int_of(line)
        if not n or n < -1 then
            return proto_error("bad bulk string length")
        end
        if n == -1 then
            return null
        end
        if n > _M.MAX_BULK then
            return proto_error("bulk string of " .. n .. " bytes")
        end
        local data
        data, err = sock:receive(n + 2)
        if not data then
            return nil, err, true
        end
        if ssub(data, -2) ~= "\r\n" then
            return proto_error("bulk string not followed by CRLF")
        end
        return ssub(data, 1, n)
    elseif t == STAR then
        local n = int_of(line)
        if not n or n < -1 then
            return proto_error("bad array length")
        end
        if n == -1 then
            return null
        end
        if n > resp.MAX_ELEMENTS then
            return proto_error("array of " .. n .. " elements")
        end
        if depth >= resp.MAX_DEPTH then
            return proto_error("arrays nested too deep")
        end
        local a = {}
        for i = 1, n do
            local v, e = read_value(sock, depth + 1)
            if v == nil then
                return nil, e, true
            elseif v == false then
                a[i] = { false, e }
            else
                a[i] = v
            end
        end
        return a
    end
    return proto_error("bad reply type " .. sformat("%q", ssub(line, 1, 1)))
end

-- Forget the connection (closing it): its replies can no longer be
-- matched with requests. Returns nil, err.
local function fail(self, err)
    local sock = self._sock
    self._sock = false
    self._reqs = false
    self._subscribed = false
    self._channels, self._patterns = false, false
    if sock then
        sock:close()
    end
    return nil, err
end

-- One reply from the connection: value | nil, err (error reply or a
-- failure, after which the connection is gone).
local function read_reply(self)
    local v, err = read_value(self._sock, 0)
    if v == nil then
        return fail(self, err)
    elseif v == false then
        return nil, err
    end
    return v
end

-- ---- commands --------------------------------------------------------

local function do_cmd(self, name, ...)
    local req = gen_req(name, select("#", ...), ...)
    local reqs = self._reqs
    if reqs then
        reqs[#reqs + 1] = req
        return 1
    end
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    if self._subscribed then
        return nil, "subscribed state"
    end
    local ok, err = sock:send(req)
    if not ok then
        return fail(self, err)
    end
    return read_reply(self)
end

local function command(name)
    local f = function(self, ...)
        return do_cmd(self, name, ...)
    end
    methods[name] = f
    return f
end

-- The {pool = name} of a client's connections: connections set up
-- differently (AUTH, SELECT) are pooled apart.
local function pool_name(self)
    local pool = (self._path and "unix:" .. self._path or
                  self._host .. ":" .. self._port) .. "/" ..
                 tostring(self._user or "") .. "/" ..
                 (self._password and "auth" or "") .. "/" .. self._db ..
                 (self._ssl and "/ssl" or "")
    if self._password then
        -- different passwords must not share; the text itself stays out
        local h = 5381
        for i = 1, #self._password do
            h = (h * 33 + self._password:byte(i)) % 4294967296
        end
        pool = pool .. "/" .. h
    end
    return pool
end

-- Made once per host, port and db for clients without AUTH or TLS (the
-- usual kind, made anew for every request: its name is a few table hits
-- then, not a concatenation with two numbers); the connect only reads it.
local plain_pools = {}

local function pool_opts(self)
    if self._password or self._ssl or self._path then
        return { pool = pool_name(self) }
    end
    local byport = plain_pools[self._host]
    if not byport then
        byport = {}
        plain_pools[self._host] = byport
    end
    local bydb = byport[self._port]
    if not bydb then
        bydb = {}
        byport[self._port] = bydb
    end
    local o = bydb[self._db]
    if not o then
        o = { pool = pool_name(self) }
        bydb[self._db] = o
    end
    return o
end

--- Connect (or take a connection from the worker's pool); on a fresh
-- connection authenticate and select the db as configured. A client that
-- was connected drops its old connection first.
-- @return 1, or nil, err (the cosocket's, or the error reply of AUTH or
--   SELECT, after which the connection is closed)
function methods.connect(self)
    if self._sock then
        fail(self)
    end
    self._reqs = false
    self._pending = false
    local sock = luaserv.tcp()
    local t = self._timeouts
    if t then
        sock:settimeouts(t[1], t[2], t[3])
    end
    local ok, err
    if self._path then
        ok, err = sock:connect("unix:" .. self._path, pool_opts(self))
    else
        ok, err = sock:connect(self._host, self._port, pool_opts(self))
    end
    if not ok then
        return nil, err
    end
    self._sock = sock
    local reused
    reused, err = sock:getreusedtimes()
    if not reused then
        return fail(self, err)
    end
    if reused == 0 then
        if self._ssl then
            ok, err = sock:sslhandshake(false, self._sni or nil, self._verify)
            if not ok then
                return fail(self, err)
            end
        end
        if self._password then
            local res
            if self._user then
                res, err = do_cmd(self, "auth", self._user, self._password)
            else
                res, err = do_cmd(self, "auth", self._password)
            end
            if not res then
                return fail(self, err)
            end
        end
        if self._db ~= 0 then
            local res
            res, err = do_cmd(self, "select", self._db)
            if not res then
                return fail(self, err)
            end
        end
    end
    return 1
end

--- Set the connect, send and read timeouts at once, in ms.
function methods.set_timeout(self, ms)
    if type(ms) ~= "number" or ms < 0 then
        error("bad argument #1 to 'set_timeout' (non-negative number " ..
              "expected, got " .. tostring(ms) .. ")", 2)
    end
    return methods.set_timeouts(self, ms, ms, ms)
end

--- Set the connect, send and read timeouts, in ms.
function methods.set_timeouts(self, connect_ms, send_ms, read_ms)
    for i, v in ipairs { connect_ms, send_ms, read_ms } do
        if type(v) ~= "number" or v < 0 then
            error("bad argument #" .. i .. " to 'set_timeouts' " ..
                  "(non-negative number expected, got " .. tostring(v) ..
                  ")", 2)
        end
    end
    self._timeouts = { connect_ms, send_ms, read_ms }
    if self._sock then
        self._sock:settimeouts(connect_ms, send_ms, read_ms)
    end
    return 1
end

--- How many times the current connection had been taken from the pool.
-- @return n, or nil, err
function methods.get_reused_times(self)
    if not self._sock then
        return nil, "not connected"
    end
    return self._sock:getreusedtimes()
end

--- Put the connection into the worker's keep-alive pool; the client is
-- disconnected afterwards (connect() again to use it).
-- @param idle_ms how long it may idle in the pool (default the cosocket's)
-- @param pool_size connections the pool keeps for this host:port
-- @return 1, or nil, err ("not connected", "subscribed state", or the
--   cosocket's)
function methods.set_keepalive(self, idle_ms, pool_size)
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    if self._subscribed then
        return nil, "subscribed state"
    end
    self._sock = false
    self._reqs = false
    if idle_ms == nil and pool_size == nil then
        return sock:setkeepalive()
    elseif pool_size == nil then
        return sock:setkeepalive(idle_ms)
    end
    return sock:setkeepalive(idle_ms, pool_size)
end

--- Close the connection.
-- @return 1, or nil, err
function methods.close(self)
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    self._sock = false
    self._reqs = false
    self._subscribed = false
    self._channels, self._patterns = false, false
    return sock:close()
end

--- Start queueing commands instead of sending them.
function methods.init_pipeline(self)
    self._reqs = {}
    return 1
end

--- Drop the queued commands.
function methods.cancel_pipeline(self)
    self._reqs = false
    return 1
end

--- Send the queued commands in one write and read all their replies.
-- @return an array with one reply per command (an error reply as
--   `{false, "ERR ..."}`), or nil, err ("no pipeline", "not connected",
--   or a failure of the connection, which is then closed)
function methods.commit_pipeline(self)
    local reqs = self._reqs
    if not reqs then
        return nil, "no pipeline"
    end
    self._reqs = false
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    if self._subscribed then
        return nil, "subscribed state"
    end
    if #reqs == 0 then
        return {}
    end
    local ok, err = sock:send(reqs)
    if not ok then
        return fail(self, err)
    end
    local out = {}
    for i = 1, #reqs do
        local v, e = read_value(sock, 0)
        if v == nil then
            return fail(self, e)
        elseif v == false then
            out[i] = { false, e }
        else
            out[i] = v
        end
    end
    return out
end

-- ---- pub/sub ---------------------------------------------------------

local CONFIRM = { subscribe = "_channels", unsubscribe = "_channels",
                  psubscribe = "_patterns", punsubscribe = "_patterns" }

-- Note what a (p)(un)subscribe confirmation changes.
local function track(self, v)
    local kind = type(v) == "table" and v[1]
    local set = CONFIRM[kind]
    if not set then
        return false
    end
    local t = self[set] or {}
    self[set] = t
    if kind == "subscribe" or kind == "psubscribe" then
        t[v[2]] = true
    elseif type(v[2]) == "string" then
        t[v[2]] = nil
    end
    self._subscribed = mtype(v[3]) == "integer" and v[3] > 0
    return true
end

local function count(set)
    local n = 0
    for _ in pairs(set or {}) do n = n + 1 end
    return n
end

-- Send a (p)(un)subscribe command and read its `expect` confirmations,
-- keeping any message that comes first for read_reply.
local function sub_cmd(self, name, expect, ...)
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    if self._reqs then
        error(name .. " inside a pipeline", 2)
    end
    local ok, err = sock:send(gen_req(name, select("#", ...), ...))
    if not ok then
        return fail(self, err)
    end
    local got = {}
    while #got < expect do
        local v
        v, err = read_value(sock, 0)
        if v == nil then
            return fail(self, err)
        elseif v == false then
            return nil, err
        end
        if track(self, v) then
            got[#got + 1] = v
        else
            local p = self._pending or {}
            self._pending = p
            p[#p + 1] = v
        end
    end
    if expect == 1 then
        return got[1]
    end
    return got
end

local function need_names(name, ...)
    if select("#", ...) == 0 then
        error("bad argument #1 to '" .. name .. "' (channel expected)", 3)
    end
end

--- Subscribe to channels.
-- @return the confirmation {"subscribe", ch, count} (an array of them for
--   several channels), or nil, err
function methods.subscribe(self, ...)
    need_names("subscribe", ...)
    return sub_cmd(self, "subscribe", select("#", ...), ...)
end

--- Subscribe to channel patterns.
function methods.psubscribe(self, ...)
    need_names("psubscribe", ...)
    return sub_cmd(self, "psubscribe", select("#", ...), ...)
end

--- Leave the given channels, or all of them.
-- @return the confirmation {"unsubscribe", ch, count} (an array of them
--   for several channels), or nil, err
function methods.unsubscribe(self, ...)
    local n = select("#", ...)
    if n == 0 then
        n = count(self._channels)
    end
    return sub_cmd(self, "unsubscribe", n > 0 and n or 1, ...)
end

--- Leave the given patterns, or all of them.
function methods.punsubscribe(self, ...)
    local n = select("#", ...)
    if n == 0 then
        n = count(self._patterns)
    end
    return sub_cmd(self, "punsubscribe", n > 0 and n or 1, ...)
end

--- The next reply on a subscribed connection: a message
-- {"message", ch, payload} or {"pmessage", pat, ch, payload}, or a
-- confirmation.
-- @return the reply, or nil, err ("not subscribed"; "timeout" when nothing
--   came within the read timeout: the client stays subscribed; any other
--   failure closes the connection)
function methods.read_reply(self)
    local p = self._pending
    if p and #p > 0 then
        return remove(p, 1)
    end
    local sock = self._sock
    if not sock then
        return nil, "not connected"
    end
    if not self._subscribed then
        return nil, "not subscribed"
    end
    local v, err, cut = read_value(sock, 0)
    if v == nil then
        if err == "timeout" and not cut then
            return nil, err
        end
        return fail(self, err)
    elseif v == false then
        return nil, err
    end
    track(self, v)
    return v
end

-- ---- helpers ---------------------------------------------------------

--- {k1, v1, k2, v2, ...} (what HGETALL returns) as {k1 = v1, k2 = v2}.
-- Works as `r:array_to_hash(t)`, `redis:array_to_hash(t)` and
-- `redis.array_to_hash(t)`.
function methods.array_to_hash(a, b)
    local t = b
    if select("#", a, b) >= 1 and b == nil and a ~= _M and
       getmetatable(a) ~= _M.mt then
        t = a            -- redis.array_to_hash(t)
    end
    if type(t) ~= "table" then
        error("bad argument #1 to 'array_to_hash' (table expected, got " ..
              type(t) .. ")", 2)
    end
    local h = {}
    for i = 1, #t, 2 do
        h[t[i]] = t[i + 1]
    end
    return h
end
_M.array_to_hash = methods.array_to_hash

_M.methods = methods

-- Known methods are found in methods itself (a table hit, no call); any
-- other name that looks like a command becomes one there.
setmetatable(methods, { __index = function(_, k)
    if type(k) == "string" and sfind(k, "^%a[%w%._]*$") then
        return command(k)
    end
    return nil
end })

_M.mt = {
    __name = "luaserv.redis",
    __index = methods,
    __tostring = function(self)
        local where = rawget(self, "_path") or
            (tostring(rawget(self, "_host")) .. ":" ..
             tostring(rawget(self, "_port")))
        return "luaserv.redis (" .. where ..
            (rawget(self, "_sock") and ", connected)" or ")")
    end,
}

return _M
