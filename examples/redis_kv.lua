-- A small Redis-compatible key-value server on the RESP protocol module
-- (lua/luaserv/protocols/resp.lua): PING, ECHO, GET, SET, DEL, EXISTS,
-- INCR, DBSIZE, QUIT. One worker, so that every client sees the same keys.
--   luaserv examples/redis_kv.lua      then: redis-cli -p 6380 set k v
local luaserv = require "luaserv"
local resp = require "luaserv.protocols.resp"

local port = os.getenv("LUASERV_PORT") or "6380"

local kv = luaserv.listen("tcp://127.0.0.1:" .. port, {
    name = "redis_kv",
    count = 1,
    protocol = resp,
    maxPackageSize = 1024 * 1024,   -- the largest command
})

local store, nkeys = {}, 0
local OK = resp.status("OK")

local function set(k, v)
    if store[k] == nil and v ~= nil then nkeys = nkeys + 1 end
    if store[k] ~= nil and v == nil then nkeys = nkeys - 1 end
    store[k] = v
end

local function wrong_args(name)
    return resp.error("ERR wrong number of arguments for '" .. name ..
                      "' command")
end

local commands = {}

function commands.PING(args)
    if #args > 2 then return wrong_args("ping") end
    return args[2] or resp.status("PONG")
end

function commands.ECHO(args)
    if #args ~= 2 then return wrong_args("echo") end
    return args[2]
end

function commands.GET(args)
    if #args ~= 2 then return wrong_args("get") end
    local v = store[args[2]]
    return v == nil and resp.null or v
end

function commands.SET(args)
    if #args ~= 3 then return wrong_args("set") end
    set(args[2], args[3])
    return OK
end

function commands.DEL(args)
    if #args < 2 then return wrong_args("del") end
    local n = 0
    for i = 2, #args do
        if store[args[i]] ~= nil then
            set(args[i], nil)
            n = n + 1
        end
    end
    return n
end

function commands.EXISTS(args)
    if #args < 2 then return wrong_args("exists") end
    local n = 0
    for i = 2, #args do
        if store[args[i]] ~= nil then n = n + 1 end
    end
    return n
end

function commands.INCR(args)
    if #args ~= 2 then return wrong_args("incr") end
    local v = store[args[2]] or "0"
    local n = math.tointeger(tonumber(v))
    if not n or not v:match("^%-?%d+$") or n == math.maxinteger then
        return resp.error("ERR value is not an integer or out of range")
    end
    set(args[2], tostring(n + 1))
    return n + 1
end

function commands.DBSIZE()
    return nkeys
end

function kv.onMessage(conn, cmd)
    -- a command is an array of strings; an empty inline line is ignored
    if type(cmd) ~= "table" or resp.is_error(cmd) then
        conn:send(resp.error("ERR protocol: expected a command"))
        return
    end
    if #cmd == 0 then return end
    for i = 1, #cmd do
        if type(cmd[i]) ~= "string" then
            conn:send(resp.error("ERR protocol: arguments must be strings"))
            return
        end
    end
    local name = cmd[1]:upper()
    if name == "QUIT" then
        conn:close(OK)
        return
    end
    local f = commands[name]
    if not f then
        conn:send(resp.error("ERR unknown command '" .. cmd[1] .. "'"))
        return
    end
    conn:send(f(cmd))
end

function kv.onError(conn, _, text)
    luaserv.log("info", "redis_kv: conn %d: %s", conn.id, text)
end
