-- bench/soak's app: HTTP, WebSocket and text on three ports (SOAK_PORT,
-- +1, +2), 2 workers each. Every reply names the worker's pid, so that the
-- driver can tell which worker a failure belongs to. Text clients are told
-- to go ("bye") when their worker drains.
local luaserv = require "luaserv"

local base = tonumber(os.getenv("SOAK_PORT") or "9300")
luaserv.settings { stopTimeout = 5 }

local web = luaserv.listen("http://127.0.0.1:" .. base, { name = "soak_http", count = 2 })
function web.onMessage(conn, req)
    conn:send{ status = 200, body = luaserv.worker.pid .. " " .. req.path }
end

local ws = luaserv.listen("websocket://127.0.0.1:" .. (base + 1), { name = "soak_ws", count = 2 })
function ws.onMessage(conn, msg)
    conn:send(luaserv.worker.pid .. " " .. msg)
end

local text = luaserv.listen("text://127.0.0.1:" .. (base + 2), { name = "soak_text", count = 2 })
function text.onMessage(conn, msg)
    conn:send(luaserv.worker.pid .. " " .. msg)
end
function text.onDrain(conn)
    conn:send("bye")
    conn:close()
end
