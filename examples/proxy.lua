-- TCP proxy with end-to-end backpressure.
--   LUASERV_PORT=9600 LUASERV_BACKEND=tcp://127.0.0.1:8000 luaserv examples/proxy.lua
-- Bytes from a client go to a fresh backend connection and back, unchanged.
-- When either side cannot keep up (its send buffer is full), the other side
-- stops reading until it has drained, so memory stays bounded by
-- maxSendBufferSize per direction.
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9600"
local backend_addr = os.getenv("LUASERV_BACKEND") or "tcp://127.0.0.1:8000"
local limit = 256 * 1024

local proxy = luaserv.listen("tcp://127.0.0.1:" .. port, {
    name = "proxy",
    count = 1,
    maxSendBufferSize = limit,
})

function proxy.onConnect(client)
    client:pauseRecv() -- nothing to forward to until the backend is up
    client.data.backend = luaserv.connect(backend_addr, {
        maxSendBufferSize = limit,
        connectTimeout = 5,
        onConnect = function() client:resumeRecv() end,
        onMessage = function(_, data) client:send(data) end,
        onBufferFull = function() client:pauseRecv() end,
        onBufferDrain = function() client:resumeRecv() end,
        onError = function(_, _, text)
            luaserv.log("warn", "backend %s: %s", backend_addr, text)
        end,
        onClose = function() client:close() end,
    })
end

function proxy.onMessage(client, data)
    client.data.backend:send(data)
end

function proxy.onBufferFull(client)
    client.data.backend:pauseRecv()
end

function proxy.onBufferDrain(client)
    client.data.backend:resumeRecv()
end

function proxy.onClose(client)
    client.data.backend:close()
end
