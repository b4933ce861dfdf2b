-- nginx-lua peer of W9: 100 incr + 100 get on a lua_shared_dict per
-- request, as bench/apps/http_shdict.lua does; /micro: the micro-benchmark.
local d = ngx.shared.bench
local keys = package.loaded.bench_shdict_keys -- made once per worker
if not keys then
    keys = {}
    for i = 1, 100 do keys[i] = "key" .. i end
    package.loaded.bench_shdict_keys = keys
end
if ngx.var.uri == "/micro" then
    local n = 200000
    local t0 = os.clock()
    for i = 1, n do
        local k = keys[i % 100 + 1]
        d:set(k, i)
        d:get(k)
    end
    local body = string.format("%d %.6f", n, os.clock() - t0)
    ngx.header.content_length = #body
    return ngx.print(body)
end
for i = 1, 100 do d:incr(keys[i], 1, 0) end
for i = 1, 100 do d:get(keys[i]) end
ngx.header.content_length = 5
ngx.print("hello")
