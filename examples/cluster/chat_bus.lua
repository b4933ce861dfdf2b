-- The chat's message bus: one Redis stream (chat:log) that every host
-- appends to (XADD) and every worker reads (XREAD BLOCK from the last id it
-- saw). A stream rather than PUBLISH/SUBSCRIBE because pub/sub forgets
-- what it sent while a subscriber was away; the stream keeps it, so:
--
-- * a worker whose Redis connection broke reconnects (with back-off) and
--   goes on reading after the last id it handled: nothing it missed is
--   lost, nothing is read twice;
-- * each client connection remembers the last stream id it has been
--   handed (conn.data.last) and only gets entries after it, so nothing
--   reaches it twice;
-- * a client that lost its host (kill -9, a stop, a reload) reconnects to
--   any host with ?last=ID and that host replays (XRANGE) what the stream
--   holds after ID before the live entries, so it misses nothing either.
--
-- Frames to clients are JSON: welcome, msg, ack (your message is in the
-- stream, with its id), error (it is not), caught_up (after a replay),
-- gap (the stream no longer holds what came after your last id: trimmed,
-- or Redis lost its data).
-- Rooms are a field of each entry; who is in which room is a sorted set
-- per room in Redis (room:NAME, scored by when the member was last seen),
-- refreshed by each worker every 2 s so that the members of a host that
-- died fade out.
local luaserv = require "luaserv"
local redis = require "luaserv.redis"
local cjson = require "cjson"
local conf = require "cluster_conf"

local _M = {}

local STREAM = "chat:log"
local MAXLEN = 100000          -- XADD MAXLEN ~: the replay window
local BLOCK_MS = 1000          -- each XREAD waits at most this long
local REPLAY_BATCH = 200
local PRESENCE_EVERY = 2       -- seconds
local PRESENCE_TTL = 6         -- a member not refreshed that long is gone
local MAX_TEXT = 2000

local rooms = {}               -- room -> set of this worker's connections
local cursor                   -- last stream id the reader handled
local quit = false
local reader_up = false
local member_prefix

-- Stream ids are "ms-seq"; compare them as two integers.
local function parse_id(id)
    local ms, seq = tostring(id):match("^(%d+)%-(%d+)$")
    if not ms then return nil end
    return math.tointeger(tonumber(ms)), math.tointeger(tonumber(seq))
end

--- Is stream id a after stream id b? (nil b: everything is after it.)
local function after(a, b)
    if b == nil then return true end
    local am, as = parse_id(a)
    local bm, bs = parse_id(b)
    return am > bm or (am == bm and as > bs)
end
_M.after = after

local function client()
    local r = redis.new { host = conf.redis_host, port = conf.redis_port,
                          timeout = conf.redis_timeout }
    local ok, err = r:connect()
    if not ok then return nil, err end
    return r
end

local function fields_of(arr)
    local t = {}
    for i = 1, #arr, 2 do t[arr[i]] = arr[i + 1] end
    return t
end

local function frame(id, f)
    return cjson.encode { type = "msg", id = id, room = f.room, nick = f.nick,
                          text = f.text, ref = f.ref, host = f.host }
end

-- Hand one stream entry to this worker's clients in its room, each at most
-- once and in stream order: a client being replayed gets it from the
-- replay instead (see replay()).
local function dispatch(id, arr)
    local f = fields_of(arr)
    local members = rooms[f.room]
    if not members then return end
    local text
    for conn in pairs(members) do
        local d = conn.data
        if not d.replaying and after(id, d.last) then
            text = text or frame(id, f)
            if conn:send(text) then
                d.last = id
            else
                -- too slow to keep up (buffer full): it reconnects with
                -- ?last= and is replayed from there
                d.replaying = true
                conn:close(1013, "too slow; reconnect with last")
            end
        end
    end
end

-- The worker's reader: XREAD BLOCK from the last id handled, forever;
-- when Redis fails, back off (0.1 s doubling to 3 s, with jitter) and go on
-- from the same id.
local function read_loop()
    local backoff, failures = 0.1, 0
    while not quit do
        local r, err = client()
        if r and cursor == nil then
            -- A fresh worker starts at the end of the stream: its clients
            -- start there (welcome.last), returning ones are replayed.
            local last
            last, err = r:xrevrange(STREAM, "+", "-", "COUNT", 1)
            if last then
                cursor = last[1] and last[1][1] or "0-0"
            else
                r:close()
                r = nil
            end
        end
        if r then
            if failures > 0 then
                luaserv.log("info", "chat bus: redis is back after %d " ..
                            "failure(s); reading %s after %s", failures,
                            STREAM, cursor)
            end
            backoff, failures = 0.1, 0
            reader_up = true
            r:set_timeout(BLOCK_MS + 2000)
            while not quit do
                local res
                res, err = r:xread("COUNT", 500, "BLOCK", BLOCK_MS,
                                   "STREAMS", STREAM, cursor)
                if not res then break end
                if res ~= luaserv.null then
                    for _, e in ipairs(res[1][2]) do
                        dispatch(e[1], e[2])
                        cursor = e[1]
                    end
                end
            end
            reader_up = false
            r:close()
        end
        if quit then break end
        failures = failures + 1
        local wait = backoff * (0.5 + math.random())
        luaserv.log("warn", "chat bus: redis %s:%d: %s; retrying in %.2f s " ..
                    "(from %s)", conf.redis_host, conf.redis_port,
                    tostring(err), wait, tostring(cursor))
        luaserv.sleep(wait)
        backoff = math.min(backoff * 2, 3)
    end
