--- luaserv.http_client: a small HTTP/1.1 client on luaserv's cosockets.
--
--     local http = require "luaserv.http_client"
--     local res, err = http.request { url = "http://127.0.0.1:8080/items?id=7" }
--     if not res then return nil, err end
--     -- res.status (200), res.reason ("OK"), res.version ("1.1"),
--     -- res.headers (lower-case names), res.body
--
-- Request options: `url` (required; http:// or https://), `method` (default
-- "GET", or "POST" when a body is given), `headers` (name -> string,
-- number, or an array of them, one line each), `body` (a string, or an
-- array of strings sent as they are), `timeout` (ms, for each of connect,
-- each send and each read; default the cosocket's, 60000), `keepalive`
-- (default true: the connection goes back to the worker's pool for its
-- host:port when the response allows it), `keepaliveTimeout` (ms idle in
-- the pool, default 60000), `keepalivePool` (connections kept per
-- host:port, default 32), `maxBodySize` (bytes, default 64 MiB; a longer
-- response body is nil, "response body too large (over N bytes)"),
-- `sslVerify` (https: check the server's certificate against the system's
-- CA store and the sslTrustedCertificate setting, and its name against
-- the URL's host; default true). An https:// connection does its TLS
-- handshake (SNI: the URL's host) once; pooled, it stays TLS, in a pool of
-- its own.
--
-- The request carries `Host` (host[:port] from the URL, unless given),
-- `Content-Length` for a body (a given Content-Length or Transfer-Encoding
-- is replaced), `User-Agent: luaserv` unless given, and `Connection: close`
-- when keepalive is false. Responses: Content-Length bodies, chunked bodies
-- (trailers are read and dropped), and bodies delimited by the end of the
-- connection; no body for HEAD, 1xx, 204 and 304. Interim 1xx responses
-- are skipped. A header that comes more than once is joined with ", " (as
-- luaserv's own server does with request headers).
--
-- An idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) on a
-- connection taken from the pool is sent once more on a fresh connection
-- when the pooled one turns out to be closed before any byte of the
-- response came (the server closed it while it idled).
--
-- Errors: nil, err with the cosocket's words ("connection refused",
-- "timeout", "closed", name-resolution errors, "certificate verify
-- failed: ...", "handshake failed: ...") or "bad url: ...",
-- "unsupported scheme 'ftp'", "bad response: ...", "response head too
-- large", "response body too large (over N bytes)". Wrong argument types
-- and bad header names or values (CR, LF) raise.
-- @module luaserv.http_client

local luaserv = require "luaserv"

local sfind, ssub, slower, supper, sformat, smatch, sgsub = string.find,
    string.sub, string.lower, string.upper, string.format, string.match,
    string.gsub
local concat = table.concat
local mtype, tointeger = math.type, math.tointeger
local type, tostring, tonumber, pairs, ipairs, error, sort =
    type, tostring, tonumber, pairs, ipairs, error, table.sort

local _M = {
    _VERSION = "0.1.0",
    MAX_BODY_SIZE = 64 * 1024 * 1024,
    --- The response head (status line and headers) is at most this long.
    MAX_HEAD_SIZE = 64 * 1024,
    MAX_HEADERS = 100,
    KEEPALIVE_TIMEOUT = 60000,
    KEEPALIVE_POOL = 32,
}

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true,
                     OPTIONS = true, TRACE = true }

--- Split an http:// or https:// URL. Returns scheme, host, port, path (with the
-- query; "/" when empty), and the Host header's value; or nil, err.
function _M.parse_url(url)
    local scheme, rest = smatch(url, "^(%a[%w+.-]*)://(.*)$")
    if not scheme then
        return nil, "bad url: " .. url
    end
    scheme = slower(scheme)
    if scheme ~= "http" and scheme ~= "https" then
        return nil, "unsupported scheme '" .. scheme .. "'"
    end
    local default = scheme == "https" and 443 or 80
    local authority, path = smatch(rest, "^([^/?#]*)(.*)$")
    path = sgsub(path, "#.*$", "")
    if path == "" then
        path = "/"
    elseif ssub(path, 1, 1) == "?" then
        path = "/" .. path
    end
    if sfind(path, "[%s%c]") then
        return nil, "bad url: space or control character in the path"
    end
    if sfind(authority, "@", 1, true) then
        return nil, "bad url: user info is not supported"
    end
    local host, port = smatch(authority, "^%[([%x:.]+)%]:?(%d*)$")
    local hosthdr
    if host then
        hosthdr = "[" .. host .. "]"
    else
        host, port = smatch(authority, "^([%w.-]+):?(%d*)$")
        hosthdr = host
    end
    if not host or host == "" then
        return nil, "bad url: bad host in " .. url
    end
    if port == "" then
        port = default
    else
        port = tonumber(port)
        if port < 1 or port > 65535 then
            return nil, "bad url: bad port in " .. url
        end
        if port ~= default then
            hosthdr = hosthdr .. ":" .. port
        end
    end
    return scheme, host, port, path, hosthdr
end

local function bad_option(name, expected, got)
    error(sformat("bad option '%s' (%s expected, got %s)", name, expected,
                  tostring(got)), 3)
end

local function header_value(name, v)
    local tv = type(v)
    if tv == "number" then
        v = mtype(v) == "integer" and tostring(v) or sformat("%.17g", v)
    elseif tv ~= "string" then
        error(sformat("bad value for header '%s' (string or number " ..
                      "expected, got %s)", name, tv), 4)
    end
    if sfind(v, "[\r\n%z]") then
        error(sformat("bad value for header '%s' (CR, LF or NUL)", name), 4)
    end
    return v
end

-- The request head as an array of lines, and the body (string or array).
local function build(opts, method, path, hosthdr, keepalive)
    local head = { method .. " " .. path .. " HTTP/1.1" }
    local have = {}
    local headers = opts.headers
    if headers ~= nil and type(headers) ~= "table" then
        bad_option("headers", "table", type(headers))
    end
    local names = {}
    for k in pairs(headers or {}) do
        if type(k) ~= "string" or not sfind(k, "^[%w!#$%%&'*+.^_`|~-]+$") then
            error(sformat("bad header name %q", tostring(k)), 3)
        end
        names[#names + 1] = k
    end
    sort(names)     -- the same request bytes every time
    for _, k in ipairs(names) do
        local lk = slower(k)
        local v = headers[k]
        if lk ~= "content-length" and lk ~= "transfer-encoding" then
            have[lk] = true
            if type(v) == "table" then
                for _, e in ipairs(v) do
                    head[#head + 1] = k .. ": " .. header_value(k, e)
                end
            else
                head[#head + 1] = k .. ": " .. header_value(k, v)
            end
        end
    end
    if not have.host then
        head[#head + 1] = "Host: " .. hosthdr
    end
    if not have["user-agent"] then
        head[#head + 1] = "User-Agent: luaserv"
    end
    if not keepalive and not have.connection then
        head[#head + 1] = "Connection: close"
    end
    local close = have.connection and
        sfind(slower(concat(head, "\n")), "\nconnection:[^\n]*close") ~= nil
    local body, len = opts.body, nil
    if type(body) == "string" then
        len = #body
    elseif type(body) == "table" then
        len = 0
        for i, part in ipairs(body) do
            if type(part) ~= "string" then
                error(sformat("bad option 'body' (element %d: string " ..
                              "expected, got %s)", i, type(part)), 3)
            end
            len = len + #part
        end
    elseif body ~= nil then
        bad_option("body", "string or array of strings", type(body))
    end
    if len then
        head[#head + 1] = "Content-Length: " .. len
    elseif method == "POST" or method == "PUT" or method == "PATCH" then
        head[#head + 1] = "Content-Length: 0"
    end
    return concat(head, "\r\n") .. "\r\n\r\n", body, close
end

-- ---- reading the response ----------------------------------------------

-- Read a head's lines: status line and headers. Returns res or nil, err.
local function read_head(sock, limit)
    local line, err, partial = sock:receive("*l")
    if not line then
        -- third: nothing of the response came
        return nil, err, partial == nil or partial == ""
    end
    local size = #line
    local major, minor, status, reason =
        smatch(line, "^HTTP/(%d)%.(%d) (%d%d%d) ?(.*)$")
    if not major then
        return nil, "bad response: bad status line"
    end
    local headers, n = {}, 0
    while true do
        line, err = sock:receive("*l")
        if not line then
            return nil, err
        end
        if line == "" then
            break
        end
        size = size + #line + 2
        n = n + 1
        if size > limit or n > _M.MAX_HEADERS then
            return nil, "response head too large"
        end
        local name, value = smatch(line, "^([^:%s]+):[ \t]*(.-)[ \t]*$")
        if not name then
            return nil, "bad response: bad header line"
        end
        name = slower(name)
        local old = headers[name]
        headers[name] = old and (old .. ", " .. value) or value
    end
    return {
        status = tonumber(status), reason = reason,
        version = major .. "." .. minor, headers = headers,
    }
end

local function too_large(max)
    return nil, "response body too large (over " .. max .. " bytes)"
end

local function read_chunked(sock, max)
    local parts, total = {}, 0
    while true do
        local line, err = sock:receive("*l")
        if not line then
            return nil, err
        end
        local hex, ext = smatch(line, "^(%x+)(.*)$")
        if not hex or #hex > 15 or
           (ext ~= "" and not sfind(ext, "^[ \t]*;")) then
            return nil, "bad response: bad chunk size"
        end
        local n = tonumber(hex, 16)
        if n == 0 then
            -- trailers, up to the empty line
            repeat
                line, err = sock:receive("*l")
                if not line then
                    return nil, err
                end
            until line == ""
            return concat(parts)
        end
        total = total + n
        if total > max then
            return too_large(max)
        end
        local data
        data, err = sock:receive(n)
        if not data then
            return nil, err
        end
        parts[#parts + 1] = data
        line, err = sock:receive("*l")
        if not line then
            return nil, err
        end
        if line ~= "" then
            return nil, "bad response: chunk not followed by CRLF"
        end
    end
end

-- A body delimited by the end of the connection, bounded by max.
local function read_to_close(sock, max)
    local parts, total = {}, 0
    while true do
        local data, err, partial = sock:receive(65536)
        data = data or partial
        if data and data ~= "" then
            total = total + #data
            if total > max then
                return too_large(max)
            end
            parts[#parts + 1] = data
        end
        if err == "closed" then
            return concat(parts)
        elseif err then
            return nil, err
        end
    end
end

-- Read the body of res; returns body, reusable (may the connection be
-- kept), or nil, err.
local function read_body(sock, res, method, max)
    local s, h = res.status, res.headers
    if method == "HEAD" or s == 204 or s == 304 or (s >= 100 and s < 200) then
        return "", true
    end
    local te, cl = h["transfer-encoding"], h["content-length"]
    if te then
        if cl then
            return nil, "bad response: both Transfer-Encoding and " ..
                        "Content-Length"
        end
        local body, err
        if sfind(slower(te), "chunked%s*$") then
            body, err = read_chunked(sock, max)
            return body, body and true or err
        end
        body, err = read_to_close(sock, max)
        return body, body and false or err
    end
    if cl then
        if not sfind(cl, "^%d+$") or #cl > 15 then
            return nil, "bad response: bad Content-Length"
        end
        local n = tointeger(tonumber(cl))
        if n > max then
            return too_large(max)
        end
        if n == 0 then
            return "", true
        end
        local data, err = sock:receive(n)
        if not data then
            return nil, err
        end
        return data, true
    end
    local body, err = read_to_close(sock, max)
    return body, body and false or err
end

local function wants_close(res)
    local c = slower(res.headers.connection or "")
    if res.version == "1.0" then
        return not sfind(c, "keep%-alive")
    end
    return sfind(c, "close") ~= nil
end

-- One attempt on one connection. Returns res; or nil, err, retry where
-- retry says the request may go again on a fresh connection.
local function attempt(o)
    local sock = luaserv.tcp()
    if o.timeout then
        sock:settimeout(o.timeout)
    end
    local ok, err = sock:connect(o.host, o.port, o.ssl and
        { pool = "https:" .. o.host .. ":" .. o.port } or nil)
    if not ok then
        return nil, err
    end
    local reused = sock:getreusedtimes() or 0
    if o.ssl and reused == 0 then
        ok, err = sock:sslhandshake(false, o.host, o.verify)
        if not ok then
            return nil, err
        end
    end
    local function fail(e, early)
        sock:close()
        return nil, e, early and reused > 0 and IDEMPOTENT[o.method]
    end
    local sent
    sent, err = sock:send(o.head)
    if sent and o.body then
        sent, err = sock:send(o.body)
    end
    if not sent then
        return fail(err, true)
    end
    local res, early
    repeat
        res, err, early = read_head(sock, _M.MAX_HEAD_SIZE)
        if not res then
            return fail(err, early and err ~= "timeout")
        end
        -- interim responses (100 Continue, 103 Early Hints) come before
        -- the real one; 101 would switch protocols: hand it over as it is
    until res.status >= 200 or res.status == 101
    local body, reusable = read_body(sock, res, o.method, o.max)
    if not body then
        return fail(reusable)
    end
    res.body = body
    if o.keepalive and reusable and not wants_close(res) and
       res.status ~= 101 and not o.close then
        sock:setkeepalive(o.idle, o.pool)
    else
        sock:close()
    end
    return res
end

local function check_ms(opts, name)
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or v < 0) then
        bad_option(name, "non-negative number of ms", v)
    end
    return v
end

--- Make a request and read the whole response.
-- @tparam table opts see the module's description
-- @return res {status=, reason=, version=, headers=, body=}, or nil, err
-- @raise on wrong option types and bad header names or values
function _M.request(opts)
    if type(opts) ~= "table" then
        error("bad argument #1 to 'request' (table expected, got " ..
              type(opts) .. ")", 2)
    end
    local url = opts.url
    if type(url) ~= "string" then
        bad_option("url", "string", type(url))
    end
    local method = opts.method
    if method == nil then
        method = opts.body ~= nil and "POST" or "GET"
    elseif type(method) ~= "string" or not sfind(method, "^%a+$") then
        bad_option("method", "a method name", method)
    end
    method = supper(method)
    local keepalive = opts.keepalive
    if keepalive == nil then
        keepalive = true
    elseif type(keepalive) ~= "boolean" then
        bad_option("keepalive", "boolean", type(keepalive))
    end
    local max = opts.maxBodySize or _M.MAX_BODY_SIZE
    if mtype(max) ~= "integer" or max < 0 then
        bad_option("maxBodySize", "non-negative integer", max)
    end
    local timeout = check_ms(opts, "timeout")
    local idle = check_ms(opts, "keepaliveTimeout") or _M.KEEPALIVE_TIMEOUT
    local pool = opts.keepalivePool or _M.KEEPALIVE_POOL
    if mtype(pool) ~= "integer" or pool < 1 then
        bad_option("keepalivePool", "positive integer", pool)
    end

    local verify = opts.sslVerify
    if verify == nil then
        verify = true
    elseif type(verify) ~= "boolean" then
        bad_option("sslVerify", "boolean", type(verify))
    end

    local scheme, host, port, path, hosthdr = _M.parse_url(url)
    if not scheme then
        return nil, host
    end
    local head, body, close = build(opts, method, path, hosthdr, keepalive)
    local o = {
        host = host, port = port, method = method, head = head, body = body,
        timeout = timeout, keepalive = keepalive, idle = idle, pool = pool,
        max = max, close = close, ssl = scheme == "https", verify = verify,
    }
    local res, err, retry = attempt(o)
    if not res and retry then
        res, err = attempt(o)
    end
    return res, err
end

return _M
