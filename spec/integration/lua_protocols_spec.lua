-- The Lua protocol modules under lua/luaserv/protocols/ in running apps:
-- examples/redis_kv.lua (RESP) and a length-prefixed fixture, fed whole,
-- byte by byte, batched, large and malformed.
local server = require "helpers.server"
local client = require "helpers.client"

-- RESP command as a client sends it.
local function cmd(...)
    local t = { "*" .. select("#", ...) .. "\r\n" }
    for _, a in ipairs { ... } do
        t[#t + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(t)
end

describe("examples/redis_kv.lua (luaserv.protocols.resp)", function()
    local srv
    setup(function()
        srv = server.start("examples/redis_kv.lua", { wait_workers = 1 })
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    local function conn()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        return c
    end

    it("answers commands, inline and as arrays", function()
        local c = conn()
        assert(c:send("PING\r\n"))
        assert.are.equal("+PONG\r", c:line(5))
        assert(c:send(cmd("SET", "greeting", "hello")))
        assert.are.equal("+OK\r", c:line(5))
        assert(c:send(cmd("GET", "greeting")))
        assert.are.equal("$5\r", c:line(5))
        assert.are.equal("hello\r", c:line(5))
        assert(c:send(cmd("GET", "nothing")))
        assert.are.equal("$-1\r", c:line(5))
        assert(c:send(cmd("INCR", "n") .. cmd("INCR", "n")))
        assert.are.equal(":1\r", c:line(5))
        assert.are.equal(":2\r", c:line(5))
        assert(c:send(cmd("FLY")))
        assert.are.equal("-ERR unknown command 'FLY'\r", c:line(5))
    end)

    it("takes a command byte by byte, and a pipelined batch", function()
        local c = conn()
        local set = cmd("SET", "k", "v\r\nwith CRLF")
        for i = 1, #set do
            assert(c:send(set:sub(i, i)))
        end
        assert.are.equal("+OK\r", c:line(5))
        local batch = {}
        for i = 1, 100 do batch[i] = cmd("ECHO", "m" .. i) end
        assert(c:send(table.concat(batch)))
        for i = 1, 100 do
            local m = "m" .. i
            assert.are.equal("$" .. #m .. "\r", c:line(5))
            assert.are.equal(m .. "\r", c:line(5))
        end
    end)

    it("stores a large value sent in small pieces", function()
        local c = conn()
        local big = ("0123456789abcdef"):rep(32 * 1024)     -- 512 KiB
        local set = cmd("SET", "big", big)
        for i = 1, #set, 1000 do
            assert(c:send(set:sub(i, i + 999)))
        end
        assert.are.equal("+OK\r", c:line(5))
        assert(c:send(cmd("GET", "big")))
        assert.are.equal("$" .. #big .. "\r", c:line(5))
        assert.are.equal(big .. "\r\n", c:bytes(#big + 2, 10))
    end)

    it("closes on malformed input after onError", function()
        local c = conn()
        assert(c:send(cmd("PING") .. "$nope\r\n"))
        assert.are.equal("+PONG\r", c:line(5))
        assert(c:wait_closed(5))
        assert(srv:wait_log("bad input: bad bulk string length", 5))
    end)

    it("closes a command over maxPackageSize", function()
        local c = conn()
        assert(c:send("*2\r\n$3\r\nGET\r\n$2000000\r\n"))
        assert(c:wait_closed(5))
        assert(srv:wait_log("package too big", 5))
    end)

    it("QUIT answers +OK, then closes", function()
        local c = conn()
        assert(c:send(cmd("QUIT")))
        assert.are.equal("+OK\r", c:line(5))
        assert(c:wait_closed(5))
    end)
end)

describe("luaserv.protocols.length in an app", function()
    after_each(function() server.cleanup() end)

    it("frames both ways, whole, split and batched", function()
        local srv = server.start("spec/fixtures/apps/length_module.lua")
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local function frame(s) return string.pack("<I2", #s + 2) .. s end
        local function read()
            local n = string.unpack("<I2", assert(c:bytes(2, 5)))
            return n > 2 and assert(c:bytes(n - 2, 5)) or ""
        end
        assert(c:send(frame("abc")))
        assert.are.equal("cba", read())
        local f = frame(("xy"):rep(30000))
        for i = 1, #f, 999 do assert(c:send(f:sub(i, i + 998))) end
        assert.are.equal(("yx"):rep(30000), read())
        assert(c:send(frame("1") .. frame("") .. frame("23")))
        assert.are.equal("1", read())
        assert.are.equal("", read())
        assert.are.equal("32", read())
        -- a length smaller than the header is bad input
        assert(c:send("\1\0"))
        assert(c:wait_closed(5))
        assert(srv:wait_log("smaller than its header", 5))
    end)
end)
