-- Ticker: every client gets the time once a second.
--   LUASERV_PORT=9700 luaserv examples/ticker.lua
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "9700"
local interval = tonumber(os.getenv("LUASERV_TICK") or "1")

local ticker = luaserv.listen("text://127.0.0.1:" .. port, { name = "ticker" })

function ticker.onWorkerStart()
    local n = 0
    luaserv.every(interval, function()
        n = n + 1
        local line = ("tick %d %s"):format(n, os.date("!%Y-%m-%dT%H:%M:%SZ"))
        for conn in luaserv.connections(ticker) do
            conn:send(line)
        end
    end)
end

function ticker.onConnect(conn)
    conn:send("hello, ticks every " .. interval .. " s")
end
