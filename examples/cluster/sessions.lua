-- The HTTP side of a cluster host: sessions kept in Redis (so any host
-- serves any session), the rooms' members and history, and the health
-- check for the load balancer.
--
--   POST   /sessions            {"user": "ann"} -> 201 {"id": ..., ...}
--   GET    /sessions/ID         the session, its hit count + 1
--   DELETE /sessions/ID         204
--   GET    /rooms               {"rooms": {"lobby": 3, ...}} members per room
--   GET    /rooms/NAME/history?after=ID   the room's messages after ID
--   GET    /whoami              this host, worker and generation
--   GET    /health              200 ok, or 503 draining while stopping
--
-- Every reply carries X-Served-By: HOST/WORKER.
local luaserv = require "luaserv"
local redis = require "luaserv.redis"
local cjson = require "cjson"
local conf = require "cluster_conf"
local bus = require "chat_bus"

local _M = {}

local SESSION_TTL = 3600

local function reply(conn, status, t)
    conn:send { status = status, body = t and (cjson.encode(t) .. "\n") or "",
        headers = { ["Content-Type"] = "application/json",
                    ["X-Served-By"] = conf.host .. "/" .. luaserv.worker.id,
                    ["Cache-Control"] = "no-store" } }
end

local function client()
    local r = redis.new { host = conf.redis_host, port = conf.redis_port,
                          timeout = conf.redis_timeout }
    local ok, err = r:connect()
    if not ok then return nil, err end
    return r
end

-- 128 bits from the kernel, as hex.
local function new_id()
    local f = assert(io.open("/dev/urandom", "rb"))
    local b = f:read(16)
    f:close()
    return (b:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local routes = {}

function routes.create(conn, req, r)
    local ok, body = pcall(cjson.decode, req.body ~= "" and req.body or "{}")
    local user = ok and type(body) == "table" and body.user
    if type(user) ~= "string" or #user == 0 or #user > 64 then
        return reply(conn, 400, { error = "body must be {\"user\": NAME}" })
    end
    local id = new_id()
    r:init_pipeline()
    r:hset("session:" .. id, "user", user, "created_by", conf.host,
           "created", os.time(), "hits", 0)
    r:expire("session:" .. id, SESSION_TTL)
    local res, err = r:commit_pipeline()
    if not res then return nil, err end
    if type(res[1]) == "table" and res[1][1] == false then
        return nil, res[1][2]
    end
    reply(conn, 201, { id = id, user = user, created_by = conf.host })
end

function routes.get(conn, _, r, id)
    local key = "session:" .. id
    r:init_pipeline()
    r:hincrby(key, "hits", 1)   -- makes the hash if it was gone: checked below
    r:hgetall(key)
    r:expire(key, SESSION_TTL)
    local res, err = r:commit_pipeline()
    if not res then return nil, err end
    local s = type(res[2]) == "table" and r:array_to_hash(res[2]) or {}
    if not s.user then
        r:del(key)
        return reply(conn, 404, { error = "no such session" })
    end
    reply(conn, 200, { id = id, user = s.user, hits = tonumber(s.hits),
                       created_by = s.created_by, served_by = conf.host })
end

function routes.delete(conn, _, r, id)
    local n, err = r:del("session:" .. id)
    if not n then return nil, err end
    reply(conn, n == 1 and 204 or 404, n ~= 1 and { error = "no such session" }
                                        or nil)
end

function routes.rooms(conn, _, r)
    local t, err = bus.rooms(r)
    if not t then return nil, err end
    reply(conn, 200, { rooms = t })
end

function routes.history(conn, req, r, room)
    local after_id = req.query.after
    if after_id ~= nil and (type(after_id) ~= "string" or
                            not bus.parse_id(after_id)) then
        return reply(conn, 400, { error = "after must be a stream id" })
    end
    local msgs, last = bus.history(r, room, after_id, 500)
    if not msgs then return nil, last end
    reply(conn, 200, { room = room, messages = msgs, last = last or cjson.null })
end

local function route(req)
    local m, p = req.method, req.path
    if p == "/sessions" and m == "POST" then return routes.create end
    local id = p:match("^/sessions/(%x+)$")
    if id and m == "GET" then return routes.get, id end
    if id and m == "DELETE" then return routes.delete, id end
    if p == "/rooms" and m == "GET" then return routes.rooms end
    local room = p:match("^/rooms/([%w_%-]+)/history$")
    if room and m == "GET" then return routes.history, room end
end

-- While Redis is down every request fails: one log line a second, with
-- how many others failed meanwhile.
local warned_at, unwarned = 0, 0
local function warn_redis(req, err)
    local now = os.time()
    if now == warned_at then
        unwarned = unwarned + 1
        return
    end
    luaserv.log("warn", "%s %s: redis: %s%s", req.method, req.path,
                tostring(err), unwarned > 0 and
                string.format(" (and %d more since)", unwarned) or "")
    warned_at, unwarned = now, 0
end

--- onMessage for an HTTP request.
function _M.handle(conn, req)
    if req.path == "/health" then
        -- The host's own state only: Redis being down is not a reason for
        -- the balancer to take every host out at once.
        if luaserv.worker.stopping == "stop" then
            return conn:send { status = 503, body = "draining\n",
                headers = { ["Content-Type"] = "text/plain" } }
        end
        return conn:send { body = "ok " .. conf.host .. "\n",
            headers = { ["Content-Type"] = "text/plain" } }
    end
    if req.path == "/whoami" then
        return reply(conn, 200, { host = conf.host, worker = luaserv.worker.id,
            pid = luaserv.worker.pid, generation = luaserv.worker.generation })
    end
    local fn, arg = route(req)
    if not fn then return reply(conn, 404, { error = "not found" }) end
    local r, err = client()
    if r then
        local ok
        ok, err = fn(conn, req, r, arg)
        if ok == nil and err then
            r:close()
        else
            r:set_keepalive(10000, 32)
            return
        end
    end
    warn_redis(req, err)
    reply(conn, 503, { error = "redis: " .. tostring(err) })
end

return _M
