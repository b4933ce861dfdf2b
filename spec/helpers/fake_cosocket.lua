--- A scripted stand-in for luaserv's cosockets (luaserv.tcp()), for unit
-- specs of the pure-Lua clients (luaserv.redis, luaserv.http_client).
--
-- A fake replays a script of what the peer sends: strings (delivered as
-- separate arrivals, so a reply can come in any split), `fake.TIMEOUT` (the
-- read timeout fires here: receive returns nil, "timeout", partial), and
-- `{ sent = n }` gates (reading past one before n sends were made raises:
-- the client read before it wrote its request). The end of the script is
-- the peer closing. It records every send, receive pattern, timeout and
-- the keep-alive or close at the end. receive follows the cosocket
-- contract: "*l" a line without its "\n" (and a "\r" before it), "*a"
-- until close, n exactly n bytes; on failure nil, err, partial (the
-- partial data is consumed).
--
--     local fake = require "helpers.fake_cosocket"
--     local luaserv = fake.install()          -- package.loaded.luaserv
--     fake.queue(fake.new { { sent = 1 }, "+OK\r\n" })
--     ... require "luaserv.redis" ...
--     fake.uninstall()

local _M = {}

_M.TIMEOUT = setmetatable({}, { __tostring = function() return "TIMEOUT" end })
_M.NULL = setmetatable({}, { __tostring = function() return "null" end })

local Fake = {}
Fake.__index = Fake

--- A fake connection. opts: reused (getreusedtimes, default 0),
-- connect_err (connect fails with it), send_err (every send fails with
-- it).
function _M.new(script, opts)
    opts = opts or {}
    return setmetatable({
        script = script or {}, pos = 1, buf = "",
        sent = {}, reads = {}, timeouts = {},
        reused = opts.reused or 0,
        connect_err = opts.connect_err, send_err = opts.send_err,
        connected_to = nil, closed = false, keepalive = nil, eof = false,
    }, Fake)
end

--- Everything sent, as one string.
function Fake:written()
    return table.concat(self.sent)
end

--- Is the whole script consumed (nothing left unread)?
function Fake:drained()
    return self.pos > #self.script and self.buf == ""
end

