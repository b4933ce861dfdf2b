-- luaserv.connect: an outbound connection to a second listener of the same
-- app, and onError(CONNECT_FAIL) with a clear message for a refused
-- connection, an unknown host and a connect timeout (all on loopback).
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/connect.lua"

describe("luaserv.connect", function()
    local srv, port2, c
    before_each(function()
        srv, port2 = server.start_two(APP)
        c = client.must_connect(srv.port)
    end)
    after_each(function()
        c:close()
        server.cleanup()
    end)

    for _, scheme in ipairs({ "tcp", "text" }) do
        it("talks to another listener over " .. scheme .. "://", function()
            assert.are.equal("connecting", c:request(
                "connect " .. scheme .. "://127.0.0.1:" .. port2, 5))
            assert.are.equal("onConnect", c:line(10))
            assert.are.equal("onMessage echo:hello", c:line(10))
            assert(c:send("send second\n"))
            assert.are.equal("onMessage echo:second", c:line(10))
            assert(c:send("closeout\n"))
            assert.are.equal("onClose", c:line(10))
            assert.are.equal("", c:drain(0.2))
        end)
    end

    it("reports a refused connection", function()
        local closed = server.free_port()
        assert.are.equal("connecting", c:request(
            "connect tcp://127.0.0.1:" .. closed, 5))
        local line = c:line(10)
        assert.is_truthy(line and line:find("^onError CONNECT_FAIL "),
            tostring(line))
        assert.is_truthy(line:lower():find("refused", 1, true), line)
        assert.are.equal("onClose", c:line(10))
        assert.are.equal("", c:drain(0.2))
    end)

    it("reports an unknown host", function()
        -- connectTimeout 3: in a network namespace without a resolver the
        -- lookup only ends with it (10 s by default)
        assert.are.equal("connecting", c:request(
            "connect tcp://nonexistent.invalid:80 3", 5))
        -- the resolver may need its own timeouts when there is no network
        local line = c:line(60)
        assert.is_truthy(line and line:find("^onError CONNECT_FAIL "),
            tostring(line))
        -- In the suite's own network namespace (.ci/run as root) no
        -- resolver is reachable: the connect timeout ends the lookup.
        if not (server.private_netns() and line:find("timed out", 1, true))
        then
            assert.is_truthy(line:find("cannot resolve", 1, true), line)
        end
        assert.is_truthy(line:find("nonexistent.invalid", 1, true), line)
        assert.are.equal("onClose", c:line(10))
        -- the worker was not blocked
        assert.is_truthy(tonumber(c:request("pid", 5)))
    end)

    it("reports a connect timeout", function()
        -- A loopback listener that never accepts, with a full accept queue:
        -- Linux then drops further SYNs, so a connect to it hangs.
        local l = assert(socket.tcp4())
        assert(l:bind("127.0.0.1", 0))
        assert(l:listen(0))
        local _, lport = l:getsockname()
        local fillers = {}
        finally(function()
            for _, f in ipairs(fillers) do f:close() end
            l:close()
        end)
        -- fill the queue: stop once a connect no longer completes
        for _ = 1, 8 do
            local f = assert(socket.tcp4())
            f:settimeout(0.3)
            local ok = f:connect("127.0.0.1", lport)
            fillers[#fillers + 1] = f
            if not ok then break end
        end
        assert.are.equal("connecting", c:request(
            "connect tcp://127.0.0.1:" .. lport .. " 0.5", 5))
        local line = c:line(30)
        assert.is_truthy(line and line:find("^onError CONNECT_FAIL "),
            tostring(line))
        assert.is_truthy(line:find("timed out", 1, true), line)
        assert.are.equal("onClose", c:line(10))
        assert.is_truthy(tonumber(c:request("pid", 5)))
    end)
end)
