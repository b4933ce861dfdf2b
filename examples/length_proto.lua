-- One binary protocol, two ways: a 2-byte big-endian length, then that many
-- payload bytes. Port P uses declarative framing (done in C, no Lua per
-- read); port P+1 (or $LUASERV_PORT2) the same protocol written as Lua input/decode/encode.
-- Both answer each payload upper-cased, framed the same way.
--   LUASERV_PORT=9800 luaserv examples/length_proto.lua
local luaserv = require "luaserv"

local port = tonumber(os.getenv("LUASERV_PORT") or "9800")
local port2 = tonumber(os.getenv("LUASERV_PORT2") or (port + 1))

-- Declarative: the header is stripped on input and prepended by send.
local fast = luaserv.listen("tcp://127.0.0.1:" .. port, {
    name = "declarative",
    protocol = { length = { offset = 0, size = 2, endian = "big",
                            includesHeader = false } },
    maxPackageSize = 65537,
})

-- The same in Lua (Workerman's contract).
local Length16 = {}

function Length16.input(buffer)
    if #buffer < 2 then
        return 0
    end
    return 2 + string.unpack(">I2", buffer)
end

function Length16.decode(packet)
    return packet:sub(3)
end

function Length16.encode(msg)
    if #msg > 65535 then
        error("message too long for a 2-byte length", 2)
    end
    return string.pack(">s2", msg)
end

local custom = luaserv.listen("tcp://127.0.0.1:" .. port2, {
    name = "lua",
    protocol = Length16,
    maxPackageSize = 65537,
})

local function upper(conn, msg)
    conn:send(msg:upper())
end

fast.onMessage = upper
custom.onMessage = upper
