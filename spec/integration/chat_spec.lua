-- luaserv.connections(srv): broadcast to every client of the worker.
local server = require "helpers.server"
local client = require "helpers.client"

describe("luaserv.connections", function()
    after_each(function() server.cleanup() end)

    it("iterates the worker's open connections (broadcast)", function()
        local srv = server.start("spec/fixtures/apps/chat.lua",
            { wait_workers = 1 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 3 do cs[i] = client.must_connect(srv.port) end
        assert.are.equal("online 3", cs[1]:request("who", 5))

        assert(cs[2]:send("hello all\n"))
        local lines = {}
        for i = 1, 3 do
            lines[i] = assert(cs[i]:line(5))
            assert.is_truthy(lines[i]:match(": hello all$"), lines[i])
        end
        assert.are.equal(lines[1], lines[2])
        assert.are.equal(lines[1], lines[3])
        for i = 1, 3 do assert.are.equal("", cs[i]:drain(0.1)) end

        -- a closed client drops out of the iteration
        cs[3]:close()
        assert.is_truthy(client.wait_until(function()
            return cs[1]:request("who", 5) == "online 2"
        end, 10))
        assert(cs[1]:send("after leave\n"))
        assert.is_truthy(cs[1]:line(5):match(": after leave$"))
        assert.is_truthy(cs[2]:line(5):match(": after leave$"))
    end)
end)