end

-- A bug in the loop must not leave the worker deaf: log it, start again.
local function reader()
    while not quit do
        local ok, err = pcall(read_loop)
        if ok then break end
        luaserv.log("error", "chat bus: reader failed: %s; restarting it",
                    tostring(err))
        luaserv.sleep(1)
    end
end

-- Replay to a returning client what the stream holds after its last id,
-- then hand it over to the reader. The reader skips it meanwhile, so the
-- hand-over is only done once the replay has reached the reader's cursor:
-- every entry up to the cursor came from the replay, every later one will
-- come from the reader, none twice (d.last filters).
--
-- The first round also checks that the client's last id is still in the
-- stream: when it is not (trimmed past MAXLEN, or a Redis that lost its
-- data) what came between is gone, and the client is told so ("gap") rather
-- than left to believe it has everything.
local function check_gap(conn, r)
    local d = conn.data
    if d.last == "0-0" then return true end
    r:init_pipeline()
    r:xrange(STREAM, d.last, d.last, "COUNT", 1)
    r:xrange(STREAM, "-", "+", "COUNT", 1)
    local res, err = r:commit_pipeline()
    if not res then return nil, err end
    local mine, first = res[1], res[2]
    if type(mine) == "table" and #mine == 0 and type(first) == "table" and
       first[1] and after(first[1][1], d.last) then
        return conn:send(cjson.encode { type = "gap", after = d.last,
                                        first = first[1][1] })
    end
    return true
end

local function replay(conn)
    local d = conn.data
    local backoff = 0.1
    local checked = false
    while d.replaying and not quit do
        local r, err = client()
        local res
        if r and not checked then
            checked, err = check_gap(conn, r)
            if not checked then r:close() r = nil end
        end
        if r then
            res, err = r:xrange(STREAM, "(" .. d.last, "+", "COUNT",
                                REPLAY_BATCH)
            if res then r:set_keepalive(10000, 16) else r:close() end
        end
        if not res then
            if not conn:send(cjson.encode { type = "error",
                    error = "replay: " .. tostring(err) .. "; retrying" }) then
                return
            end
            luaserv.sleep(backoff)
            backoff = math.min(backoff * 2, 3)
        else
            for _, e in ipairs(res) do
                local f = fields_of(e[2])
                if f.room == d.room then
                    local ok, why = conn:send(frame(e[1], f))
                    if not ok then
                        -- a replay larger than its send buffer: it comes
                        -- back with ?last= where it got to, for the rest
                        if why == "buffer full" then
                            conn:close(1013, "replay too large; reconnect " ..
                                       "with last")
                        end
                        return
                    end
                end
                d.last = e[1]       -- scanned up to here, any room
            end
            if #res < REPLAY_BATCH and not after(cursor or "0-0", d.last) then
                d.replaying = false
                conn:send(cjson.encode { type = "caught_up", last = d.last })
            end
        end
    end
end

-- Every PRESENCE_EVERY seconds: mark this worker's members as present in
-- their rooms and drop the ones nobody refreshed (a host that died).
local function presence()
    local r = client()
    if not r then return end
    local now = os.time()
    r:init_pipeline()
    for room, members in pairs(rooms) do
        for conn in pairs(members) do
            r:zadd("room:" .. room, now, conn.data.member)
        end
        r:sadd("rooms", room)
        r:zremrangebyscore("room:" .. room, "-inf", now - PRESENCE_TTL)
    end
    r:commit_pipeline()
    r:set_keepalive(10000, 16)
end

local NAME = "^[%w_%-]+$"

