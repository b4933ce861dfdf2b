--- luaserv.protocols.resp: the Redis serialization protocol (RESP2) as a
-- Lua protocol, for servers (commands in, replies out) and clients through
-- `luaserv.connect` (commands out, replies in).
--
--     local resp = require "luaserv.protocols.resp"
--     local kv = luaserv.listen("tcp://127.0.0.1:6380", { protocol = resp })
--     function kv.onMessage(conn, cmd)      -- {"SET", "k", "v"}
--         conn:send(resp.status("OK"))
--     end
--
-- Decoded values: bulk and simple strings are Lua strings, integers are
-- integers, arrays are Lua arrays, a null (bulk or array) is `resp.null`, an
-- error reply is `resp.error(text)` (a table {err = text}). An inline
-- command ("PING\r\n", what telnet sends) decodes to an array of its words.
--
-- Encoding (conn:send): a string is a bulk string, an integer an integer
-- (other numbers go as bulk strings, as Redis sends doubles), `resp.null`
-- a null, `resp.status(s)` "+s", `resp.error(s)` "-s", a table an array of
-- encodable values (a `false` in an array is a null, as nil cannot be).
--
-- Limits: arrays nest at most `resp.MAX_DEPTH` deep and have at most
-- `resp.MAX_ELEMENTS` elements; maxPackageSize of the listener bounds the
-- whole message. Malformed input is nil, err (onError, then close).
-- @module luaserv.protocols.resp

local sbyte, sfind, ssub, tonumber, concat = string.byte, string.find,
    string.sub, tonumber, table.concat
local mtype, type, setmetatable, getmetatable = math.type, type,
    setmetatable, getmetatable

local _M = {
    MAX_DEPTH = 8,
    MAX_ELEMENTS = 1024 * 1024,
    MAX_INLINE = 64 * 1024,
}

local Status = { __name = "resp.status" }
local Error = { __name = "resp.error" }
Status.__tostring = function(s) return "+" .. s.status end
Error.__tostring = function(e) return "-" .. e.err end

--- The null bulk string / null array.
_M.null = setmetatable({}, { __name = "resp.null",
                             __tostring = function() return "null" end })

--- A simple-string reply, "+OK".
function _M.status(s) return setmetatable({ status = s }, Status) end

--- An error reply, "-ERR ...".
function _M.error(s) return setmetatable({ err = s }, Error) end

--- Is v an error reply (as decoded or made by resp.error)?
function _M.is_error(v) return getmetatable(v) == Error end

local PLUS, MINUS, COLON, DOLLAR, STAR = 43, 45, 58, 36, 42

-- The line at pos: the position of its CR, or nil when not all there yet,
-- or false (and an error) when malformed.
local function line_end(buf, pos)
    local cr = sfind(buf, "\r", pos, true)
    if not cr then
        return nil
    end
    if cr == #buf then
        return nil              -- the LF may still come
    end
    if sbyte(buf, cr + 1) ~= 10 then
        return false, "CR without LF"
    end
    return cr
end

-- An integer field between pos and the CR at e.
local function int_at(buf, pos, e)
    local s = ssub(buf, pos, e - 1)
    if not sfind(s, "^%-?%d+$") or #s > 19 then
        return nil
    end
    return tonumber(s)
end

-- Scan the value at pos. Returns the position after it; or nil, need
-- (incomplete: need is the exact total length when the only thing missing
-- is the body of a trailing bulk string, else nil); or false, err.
local function scan(buf, pos, depth, last)
    local t = sbyte(buf, pos)
    if t == nil then
        return nil
    end
    local e, err = line_end(buf, pos)
    if e == false then
        return false, err
    end
    if t == PLUS or t == MINUS then
        if not e then return nil end
        return e + 2
    elseif t == COLON then
        if not e then return nil end
        if not int_at(buf, pos + 1, e) then
            return false, "bad integer"
        end
        return e + 2
    elseif t == DOLLAR then
        if not e then return nil end
        local n = int_at(buf, pos + 1, e)
        if not n or n < -1 then
            return false, "bad bulk string length"
        end
        if n == -1 then
            return e + 2
        end
        local stop = e + 2 + n + 2      -- after the body's CRLF
        if stop - 1 > #buf then
            return nil, last and stop - 1 or nil
        end
        if ssub(buf, stop - 2, stop - 1) ~= "\r\n" then
            return false, "bulk string not followed by CRLF"
        end
        return stop
    elseif t == STAR then
        if not e then return nil end
        local n = int_at(buf, pos + 1, e)
        if not n or n < -1 then
            return false, "bad array length"
        end
        if n > _M.MAX_ELEMENTS then
            return false, "array of " .. n .. " elements"
        end
        if depth >= _M.MAX_DEPTH then
            return false, "arrays nested too deep"
        end
        local p = e + 2
        for i = 1, n do
            local need
            p, need = scan(buf, p, depth + 1, last and i == n)
            if not p then
                return p, need
            end
        end
        return p
    end
    return false, "bad type byte " .. ("%q"):format(string.char(t))
