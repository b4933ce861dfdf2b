-- WebSocket chat: one http:// port serves the page (GET /) and the chat
-- itself (a WebSocket upgrade on /chat); each message a client sends goes to
-- every client of the same worker.
--   luaserv examples/ws_chat.lua
--   then open http://127.0.0.1:9002/ in two browser tabs
--   (or: python3 -m websockets ws://127.0.0.1:9002/chat)
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9002"

local chat = luaserv.listen("http://127.0.0.1:" .. port, {
    name = "ws_chat",
    count = 1,              -- one worker, so that everybody shares one room
    maxPackageSize = 4096,  -- longer messages are closed with 1009
})

local PAGE = [[
<!doctype html>
<html><head><meta charset="utf-8"><title>luaserv chat</title>
<style>
body { font: 15px sans-serif; max-width: 40em; margin: 2em auto; }
#log { height: 20em; overflow-y: auto; border: 1px solid #ccc; padding: .5em;
       white-space: pre-wrap; }
#say { width: 100%; box-sizing: border-box; margin-top: .5em; }
</style></head>
<body>
<h1>luaserv chat</h1>
<div id="log"></div>
<input id="say" placeholder="say something, or /nick NAME" autofocus>
<script>
const log = document.getElementById("log");
const say = document.getElementById("say");
function show(text) {
  log.textContent += text + "\n";
  log.scrollTop = log.scrollHeight;
}
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/chat");
ws.onmessage = (e) => show(e.data);
ws.onclose = (e) => show("* disconnected (" + e.code + ")");
say.onkeydown = (e) => {
  if (e.key === "Enter" && say.value !== "") {
    ws.send(say.value);
    say.value = "";
  }
};
</script>
</body></html>
]]

-- Connections that only fetch the page are in luaserv.connections too:
-- only those that joined get messages.
local function broadcast(text)
    for conn in luaserv.connections(chat) do
        if conn.data.joined then conn:send(text) end
    end
end

-- Defining onWebSocketConnect makes this http:// listener take WebSocket
-- upgrades. It runs before the 101 answer: return false to refuse (403).
function chat.onWebSocketConnect(conn, req)
    if req.path ~= "/chat" then return false end
    conn.data.nick = "user" .. conn.id
    broadcast("* " .. conn.data.nick .. " joined")
    conn.data.joined = true
    conn:send("welcome, " .. conn.data.nick .. " (/nick NAME to rename)")
    return true
end

-- HTTP requests get a table, WebSocket messages a string.
function chat.onMessage(conn, msg)
    if type(msg) == "table" then
        if msg.path == "/" then
            conn:send { headers = { ["Cache-Control"] = "no-cache" },
                        body = PAGE }
        else
            conn:send { status = 404, body = "not here\n",
                        headers = { ["Content-Type"] = "text/plain" } }
        end
        return
    end
    local nick = msg:match("^/nick (%w+)$")
    if nick then
        broadcast("* " .. conn.data.nick .. " is now " .. nick)
        conn.data.nick = nick
        return
    end
    if msg == "/quit" then
        conn:close(1000, "bye")
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
