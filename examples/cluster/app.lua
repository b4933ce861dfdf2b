-- One host of a luaserv cluster: a WebSocket chat and an HTTP session API
-- whose state lives in Redis, so that any host behind the load balancer can
-- serve any client (README "Running on several machines").
--
--   CLUSTER_LISTEN=127.0.1.1:8080 CLUSTER_HOST=h1 CLUSTER_REDIS=127.0.2.1:6379 \
--       luaserv examples/cluster/app.lua
--
-- Every host runs this same file. Chat messages go into one Redis stream
-- (chat_bus.lua): each worker reads it with XREAD BLOCK from the last id it
-- has seen and hands each entry to its own clients of that room, so a worker
-- that lost Redis for a while catches up on everything it missed, and a
-- client that lost its host reconnects anywhere with ?last=ID and is
-- replayed what came after it. Sessions (sessions.lua) are Redis hashes.
--
-- GET /health answers 200 "ok", or 503 "draining" once the host is stopping
-- (`luaserv app.lua stop -g`): stopDelay keeps it serving that long, so the
-- load balancer's health check takes it out before it stops accepting.
local luaserv = require "luaserv"
local conf = require "cluster_conf"
local bus = require "chat_bus"
local sessions = require "sessions"

luaserv.settings {
    stopDelay = conf.stop_delay,   -- > HAProxy's fall x inter (2 x 0.5 s)
    stopTimeout = 10,
}

local web = luaserv.listen("http://" .. conf.listen, {
    name = "cluster",
    count = conf.workers,
    maxPackageSize = 64 * 1024,
    maxBodySize = 16 * 1024,
})

function web.onWorkerStart(worker)
    bus.start(worker)          -- its reader runs from a timer: start is not held
end

function web.onWorkerStop()
    bus.stop()                 -- stops accepting: the reader ends within a second
end

-- ws://HOST/chat?room=lobby&nick=ann[&last=ID]: cannot wait here, so the
-- replay of what a returning client missed runs from a timer (chat_bus).
function web.onWebSocketConnect(conn, req)
    if req.path ~= "/chat" then return 404 end
    return bus.join(conn, req.query)
end

function web.onMessage(conn, msg)
    if type(msg) == "table" then
        return sessions.handle(conn, msg)
    end
    bus.say(conn, msg)
end

function web.onClose(conn)
    bus.leave(conn)
end
