-- lua/luaserv/redis.lua against a scripted fake cosocket
-- (spec/helpers/fake_cosocket.lua): the bytes it sends, how it decodes
-- replies that arrive in any split, pipelines, pub/sub, AUTH/SELECT on fresh
-- connections only, the keep-alive hand-over, and what a broken connection
-- leaves behind.
local fake = require "helpers.fake_cosocket"

-- The RESP request of a command, as Redis expects it: an array of bulks.
local function req(...)
    local t = { "*" .. select("#", ...) .. "\r\n" }
    for _, w in ipairs { ... } do
        t[#t + 1] = "$" .. #w .. "\r\n" .. w .. "\r\n"
    end
    return table.concat(t)
end

describe("luaserv.redis", function()
    local redis, null

    setup(function()
        local luaserv = fake.install("luaserv.redis")
        null = luaserv.null
        redis = require "luaserv.redis"
    end)
    teardown(function() fake.uninstall("luaserv.redis") end)
    after_each(function()
        assert.are.equal(0, fake.left(), "a queued fake socket was not used")
    end)

    -- A client connected to a fake that replays script.
    local function connected(script, fopts, ropts)
        local s = fake.new(script, fopts)
        fake.queue(s)
        local r = redis.new(ropts)
        assert.are.equal(1, r:connect())
        return r, s
    end

    describe("new", function()
        it("defaults to 127.0.0.1:6379", function()
            local r, s = connected({})
            assert.are.equal("127.0.0.1:6379", s.connected_to)
            assert.are.equal("luaserv.redis (127.0.0.1:6379, connected)",
                             tostring(r))
        end)

        it("takes host, port and a unix socket path", function()
            local _, s = connected({}, nil, { host = "::1", port = 7000 })
            assert.are.equal("::1:7000", s.connected_to)
            _, s = connected({}, nil, { path = "/run/redis.sock" })
            assert.are.equal("unix:/run/redis.sock", s.connected_to)
        end)

        it("pools connections apart by address, user, password and db",
        function()
            local pools = {}
            for _, o in ipairs({ {}, { db = 3 }, { password = "s3cret-one" },
                                 { password = "s3cret-two" }, { user = "u",
                                 password = "s3cret-one" }, { port = 7000 } }) do
                local _, s = connected({}, { reused = 1 }, o)
                assert.is_string(s.pool)
                assert.is_nil(s.pool:find(o.password or "\0", 1, true),
                              "the password is not in the pool name")
                pools[s.pool] = true
            end
            local n = 0
            for _ in pairs(pools) do n = n + 1 end
            assert.are.equal(6, n)
            local _, s1 = connected({}, { reused = 1 }, { db = 1 })
            local _, s2 = connected({}, { reused = 1 }, { db = 1 })
            assert.are.equal(s1.pool, s2.pool)
        end)

        it("works as redis:new{...} too", function()
            local r = redis:new { port = 7001 }
            assert.are.equal("luaserv.redis (127.0.0.1:7001)", tostring(r))
        end)

        it("raises on bad options", function()
            assert.has_error(function() redis.new { port = 0 } end,
                "bad option 'port' (integer from 1 to 65535 expected, got 0)")
            assert.has_error(function() redis.new { port = "6379" } end,
                "bad option 'port' (integer from 1 to 65535 expected, " ..
                "got 6379)")
            assert.has_error(function() redis.new { host = 1 } end,
                "bad option 'host' (non-empty string expected, got 1)")
            assert.has_error(function() redis.new { timeout = -1 } end,
                "bad option 'timeout' (non-negative number of ms " ..
                "expected, got -1)")
            assert.has_error(function() redis.new { db = 1.5 } end,
                "bad option 'db' (non-negative integer expected, got 1.5)")
            assert.has_error(function() redis.new { password = {} } end)
            assert.has_error(function() redis.new { user = "u" } end,
                "bad options: 'user' needs 'password'")
            assert.has_error(function()
                redis.new { path = "/x", port = 1 }
            end, "bad options: 'path' excludes 'host' and 'port'")
            assert.has_error(function() redis.new(5) end,
                "bad argument #1 to 'new' (table expected, got number)")
        end)
    end)

    describe("connect", function()
        it("returns the cosocket's error", function()
            fake.queue(fake.new({}, { connect_err = "connection refused" }))
            local r = redis.new()
            local ok, err = r:connect()
            assert.is_nil(ok)
            assert.are.equal("connection refused", err)
            ok, err = r:get("k")
            assert.is_nil(ok)
            assert.are.equal("not connected", err)
        end)

        it("applies the timeout to connect, send and read", function()
            local _, s = connected({}, nil, { timeout = 250 })
            assert.are.same({ { 250, 250, 250 } }, s.timeouts)
        end)

        it("leaves the cosocket's default timeout alone without one",
        function()
            local _, s = connected({})
            assert.are.same({}, s.timeouts)
        end)

        it("sends AUTH and SELECT on a fresh connection", function()
            local s = fake.new(fake.script(1, { "+OK\r\n" },
                                          { { sent = 2 }, "+OK\r\n" }))
            fake.queue(s)
            local r = redis.new { password = "sekret", db = 3 }
            assert.are.equal(1, r:connect())
            assert.are.same({ req("AUTH", "sekret"), req("SELECT", "3") },
                            s.sent)
            assert.is_true(s:drained())
        end)

        it("sends AUTH with the user name for ACLs", function()
            local _, s = connected(fake.script(1, { "+OK\r\n" }), nil,
                                   { user = "app", password = "pw" })
            assert.are.same({ req("AUTH", "app", "pw") }, s.sent)
        end)

        it("sends neither on a connection from the pool", function()
            local _, s = connected({}, { reused = 2 },
                                   { password = "sekret", db = 3 })
            assert.are.same({}, s.sent)
        end)

        it("skips SELECT for db 0", function()
            local _, s = connected({}, nil, { db = 0 })
            assert.are.same({}, s.sent)
        end)

        it("fails and closes on an AUTH error reply", function()
            local s = fake.new(fake.script(1,
                { "-WRONGPASS invalid username-password pair\r\n" }))
            fake.queue(s)
            local r = redis.new { password = "bad" }
            local ok, err = r:connect()
            assert.is_nil(ok)
            assert.are.equal("WRONGPASS invalid username-password pair", err)
            assert.is_true(s.close_called)
            assert.is_nil(s.keepalive)
        end)

        it("fails on a SELECT error reply", function()
            local s = fake.new(fake.script(1,
                { "-ERR DB index is out of range\r\n" }))
            fake.queue(s)
            local ok, err = redis.new({ db = 99 }):connect()
            assert.is_nil(ok)
            assert.are.equal("ERR DB index is out of range", err)
            assert.is_true(s.closed)
        end)

        it("drops the old connection when called again", function()
            local r, s1 = connected({})
            local s2 = fake.new({})
            fake.queue(s2)
            assert.are.equal(1, r:connect())
            assert.is_true(s1.close_called)
            assert.is_false(s2.closed)
        end)
    end)

    describe("commands", function()
        it("sends any method as an upper-case command of bulk strings",
        function()
            local r, s = connected(fake.script(1, { "+OK\r\n" }))
            assert.are.equal("OK", r:set("key", "va\r\nlue"))
            assert.are.same({ req("SET", "key", "va\r\nlue") }, s.sent)
        end)

        it("sends numbers as decimal strings", function()
            local r, s = connected(fake.script(1, { ":3\r\n" }))
            assert.are.equal(3, r:zadd("z", 1, 2.5, -7, 0.1))
            assert.are.same({ req("ZADD", "z", "1", "2.5", "-7",
                                  "0.10000000000000001") }, s.sent)
        end)

        it("sends a command with no arguments", function()
            local r, s = connected(fake.script(1, { "+PONG\r\n" }))
            assert.are.equal("PONG", r:ping())
            assert.are.same({ req("PING") }, s.sent)
        end)

        it("takes names that are not identifiers (module commands)",
        function()
            local r, s = connected(fake.script(1, { "$2\r\n{}\r\n" }))
            assert.are.equal("{}", r["json.get"](r, "doc"))
            assert.are.same({ req("JSON.GET", "doc") }, s.sent)
        end)

        it("does not make commands of names that start with _", function()
            local r = redis.new()
            assert.is_nil(r._nothing)
            assert.is_nil(r[1])
        end)

        it("sends hmset's table as field value pairs", function()
            local r, s = connected(fake.script(1, { "+OK\r\n" }))
            assert.are.equal("OK", r:hmset("h", { b = 2, a = "x" }))
            assert.are.same({ req("HMSET", "h", "a", "x", "b", "2") }, s.sent)
        end)

        it("raises on an argument that is not a string or number",
        function()
            local r = connected({})
            local ok, err = pcall(function()
                local v = r:set("k", true)   -- not a tail call: keep the
                return v                     -- caller's line in the error
            end)
            assert.is_false(ok)
            assert.matches("redis_spec.lua:%d+: bad argument #2 to 'set' " ..
                           "%(string or number expected, got boolean%)$", err)
            assert.has_error(function() r:get({}) end)
            assert.has_error(function() r:mget("a", nil, "b") end)
        end)

        it("returns nil, 'not connected' before connect", function()
            local v, err = redis.new():get("k")
            assert.is_nil(v)
            assert.are.equal("not connected", err)
        end)
    end)

    describe("replies", function()
        local cases = {
            { "a status", "+OK\r\n", "OK" },
            { "an integer", ":-42\r\n", -42 },
            { "a 64-bit integer", ":9223372036854775807\r\n",
              math.maxinteger },
            { "a bulk string with CRLF in it", "$6\r\nab\r\ncd\r\n",
              "ab\r\ncd" },
            { "an empty bulk string", "$0\r\n\r\n", "" },
            { "an empty array", "*0\r\n", {} },
            { "an array of everything",
              "*5\r\n:1\r\n$1\r\nx\r\n+st\r\n*1\r\n$-1\r\n*-1\r\n",
              { 1, "x", "st", { "NULL" }, "NULL" } },
            { "an error inside an array",
              "*2\r\n+OK\r\n-ERR bad\r\n", { "OK", { false, "ERR bad" } } },
        }
        local function fix(v)     -- "NULL" placeholders -> the sentinel
            if v == "NULL" then return null end
            if type(v) == "table" then
                local t = {}
                for i, e in ipairs(v) do t[i] = fix(e) end
                for k, e in pairs(v) do t[k] = fix(e) end
                return t
            end
            return v
        end
        for _, c in ipairs(cases) do
            it("decodes " .. c[1] .. " in every split", function()
                for _, parts in ipairs(fake.splits(c[2])) do
                    local r, s = connected(fake.script(1, parts,
                        { { sent = 2 }, "+NEXT\r\n" }))
                    local v, err = r:get("k")
                    assert.are.same(fix(c[3]), v, err)
                    -- nothing of the reply is left for the next one
                    assert.are.equal("NEXT", r:get("k"))
                    assert.is_true(s:drained())
                end
            end)
        end

        it("gives a null bulk as luaserv.null", function()
            local r = connected(fake.script(1, { "$-1\r\n" }))
            assert.are.equal(null, r:get("missing"))
            assert.are.equal(null, redis.null)
        end)

        it("gives an error reply as nil and its text, keeping the " ..
           "connection", function()
            for _, parts in ipairs(fake.splits("-ERR value is not an " ..
                                               "integer\r\n")) do
                local r, s = connected(fake.script(1, parts,
                                                   { { sent = 2 }, ":1\r\n" }))
                local v, err = r:incr("k")
                assert.is_nil(v)
                assert.are.equal("ERR value is not an integer", err)
                assert.are.equal(1, r:incr("k"))
                assert.is_false(s.closed)
            end
        end)

        it("reads a bulk body with one receive of its length + 2", function()
            local r, s = connected(fake.script(1, { "$5\r\n", "he", "llo\r\n" }))
            assert.are.equal("hello", r:get("k"))
            assert.are.same({ "*l", 7 }, s.reads)
        end)

        local bad = {
            { "+OK\r\n", nil },     -- placeholder, replaced below
            { "?what\r\n", "protocol error: bad reply type \"?\"" },
            { ":12a\r\n", "protocol error: bad integer" },
            { "$-2\r\n", "protocol error: bad bulk string length" },
            { "$2\r\nabcd\r\n", "protocol error: bulk string not followed " ..
                                "by CRLF" },
            { "*x\r\n", "protocol error: bad array length" },
            { "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
              "protocol error: arrays nested too deep" },
        }
        table.remove(bad, 1)
        for _, c in ipairs(bad) do
            it("closes the connection on " .. c[2] .. " (" ..
               c[1]:sub(1, 6):gsub("\r\n", "") .. ")", function()
                local r, s = connected(fake.script(1, { c[1] }))
                local v, err = r:get("k")
                assert.is_nil(v)
                assert.are.equal(c[2], err)
                assert.is_true(s.close_called)
                v, err = r:get("k")
                assert.is_nil(v)
                assert.are.equal("not connected", err)
            end)
        end

        it("refuses an array longer than resp.MAX_ELEMENTS", function()
            local resp = require "luaserv.protocols.resp"
            local r = connected(fake.script(1, { "*" .. resp.MAX_ELEMENTS + 1
                                                 .. "\r\n" }))
            local v, err = r:lrange("l", 0, -1)
            assert.is_nil(v)
            assert.are.equal("protocol error: array of " ..
                             resp.MAX_ELEMENTS + 1 .. " elements", err)
        end)

        it("refuses a bulk string longer than MAX_BULK", function()
            local r = connected(fake.script(1, { "$" .. redis.MAX_BULK + 1 ..
                                                 "\r\n" }))
            local v, err = r:get("k")
            assert.is_nil(v)
            assert.are.equal("protocol error: bulk string of " ..
                             redis.MAX_BULK + 1 .. " bytes", err)
        end)

        it("closes on a timeout in the middle of a reply", function()
            local r, s = connected(fake.script(1, { "*2\r\n$1\r\na\r\n",
                                                    fake.TIMEOUT }))
            local v, err = r:lrange("l", 0, -1)
            assert.is_nil(v)
            assert.are.equal("timeout", err)
            assert.is_true(s.close_called)
            assert.are.equal("not connected", select(2, r:get("k")))
        end)

        it("closes on a timeout before the reply (it would come late)",
        function()
            local r, s = connected(fake.script(1, { fake.TIMEOUT, "+OK\r\n" }))
            local v, err = r:get("k")
            assert.is_nil(v)
            assert.are.equal("timeout", err)
            assert.is_true(s.close_called)
        end)

        it("returns 'closed' when the server goes away", function()
            local r = connected(fake.script(1, { "$10\r\nabc" }))
            local v, err = r:get("k")
            assert.is_nil(v)
            assert.are.equal("closed", err)
        end)

        it("returns the send error and drops the connection", function()
            local r, s = connected({}, { send_err = "broken pipe" })
            local v, err = r:get("k")
            assert.is_nil(v)
            assert.are.equal("broken pipe", err)
            assert.is_true(s.close_called)
        end)
    end)

    describe("pipelines", function()
        it("queues commands and sends them in one write", function()
            local r, s = connected(fake.script(1, fake.splits(
                "+OK\r\n$1\r\nv\r\n-ERR no\r\n$-1\r\n:2\r\n")[2]))
            assert.are.equal(1, r:init_pipeline())
            assert.are.equal(1, r:set("k", "v"))
            assert.are.equal(1, r:get("k"))
            assert.are.equal(1, r:hget("k", "f"))
            assert.are.equal(1, r:get("none"))
            assert.are.equal(1, r:incr("n"))
            assert.are.same({}, s.sent)
            local res, err = r:commit_pipeline()
            assert.are.same({ "OK", "v", { false, "ERR no" }, null, 2 }, res,
                            err)
            assert.are.same({ req("SET", "k", "v") .. req("GET", "k") ..
                              req("HGET", "k", "f") .. req("GET", "none") ..
                              req("INCR", "n") }, s.sent)
            assert.is_true(s:drained())
        end)

        it("ends with commit: the next command goes at once", function()
            local r, s = connected(fake.script(1, { "+OK\r\n" },
                                               { { sent = 2 }, ":5\r\n" }))
            r:init_pipeline()
            r:set("a", 1)
            r:commit_pipeline()
            assert.are.equal(5, r:incr("b"))
            assert.are.equal(2, #s.sent)
        end)

        it("drops the queue on cancel", function()
            local r, s = connected(fake.script(1, { ":1\r\n" }))
            r:init_pipeline()
            r:set("a", 1)
            assert.are.equal(1, r:cancel_pipeline())
            local res, err = r:commit_pipeline()
            assert.is_nil(res)
            assert.are.equal("no pipeline", err)
            assert.are.equal(1, r:incr("x"))
            assert.are.same({ req("INCR", "x") }, s.sent)
        end)

        it("commits an empty pipeline without a write", function()
            local r, s = connected({})
            r:init_pipeline()
            assert.are.same({}, r:commit_pipeline())
            assert.are.same({}, s.sent)
        end)

        it("fails as a whole, closing, when the connection fails", function()
            local r, s = connected(fake.script(1, { "+OK\r\n" }))
            r:init_pipeline()
            r:set("a", 1)
            r:get("a")
            local res, err = r:commit_pipeline()
            assert.is_nil(res)
            assert.are.equal("closed", err)
            assert.is_true(s.closed)
        end)

        it("without a connection: nil, 'not connected'", function()
            local r = redis.new()
            r:init_pipeline()
            r:get("a")
            assert.are.same({ nil, "not connected" },
                            { r:commit_pipeline() })
        end)
    end)

    describe("pub/sub", function()
        local function sub(ch, n) return "*3\r\n$9\r\nsubscribe\r\n$" .. #ch ..
            "\r\n" .. ch .. "\r\n:" .. n .. "\r\n" end
        local function unsub(ch, n) return "*3\r\n$11\r\nunsubscribe\r\n$" ..
            #ch .. "\r\n" .. ch .. "\r\n:" .. n .. "\r\n" end
        local function msg(ch, m) return "*3\r\n$7\r\nmessage\r\n$" .. #ch ..
            "\r\n" .. ch .. "\r\n$" .. #m .. "\r\n" .. m .. "\r\n" end

        it("subscribes, reads messages and unsubscribes", function()
            local r, s = connected(fake.script(1, { sub("news", 1) },
                { msg("news", "hello"), msg("news", "again"),
                  { sent = 2 }, unsub("news", 0), { sent = 3 }, "+OK\r\n" }))
            assert.are.same({ "subscribe", "news", 1 }, r:subscribe("news"))
            assert.are.same({ "message", "news", "hello" }, r:read_reply())
            assert.are.same({ "message", "news", "again" }, r:read_reply())
            assert.are.same({ "unsubscribe", "news", 0 }, r:unsubscribe())
            assert.are.equal("OK", r:set("k", "v"))
            assert.are.same({ req("SUBSCRIBE", "news"), req("UNSUBSCRIBE"),
                              req("SET", "k", "v") }, s.sent)
        end)

        it("reads one confirmation per channel", function()
            local r = connected(fake.script(1, { sub("a", 1), sub("b", 2) },
                { { sent = 2 }, unsub("a", 1), unsub("b", 0) }))
            assert.are.same({ { "subscribe", "a", 1 }, { "subscribe", "b", 2 } },
                            r:subscribe("a", "b"))
            assert.are.same({ { "unsubscribe", "a", 1 },
                              { "unsubscribe", "b", 0 } }, r:unsubscribe())
            assert.are.same({ nil, "not subscribed" }, { r:read_reply() })
        end)

        it("keeps a message that comes before a confirmation", function()
            local r = connected(fake.script(1, { sub("a", 1) },
                { { sent = 2 }, msg("a", "early"), sub("b", 2) }))
            r:subscribe("a")
            assert.are.same({ "subscribe", "b", 2 }, r:subscribe("b"))
            assert.are.same({ "message", "a", "early" }, r:read_reply())
        end)

        it("psubscribes and reads pmessages", function()
            local r = connected(fake.script(1,
                { "*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n",
                  "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$2\r\nnx\r\n$1\r\nm\r\n" },
                { { sent = 2 },
                  "*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n" }))
            assert.are.same({ "psubscribe", "n*", 1 }, r:psubscribe("n*"))
            assert.are.same({ "pmessage", "n*", "nx", "m" }, r:read_reply())
            assert.are.same({ "punsubscribe", "n*", 0 }, r:punsubscribe())
        end)

        it("stays subscribed after a read timeout with nothing read",
        function()
            local r, s = connected(fake.script(1, { sub("a", 1) },
                { fake.TIMEOUT, msg("a", "late") }))
            r:subscribe("a")
            assert.are.same({ nil, "timeout" }, { r:read_reply() })
            assert.is_false(s.closed)
            assert.are.same({ "message", "a", "late" }, r:read_reply())
        end)

        it("closes after a read timeout in the middle of a message",
        function()
            local r, s = connected(fake.script(1, { sub("a", 1) },
                { "*3\r\n$7\r\nmess", fake.TIMEOUT }))
            r:subscribe("a")
            assert.are.same({ nil, "timeout" }, { r:read_reply() })
            assert.is_true(s.close_called)
            assert.are.same({ nil, "not connected" }, { r:read_reply() })
        end)

        it("refuses commands, a pipeline and the pool while subscribed",
        function()
            local r, s = connected(fake.script(1, { sub("a", 1) }))
            r:subscribe("a")
            assert.are.same({ nil, "subscribed state" }, { r:get("k") })
            r:init_pipeline()
            r:get("k")
            assert.are.same({ nil, "subscribed state" },
                            { r:commit_pipeline() })
            assert.are.same({ nil, "subscribed state" },
                            { r:set_keepalive(1000, 10) })
            assert.is_nil(s.keepalive)
            assert.are.equal(1, #s.sent)
        end)

        it("raises on subscribe without a channel or inside a pipeline",
        function()
            local r = connected({})
            assert.has_error(function() r:subscribe() end,
                "bad argument #1 to 'subscribe' (channel expected)")
            r:init_pipeline()
            local ok, err = pcall(function()
                local v = r:subscribe("a")
                return v
            end)
            assert.is_false(ok)
            assert.matches("redis_spec.lua:%d+: subscribe inside a " ..
                           "pipeline$", err)
        end)

        it("read_reply without subscribing: nil, 'not subscribed'",
        function()
            local r = connected({})
            assert.are.same({ nil, "not subscribed" }, { r:read_reply() })
        end)
    end)

    describe("set_keepalive, close, timeouts", function()
        it("hands the connection to the pool and disconnects", function()
            local r, s = connected({})
            assert.are.equal(1, r:set_keepalive(10000, 50))
            assert.are.same({ idle = 10000, pool = 50 }, s.keepalive)
            assert.is_nil(s.close_called)
            assert.are.same({ nil, "not connected" }, { r:get("k") })
            assert.are.same({ nil, "not connected" }, { r:set_keepalive() })
        end)

        it("passes no arguments on for the cosocket's defaults", function()
            local r, s = connected({})
            assert.are.equal(1, r:set_keepalive())
            assert.are.same({}, s.keepalive)
        end)

        it("reports the reuse count of the connection", function()
            local r = connected({}, { reused = 4 })
            assert.are.equal(4, r:get_reused_times())
            r:close()
            assert.are.same({ nil, "not connected" }, { r:get_reused_times() })
        end)

        it("closes", function()
            local r, s = connected({})
            assert.are.equal(1, r:close())
            assert.is_true(s.close_called)
            assert.are.same({ nil, "not connected" }, { r:close() })
        end)

        it("sets timeouts on the connection and for the next one", function()
            local r, s = connected({})
            r:set_timeout(100)
            r:set_timeouts(1, 2, 3)
            assert.are.same({ { 100, 100, 100 }, { 1, 2, 3 } }, s.timeouts)
            local s2 = fake.new({})
            fake.queue(s2)
            r:connect()
            assert.are.same({ { 1, 2, 3 } }, s2.timeouts)
            assert.has_error(function() r:set_timeout("1") end,
                "bad argument #1 to 'set_timeout' (non-negative number " ..
                "expected, got 1)")
        end)
    end)

    describe("array_to_hash", function()
        it("pairs up an HGETALL reply, as a method and on the module",
        function()
            local r = redis.new()
            assert.are.same({ a = "1", b = "2" },
                            r:array_to_hash { "a", "1", "b", "2" })
            assert.are.same({ x = "y" }, redis:array_to_hash { "x", "y" })
            assert.are.same({ p = "q" }, redis.array_to_hash { "p", "q" })
            assert.has_error(function() redis.array_to_hash() end)
            assert.has_error(function() r:array_to_hash("x") end,
                "bad argument #1 to 'array_to_hash' (table expected, got " ..
                "string)")
        end)
    end)
end)
