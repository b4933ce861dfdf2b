-- A small JSON API over http://: routing on method and path, lua-cjson for
-- bodies, statuses and headers set by the app.
--   luaserv examples/http_api.lua
--   curl -d '{"name":"milk"}' http://127.0.0.1:8080/items
--   curl http://127.0.0.1:8080/items/1
--
-- Items live in the worker's memory, so this runs one worker: with several,
-- each would keep its own list.
local luaserv = require "luaserv"
local cjson = require "cjson.safe"

local port = os.getenv("LUASERV_PORT") or "8080"

local api = luaserv.listen("http://127.0.0.1:" .. port, {
    name = "api",
    count = 1,
    maxBodySize = 64 * 1024,
})

local items, next_id = {}, 1

local JSON = { ["Content-Type"] = "application/json" }

local function reply(conn, status, value, headers)
    local h = headers or JSON
    if headers then h["Content-Type"] = "application/json" end
    conn:send{ status = status, headers = h, body = cjson.encode(value) }
end

local function fail(conn, status, message, headers)
    reply(conn, status, { error = message }, headers)
end

local function list(conn)
    local out = {}
    for id = 1, next_id - 1 do
        if items[id] then out[#out + 1] = items[id] end
    end
    if #out == 0 then -- Debian's lua-cjson 2.1.0 would encode {} as an object
        return conn:send{ status = 200, headers = JSON, body = "[]" }
    end
    reply(conn, 200, out)
end

local function create(conn, req)
    local body, err = cjson.decode(req.body)
    if type(body) ~= "table" or type(body.name) ~= "string" then
        return fail(conn, 400, err and "bad JSON: " .. err
                                   or "expected {\"name\": string}")
    end
    local item = { id = next_id, name = body.name }
    items[next_id], next_id = item, next_id + 1
    reply(conn, 201, item, { Location = "/items/" .. item.id })
end

-- method -> handler, per route; the id (if any) comes from the path.
local routes = {
    { pattern = "^/items$", GET = list, POST = create },
    { pattern = "^/items/(%d+)$",
      GET = function(conn, _, id)
          if not items[id] then return fail(conn, 404, "no such item") end
          reply(conn, 200, items[id])
      end,
      DELETE = function(conn, _, id)
          if not items[id] then return fail(conn, 404, "no such item") end
          items[id] = nil
          conn:send{ status = 204 }
      end },
}

function api.onMessage(conn, req)
    for _, r in ipairs(routes) do
        local id = req.path:match(r.pattern)
        if id then
            local handler = r[req.method]
            if not handler then
                local allow = {}
                for _, m in ipairs({ "GET", "POST", "DELETE" }) do
                    if r[m] then allow[#allow + 1] = m end
                end
                return fail(conn, 405, "method not allowed",
                            { Allow = table.concat(allow, ", ") })
            end
            return handler(conn, req, tonumber(id))
        end
    end
    fail(conn, 404, "no route for " .. req.path)
end
