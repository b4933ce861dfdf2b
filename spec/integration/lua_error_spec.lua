-- A Lua error in a callback closes that connection only; the worker keeps
-- serving and the log has a traceback naming the script line.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/lua_error.lua"

describe("Lua errors in callbacks", function()
    after_each(function() server.cleanup() end)

    it("close the failing connection, log a traceback, keep the worker",
    function()
        local srv = server.start(APP, { wait_workers = 1 })
        srv:expect_error("boom from onMessage")

        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local pid = assert(a:request("pid", 5))
        local aid = assert(a:request("id", 5))
        assert.are.equal(pid, b:request("pid", 5))

        assert(a:send("boom\n"))
        assert.is_true(a:wait_closed(10), "failing connection not closed")
        assert.are.equal("", a:drain(0))

        -- the other connection on the same worker still echoes
        assert.are.equal("still here", b:request("still here", 5))
        assert.are.equal(pid, b:request("pid", 5))
        -- and new connections are served by the same process
        local c = client.must_connect(srv.port)
        finally(function() a:close(); b:close(); c:close() end)
        assert.are.equal(pid, c:request("pid", 5))

        local line = server.line_of(server.abspath(APP), "MARK:boom")
        local lines = srv:wait_log("lua_error.lua:" .. line .. ": boom from onMessage", 5)
        assert.is_truthy(lines, "no error with script line in the log\n" ..
            server.tail(srv:log()))
        assert.is_truthy(lines[1]:find("[error]", 1, true), lines[1])
        assert.is_truthy(lines[1]:find("worker 0 [errs]", 1, true),
            "error line does not name worker and listener: " .. lines[1])
        assert.is_truthy(srv:log():find("stack traceback:", 1, true),
            "no traceback in the log")
        -- onClose runs exactly once for it
        assert.is_truthy(srv:wait_log("onClose conn=" .. aid, 5))
        client.sleep(0.1)
        assert.are.equal(1, srv:count_log("onClose conn=" .. aid .. "$"))
    end)

    it("survive error values that are not strings", function()
        local srv = server.start(APP, { wait_workers = 1 })
        srv:expect_error("table")
        srv:expect_error("custom error object")
        srv:expect_error("errs")   -- whatever rendering of a non-string error

        local keep = client.must_connect(srv.port)
        local conns = { keep }
        finally(function() for _, c in ipairs(conns) do c:close() end end)
        local pid = assert(keep:request("pid", 5))

        for _, what in ipairs({ "table", "obj", "boom" }) do
            srv:expect_error("boom from onMessage")
            local c = client.must_connect(srv.port)
            conns[#conns + 1] = c
            assert(c:send(what .. "\n"))
            assert.is_true(c:wait_closed(10), what .. ": not closed")
        end
        assert.is_truthy(srv:wait_log("custom error object", 5),
            "__tostring of the error object not used")
        assert.are.equal("alive", keep:request("alive", 5))
        assert.are.equal(pid, keep:request("pid", 5))
        assert.are.same({ tonumber(pid) }, srv:workers())
    end)
end)
