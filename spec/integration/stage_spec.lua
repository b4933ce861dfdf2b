-- Replies sent while the messages of one read are delivered are gathered
-- and written in one piece (conn.c, "staging"): the bytes must come out in
-- the order they were sent, whatever path each send takes, and close() and
-- destroy() must treat them as the rest of the output.
local server = require "helpers.server"
local client = require "helpers.client"

describe("replies to a batch of messages", function()
    local srv
    setup(function() srv = server.start("spec/fixtures/apps/stage.lua") end)
    teardown(function() if srv then srv:stop() end end)

    local function connect()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        return c
    end

    it("come back in order for a batch of pipelined messages", function()
        local c = connect()
        local out, want = {}, {}
        for i = 1, 3000 do
            out[#out + 1] = "n " .. i .. "\n"
            want[#want + 1] = "r " .. i .. "\n"
        end
        want = table.concat(want)
        assert(c:send(table.concat(out)))    -- one write: large batches
        assert.are.equal(want, c:bytes(#want, 15))
    end)

    it("keep their order when small and large sends are mixed", function()
        local c = connect()
        local out, want = {}, {}
        for i = 1, 40 do
            local k = (i % 3 == 0) and 40000 or (i % 3 == 1) and 5000 or 10
            out[#out + 1] = ("mix %d %d\n"):format(i, k)
            want[#want + 1] = ("a %d\n%s\nc %d\n"):format(i, ("b"):rep(k), i)
        end
        want = table.concat(want)
        assert(c:send(table.concat(out)))
        local got = c:bytes(#want, 15)
        assert.is_truthy(got, "short: " .. #c.buf .. " of " .. #want)
        assert.is_true(got == want, "bytes out of order")
    end)

    it("keep their order past what the stage holds", function()
        local c = connect()
        local want = {}
        for i = 1, 20000 do want[#want + 1] = "m " .. i .. "\n" end
        want = table.concat(want)
        assert(c:send("many 20000\nn 1\n"))
        local got = c:bytes(#want + #"r 1\n", 15)
        assert.is_truthy(got, "short: " .. #c.buf)
        assert.is_true(got == want .. "r 1\n", "bytes out of order")
    end)

    it("are written before close(data), then the connection ends",
       function()
        local c = connect()
        assert(c:send("n 1\nclose\nn 2\n"))
        assert.is_truthy(c:wait_closed(10))
        assert.are.equal("r 1\nx\nbye\n", c.buf)
    end)

    it("are dropped with the rest of the output by destroy()", function()
        local c = connect()
        assert(c:send("n 1\ndestroy\n"))
        assert.is_truthy(c:wait_closed(10))
        assert.is_nil(c.buf:find("x", 1, true), c.buf)
    end)

    it("to another connection arrive there, in order with its own",
       function()
        local a, b = connect(), connect()
        assert(b:send("id\n"))
        local bid = assert(b:line(5))
        local out = {}
        for i = 1, 500 do out[#out + 1] = ("to %s t%d\nn %d\n"):format(bid, i, i) end
        assert(a:send(table.concat(out)))
        local want_a, want_b = {}, {}
        for i = 1, 500 do
            want_a[#want_a + 1] = "sent\nr " .. i .. "\n"
            want_b[#want_b + 1] = "t" .. i .. "\n"
        end
        want_a, want_b = table.concat(want_a), table.concat(want_b)
        assert.are.equal(want_a, a:bytes(#want_a, 15))
        assert.are.equal(want_b, b:bytes(#want_b, 15))
    end)
end)
