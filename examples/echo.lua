-- Line echo: every line a client sends comes back to it.
--   luaserv examples/echo.lua          then: nc 127.0.0.1 9000
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9000"

local echo = luaserv.listen("text://127.0.0.1:" .. port, {
    name = "echo",
    count = 2,
})

function echo.onWorkerStart(worker)
    luaserv.log("info", "echo worker %d (pid %d) ready", worker.id, worker.pid)
end

function echo.onMessage(conn, line)
    conn:send(line)
end
