-- An HTTP API that caches in Redis, with the Redis client on cosockets
-- (lua/luaserv/redis.lua): handlers wait for Redis in straight-line code
-- while the worker serves everyone else.
--
--   GET    /item/:id   the item as JSON: from Redis when cached ("cache":
--                      "hit", with the seconds it has left), else computed
--                      (slowly: a sleep stands in for a database) and cached
--                      for CACHE_TTL seconds ("cache": "miss"); X-Cache too
--   DELETE /item/:id   drop the cached copy
--   GET    /stats      hits and misses, counted in Redis
--
-- Needs a running redis-server: REDIS_HOST (127.0.0.1), REDIS_PORT (6379);
-- CACHE_TTL (30). Listens on 127.0.0.1:$LUASERV_PORT (8080).
--   luaserv examples/redis_cache.lua
--   curl -i http://127.0.0.1:8080/item/7     # miss, then hit
local luaserv = require "luaserv"
local redis = require "luaserv.redis"
local cjson = require "cjson"

local api = luaserv.listen("http://127.0.0.1:" ..
    (os.getenv("LUASERV_PORT") or "8080"), { name = "redis_cache", count = 2 })

local REDIS = {
    host = os.getenv("REDIS_HOST") or "127.0.0.1",
    port = tonumber(os.getenv("REDIS_PORT") or "6379"),
    timeout = 1000,
}
local TTL = tonumber(os.getenv("CACHE_TTL") or "30")

local function json(conn, status, t, headers)
    headers = headers or {}
    headers["Content-Type"] = "application/json"
    conn:send{ status = status, headers = headers, body = cjson.encode(t) }
end

-- The expensive part the cache saves: pretend to ask a database.
local function compute(id)
    luaserv.sleep(0.05)
    return { id = id, name = "item " .. id, square = id * id,
             computedAt = os.time() }
end

local function get_item(r, id)
    local key = "item:" .. id
    local cached, err = r:get(key)
    if not cached then
        return nil, err
    end
    if cached ~= luaserv.null then
        -- hit: count it and ask how long the copy has left, in one round trip
        r:init_pipeline()
        r:incr("stats:hits")
        r:ttl(key)
        local res
        res, err = r:commit_pipeline()
        if not res then
            return nil, err
        end
        return { cache = "hit", ttl = res[2], item = cjson.decode(cached) }
    end
    local item = compute(id)
    r:init_pipeline()
    r:set(key, cjson.encode(item), "EX", TTL)
    r:incr("stats:misses")
    local res
    res, err = r:commit_pipeline()
    if not res then
        return nil, err
    end
    if type(res[1]) == "table" then     -- {false, "ERR ..."}
        return nil, res[1][2]
    end
    return { cache = "miss", ttl = TTL, item = item }
end

local function stats(r)
    local res, err = r:mget("stats:hits", "stats:misses")
    if not res then
        return nil, err
    end
    local function n(v) return v == luaserv.null and 0 or tonumber(v) end
    return { hits = n(res[1]), misses = n(res[2]) }
end

function api.onMessage(conn, req)
    local id = tonumber(req.path:match("^/item/(%d+)$"))
    local stats_route = req.path == "/stats" and req.method == "GET"
    if not id and not stats_route then
        return json(conn, 404, { error = "not found" })
    end

    local r = redis.new(REDIS)
    local ok, err = r:connect()
    if not ok then
        return json(conn, 503, { error = "redis: " .. err })
    end
    local out
    local status, headers = 200, {}
    if stats_route then
        out, err = stats(r)
    elseif req.method == "GET" then
        out, err = get_item(r, id)
        if out then headers["X-Cache"] = out.cache:upper() end
    elseif req.method == "DELETE" then
        local n
        n, err = r:del("item:" .. id)
        out = n and { deleted = n }
    else
        out, status = { error = "method not allowed" }, 405
    end
    if not out then
        r:close()
        return json(conn, 503, { error = "redis: " .. tostring(err) })
    end
    r:set_keepalive(10000, 32)      -- back to this worker's pool
    json(conn, status, out, headers)
end
