--- luaserv.compat: what a LuaJIT build's workers add to the standard library
-- so that apps and luaserv's own modules written for Lua 5.4 run: the
-- library functions of 5.3 and 5.4 they use. (Syntax cannot be added: `//`,
-- the bit operators, `<const>` and `<close>` stay 5.4-only; LuaJIT's `bit`
-- module has the bit operations.) Loaded by the C side (src/lua/vm.c) before
-- the app, in LuaJIT builds only; nothing here replaces what LuaJIT has.
--
-- LuaJIT's numbers are all doubles: math.type says "integer" for a number
-- with an integral value (so 3.0 is an integer here), math.maxinteger is
-- 2^53 - 1, the largest integer a double counts to exactly, and
-- string.pack/unpack handle integers within +-2^53 exactly.
-- @module luaserv.compat

local floor, huge = math.floor, math.huge
local type, tonumber, select, error, tostring, rawget, setmetatable = type,
    tonumber, select, error, tostring, rawget, setmetatable
local schar, sbyte, ssub, sfind = string.char, string.byte, string.sub,
    string.find
local concat = table.concat

local MAXINT = 9007199254740991 -- 2^53 - 1

local function set(t, k, v)
    if t[k] == nil then t[k] = v end
end

-- table ------------------------------------------------------------------

set(table, "unpack", unpack) -- luacheck: ignore 113
set(table, "pack", function(...)
    return { n = select("#", ...), ... }
end)

