-- fuzz_proto's app: a custom protocol in Lua whose input() answers what the
-- first byte of the buffer says (a length, 0, too much, a wrong type, an
-- error), so that every branch of lua_proto.c is taken; and a declarative
-- length framing with an offset and an adjust, for proto.c's loop.
local luaserv = require "luaserv"

local P = {}

function P.input(buffer)
    local b = buffer:byte(1)
    local kind = b % 8
    if kind == 0 then return 0 end
    if kind == 1 then return 1 + (b >> 3) end          -- a small packet
    if kind == 2 then return #buffer end               -- everything
    if kind == 3 then return nil, "bad input" end
    if kind == 4 then error("input raised") end
    if kind == 5 then return 100000 end                -- over maxPackageSize
    if kind == 6 then return -1 end
    if #buffer < 3 then return 0 end
    return 3 + buffer:byte(2)                          -- [b][len][len bytes]
end

function P.decode(packet)
    if packet:byte(1) == 0xff then error("decode raised") end
    return packet
end

function P.encode(msg)
    return string.pack(">s2", msg)
end

local lua = luaserv.listen("tcp://127.0.0.1:1", {
    name = "lua",
    protocol = P,
    maxPackageSize = 4096,
})

local decl = luaserv.listen("tcp://127.0.0.1:2", {
    name = "decl",
    protocol = { length = { offset = 1, size = 2, endian = "little",
                            includesHeader = false, adjust = -1 } },
    maxPackageSize = 4096,
})

local function echo(conn, msg)
    if msg == "close" then return conn:close() end
    conn:send(msg)
end

lua.onMessage = echo
decl.onMessage = echo
function lua.onError() end
function decl.onError() end
