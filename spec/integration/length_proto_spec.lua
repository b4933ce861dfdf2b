-- A length-prefixed binary protocol in its declarative and Lua-function
-- forms (examples/length_proto.lua), fed whole, byte by byte, and batched.
local server = require "helpers.server"
local socket = require "socket"

local function frame(s)
    return string.pack(">s2", s)
end

local function read_frame(c)
    local hdr = assert(c:receive(2))
    local n = string.unpack(">I2", hdr)
    if n == 0 then return "" end
    return assert(c:receive(n))
end

local function connect(port)
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(10)
    return c
end

describe("examples/length_proto.lua", function()
    local srv
    after_each(function()
        if srv then srv:stop() end
        srv = nil
    end)

    for _, which in ipairs({ "declarative", "lua" }) do
        it("answers framed messages on the " .. which .. " listener", function()
            local port2 = server.free_port()
            srv = server.start("examples/length_proto.lua", {
                env = { LUASERV_PORT2 = tostring(port2) },
            })
            local port = which == "lua" and port2 or srv.port
            local c = connect(port)
            -- whole
            c:send(frame("hello"))
            assert.are.equal("HELLO", read_frame(c))
            -- one byte at a time
            local f = frame("split across writes")
            for i = 1, #f do
                c:send(f:sub(i, i))
                socket.sleep(0.002)
            end
            assert.are.equal("SPLIT ACROSS WRITES", read_frame(c))
            -- many in one write, including an empty payload and a large one
            local big = string.rep("x", 60000)
            c:send(frame("a") .. frame("") .. frame(big) .. frame("b"))
            assert.are.equal("A", read_frame(c))
            assert.are.equal("", read_frame(c))
            assert.are.equal(big:upper(), read_frame(c))
            assert.are.equal("B", read_frame(c))
            c:close()
        end)
    end
end)

describe("a Lua protocol's failures", function()
    local srv
    after_each(function()
        if srv then srv:stop() end
        srv = nil
    end)

    local function closed(c)
        local _, err = c:receive("*a")
        return err == nil or err == "closed"
    end

    it("nil, err from input, an error in input, and an oversized packet "
       .. "each close only that connection", function()
        srv = server.start("spec/fixtures/apps/lua_proto.lua")
        srv:expect_error("input exploded")
        local good = connect(srv.port)
        good:send("hi\n")
        assert.are.equal("<hi>", good:receive("*l"))

        local bad = connect(srv.port)
        bad:send("!x\n")
        assert.is_true(closed(bad))
        local boom = connect(srv.port)
        boom:send("boom\n")
        assert.is_true(closed(boom))
        local big = connect(srv.port)
        big:send(string.rep("y", 200))
        assert.is_true(closed(big))

        good:send("still\n")
        assert.are.equal("<still>", good:receive("*l"))
        local log = srv:log()
        assert.truthy(log:find("onError 2 bad input: bang", 1, true))
        assert.truthy(log:find("onError 1 package too big", 1, true))
        assert.truthy(log:find("protocol input: .-input exploded"))
    end)
end)