function Fake:settimeout(ms)
    assert(type(ms) == "number", "settimeout: number expected")
    self.timeouts[#self.timeouts + 1] = { ms, ms, ms }
end

function Fake:settimeouts(c, s, r)
    assert(type(c) == "number" and type(s) == "number" and
           type(r) == "number", "settimeouts: numbers expected")
    self.timeouts[#self.timeouts + 1] = { c, s, r }
end

-- connect(host, port [, opts]) / connect("unix:/path" [, opts]), as
-- luaserv.tcp has them; opts.pool (a string) is recorded in self.pool.
function Fake:connect(host, port, opts)
    assert(type(host) == "string", "connect: host string expected")
    if host:sub(1, 5) == "unix:" then
        assert(port == nil or type(port) == "table",
               "connect: no port with a unix: path")
        opts, port = port, nil
    else
        assert(math.type(port) == "integer", "connect: integer port expected")
    end
    if opts ~= nil then
        assert(type(opts) == "table" and type(opts.pool) == "string",
               "connect: opts {pool = string} expected")
        self.pool = opts.pool
    end
    self.connected_to = port and (host .. ":" .. port) or host
    if self.connect_err then
        self.closed = true
        return nil, self.connect_err
    end
    return 1
end

function Fake:getreusedtimes()
    if self.closed or not self.connected_to then
        return nil, "closed"
    end
    return self.reused
end

function Fake:send(data)
    if self.closed or not self.connected_to then
        return nil, "closed"
    end
    local t = type(data)
    if t == "table" then
        for i, v in ipairs(data) do
            assert(type(v) == "string", "send: element " .. i ..
                   " is not a string")
        end
        data = table.concat(data)
    elseif t == "number" then
        data = tostring(data)
    elseif t ~= "string" then
        error("send: bad data type " .. t, 2)
    end
    if self.send_err then
        return nil, self.send_err
    end
    self.sent[#self.sent + 1] = data
    return #data
end

-- Take the next arrival into the buffer. Returns true, or the reason the
-- read stops here ("timeout", "closed").
function Fake:arrive()
    local c = self.script[self.pos]
    if c == nil then
        self.eof = true
        return "closed"
    end
    self.pos = self.pos + 1
    if c == _M.TIMEOUT then
        return "timeout"
    elseif type(c) == "table" then
        if #self.sent < c.sent then
            error("fake cosocket: read before send #" .. c.sent ..
                  " (only " .. #self.sent .. " made)", 0)
        end
        return true
    end
    self.buf = self.buf .. c
    return true
end

function Fake:receive(pat)
    pat = pat or "*l"
    local n = math.tointeger(pat)
    if not (pat == "*l" or pat == "*a" or (n and n > 0)) then
        error("receive: bad pattern " .. tostring(pat), 2)
    end
    self.reads[#self.reads + 1] = pat
    if self.closed or not self.connected_to then
        return nil, "closed"
    end
    while true do
        if pat == "*l" then
            local lf = self.buf:find("\n", 1, true)
            if lf then
                local line = self.buf:sub(1, lf - 1):gsub("\r$", "")
                self.buf = self.buf:sub(lf + 1)
                return line
            end
        elseif n and #self.buf >= n then
            local data = self.buf:sub(1, n)
            self.buf = self.buf:sub(n + 1)
            return data
        end
        local why = self.eof and "closed" or self:arrive()
        if why ~= true then
            local partial = self.buf
            self.buf = ""
            if why == "closed" then
                self.closed = true
                if pat == "*a" then return partial end
            end
            return nil, why, partial
        end
    end
end

function Fake:close()
    if self.closed then
        return nil, "closed"
    end
    self.closed = true
    self.close_called = true
    return 1
end

function Fake:setkeepalive(idle, pool)
    if self.closed then
        return nil, "closed"
    end
    self.closed = true
    self.keepalive = { idle = idle, pool = pool }
    return 1
end

-- ---- luaserv stand-in ---------------------------------------------------

local queue = {}
local saved

--- Fakes that the next luaserv.tcp() calls return, in order.
function _M.queue(...)
    for _, f in ipairs { ... } do queue[#queue + 1] = f end
end

--- How many queued fakes were not taken.
function _M.left()
    return #queue
end

--- Put a luaserv module with tcp() and null into package.loaded (and drop
-- the named client modules, so that they load against it). Returns it.
function _M.install(...)
    saved = { luaserv = package.loaded.luaserv }
    queue = {}
    local luaserv = {
        null = _M.NULL,
        tcp = function()
            local f = table.remove(queue, 1)
            if not f then error("fake cosocket: no socket queued", 2) end
            return f
        end,
    }
    package.loaded.luaserv = luaserv
    for _, m in ipairs { ... } do package.loaded[m] = nil end
    return luaserv
end

function _M.uninstall(...)
    package.loaded.luaserv = saved and saved.luaserv
    for _, m in ipairs { ... } do package.loaded[m] = nil end
    queue = {}
end

--- Ways to split s into arrivals: whole, byte by byte, and in two at
-- every position. Returns an array of arrays of strings.
function _M.splits(s)
    local out = { { s } }
    local bytes = {}
    for i = 1, #s do bytes[i] = s:sub(i, i) end
    if #s > 1 then out[#out + 1] = bytes end
    for i = 1, #s - 1 do
        out[#out + 1] = { s:sub(1, i), s:sub(i + 1) }
    end
    return out
end

--- A script: a gate for `sent` sends, then the arrivals of `parts`.
function _M.script(sent, parts, tail)
    local t = { { sent = sent } }
    for _, p in ipairs(parts) do t[#t + 1] = p end
    for _, p in ipairs(tail or {}) do t[#t + 1] = p end
    return t
end

return _M
