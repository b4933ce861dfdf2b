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
