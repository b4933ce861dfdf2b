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

-- The page: a nick field, a message field with a Send button, and the list
-- of what the room said. The ids (nick, msg, send, messages, status) are
-- what spec/browser/chat.mjs drives in headless Chromium.
local PAGE = [[
<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>luaserv chat</title>
<link rel="icon" href="data:,">
<style>
body { font: 15px sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; }
#status { color: #a60; }
#status[data-state="open"] { color: #070; }
#messages { list-style: none; height: 20em; overflow-y: auto; margin: 0;
            border: 1px solid #ccc; padding: .5em; }
#messages li { padding: .1em 0; white-space: pre-wrap; word-break: break-word; }
#messages li.system { color: #777; font-style: italic; }
#form { display: flex; gap: .5em; margin-top: .5em; }
#nick { width: 8em; }
#msg { flex: 1; }
</style></head>
<body>
<h1>luaserv chat</h1>
<p id="status" data-state="connecting">connecting&hellip;</p>
<ul id="messages" aria-live="polite"></ul>
<form id="form" autocomplete="off">
  <input id="nick" placeholder="nick" maxlength="32" pattern="[A-Za-z0-9]+"
         title="letters and digits">
  <input id="msg" placeholder="say something (or /nick NAME)" autofocus>
  <button id="send" type="submit" disabled>Send</button>
</form>
<script>
const $ = (id) => document.getElementById(id);
const list = $("messages"), status = $("status"), nick = $("nick"),
      msg = $("msg"), send = $("send");
let myNick = "";
function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}
function show(text) {
  const li = document.createElement("li");
  if (text.startsWith("* ") || text.startsWith("welcome, ")) {
    li.className = "system";
  }
  li.textContent = text;
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
}
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/chat");
ws.onopen = () => { setStatus("open", "connected"); send.disabled = false; };
ws.onmessage = (e) => {
  const m = /^welcome, (\w+) /.exec(e.data);
  if (m) { myNick = m[1]; nick.placeholder = m[1]; }
  show(e.data);
};
ws.onclose = (e) => {
  send.disabled = true;
  setStatus("closed", "disconnected (" + e.code + ")");
  show("* disconnected (" + e.code + ")");
};
$("form").onsubmit = (e) => {
  e.preventDefault();
  if (ws.readyState !== WebSocket.OPEN) return;
  const n = nick.value.trim();
  if (n !== "" && n !== myNick) {
    if (!/^[A-Za-z0-9]+$/.test(n)) { show("* a nick is letters and digits"); return; }
    ws.send("/nick " + n);   // the server renames before the next message
    myNick = n;
  }
  if (msg.value !== "") {
    ws.send(msg.value);
    msg.value = "";
  }
  msg.focus();
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
