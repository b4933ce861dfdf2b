-- idleTimeout closes connections without traffic (onClose still fires) and
-- keeps active ones; maxConnections stops accepting at the limit and
-- resumes once a connection closes.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/idle.lua"

describe("idleTimeout and maxConnections", function()
    local srv, port2
    before_each(function()
        port2 = server.free_port()
        srv = server.start(APP, {
            wait_workers = 2,
            env = { LUASERV_TEST_PORT2 = tostring(port2) },
        })
        -- the second listener too
        assert.is_truthy(server.wait_until(function()
            local c = client.connect(port2, 1)
            if c then c:close() return true end
        end, server.START_TIMEOUT, 0.05))
    end)
    after_each(function() server.cleanup() end)

    it("closes an idle connection and fires onClose", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local id = assert(c:request("id", 5))
        assert.is_true(c:wait_closed(30), "idle connection not closed")
        assert.are.equal("", c.buf)
        assert.is_truthy(srv:wait_log("onClose idle conn=" .. id, 10),
            server.tail(srv:log()))
        assert.are.equal(1, srv:count_log("onClose idle conn=" .. id .. "$"))
    end)

    it("keeps a connection with traffic every 0.1 s", function()
        local idle = client.must_connect(srv.port)
        local c = client.must_connect(srv.port)
        finally(function() idle:close(); c:close() end)
        local idle_id = assert(idle:request("id", 5))
        local id = assert(c:request("id", 5))
        local deadline = client.gettime() + 2
        local n = 0
        while client.gettime() < deadline do
            n = n + 1
            assert.are.equal("ping " .. n, c:request("ping " .. n, 5))
            client.sleep(0.1)
        end
        -- the idle one went meanwhile (or goes soon), the active one stayed
        assert.is_true(idle:wait_closed(30))
        assert.is_truthy(srv:wait_log("onClose idle conn=" .. idle_id, 10))
        assert.are.equal(id, c:request("id", 5))
        assert.are.equal(0, srv:count_log("onClose idle conn=" .. id .. "$"))
    end)

    it("serves at most maxConnections and recovers below it", function()
        local a = client.must_connect(port2)
        local b = client.must_connect(port2)
        local c
        finally(function() a:close(); b:close(); if c then c:close() end end)
        local aid = assert(a:request("id", 5))
        assert.is_truthy(b:request("id", 5))
        assert.is_truthy(srv:wait_log("maxConnections (2) reached", 10),
            server.tail(srv:log()))

        -- the kernel completes the handshake, but the worker does not accept
        c = client.must_connect(port2)
        assert(c:send("id\n"))
        assert.are.equal("", c:drain(0.5))
        -- the first two are still served
        assert.are.equal("still a", a:request("still a", 5))

        a:close()
        assert.is_truthy(srv:wait_log("onClose capped conn=" .. aid, 10))
        local cid = c:line(30)
        assert.is_truthy(cid and tonumber(cid), tostring(cid))
        assert.is_truthy(srv:wait_log("below maxConnections (2) again", 10))
        assert.are.equal("c here", c:request("c here", 5))
        assert.are.equal("b here", b:request("b here", 5))

        -- at the limit again (b, c): a fourth waits until b goes
        local d = client.must_connect(port2)
        finally(function() d:close() end)
        assert(d:send("id\n"))
        assert.are.equal("", d:drain(0.5))
        b:close()
        assert.is_truthy(d:line(30))
    end)
end)