end

--- Bytes of the message at the head of buffer; 0 when incomplete (or the
-- exact length, when only a trailing bulk body is missing: luaserv then
-- waits for it without calling input again); nil, err when malformed.
function _M.input(buffer)
    local t = sbyte(buffer, 1)
    if t == nil then
        return 0
    end
    if t ~= PLUS and t ~= MINUS and t ~= COLON and t ~= DOLLAR and
       t ~= STAR then
        -- an inline command: one line
        local lf = sfind(buffer, "\n", 1, true)
        if not lf then
            if #buffer > _M.MAX_INLINE then
                return nil, "inline command too long"
            end
            return 0
        end
        return lf
    end
    local stop, need = scan(buffer, 1, 0, true)
    if stop then
        return stop - 1
    end
    if stop == false then
        return nil, need
    end
    return need or 0
end

local decode_at

-- Decode the (complete, checked) value at pos: value, next position.
decode_at = function(buf, pos)
    local t = sbyte(buf, pos)
    local e = sfind(buf, "\r\n", pos, true)
    if t == PLUS then
        return ssub(buf, pos + 1, e - 1), e + 2
    elseif t == MINUS then
        return _M.error(ssub(buf, pos + 1, e - 1)), e + 2
    elseif t == COLON then
        return tonumber(ssub(buf, pos + 1, e - 1)), e + 2
    elseif t == DOLLAR then
        local n = tonumber(ssub(buf, pos + 1, e - 1))
        if n < 0 then
            return _M.null, e + 2
        end
        return ssub(buf, e + 2, e + 1 + n), e + 4 + n
    end
    local n = tonumber(ssub(buf, pos + 1, e - 1))   -- STAR
    if n < 0 then
        return _M.null, e + 2
    end
    local a, p = {}, e + 2
    for i = 1, n do
        a[i], p = decode_at(buf, p)
    end
    return a, p
end

--- The Lua value of a whole message (as input delimited it).
function _M.decode(packet)
    local t = sbyte(packet, 1)
    if t ~= PLUS and t ~= MINUS and t ~= COLON and t ~= DOLLAR and
       t ~= STAR then
        local words = {}
        for w in packet:gmatch("[^ \t\r\n]+") do
            words[#words + 1] = w
        end
        return words
    end
    return (decode_at(packet, 1))
end

local function line_ok(s, what)
    if sfind(s, "[\r\n]") then
        error("resp: CR or LF in " .. what, 3)
    end
    return s
end

local function encode(v, out, depth)
    local tv = type(v)
    if tv == "string" then
        out[#out + 1] = "$" .. #v .. "\r\n" .. v .. "\r\n"
    elseif tv == "number" then
        if mtype(v) == "integer" then
            out[#out + 1] = ":" .. v .. "\r\n"
        else
            local s = ("%.17g"):format(v)
            out[#out + 1] = "$" .. #s .. "\r\n" .. s .. "\r\n"
        end
    elseif v == _M.null or v == false then
        out[#out + 1] = "$-1\r\n"
    elseif tv == "table" then
        local mt = getmetatable(v)
        if mt == Status then
            out[#out + 1] = "+" .. line_ok(v.status, "a status") .. "\r\n"
        elseif mt == Error then
            out[#out + 1] = "-" .. line_ok(v.err, "an error") .. "\r\n"
        else
            if depth >= _M.MAX_DEPTH then
                error("resp: arrays nested too deep", depth + 2)
            end
            out[#out + 1] = "*" .. #v .. "\r\n"
            for i = 1, #v do
                encode(v[i], out, depth + 1)
            end
        end
    else
        error("resp: cannot encode a " .. tv, depth + 2)
    end
end

--- The bytes of a value.
function _M.encode(msg)
    local out = {}
    encode(msg, out, 0)
    return concat(out)
end

return _M
