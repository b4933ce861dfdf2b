-- bench: HTTPS hello world (W10, W11). Port from BENCH_PORT, certificate
-- and key from BENCH_TLS_CERT / BENCH_TLS_KEY (the same files nginx gets).
local luaserv = require "luaserv"

local s = luaserv.listen("https://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19443"),
                         {count = 1, name = "https_hello",
                          ssl = {cert = os.getenv("BENCH_TLS_CERT"),
                                 key = os.getenv("BENCH_TLS_KEY")}})

function s.onMessage(conn, req)
    conn:send("hello")
end
