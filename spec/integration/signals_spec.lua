-- Stopping the master, and workers outliving a dead master.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/echo_text.lua"

local function all_dead(pids)
    for _, p in ipairs(pids) do
        if server.alive(p) then return false end
    end
    return true
end

describe("signals", function()
    after_each(function() server.cleanup() end)

    for _, sig in ipairs({ "TERM", "INT" }) do
        it("SIG" .. sig .. " stops master and workers, exit 0, port free",
        function()
            local srv = server.start(APP, { workers = 2, wait_workers = 2 })
            local c = client.must_connect(srv.port)
            finally(function() c:close() end)
            assert.are.equal("hi", c:request("hi", 5))
            local pids = srv:workers()
            pids[#pids + 1] = srv.pid

            assert.are.equal(0, srv:stop(sig))
            assert.is_true(all_dead(pids))
            assert.are.same({}, srv:procs())
            assert.is_true(c:wait_closed(5), "client not disconnected")
            -- the port can be bound again (TIME_WAIT leftovers allowed)
            c:close()
            assert.is_truthy(client.wait_until(function()
                return server.port_free(srv.port)
            end, 5), "port " .. srv.port .. " still bound")
        end)
    end

    it("SIGKILL of the master: workers exit by themselves", function()
        local srv = server.start(APP, { workers = 2, wait_workers = 2 })
        local workers = srv:workers()
        assert.is_true(server.kill(srv.pid, "KILL"))
        assert.are.equal(128 + 9, srv:wait_exit(10))

        local gone = client.wait_until(function() return all_dead(workers) end,
            10)
        assert.is_truthy(gone, "workers still alive 10 s after the master " ..
            "died: " .. table.concat(workers, ","))
        assert.is_truthy(client.wait_until(function()
            return server.port_free(srv.port)
        end, 5), "port still bound")
        srv:stop()   -- checks the log, nothing left to kill
    end)
end)
