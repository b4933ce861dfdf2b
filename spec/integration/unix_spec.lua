-- Listeners on Unix stream sockets.
local server = require "helpers.server"
local client = require "helpers.client"

describe("unix:// listeners", function()
    local srv
    setup(function()
        srv = server.start("spec/fixtures/apps/echo_unix.lua", { unix = true })
    end)
    teardown(function()
        if srv then srv:stop() end
    end)

    it("echo raw bytes over unix://", function()
        local c = assert(client.connect_unix(srv.sock, 5))
        finally(function() c:close() end)
        assert(c:send("raw over unix\r\n"))
        assert.are.equal("raw over unix\r\n", c:bytes(15, 5))
        assert.are.equal("", c:drain(0.1))
    end)

    it("frame lines over text+unix://", function()
        local c = assert(client.wait_until(function()
            return client.connect_unix(srv.sock .. ".text", 5)
        end, 10))
        finally(function() c:close() end)
        assert(c:send("a\r\nb\nc"))
        assert.are.equal("line:a", c:line(5))
        assert.are.equal("line:b", c:line(5))
        assert(c:send("\n"))
        assert.are.equal("line:c", c:line(5))
    end)
end)
