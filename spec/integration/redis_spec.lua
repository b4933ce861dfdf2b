-- luaserv.redis against a real redis-server (Debian's), from handlers of a
-- luaserv http:// app (spec/fixtures/apps/redis_client.lua) that run in
-- coroutines on cosockets: commands, replies of every type, error replies,
-- pipelines, MULTI/EXEC, pub/sub over two connections, AUTH, SELECT, unix
-- sockets, pooled connections, timeouts. The spec starts two redis-servers
-- (one with requirepass) on free loopback ports and stops them by pid.
local server = require "helpers.server"
local redis_server = require "helpers.redis"
local http = require "socket.http"
local cjson = require "cjson"

local APP = "spec/fixtures/apps/redis_client.lua"
local PASSWORD = "s3cret-pw"

describe("luaserv.redis with a real redis-server", function()
    local rs, rsauth, srv

    -- GET path on the app; the decoded JSON answer (fails on non-200).
    local function get(path)
        local body, code = http.request("http://127.0.0.1:" .. srv.port .. path)
        assert.are.equal(200, code, tostring(body) .. "\n--- log ---\n" ..
                         server.tail(srv:log(), 30))
        return cjson.decode(body)
    end

    setup(function()
        rs = redis_server.start { unix = true }
        rsauth = redis_server.start { password = PASSWORD }
        srv = server.start(APP, { env = {
            REDIS_PORT = tostring(rs.port), REDIS_SOCK = rs.sock,
            REDIS_AUTH_PORT = tostring(rsauth.port),
        } })
    end)
    teardown(function()
        local ok, err = pcall(function() if srv then srv:stop() end end)
        if rs then rs:stop() end
        if rsauth then rsauth:stop() end
        assert(ok, err)
    end)

    it("sets and gets; a missing key is luaserv.null", function()
        assert.are.same({ res = "OK" }, get("/set?k=greeting&v=hello%20there"))
        assert.are.equal("hello there", rs:command("GET", "greeting"))
        local t = get("/get?k=greeting")
        assert.are.equal("hello there", t.value)
        assert.are.equal("string", t.type)
        assert.is_false(t.is_null)
        t = get("/get?k=no-such-key")
        assert.are.equal("<null>", t.value)
        assert.is_true(t.is_null)
        assert.are.equal("userdata", t.type)
        assert.is_nil(t.err)
    end)

    it("INCR answers integers", function()
        rs:command("DEL", "counter")
        assert.are.same({ value = 1, mtype = "integer" }, get("/incr?k=counter"))
        assert.are.same({ value = 2, mtype = "integer" }, get("/incr?k=counter"))
        assert.are.equal("2", rs:command("GET", "counter"))
    end)

    it("gives error replies as nil and Redis' text, and goes on", function()
        local t = get("/errors")
        assert.are.same({ "<nil>", "ERR value is not an integer or out of range" },
                        t.incr)
        assert.are.same({ "<nil>", "WRONGTYPE Operation against a key " ..
                          "holding the wrong kind of value" }, t.lpush)
        assert.are.equal("<nil>", t.unknown[1])
        assert.matches("^ERR unknown command 'NOSUCHCOMMAND'", t.unknown[2])
        assert.are.equal("abc", t.after)
    end)

    it("pipelines commands, an error reply as {false, err}", function()
        local t = get("/pipeline")
        assert.are.equal(1, t.queued)
        assert.are.equal(6, t.n)
        assert.are.same({ "OK", "1", 2,
            { "false", "WRONGTYPE Operation against a key holding the " ..
                       "wrong kind of value" },
            "<null>", 12 }, t.replies)
        assert.is_true(t.null5)
        assert.are.equal("12", rs:command("GET", "p:a"))
    end)

    it("runs MULTI/EXEC, an error inside EXEC as {false, err}", function()
        local t = get("/multi")
        assert.are.equal("OK", t.multi)
        assert.are.same({ "QUEUED", "QUEUED", "QUEUED" }, t.queued)
        assert.are.same({ 1, "OK",
            { "false", "ERR value is not an integer or out of range" } },
            t.exec)
    end)

    it("hmset takes a table; array_to_hash pairs HGETALL up", function()
        local t = get("/hash")
        assert.are.equal("OK", t.hmset)
        assert.are.same({ a = "1", b = "two" }, t.hash)
        assert.are.same({ "1", "<null>", "two" }, t.hmget)
    end)

    it("reads a 3 MiB bulk reply that arrives in many pieces", function()
        local t = get("/big?n=" .. 3 * 1024 * 1024 + 7)
        assert.are.same({ len = 3 * 1024 * 1024 + 7, same = true }, t)
    end)

    it("subscribes, receives through a second connection, polls with a " ..
       "timeout, and leaves", function()
        local t = get("/pubsub?ch=news&msg=hi")
        assert.are.same({ "subscribe", "news", 1 }, t.conf)
        assert.are.equal(1, t.receivers)
        assert.are.same({ "message", "news", "hi" }, t.m1)
        assert.are.same({ "<nil>", "timeout" }, t.poll)
        assert.are.same({ "message", "news", "hi again" }, t.m2)
        assert.are.same({ "<nil>", "subscribed state" }, t.refused)
        assert.are.same({ "psubscribe", "news*", 2 }, t.pconf)
        assert.are.same({ "pmessage", "news*", "news-p", "by pattern" }, t.m3)
        assert.are.same({ "unsubscribe", "news", 1 }, t.unsub)
        assert.are.same({ "punsubscribe", "news*", 0 }, t.punsub)
        assert.are.equal("PONG", t.after)
    end)

    it("takes connections from the worker's pool", function()
        local function clients()
            local info = assert(rs:command("INFO", "clients"))
            return tonumber(info:match("connected_clients:(%d+)"))
        end
        get("/reused")
        local before = clients()
        local ids = {}
        for i = 1, 20 do
            local t = get("/reused")
            assert.is_true(t.reused >= 1, "request " .. i .. ": reused " ..
                           tostring(t.reused))
            ids[t.id] = true
        end
        -- 20 requests, no new connection (the spec's own INFO ones close)
        assert.is_true(clients() <= before, clients() .. " > " .. before)
        local n = 0
        for _ in pairs(ids) do n = n + 1 end
        assert.is_true(n <= 10, n .. " different connections for 20 requests")
    end)

    it("authenticates on a fresh connection only", function()
        local t = get("/auth?pw=")
        assert.are.equal(1, t.connect)
        assert.are.equal("<nil>", t.incr)
        assert.are.equal("NOAUTH Authentication required.", t.err)

        t = get("/auth?pw=wrong")
        assert.are.equal("<nil>", t.connect)
        assert.matches("^WRONGPASS invalid username%-password pair", t.err)

        t = get("/auth?pw=" .. PASSWORD)
        assert.are.same({ connect = 1, reused = 0, incr = 1 }, t)

        t = get("/auth?pw=" .. PASSWORD .. "&pool=1")
        assert.are.same({ connect = 1, reused = 0, incr = 2 }, t)
        t = get("/auth?pw=" .. PASSWORD .. "&pool=1")
        assert.are.same({ connect = 1, reused = 1, incr = 3 }, t)
        assert.are.equal("3", rsauth:command("GET", "a:count"))
    end)

    it("selects the db on connect; a bad db fails connect", function()
        local t = get("/select?k=sel-key")
        assert.are.equal("in db 3", t.in3)
        assert.are.equal("<null>", t.in0)
        assert.are.same({ "<nil>", "ERR DB index is out of range" }, t.bad)
        assert.are.equal("in db 3", rs:command("EVAL",
            "redis.call('SELECT', 3) return redis.call('GET', KEYS[1])",
            1, "sel-key"))
        assert.are.equal(0, rs:command("EXISTS", "sel-key"))
    end)

    it("connects over a unix socket", function()
        local t = get("/unix?k=ukey")
        assert.are.same({ set = "OK", get = "over unix", reused = 0 }, t)
        assert.are.equal("over unix", rs:command("GET", "ukey"))
    end)

    it("returns 'connection refused' for a port nobody listens on",
    function()
        local t = get("/refused?port=" .. server.free_port())
        assert.are.same({ ok = "<nil>", err = "connection refused" }, t)
    end)

    it("times out a read, and the client is then disconnected", function()
        local t = get("/timeout")
        assert.are.same({ "<nil>", "timeout" }, t.blpop)
        assert.are.same({ "<nil>", "not connected" }, t.after)
    end)
end)
