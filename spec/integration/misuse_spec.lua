-- API misuse raises a clear Lua error or returns false, "closed"; it never
-- crashes the worker, and the connection used stays usable where it was
-- open. Each case runs in the fixture under pcall and reports its outcome.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/misuse.lua"

-- Run cmd on a fresh connection; the outcome from the log.
local function outcome(srv, cmd, name)
    local c = client.must_connect(srv.port)
    assert(c:send(cmd .. "\n"))
    local lines = srv:wait_log("result " .. (name or cmd) .. ": ", 10)
    c:close()
    assert.is_truthy(lines, cmd .. ": no outcome\n" .. server.tail(srv:log()))
    -- a library function is named after whichever of its tables the
    -- traceback code finds first: "luaserv.after" or "luaserv.after"
    return (lines[1]:match("result [%w-]+: (.*)$"):gsub("luaserv%.core%.",
        "luaserv."))
end

local function has(s, text)
    assert.is_truthy(s:find(text, 1, true), "expected «" .. text ..
        "» in «" .. s .. "»")
end

describe("API misuse", function()
    local srv, keep, pid

    before_each(function()
        srv = server.start(APP, { wait_workers = 1 })
        keep = client.must_connect(srv.port)
        pid = srv:workers()[1]
    end)

    after_each(function()
        -- the worker survived, and the bystander connection still works
        local ok, err = pcall(function()
            assert.are.equal("alive", keep:request("alive", 10))
            assert.are.same({ pid }, srv:workers())
        end)
        keep:close()
        if srv then assert.are.equal(0, srv:stop()) end
        server.cleanup()
        assert(ok, err)
    end)

    it("conn:send with a bad value raises a clear error", function()
        local r = outcome(srv, "send-nil")
        assert.is_truthy(r:find("^false [^ ]*misuse%.lua:%d+: bad argument " ..
            "#1 to 'send' %(string expected, got nil%)$"), r)
        has(outcome(srv, "send-none"),
            "bad argument #1 to 'send' (value expected)")
        has(outcome(srv, "send-table"),
            "bad argument #1 to 'send' (string expected, got table)")
        has(outcome(srv, "send-function"),
            "bad argument #1 to 'send' (string expected, got function)")
    end)

    it("conn:send of a number sends it as a string", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert.are.equal("42", c:request("send-number", 10))
        assert.are.equal("result send-number: true true", c:line(10))
    end)

    it("send after close or destroy returns false, \"closed\"", function()
        assert.are.equal("true false closed", outcome(srv, "send-after-close"))
        assert.are.equal("true false closed",
            outcome(srv, "send-after-destroy"))
    end)

    it("close twice: the second returns false, \"closed\"", function()
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert(c:send("close-twice\n"))
        assert.are.equal("bye", c:line(10))
        assert.is_true(c:wait_closed(10))
        assert.is_truthy(srv:wait_log("result close-twice: true / false " ..
            "closed", 10))
    end)

    it("a conn kept after close, used from a timer, answers \"closed\"",
    function()
        local c = client.must_connect(srv.port)
        local reply = c:request("keep", 10)
        local id = assert(reply:match("^result keep: kept (%d+)$"), reply)
        c:close()
        -- wait until the server saw the close
        assert.is_truthy(server.wait_until(function()
            local d = client.must_connect(srv.port)
            local r = d:request("echo", 5)
            d:close()
            return r == "echo"
        end, 10))
        local r = outcome(srv, "use-kept", "kept")
        local want = table.concat({
            "false closed", "false closed", "false closed", "false closed",
            "false closed",
        }, " / ")
        assert.are.equal(want, r:sub(1, #want))
        has(r, "connection " .. id .. " is closed (conn.remoteIp is not " ..
            "available after onClose)")
        has(r, " / " .. id .. " / true / luaserv.conn " .. id .. " (closed)")
    end)

    it("send and close in onClose return false, \"closed\"", function()
        assert.are.equal("false closed / false closed",
            outcome(srv, "send-in-onclose"))
    end)

    it("methods called with a wrong self raise", function()
        local r = outcome(srv, "wrong-self")
        has(r, "false bad argument #1 to '?' (luaserv.conn expected, got " ..
            "string)")
        has(r, "(luaserv.conn expected, got number)")
        has(r, "(luaserv.conn expected, got no value)")
    end)

    it("setting fields of a conn raises (conn.data excepted)", function()
        local r = outcome(srv, "set-field")
        has(r, "cannot set field 'foo' of luaserv.conn (keep your own " ..
            "values in conn.data)")
        has(r, "conn.data must be a table")
    end)

    it("luaserv.after / every with bad arguments raise", function()
        local r = outcome(srv, "timer-args")
        has(r, "bad argument #1 to 'luaserv.after' (number expected, " ..
            "got string)")
        has(r, "bad argument #2 to 'luaserv.after' (function expected, " ..
            "got no value)")
        local _, n = r:gsub("seconds must be a number from 0 to 1e9", "")
        assert.are.equal(3, n, r) -- -1, NaN, inf
        has(r, "an every() interval must be at least 0.001 s")
        has(r, "bad argument #1 to 'luaserv.every' (number expected, " ..
            "got no value)")
    end)

    it("timer handles: wrong self raises, cancel twice is false", function()
        assert.are.equal("false bad argument #1 to '?' (luaserv.timer " ..
            "expected, got no value) / false bad argument #1 to '?' " ..
            "(luaserv.timer expected, got string) / true / false / false",
            outcome(srv, "timer-handle"))
    end)

    it("other library calls with bad arguments raise", function()
        local r = outcome(srv, "bad-calls")
        has(r, "bad argument #1 to 'luaserv.connections' (table " ..
            "expected, got no value)")
        has(r, "bad argument #1 to 'log' (\"debug\", \"info\", \"warn\" or " ..
            "\"error\" expected)")
        has(r, "luaserv.listen() must be called at the top level")
        has(r, "luaserv.settings() must be called at the top level of the " ..
            "script (settings take effect at start and reload)")
    end)
end)
