--- luaserv.protocols.length: length-prefixed binary messages, as a Lua
-- protocol (input/decode/encode) for `listen(addr, {protocol = P})` and
-- `connect`.
--
--     local length = require "luaserv.protocols.length"
--     luaserv.listen("tcp://0.0.0.0:9000", { protocol = length })  -- 4-byte BE
--     luaserv.listen("tcp://0.0.0.0:9001",
--                    { protocol = length.new { size = 2, endian = "little" } })
--
-- The module itself is the 4-byte big-endian form with the header not
-- counted in the length. `new{size = 1|2|4|8, endian = "big"|"little",
-- includesHeader = false}` makes others. onMessage gets the payload;
-- conn:send(s) prepends the header. (The declarative
-- `protocol = {length = {...}}` does the same framing in C; this module is
-- for when a protocol wants to be extended in Lua, and as a model.)
-- @module luaserv.protocols.length

local spack, sunpack, ssub = string.pack, string.unpack, string.sub

local _M = {}

local SIZES = { [1] = true, [2] = true, [4] = true, [8] = true }
-- the largest length each header size holds (no bit operators: the module
-- also runs on LuaJIT)
local MAX = { [1] = 0xff, [2] = 0xffff, [4] = 0xffffffff }

--- A protocol table for the given header layout.
-- @tparam[opt] table opts `size` (1, 2, 4, 8; default 4), `endian`
-- ("big" default, or "little"), `includesHeader` (default false: the length
-- counts the payload only)
-- @treturn table a protocol with input, decode, encode
-- @raise on bad options
function _M.new(opts)
    opts = opts or {}
    local size = opts.size or 4
    local endian = opts.endian or "big"
    local incl = opts.includesHeader and true or false
    if not SIZES[size] then
        error("length.new: size must be 1, 2, 4 or 8 (got " ..
              tostring(size) .. ")", 2)
    end
    if endian ~= "big" and endian ~= "little" then
        error("length.new: endian must be \"big\" or \"little\"", 2)
    end
    local fmt = (endian == "big" and ">" or "<") .. "I" .. size
    local extra = incl and 0 or size      -- packet size = length + extra
    local max = MAX[size] or math.maxinteger

    local P = { size = size, endian = endian, includesHeader = incl }

    --- Bytes of the packet at the head of buffer: 0 while the header is
    -- incomplete, nil and an error for a length that cannot be.
    function P.input(buffer)
        if #buffer < size then
            return 0
        end
        local n = sunpack(fmt, buffer)
        if size == 8 and n < 0 then
            return nil, "length over 2^63"
        end
        if incl and n < size then
            return nil, "length " .. n .. " smaller than its header"
        end
        return n + extra
    end

    --- The payload of a whole packet.
    function P.decode(packet)
        return ssub(packet, size + 1)
    end

    --- A message with its header.
    function P.encode(msg)
        if type(msg) ~= "string" then
            if type(msg) ~= "number" then
                error("length protocol: cannot send a " .. type(msg) ..
                      " (string expected)", 2)
            end
            msg = tostring(msg)
        end
        local n = #msg + (incl and size or 0)
        if n > max then
            error("length protocol: message of " .. #msg .. " bytes does " ..
                  "not fit a " .. size .. "-byte length", 2)
        end
        return spack(fmt, n) .. msg
    end

    return P
end

local default = _M.new()
_M.size, _M.endian, _M.includesHeader = default.size, default.endian,
                                        default.includesHeader
_M.input, _M.decode, _M.encode = default.input, default.decode, default.encode

return _M
