-- A short keep-alive load with wrk: every request answered, no errors.
local server = require "helpers.server"

local function wrk(args)
    return server.capture("wrk " .. args .. " 2>&1")
end

-- Resets are measured but only listen-queue drops must be zero: wrk ends
-- its run by closing connections with responses still in flight, so the
-- client side aborts (TcpExtTCPAbortOnClose, TcpOutRsts) by design.
local NO_DROPS = { "TcpExtListenDrops", "TcpExtListenOverflows" }

describe("http:// under wrk", function()
    after_each(function() server.cleanup() end)

    local function check(out)
        local requests = tonumber(out:match("(%d+) requests in"))
        assert.is_not_nil(requests, out)
        assert.is_true(requests > 100, out)
        assert.falsy(out:find("Socket errors", 1, true), out)
        assert.falsy(out:find("Non%-2xx"), out)
        return requests
    end

    it("serves examples/http_hello.lua with 50 connections and no error",
    function()
        local srv = server.start("examples/http_hello.lua",
                                 { args = { "-w", "1" }, wait_workers = 1,
                                   no_resets = NO_DROPS })
        check(wrk("-t1 -c50 -d2s http://127.0.0.1:" .. srv.port .. "/"))
    end)

    it("serves the echo route with 2 workers and no error", function()
        local srv = server.start("spec/fixtures/apps/http_app.lua",
                                 { workers = 2, wait_workers = 2,
                                   env = { HTTP_QUIET = "1" },
                                   no_resets = NO_DROPS })
        check(wrk("-t2 -c20 -d2s -H 'X-Load: 1' 'http://127.0.0.1:" ..
                  srv.port .. "/echo?a=1'"))
    end)
end)
