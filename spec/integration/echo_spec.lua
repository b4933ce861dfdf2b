-- Echo over text://, tcp:// and frame://: framing of lines and chunks.
local server = require "helpers.server"
local client = require "helpers.client"

describe("echo over text://", function()
    local srv
    setup(function()
        srv = server.start("spec/fixtures/apps/echo_text.lua")
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("echoes an LF-terminated line with a single \\n", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("hello\n"))
        assert.are.equal("hello", c:line(5))
        assert.are.equal("", c:drain(0.1))
    end)

    it("strips the \\r of a CRLF line", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("hello crlf\r\n"))
        assert.are.equal("hello crlf\n", c:bytes(#"hello crlf\n", 5))
        assert.are.equal("", c:drain(0.1))
    end)

    it("keeps a \\r that is not at the end of the line", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("a\rb\n"))
        assert.are.equal("a\rb", c:line(5))
    end)

    it("echoes an empty line", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("\n"))
        assert.are.equal("", c:line(5))
        assert(c:send("x\r\n"))
        assert.are.equal("x", c:line(5))
    end)

    it("reassembles lines split across writes", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        for _, part in ipairs({ "hel", "lo\nwor", "ld", "\r", "\n" }) do
            assert(c:send(part))
            client.sleep(0.05)   -- separate segments, not an assertion
        end
        assert.are.equal("hello", c:line(5))
        assert.are.equal("world", c:line(5))
    end)

    it("reassembles a line sent one byte at a time", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local msg = "byte by byte\r\n"
        for i = 1, #msg do
            assert(c:send(msg:sub(i, i)))
            client.sleep(0.01)
        end
        assert.are.equal("byte by byte", c:line(5))
    end)

    it("answers many lines sent in one write, in order", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local t = {}
        for i = 1, 200 do t[i] = "line " .. i .. (i % 2 == 0 and "\r\n" or "\n") end
        assert(c:send(table.concat(t)))
        for i = 1, 200 do
            assert.are.equal("line " .. i, c:line(5))
        end
        assert.are.equal("", c:drain(0.1))
    end)

    it("serves several clients at once", function()
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 10 do cs[i] = client.must_connect(srv.port) end
        for i, c in ipairs(cs) do assert(c:send("client " .. i .. "\n")) end
        for i, c in ipairs(cs) do
            assert.are.equal("client " .. i, c:line(5))
        end
    end)

    it("echoes a large line intact", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local big = string.rep("0123456789abcdef", 4096)   -- 64 KiB
        assert(c:send(big .. "\n"))
        assert.are.equal(big, c:line(10))
    end)
end)

describe("echo over tcp://", function()
    local srv
    setup(function()
        srv = server.start("spec/fixtures/apps/echo_tcp.lua")
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("returns the bytes exactly, with nothing appended", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("raw\r\nbytes\0\255"))
        assert.are.equal("raw\r\nbytes\0\255", c:bytes(12, 5))
        assert.are.equal("", c:drain(0.1))
    end)

    it("returns data sent in many writes, in order", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local all = {}
        for i = 1, 50 do
            local part = string.format("[%03d]", i)
            all[#all + 1] = part
            assert(c:send(part))
        end
        local want = table.concat(all)
        assert.are.equal(want, c:bytes(#want, 10))
    end)

    it("returns a large write intact", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local t = {}
        for i = 1, 20000 do t[i] = string.char(i % 256) end
        local big = table.concat(t):rep(10)    -- 200 000 bytes
        assert(c:send(big))
        assert.are.equal(big, c:bytes(#big, 20))
    end)
end)

describe("echo over frame://", function()
    local srv
    setup(function()
        srv = server.start("spec/fixtures/apps/echo_frame.lua")
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("echoes a frame with a 4-byte big-endian total length", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send(client.frame("hello frame")))
        assert.are.equal(client.frame("hello frame"), c:bytes(15, 5))
    end)

    it("reassembles frames split across writes and several in one write",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local data = client.frame("one") .. client.frame("") ..
                     client.frame("three\n\0")
        for i = 1, #data, 3 do
            assert(c:send(data:sub(i, i + 2)))
            client.sleep(0.01)
        end
        assert.are.equal("one", c:read_frame(5))
        assert.are.equal("", c:read_frame(5))
        assert.are.equal("three\n\0", c:read_frame(5))
        assert(c:send(data))
        assert.are.equal("one", c:read_frame(5))
        assert.are.equal("", c:read_frame(5))
        assert.are.equal("three\n\0", c:read_frame(5))
    end)

    -- a large frame makes the server wait for big batches (SO_RCVLOWAT);
    -- the frames after it must not wait for that much
    it("echoes a large frame sent in small pieces, then small frames",
    function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local payload = {}
        for i = 1, 1024 * 1024 / 16 do
            payload[i] = string.format("%015d\n", i)
        end
        local big = client.frame(table.concat(payload))
        for i = 1, #big, 4096 do
            assert(c:send(big:sub(i, i + 4095)))
            if i == 1 + 4096 * 100 then client.sleep(0.2) end
        end
        assert(c:send(client.frame("after")))
        local got = c:read_frame(20)
        assert.is_truthy(got, "the large frame did not come back")
        assert.are.equal(#big - 4, #got)
        assert.is_true(got == big:sub(5), "the large frame came back changed")
        assert.are.equal("after", c:read_frame(5))
        assert(c:send(client.frame("x")))
        assert.are.equal("x", c:read_frame(5))
    end)
end)