-- pairs honours __pairs (5.2; LuaJIT has it only when built with
-- LUAJIT_ENABLE_LUA52COMPAT, which Debian's is not): a request table builds
-- its lazy fields for pairs (src/lua/lua_request.c).
do
    local seen = false
    for _ in pairs(setmetatable({}, { __pairs = function()
        seen = true
        return function() return nil end
    end })) do end
    if not seen then
        local rawpairs, dgetmetatable = pairs, debug.getmetatable
        _G.pairs = function(t) -- luacheck: ignore 122
            local mt = dgetmetatable(t)
            local f = type(mt) == "table" and rawget(mt, "__pairs")
            if f then
                local fn, st, k = f(t)
                return fn, st, k
            end
            return rawpairs(t)
        end
    end
end

-- math -------------------------------------------------------------------

local function isint(x)
    return x == floor(x) and x > -huge and x < huge
end

set(math, "type", function(x)
    if type(x) ~= "number" then
        return nil
    end
    return isint(x) and "integer" or "float"
end)
set(math, "tointeger", function(x)
    x = tonumber(x)
    if x ~= nil and isint(x) then
        return x
    end
    return nil
end)
set(math, "maxinteger", MAXINT)
set(math, "mininteger", -MAXINT)

-- utf8 (strict, as 5.4 without `lax`) ------------------------------------

local function utf8_decode(s, i)
    local c = sbyte(s, i)
    if c == nil then return nil end
    if c < 0x80 then return c, i + 1 end
    local n, min
    if c >= 0xf0 and c < 0xf8 then n, c, min = 3, c - 0xf0, 0x10000
    elseif c >= 0xe0 then n, c, min = 2, c - 0xe0, 0x800
    elseif c >= 0xc0 and c < 0xe0 then n, c, min = 1, c - 0xc0, 0x80
    else return nil end
    if c >= 0x80 then return nil end
    for k = 1, n do
        local b = sbyte(s, i + k)
        if b == nil or b < 0x80 or b >= 0xc0 then return nil end
        c = c * 64 + (b - 0x80)
    end
    if c < min or c > 0x10ffff or (c >= 0xd800 and c <= 0xdfff) then
        return nil
    end
    return c, i + n + 1
end

local function upos(s, i, default)
    i = i or default
    if i < 0 then i = #s + i + 1 end
    return i
end

if utf8 == nil then
    local utf8 = {
        charpattern = "[\0-\x7F\xC2-\xFD][\x80-\xBF]*",
    }
    _G.utf8 = utf8 -- luacheck: ignore 122

    function utf8.len(s, i, j)
        i, j = upos(s, i, 1), upos(s, j, -1)
        local n = 0
        while i <= j do
            local _, nxt = utf8_decode(s, i)
            if nxt == nil then return nil, i end
            n, i = n + 1, nxt
        end
        return n
    end

    function utf8.char(...)
        local out = {}
        for k = 1, select("#", ...) do
            local c = select(k, ...)
            if type(c) ~= "number" or c < 0 or c > 0x7fffffff or
               not isint(c) then
                error("bad argument #" .. k .. " to 'char' (value out of range)",
                      2)
            end
            if c < 0x80 then
                out[k] = schar(c)
            elseif c < 0x800 then
                out[k] = schar(0xc0 + floor(c / 64), 0x80 + c % 64)
            elseif c < 0x10000 then
                out[k] = schar(0xe0 + floor(c / 4096),
                               0x80 + floor(c / 64) % 64, 0x80 + c % 64)
            else
                out[k] = schar(0xf0 + floor(c / 262144),
                               0x80 + floor(c / 4096) % 64,
                               0x80 + floor(c / 64) % 64, 0x80 + c % 64)
            end
        end
        return concat(out)
    end

    function utf8.codepoint(s, i, j)
        i = upos(s, i, 1)
        j = upos(s, j, i)
        local out, n = {}, 0
        while i <= j do
            local c, nxt = utf8_decode(s, i)
            if c == nil then error("invalid UTF-8 code", 2) end
            n = n + 1
            out[n] = c
            i = nxt
        end
        return unpack(out, 1, n) -- luacheck: ignore 113
    end

    function utf8.codes(s)
        local i = 1
        return function()
            if i > #s then return nil end
            local c, nxt = utf8_decode(s, i)
            if c == nil then error("invalid UTF-8 code", 2) end
            local at = i
            i = nxt
            return at, c
        end
    end
end

-- string.pack / string.unpack: integers, strings, padding --------------

-- The options of a format: {kind, size}. kind: "i" (signed), "I"
-- (unsigned), "s" (string with a length of size bytes), "z", "x"; and the
-- endianness switches as {"<"} / {">"}.
local SIZES = { b = 1, B = 1, h = 2, H = 2, l = 8, L = 8, j = 8, J = 8,
    T = 8, i = 4, I = 4 }

local function options(fmt, fname)
    local opts, pos = {}, 1
    while pos <= #fmt do
        local c = ssub(fmt, pos, pos)
        pos = pos + 1
        local _, e, digits = sfind(fmt, "^(%d*)", pos)
        local size = tonumber(digits)
        pos = e + 1
        if c == "<" or c == ">" or c == "=" then
            opts[#opts + 1] = { c == ">" and ">" or "<" }
        elseif c == " " then -- luacheck: ignore 542
        elseif SIZES[c] then
            size = (c == "i" or c == "I") and (size or 4) or SIZES[c]
            if size < 1 or size > 16 then
                error("bad argument #1 to '" .. fname .. "' (integral size (" ..
                      size .. ") out of limits [1,16])", 3)
            end
            local signed = c == "b" or c == "h" or c == "i" or c == "l" or
                c == "j"
            opts[#opts + 1] = { signed and "i" or "I", size }
        elseif c == "s" then
            opts[#opts + 1] = { "s", size or 8 }
        elseif c == "z" or c == "x" then
            opts[#opts + 1] = { c, 1 }
        else
            error("bad argument #1 to '" .. fname .. "' (format option '" ..
                  c .. "' is not supported by luaserv's LuaJIT build)", 3)
        end
    end
    return opts
end

local function pack_int(v, size, signed, big, fname, arg)
    if type(v) ~= "number" then
        v = tonumber(v)
        if v == nil then
            error("bad argument #" .. arg .. " to '" .. fname ..
                  "' (number expected)", 3)
        end
    end
    if not isint(v) then
        error("bad argument #" .. arg .. " to '" .. fname ..
              "' (number has no integer representation)", 3)
    end
    if size < 8 then
        local lim = 2 ^ (8 * size)
        if signed and (v < -lim / 2 or v >= lim / 2) then
            error("bad argument #" .. arg .. " to '" .. fname ..
                  "' (integer overflow)", 3)
        elseif not signed and (v < 0 or v >= lim) then
            error("bad argument #" .. arg .. " to '" .. fname ..
                  "' (unsigned overflow)", 3)
        end
    end
    local bytes = {}
    for k = 1, size do        -- little-endian, two's complement
        local b = v % 256
        bytes[k] = b
        v = (v - b) / 256
    end
    if big then
        for k = 1, floor(size / 2) do
            bytes[k], bytes[size + 1 - k] = bytes[size + 1 - k], bytes[k]
        end
    end
    return schar(unpack(bytes)) -- luacheck: ignore 113
end

local function unpack_int(s, pos, size, signed, big)
    -- 5.4 wraps an 8-byte unsigned with the top bit set to a negative
    local top = sbyte(s, big and pos or pos + size - 1)
    local neg = (signed or size >= 8) and top >= 128
    local v, mul = 0, 1
    for k = 0, size - 1 do
        local b = sbyte(s, big and pos + size - 1 - k or pos + k)
        v = v + (neg and 255 - b or b) * mul
        mul = mul * 256
    end
    return neg and -v - 1 or v
end

set(string, "pack", function(fmt, ...)
    local out, big, arg = {}, false, 1
    for _, o in ipairs(options(fmt, "string.pack")) do
        local kind, size = o[1], o[2]
        if kind == ">" or kind == "<" then
            big = kind == ">"
        elseif kind == "x" then
            out[#out + 1] = "\0"
        else
            arg = arg + 1
            local v = select(arg - 1, ...)
            if kind == "i" or kind == "I" then
                out[#out + 1] = pack_int(v, size, kind == "i", big, "string.pack", arg)
            else
                if type(v) == "number" then v = tostring(v) end
                if type(v) ~= "string" then
                    error("bad argument #" .. arg .. " to 'string.pack' (string " ..
                          "expected, got " .. type(v) .. ")", 2)
                end
                if kind == "z" then
                    if sfind(v, "\0", 1, true) then
                        error("bad argument #" .. arg .. " to 'string.pack' " ..
                              "(string contains zeros)", 2)
                    end
                    out[#out + 1] = v .. "\0"
                else
                    if size < 8 and #v >= 2 ^ (8 * size) then
                        error("bad argument #" .. arg .. " to 'string.pack' " ..
                              "(string length does not fit in given size)", 2)
                    end
                    out[#out + 1] = pack_int(#v, size, false, big, "string.pack", arg)
                    out[#out + 1] = v
                end
            end
        end
    end
    return concat(out)
end)

set(string, "unpack", function(fmt, s, pos)
    local out, n, big = {}, 0, false
    pos = upos(s, pos, 1)
    local function need(k)
        if pos + k - 1 > #s then
            error("bad argument #2 to 'string.unpack' (data string too short)", 3)
        end
    end
    for _, o in ipairs(options(fmt, "string.unpack")) do
        local kind, size = o[1], o[2]
        if kind == ">" or kind == "<" then
            big = kind == ">"
        elseif kind == "x" then
            need(1)
            pos = pos + 1
        elseif kind == "z" then
            local e = sfind(s, "\0", pos, true)
            if e == nil then
                error("bad argument #2 to 'string.unpack' (unfinished string for " ..
                      "format 'z')", 2)
            end
            n = n + 1
            out[n] = ssub(s, pos, e - 1)
            pos = e + 1
        else
            need(size)
            local v = unpack_int(s, pos, size, kind == "i", big)
            pos = pos + size
            if kind == "s" then
                need(v)
                v = ssub(s, pos, pos + v - 1)
                pos = pos + #v
            end
            n = n + 1
            out[n] = v
        end
    end
    n = n + 1
    out[n] = pos
    return unpack(out, 1, n) -- luacheck: ignore 113
end)

set(string, "packsize", function(fmt)
    local total = 0
    for _, o in ipairs(options(fmt, "string.packsize")) do
        if o[1] == "s" or o[1] == "z" then
            error("bad argument #1 to 'string.packsize' (variable-length format)", 2)
        end
        total = total + (o[2] or 0)
    end
    return total
end)

return { version = "luaserv.compat 1", maxinteger = MAXINT }
