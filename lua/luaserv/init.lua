--- luaserv: the module an app script requires.
-- The runtime lives in C (`luaserv.core`); this file is the public face and the
-- place for helpers written in Lua.
-- @module luaserv

local core = require "luaserv.core"

local select = select
local format = string.format

local _M = {
    _VERSION = core.version,
    --- The current worker: `id`, `pid`, `name` (its listener), `generation`.
    -- nil while the script is being validated by the master.
    worker = core.worker,
    --- Error codes passed to onError(conn, code, text).
    errors = core.errors,
    listen = core.listen,
    settings = core.settings,
    connections = core.connections,
    after = core.after,
    every = core.every,
    connect = core.connect,
    --- Wait this many seconds; the worker serves others meanwhile.
    sleep = core.sleep,
    --- A TCP (or unix socket) cosocket: connect, send, receive, keep-alive.
    tcp = core.tcp,
    --- A datagram cosocket: setpeername, send, receive.
    udp = core.udp,
    --- A null value (Redis's nil bulk reply, JSON null): a light userdata.
    null = core.null,
    --- Shared dicts declared by settings{ shared = { NAME = SIZE } }:
    -- shared.NAME has OpenResty's ngx.shared.DICT methods (in workers).
    shared = core.shared,
    --- Send a string (up to 1 MiB) to the worker with that id (ids are
    -- unique across listeners): true, or nil, "queue full" / "no such worker".
    send = core.send,
    --- Send a string to every worker of every listener, this one included.
    broadcast = core.broadcast,
    --- Run data through luaserv.onTask in a task worker; waits for the
    -- result: result, nil or nil, err ("queue full", "timeout",
    -- "task failed: ...", "task worker died").
    task = core.task,
}

-- JSON through lua-cjson (Debian's lua-cjson), loaded on first use.
local cjson_safe
local function json()
    if cjson_safe == nil then
        local ok, m = pcall(require, "cjson.safe")
        if not ok then
            error("luaserv.encode/decode need lua-cjson " ..
                  "(apt-get install lua-cjson): " .. tostring(m), 3)
        end
        m.encode_sparse_array(true)
        cjson_safe = m
    end
    return cjson_safe
end

--- A Lua value as JSON text: text, or nil, err (a function, a
-- userdata other than luaserv.null, a cycle). luaserv.null is JSON null.
function _M.encode(value)
    local text, err = json().encode(value)
    return text, err
end

--- JSON text as a Lua value: value, or nil, err for text that is not
-- JSON. JSON null is luaserv.null (the same light userdata as cjson.null).
-- @raise when text is not a string
function _M.decode(text)
    if type(text) ~= "string" then
        error("bad argument #1 to 'decode' (string expected, got " ..
              type(text) .. ")", 2)
    end
    local value, err = json().decode(text)
    if value == nil and err then
        return nil, err
    end
    return value
end

--- Log a line at level "debug", "info", "warn" or "error".
-- @param level string
-- @param fmt a message, or a string.format pattern for the arguments after it
-- @raise on an unknown level or a bad format
function _M.log(level, fmt, ...)
    if select("#", ...) > 0 then
        fmt = format(fmt, ...)
    end
    core.log(level, fmt) -- not a tail call: LuaJIT would drop this frame,
                         -- and a bad level's error its name 'log'
end

return _M
