-- Log hygiene: what clients send cannot make the log grow without bound.
-- Each cause of a client-triggered log line (bad requests, oversized
-- packages, Lua errors in a connection's callbacks) writes at most 10 lines
-- a second, then one "suppressed N similar messages" summary.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/log_flood.lua"

-- n connections that each send data and go, 50 at a time. (Each leaves a
-- TIME_WAIT port behind on the client side: 5000 in all is plenty.)
local function flood(port, n, data)
    local done = 0
    while done < n do
        local batch = {}
        for i = 1, math.min(50, n - done) do
            local c = assert(client.connect(port, 5))
            c.sock:send(data)
            batch[i] = c
        end
        for _, c in ipairs(batch) do c:close() end
        done = done + #batch
    end
end

local function count_lines(text)
    local n = 0
    for _ in text:gmatch("[^\n]*\n") do n = n + 1 end
    return n
end

-- How many were logged one by one (plain text `line`) and summed up in
-- summaries of `cause`.
local function accounted(srv, line, cause)
    local shown = #srv:log_lines(line)
    local suppressed = 0
    for _, l in ipairs(srv:log_lines(cause .. ": suppressed ")) do
        suppressed = suppressed + tonumber(l:match("suppressed (%d+) similar"))
    end
    return shown, suppressed
end

describe("log rate limit", function()
    local srv, port2
    before_each(function()
        srv, port2 = server.start_two(APP)
        srv:expect_error("boom from a client")
    end)
    after_each(function() server.cleanup() end)

    it("keeps the log small under 5000 bad inputs and sums up the rest",
       function()
        local before = count_lines(srv:log())
        local t0 = socket.gettime()
        flood(srv.port, 3000, "GET / HTTP/1.1\r\nHost : bad\r\n\r\n")
        flood(port2, 1500, string.rep("z", 100))
        flood(port2, 500, "boom\n")
        local took = socket.gettime() - t0

        -- every one of them is either logged or counted in a summary
        local function all_in(line, cause, n)
            return server.wait_until(function()
                local shown, suppressed = accounted(srv, line, cause)
                if shown + suppressed == n then return true end
            end, 20)
        end
        assert.is_truthy(all_in("400 Bad Request", "bad requests", 3000),
                         server.tail(srv:log()))
        assert.is_truthy(all_in("package too big", "bad or oversized input",
                                1500), server.tail(srv:log()))
        assert.is_truthy(all_in("boom from a client",
                                "Lua errors in connection callbacks", 500),
                         server.tail(srv:log()))

        local added = count_lines(srv:log()) - before
        local errors = #srv:log_lines("[error]")
        print(string.format("\n  log flood: 5000 bad inputs in %.1f s added " ..
                            "%d log lines (%d [error] entries)", took, added,
                            errors))
        -- at most 10 lines + 1 summary per cause and second (a Lua error
        -- comes with its traceback), however many inputs
        local secs = math.ceil(took) + 2
        assert.is_true(errors <= 11 * secs, tostring(errors))
        assert.is_true(added <= secs * (11 + 11 + 11 * 5), tostring(added))
        if took < 3 then
            assert.is_true(added < 200, tostring(added))
        end

        -- and everyone else is still served
        local c = client.must_connect(port2)
        finally(function() c:close() end)
        assert.are.equal("fine", c:request("fine", 5))
    end)
end)
