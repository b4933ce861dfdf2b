-- Receive-side control (issue 5): pauseRecv() stops reading a connection,
-- resumeRecv() (here from a luaserv.after timer) starts it again. The
-- client sees no echo while paused and every echo, in order, afterwards.
-- The app logs "resuming conn=ID" right before resumeRecv(), so "no echo
-- while paused" is checked against that line, not against a clock.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/pause.lua"

describe("pauseRecv / resumeRecv", function()
    local srv
    before_each(function()
        srv = server.start(APP, { wait_workers = 1 })
    end)
    after_each(function() server.cleanup() end)

    it("delivers nothing while paused and everything, in order, after",
    function()
        local c = client.must_connect(srv.port)
        local other = client.must_connect(srv.port)
        finally(function() c:close(); other:close() end)
        local reply = assert(c:request("pause 1.5", 5))
        local id = reply:match("^paused (%S+)$")
        assert.is_truthy(id, reply)

        local N = 50
        local want = {}
        for i = 1, N do
            want[#want + 1] = "m" .. i
            assert(c:send("m" .. i .. "\n"))
        end
        -- the worker is not blocked meanwhile: another connection is served
        assert.are.equal("hello", other:request("hello", 5))

        local resumed_first = true
        local got = {}
        local deadline = client.gettime() + 30
        while #got < N and client.gettime() < deadline do
            local line = c:line(0.1)
            if line then
                if #got == 0 and
                   #srv:log_lines("resuming conn=" .. id) == 0 then
                    resumed_first = false
                end
                got[#got + 1] = line
            elseif c.eof then
                break
            end
        end
        assert.is_true(resumed_first, "echo arrived while paused")
        assert.are.same(want, got)
        assert.are.equal("", c:drain(0.2))
        -- reading goes on normally after the resume
        assert.are.equal("after", c:request("after", 5))
    end)

    it("pauses one connection only", function()
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local id = assert(a:request("pause 1", 5)):match("^paused (%S+)$")
        assert(a:send("from a\n"))
        for i = 1, 5 do
            assert.are.equal("b" .. i, b:request("b" .. i, 5))
        end
        -- whatever a has received so far must postdate the resume
        a:fill(0.2)
        if a.buf ~= "" then
            assert.is_true(#srv:log_lines("resuming conn=" .. id) > 0,
                "echo arrived while paused")
        end
        assert.are.equal("from a", a:line(30))
    end)

    it("survives the peer closing while paused", function()
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        local pid = assert(b:request("pid", 5))
        local id = assert(a:request("pause 0.3", 5)):match("^paused (%S+)$")
        assert(a:send("lost\n"))
        a:close()
        assert.is_truthy(srv:wait_log("resuming conn=" .. id, 10))
        client.sleep(0.1)
        assert.are.equal(pid, b:request("pid", 5))
    end)
end)
