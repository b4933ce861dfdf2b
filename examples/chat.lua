-- Chat: each line a client sends goes to every client of the same worker.
--   luaserv examples/chat.lua          then: nc 127.0.0.1 9001 (twice)
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9001"

local chat = luaserv.listen("text://127.0.0.1:" .. port, {
    name = "chat",
    count = 1,   -- one worker, so that everybody shares one room
})

local function broadcast(text)
    for conn in luaserv.connections(chat) do
        conn:send(text)
    end
end

function chat.onConnect(conn)
    conn.data.nick = "user" .. conn.id
    conn:send("welcome, " .. conn.data.nick .. " (/nick NAME to rename)")
    broadcast("* " .. conn.data.nick .. " joined")
end

function chat.onMessage(conn, line)
    local nick = line:match("^/nick%s+(%S+)$")
    if nick then
        broadcast("* " .. conn.data.nick .. " is now " .. nick)
        conn.data.nick = nick
    elseif line ~= "" then
        broadcast(conn.data.nick .. ": " .. line)
    end
end

function chat.onClose(conn)
    broadcast("* " .. conn.data.nick .. " left")
end
