--- lua-socket client helpers for integration specs.
--
-- A small buffered reader over a blocking socket with short timeouts, so a
-- spec can ask "the next line within 5 s" or "has the peer closed?" without
-- ever hanging. Lines are returned raw (a "\r" is kept) so specs can assert
-- exactly what the server wrote.

local socket = require "socket"

local _M = {}

_M.TIMEOUT = 10   -- default bound for any single wait, in seconds

local Client = {}
Client.__index = Client

local function wrap(sock)
    return setmetatable({ sock = sock, buf = "", eof = false }, Client)
end

--- Connect to 127.0.0.1:port. Returns a client or nil, err.
function _M.connect(port, timeout)
    local s = assert(socket.tcp())
    s:settimeout(timeout or _M.TIMEOUT)
    local ok, err = s:connect("127.0.0.1", port)
    if not ok then s:close(); return nil, err end
    s:setoption("tcp-nodelay", true)
    return wrap(s)
end

--- Connect to a Unix stream socket. Returns a client or nil, err.
function _M.connect_unix(path, timeout)
    local unix = require "socket.unix"
    local s = assert(unix.stream())
    s:settimeout(timeout or _M.TIMEOUT)
    local ok, err = s:connect(path)
    if not ok then s:close(); return nil, err end
    return wrap(s)
end

--- Connect or fail the spec.
function _M.must_connect(port, timeout)
    local c, err = _M.connect(port, timeout)
    assert(c, "connect to 127.0.0.1:" .. tostring(port) .. " failed: " ..
           tostring(err))
    return c
end

--- Send all of data; returns true or nil, err.
function Client:send(data)
    self.sock:settimeout(_M.TIMEOUT)
    local i = 1
    while i <= #data do
        local n, err, last = self.sock:send(data, i)
        if not n then
            if err ~= "timeout" then return nil, err end
            n = last
        end
        i = n + 1
    end
    return true
end

--- Read whatever arrives within `step` seconds into the buffer.
-- Returns false once the peer has closed (or the socket failed).
function Client:fill(step)
    if self.eof then return false end
    self.sock:settimeout(step or 0.05)
    local data, err, partial = self.sock:receive(65536)
    local got = data or partial
    if got and #got > 0 then self.buf = self.buf .. got end
    if err and err ~= "timeout" then
        self.eof = true
        self.err = err
        return false
    end
    return true
end

local function deadline_of(timeout)
    return socket.gettime() + (timeout or _M.TIMEOUT)
end

--- The next line without its "\n" (a "\r" is kept), or nil, "timeout" |
-- "closed".
function Client:line(timeout)
    local deadline = deadline_of(timeout)
    while true do
        local i = self.buf:find("\n", 1, true)
        if i then
            local line = self.buf:sub(1, i - 1)
            self.buf = self.buf:sub(i + 1)
            return line
        end
        if self.eof then return nil, "closed" end
        if socket.gettime() >= deadline then return nil, "timeout" end
        self:fill(0.05)
    end
end

--- Exactly n bytes, or nil, "timeout" | "closed", partial-so-far.
function Client:bytes(n, timeout)
    local deadline = deadline_of(timeout)
    while #self.buf < n do
        if self.eof then return nil, "closed", self.buf end
        if socket.gettime() >= deadline then return nil, "timeout", self.buf end
        self:fill(0.05)
    end
    local s = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 1)
    return s
end

--- Everything received within `quiet` seconds (default 0.2) on top of what
-- is buffered; for checking that nothing more arrived.
function Client:drain(quiet)
    local deadline = deadline_of(quiet or 0.2)
    while not self.eof and socket.gettime() < deadline do self:fill(0.05) end
    local s = self.buf
    self.buf = ""
    return s
end

--- Wait until the peer closes the connection. Returns true, or nil,
-- "timeout". Data that arrives meanwhile is kept in the buffer.
function Client:wait_closed(timeout)
    local deadline = deadline_of(timeout)
    while not self.eof do
        if socket.gettime() >= deadline then return nil, "timeout" end
        self:fill(0.05)
    end
    return true
end

--- Send a line ("\n" appended) and return the reply line.
function Client:request(line, timeout)
    local ok, err = self:send(line .. "\n")
    if not ok then return nil, err end
    return self:line(timeout)
end

function Client:close()
    if self.sock then self.sock:close() end
    self.eof = true
end

--- Send a frame:// message: 4-byte big-endian total length, then payload.
function _M.frame(payload)
    return string.pack(">I4", #payload + 4) .. payload
end

--- Read one frame:// message; returns its payload or nil, err.
function Client:read_frame(timeout)
    local deadline = deadline_of(timeout)
    local head, err = self:bytes(4, timeout)
    if not head then return nil, err end
    local len = string.unpack(">I4", head)
    if len < 4 then return nil, "bad frame length " .. len end
    local remaining = math.max(0.01, deadline - socket.gettime())
    return self:bytes(len - 4, remaining)
end

--- Poll fn() until it returns a truthy value or timeout passes.
_M.wait_until = function(fn, timeout, interval)
    local deadline = deadline_of(timeout)
    interval = interval or 0.02
    while true do
        local v, extra = fn()
        if v then return v, extra end
        if socket.gettime() >= deadline then return nil, extra end
        socket.sleep(interval)
    end
end

_M.sleep = socket.sleep
_M.gettime = socket.gettime

return _M
