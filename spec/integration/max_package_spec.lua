-- A message over maxPackageSize: onError, then close; others unaffected.
local server = require "helpers.server"
local client = require "helpers.client"

describe("maxPackageSize", function()
    after_each(function() server.cleanup() end)

    it("fires onError and closes only the offending connection", function()
        local srv = server.start("spec/fixtures/apps/max_package.lua",
            { wait_workers = 1 })
        local good = client.must_connect(srv.port)
        local bad = client.must_connect(srv.port)
        finally(function() good:close(); bad:close() end)

        assert.are.equal("small", good:request("small", 5))
        assert.are.equal(string.rep("x", 60), bad:request(string.rep("x", 60), 5))

        -- no newline: the buffered message alone exceeds the limit
        assert(bad:send(string.rep("y", 500)))
        assert.is_true(bad:wait_closed(10), "oversized connection not closed")

        local lines = srv:wait_log("onError conn=", 5)
        assert.is_truthy(lines, "onError did not fire\n" ..
            server.tail(srv:log()))
        assert.are.equal(1, #lines, "onError fired more than once")
        local id = lines[1]:match("onError conn=(%d+)")
        assert.is_truthy(id, lines[1])
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 5))
        client.sleep(0.1)
        assert.are.equal(1, srv:count_log("onClose conn=" .. id .. "$"))
        -- onError happens before onClose
        local log = srv:log()
        local e = log:find("onError conn=" .. id .. " ", 1, true)
        local c = log:find("onClose conn=" .. id .. "\n", 1, true)
        assert.is_true(e < c, "onClose before onError")

        assert.are.equal("still fine", good:request("still fine", 5))
        local again = client.must_connect(srv.port)
        finally(function() good:close(); bad:close(); again:close() end)
        assert.are.equal("new", again:request("new", 5))
    end)

    it("fires for a complete line that is too long", function()
        local srv = server.start("spec/fixtures/apps/max_package.lua",
            { wait_workers = 1 })
        local bad = client.must_connect(srv.port)
        finally(function() bad:close() end)
        assert(bad:send(string.rep("z", 200) .. "\n"))
        assert.is_true(bad:wait_closed(10))
        assert.is_truthy(srv:wait_log("onError conn=", 5))
        assert.is_falsy(bad.buf:find(string.rep("z", 200), 1, true),
            "the oversized line was delivered")
    end)
end)
