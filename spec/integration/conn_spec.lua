-- The connection object: fields, conn.data, close/destroy, and use after
-- close, which must return false / raise a clear error and never crash.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/conn_api.lua"

describe("connection API", function()
    local srv
    before_each(function()
        srv = server.start(APP, { wait_workers = 1 })
    end)
    after_each(function() server.cleanup() end)

    it("exposes id and both addresses", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local _, cport = c.sock:getsockname()
        local reply = assert(c:request("info", 5))
        local id, rip, rport, lip, lport =
            reply:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
        assert.is_truthy(id, reply)
        assert.is_truthy(tonumber(id), "conn.id not a number: " .. id)
        assert.are.equal("127.0.0.1", rip)
        assert.are.equal(tostring(cport), rport)
        assert.are.equal("127.0.0.1", lip)
        assert.are.equal(tostring(srv.port), lport)
    end)

    it("gives each connection a distinct id", function()
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local ia = a:request("info", 5):match("^%S+")
        local ib = b:request("info", 5):match("^%S+")
        assert.are_not.equal(ia, ib)
    end)

    it("keeps conn.data across messages, per connection", function()
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        assert.are.equal("1", a:request("count", 5))
        assert.are.equal("2", a:request("count", 5))
        assert.are.equal("1", b:request("count", 5))
        assert.are.equal("3", a:request("count", 5))
        assert.are.equal("2", b:request("count", 5))
    end)

    it("close(data) sends the data, then closes", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("bye\n"))
        assert.is_true(c:wait_closed(10))
        assert.are.equal("bye\n", c.buf)
    end)

    it("destroy() closes the connection", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("destroy\n"))
        assert.is_true(c:wait_closed(10))
    end)

    it("calls onConnect and onClose exactly once per connection", function()
        local c = client.must_connect(srv.port)
        local reply = assert(c:request("info", 5))
        local id = reply:match("^%S+")
        c:close()
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))
        client.sleep(0.2)   -- let a duplicate callback show up if any
        assert.are.equal(1, srv:count_log("onConnect conn=" .. id .. "$"))
        assert.are.equal(1, srv:count_log("onClose conn=" .. id .. "$"))
    end)

    it("send on a closed connection returns false, 'closed'", function()
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local pid = b:request("pid", 5)
        local id = assert(a:request("stash", 5)):match("^stashed (%S+)$")
        a:close()
        assert.is_truthy(srv:wait_log("onClose conn=" .. id, 10))

        local reply = assert(b:request("probe", 5))
        assert.is_truthy(reply:find("send=ok:false,closed", 1, true), reply)
        -- close/destroy on a closed conn: harmless, or a clear error
        for _, m in ipairs({ "close", "destroy" }) do
            local r = reply:match(m .. "=(%S+)")
            assert.is_truthy(r, reply)
            if r:match("^err:") then
                assert.is_truthy(r:find("closed", 1, true),
                    m .. " error is not clear: " .. r)
            end
        end
        -- still the same worker, still serving
        assert.are.equal(pid, b:request("pid", 5))
    end)

    it("methods after close() inside the callback do not crash", function()
        local c = client.must_connect(srv.port)
        local other = client.must_connect(srv.port)
        finally(function() c:close(); other:close() end)
        local pid = other:request("pid", 5)
        assert(c:send("selfclose\n"))
        assert.is_true(c:wait_closed(10))
        assert.are.equal("closing\n", c.buf)
        local lines = srv:wait_log("after close: ", 5)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("send=ok:false,closed", 1, true),
            lines[1])
        assert.are.equal(pid, other:request("pid", 5))
    end)

    it("methods after destroy() inside the callback do not crash",
    function()
        local c = client.must_connect(srv.port)
        local other = client.must_connect(srv.port)
        finally(function() c:close(); other:close() end)
        local pid = other:request("pid", 5)
        assert(c:send("selfdestroy\n"))
        assert.is_true(c:wait_closed(10))
        local lines = srv:wait_log("after destroy: ", 5)
        assert.is_truthy(lines, server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("send=ok:false,closed", 1, true),
            lines[1])
        assert.are.equal(pid, other:request("pid", 5))
    end)

    it("wrong self raises 'luaserv.conn expected'", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local pid = c:request("pid", 5)
        local reply = assert(c:request("misuse", 5))
        local nilself = reply:match("nilself=(.-) tableself=")
        local tableself = reply:match("tableself=(.-) noarg=")
        assert.is_truthy(nilself and nilself:match("^err:"), reply)
        assert.is_truthy(nilself:find("luaserv.conn expected", 1, true),
            nilself)
        assert.is_truthy(tableself:find("luaserv.conn expected", 1, true),
            tableself)
        assert.is_truthy(reply:match("noarg=err:"),
            "send() without data should raise: " .. reply)
        for _, k in ipairs { "fileself", "fileclose" } do
            local v = reply:match(k .. "=(.-) %w+=") or reply:match(k .. "=(.*)$")
            assert.is_truthy(v and v:find("luaserv.conn expected", 1, true),
                k .. ": " .. reply)
        end
        assert.are.equal(pid, c:request("pid", 5))
    end)
end)
