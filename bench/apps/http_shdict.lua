-- bench: HTTP handler doing 100 incr + 100 get on a shared dict (W9), as
-- bench/peers/nginx_shdict.lua does with lua_shared_dict. GET /micro runs
-- 200000 set + get pairs in one worker and answers "<pairs> <seconds of
-- CPU>" (the micro-benchmark line).
local luaserv = require "luaserv"

luaserv.settings { shared = { bench = "10m" } }

local s = luaserv.listen("http://127.0.0.1:" .. (os.getenv("BENCH_PORT") or "19009"),
                         { count = 2, name = "http_shdict" })

local keys = {}
for i = 1, 100 do keys[i] = "key" .. i end
local N = 200000

function s.onMessage(conn, req)
    local d = luaserv.shared.bench
    if req.path == "/micro" then
        local t0 = os.clock()
        for i = 1, N do
            local k = keys[i % 100 + 1]
            d:set(k, i)
            d:get(k)
        end
        conn:send(string.format("%d %.6f", N, os.clock() - t0))
        return
    end
    for i = 1, 100 do d:incr(keys[i], 1, 0) end
    for i = 1, 100 do d:get(keys[i]) end
    conn:send("hello")
end
