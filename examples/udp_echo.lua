-- UDP echo: every datagram comes back to the peer that sent it.
--   luaserv examples/udp_echo.lua      then: nc -u 127.0.0.1 9000
-- Each datagram is one onMessage(peer, datagram); peer:send answers it.
-- Two workers share the port (reusePort: one socket each, the kernel
-- spreads the senders), and a reload keeps the sockets: datagrams queued
-- while the workers are replaced are read by the new ones.
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9000"

local echo = luaserv.listen("udp://127.0.0.1:" .. port, {
    name = "udp_echo",
    count = 2,
    reusePort = true,
    maxPackageSize = 65507,     -- larger datagrams are dropped (and logged)
})

function echo.onWorkerStart(worker)
    luaserv.log("info", "udp echo worker %d (pid %d) ready", worker.id,
                worker.pid)
end

function echo.onMessage(peer, datagram)
    local ok, err = peer:send(datagram)
    if not ok then
        luaserv.log("warn", "cannot answer %s: %s", tostring(peer), err)
    end
end
