-- bench: line echo (W1, W2, W5, W7). Port from BENCH_PORT;
-- BENCH_REUSEPORT=1 gives each worker its own SO_REUSEPORT socket.
local luaserv = require "luaserv"

local s = luaserv.listen("text://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19000"),
                         {count = 1, name = "echo",
                          reusePort = os.getenv("BENCH_REUSEPORT") == "1"})

function s.onMessage(conn, msg)
    conn:send(msg)
end
