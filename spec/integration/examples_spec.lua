-- The shipped examples run as documented.
local server = require "helpers.server"
local client = require "helpers.client"
local redis_server = require "helpers.redis"
local socket_http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"

describe("examples", function()
    after_each(function() server.cleanup() end)

    it("examples/echo.lua echoes lines with 2 workers", function()
        local srv = server.start("examples/echo.lua", { wait_workers = 2 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 4 do
            cs[i] = client.must_connect(srv.port)
            assert.are.equal("hello " .. i, cs[i]:request("hello " .. i, 5))
        end
        assert(cs[1]:send("crlf\r\n"))
        assert.are.equal("crlf", cs[1]:line(5))
    end)

    it("examples/chat.lua broadcasts to every client of the worker",
    function()
        local srv = server.start("examples/chat.lua",
            { args = { "-w", "1" }, wait_workers = 1 })
        local cs = {}
        finally(function() for _, c in ipairs(cs) do c:close() end end)
        for i = 1, 3 do cs[i] = client.must_connect(srv.port) end
        client.sleep(0.2)   -- let any greeting arrive
        for i = 1, 3 do cs[i]:drain(0.1) end

        assert(cs[1]:send("good morning\n"))
        for i = 2, 3 do
            local got = client.wait_until(function()
                cs[i]:fill(0.05)
                return cs[i].buf:find("good morning", 1, true)
            end, 5)
            assert.is_truthy(got, "client " .. i .. " got: " .. cs[i].buf)
        end
    end)

    it("examples/redis_cache.lua computes, caches in Redis, reports " ..
       "hit and miss", function()
        local rs = redis_server.start()
        finally(function() rs:stop() end)
        local srv = server.start("examples/redis_cache.lua",
            { env = { REDIS_PORT = tostring(rs.port), CACHE_TTL = "60" } })
        local base = "http://127.0.0.1:" .. srv.port
        local function req(method, path)
            local body = {}
            local _, code, headers = socket_http.request {
                url = base .. path, method = method,
                sink = ltn12.sink.table(body),
            }
            return code, cjson.decode(table.concat(body)), headers
        end

        local code, t, h = req("GET", "/item/7")
        assert.are.equal(200, code)
        assert.are.equal("miss", t.cache)
        assert.are.equal("MISS", h["x-cache"])
        assert.are.same({ id = 7, name = "item 7", square = 49,
                          computedAt = t.item.computedAt }, t.item)
        local ttl = tonumber(rs:command("TTL", "item:7"))
        assert.is_true(ttl > 0 and ttl <= 60, "ttl " .. tostring(ttl))

        code, t, h = req("GET", "/item/7")
        assert.are.equal(200, code)
        assert.are.equal("hit", t.cache)
        assert.are.equal("HIT", h["x-cache"])
        assert.are.equal(49, t.item.square)
        assert.is_true(t.ttl > 0 and t.ttl <= 60)

        code, t = req("DELETE", "/item/7")
        assert.are.same({ 200, { deleted = 1 } }, { code, t })
        assert.are.equal("miss", select(2, req("GET", "/item/7")).cache)
        assert.are.same({ hits = 1, misses = 2 }, select(2, req("GET", "/stats")))
        assert.are.equal(404, (req("GET", "/nothing")))
    end)

    it("examples/udp_echo.lua echoes datagrams with 2 workers", function()
        local socket = require "socket"
        local srv = server.start("examples/udp_echo.lua",
            { wait = false, reload = false })
        assert.is_truthy(srv:wait_log("master: ready: 2 worker(s)", 15),
                         srv:log())
        for i = 1, 4 do
            local u = assert(socket.udp())
            u:settimeout(5)
            assert(u:sendto("hello " .. i, "127.0.0.1", srv.port))
            assert.are.equal("hello " .. i, (u:receivefrom(100)))
            u:close()
        end
    end)
end)
