-- fuzz_ws's app: echoes text and binary messages, refuses one path, closes
-- on a command.
local luaserv = require "luaserv"

local ws = luaserv.listen("websocket://127.0.0.1:1", {
    name = "ws",
    maxPackageSize = 4096,
})

function ws.onWebSocketConnect(_, req)
    return req.path ~= "/deny"
end

function ws.onMessage(conn, data)
    if data == "close" then
        conn:close()
    elseif utf8.len(data) then
        conn:send(data)
    else
        conn:send { binary = data }
    end
end

function ws.onError() end
