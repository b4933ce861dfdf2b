-- Hello world over HTTP/1.1: the smallest http:// app (and the one the
-- benchmark runs).
--   luaserv examples/http_hello.lua       then: curl http://127.0.0.1:8080/
local luaserv = require "luaserv"

local port = os.getenv("LUASERV_PORT") or "8080"

local web = luaserv.listen("http://127.0.0.1:" .. port, {
    name = "hello",
    count = 2,
})

function web.onMessage(conn)
    conn:send("Hello, World!")
end