--- onWebSocketConnect: check the query, register the connection with its
-- room, send the welcome, and start the replay for a returning client.
-- Returns what onWebSocketConnect returns (nil to accept, or a status).
function _M.join(conn, q)
    local room = q.room or "lobby"
    local nick = q.nick or ("guest" .. conn.id)
    if type(room) ~= "string" or #room > 32 or not room:match(NAME) or
       type(nick) ~= "string" or #nick > 32 or not nick:match(NAME) then
        return 400
    end
    local last = q.last
    if last ~= nil and (type(last) ~= "string" or not parse_id(last)) then
        return 400
    end
    if cursor == nil then
        -- this worker has not reached Redis yet, so it cannot say where a
        -- new client starts: it retries (a returning one could be served,
        -- but would wait for Redis all the same)
        return 503
    end
    local d = conn.data
    d.room, d.nick = room, nick
    d.member = member_prefix .. conn.id .. "/" .. nick
    if last then
        d.last, d.replaying = last, true
    else
        d.last = cursor       -- new: everything after this worker's position
    end
    rooms[room] = rooms[room] or {}
    rooms[room][conn] = true
    conn:send(cjson.encode { type = "welcome", host = conf.host,
        worker = luaserv.worker.id, room = room, nick = nick,
        last = d.last or cjson.null, resumed = last ~= nil,
        bus = reader_up })
    if last then luaserv.after(0, function() replay(conn) end) end
end

-- Append one message of conn's to the stream; tell the sender the id
-- (ack) or why it is not in (error): never dropped silently.
local function publish(conn, msg)
    local d = conn.data
    local text, ref = msg, nil
    if msg:sub(1, 1) == "{" then
        local ok, m = pcall(cjson.decode, msg)
        if ok and type(m) == "table" then
            text, ref = m.text, m.ref
        end
    end
    if type(text) ~= "string" or #text == 0 or #text > MAX_TEXT or
       (ref ~= nil and (type(ref) ~= "string" or #ref > 64)) then
        conn:send(cjson.encode { type = "error", ref = ref,
                                 error = "bad message" })
        return
    end
    local r, err = client()
    local id
    if r then
        id, err = r:xadd(STREAM, "MAXLEN", "~", MAXLEN, "*", "room", d.room,
                         "nick", d.nick, "text", text, "ref", ref or "",
                         "host", conf.host)
        if id then r:set_keepalive(10000, 16) else r:close() end
    end
    if id then
        conn:send(cjson.encode { type = "ack", ref = ref, id = id })
    else
        conn:send(cjson.encode { type = "error", ref = ref,
                                 error = "not sent: " .. tostring(err) })
    end
end

--- onMessage for a WebSocket message: a JSON {"text": ..., "ref": ...} or
-- plain text. One connection's messages are appended in the order they
-- came (each WebSocket message has a coroutine of its own: queue them).
function _M.say(conn, msg)
    local d = conn.data
    if d.outq then
        d.outq[#d.outq + 1] = msg
        return
    end
    d.outq = { msg }
    local i = 1
    while d.outq[i] ~= nil do
        publish(conn, d.outq[i])
        d.outq[i] = false
        i = i + 1
    end
    d.outq = nil
end

--- onClose: forget the connection here and in Redis.
function _M.leave(conn)
    local d = conn.data
    if not d.room then return end
    local members = rooms[d.room]
    if members then
        members[conn] = nil
        if next(members) == nil then rooms[d.room] = nil end
    end
    d.replaying = false
    local r = client()
    if r then
        r:zrem("room:" .. d.room, d.member)
        r:set_keepalive(10000, 16)
    end
end

--- onWorkerStart: the reader and the presence refresher, from timers (an
-- onWorkerStart that waits would hold the worker's start).
function _M.start(worker)
    member_prefix = conf.host .. "/" .. worker.id .. "/" .. worker.pid .. "/"
    math.randomseed(worker.pid)
    luaserv.after(0, reader)
    luaserv.every(PRESENCE_EVERY, presence)
end

--- onWorkerStop: the reader ends at its next turn (within BLOCK_MS).
function _M.stop()
    quit = true
end

--- Per-room member counts (presence) for GET /rooms.
function _M.rooms(r)
    local names, err = r:smembers("rooms")
    if not names then return nil, err end
    local now, out = os.time(), {}
    for _, room in ipairs(names) do
        local n = r:zcount("room:" .. room, now - PRESENCE_TTL, "+inf")
        if type(n) == "number" and n > 0 then out[room] = n end
    end
    return out
end

--- Entries of a room after an id (GET /rooms/NAME/history?after=ID).
function _M.history(r, room, after_id, count)
    local res, err = r:xrange(STREAM, after_id and ("(" .. after_id) or "-",
                              "+", "COUNT", count)
    if not res then return nil, err end
    local out = {}
    for _, e in ipairs(res) do
        local f = fields_of(e[2])
        if f.room == room then
            out[#out + 1] = { id = e[1], nick = f.nick, text = f.text,
                              host = f.host }
        end
    end
    return out, res[#res] and res[#res][1] or after_id
end

_M.parse_id = parse_id
_M.STREAM = STREAM
return _M
