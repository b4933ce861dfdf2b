-- bench: HTTP hello world (W3, W3p, W4, W7). Port from BENCH_PORT;
-- BENCH_REUSEPORT=1 gives each worker its own SO_REUSEPORT socket;
-- BENCH_DEFER=0 turns deferAccept (the default for http://) off.
local luaserv = require "luaserv"

local s = luaserv.listen("http://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19002"),
                         {count = 1, name = "http_hello",
                          reusePort = os.getenv("BENCH_REUSEPORT") == "1",
                          deferAccept = os.getenv("BENCH_DEFER") ~= "0"})

function s.onMessage(conn, req)
    conn:send("hello")
end
