-- The shipped examples run as documented.
local server = require "helpers.server"
local client = require "helpers.client"

describe("examples", function()
    after_each(function() server.cleanup() end)

    it("examples/echo.lua echoes lines with 2 workers", function()
        local srv = server.start("examples/echo.lua", { wait_workers = 2 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 4 do
            cs[i] = client.must_connect(srv.port)
            assert.are.equal("hello " .. i, cs[i]:request("hello " .. i, 5))
        end
        assert(cs[1]:send("crlf\r\n"))
        assert.are.equal("crlf", cs[1]:line(5))
    end)

    it("examples/chat.lua broadcasts to every client of the worker",
    function()
        local srv = server.start("examples/chat.lua",
            { args = { "-w", "1" }, wait_workers = 1 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 3 do cs[i] = client.must_connect(srv.port) end
        client.sleep(0.2)   -- let any greeting arrive
        for i = 1, 3 do cs[i]:drain(0.1) end

        assert(cs[1]:send("good morning\n"))
        for i = 2, 3 do
            local got = client.wait_until(function()
                cs[i]:fill(0.05)
                return cs[i].buf:find("good morning", 1, true)
            end, 5)
            assert.is_truthy(got, "client " .. i .. " got: " .. cs[i].buf)
        end
    end)
end)
