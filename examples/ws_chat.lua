-- WebSocket chat: each message a client sends goes to every client of the
-- same worker.
--   luaserv examples/ws_chat.lua
--   then, in two terminals: python3 -m websockets ws://127.0.0.1:9002/
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9002"

local chat = luaserv.listen("websocket://127.0.0.1:" .. port, {
    name = "ws_chat",
    count = 1,              -- one worker, so that everybody shares one room
    maxPackageSize = 4096,  -- longer messages are closed with 1009
})

-- Connections still in the HTTP handshake are in luaserv.connections too:
-- only those that joined get messages.
local function broadcast(text)
    for conn in luaserv.connections(chat) do
        if conn.data.joined then conn:send(text) end
    end
end

-- Before the 101 answer: return false to refuse (403).
function chat.onWebSocketConnect(conn, req)
    if req.path ~= "/" then return false end
    conn.data.nick = "user" .. conn.id
    broadcast("* " .. conn.data.nick .. " joined")
    conn.data.joined = true
    conn:send("welcome, " .. conn.data.nick .. " (/nick NAME to rename)")
    return true
end

function chat.onMessage(conn, msg)
    local nick = msg:match("^/nick (%w+)$")
    if nick then
        broadcast("* " .. conn.data.nick .. " is now " .. nick)
        conn.data.nick = nick
        return
    end
    broadcast(conn.data.nick .. ": " .. msg)
end

function chat.onClose(conn)
    if conn.data.joined then
        conn.data.joined = nil
        broadcast("* " .. conn.data.nick .. " left")
    end
end
