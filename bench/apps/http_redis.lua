-- bench: HTTP handler doing one Redis GET over a pooled cosocket (W8).
-- BENCH_PORT: the listener; BENCH_REDIS_PORT: redis-server on 127.0.0.1.
-- BENCH_REDIS_CLIENT=1 goes through luaserv.redis; otherwise the few lines
-- of RESP are written here, as the nginx-lua peer does (same work).
local luaserv = require "luaserv"
local redis = require "luaserv.redis"

local rport = tonumber(os.getenv("BENCH_REDIS_PORT"))
local client = os.getenv("BENCH_REDIS_CLIENT") == "1"
local GET = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"

local s = luaserv.listen("http://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19003"),
                         { count = 1, name = "http_redis" })

function s.onMessage(conn, req)
    local v
    if client then
        local r = redis.new { port = rport, timeout = 1000 }
        assert(r:connect())
        v = assert(r:get("key"))
        r:set_keepalive(10000, 200)
    else
        local sock = luaserv.tcp()
        sock:settimeout(1000)
        assert(sock:connect("127.0.0.1", rport))
        assert(sock:send(GET))
        local head = assert(sock:receive())
        v = assert(sock:receive(tonumber(head:sub(2)) + 2)):sub(1, -3)
        sock:setkeepalive(10000, 200)
    end
    conn:send(v)
end
