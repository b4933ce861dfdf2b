-- deferAccept (TCP_DEFER_ACCEPT; the default for http://): a connection
-- reaches the worker once its first bytes are in, and they are read at once,
-- before the socket is registered with epoll. Whatever arrives later on the
-- same connection must still be read.
local server = require "helpers.server"
local client = require "helpers.client"

local APP = "spec/fixtures/apps/defer.lua"

local function get(path)
    return "GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n"
end

-- Read one HTTP response with a Content-Length; returns its body.
local function response(c)
    local head = {}
    while true do
        local line = assert(c:line(10))
        if line == "\r" then break end
        head[#head + 1] = line
    end
    local len = assert(table.concat(head, "\n"):match(
        "[Cc]ontent%-[Ll]ength: (%d+)"))
    return assert(c:bytes(tonumber(len), 10))
end

-- Wait until the log has more than n lines matching pat; the time it took.
local function wait_more(srv, pat, n, timeout)
    local t0 = client.gettime()
    local ok = server.wait_until(function()
        return srv:count_log(pat) > n
    end, timeout, 0.02)
    return ok and client.gettime() - t0
end

describe("deferAccept", function()
    after_each(function() server.cleanup() end)

    it("answers a request sent at once, pipelined ones, and one split " ..
       "over several writes", function()
        local srv = server.start_two(APP)
        local a = client.must_connect(srv.port)
        local b = client.must_connect(srv.port)
        finally(function() a:close(); b:close() end)
        assert(a:send(get("/one") .. get("/two") .. get("/three")))
        assert.are.equal("hi /one", response(a))
        assert.are.equal("hi /two", response(a))
        assert.are.equal("hi /three", response(a))
        -- the first read finds only part of the head: the rest must wake
        -- the worker through epoll
        assert(b:send("GET /sp"))
        client.sleep(0.3)
        assert(b:send("lit HTTP/1.1\r\nHo"))
        client.sleep(0.3)
        assert(b:send("st: x\r\n\r\n"))
        assert.are.equal("hi /split", response(b))
        assert.are.equal(0, srv:stop())
    end)

    it("hands a silent client to the worker only after about a second",
    function()
        local srv = server.start_two(APP)
        -- the harness's own readiness probes settle first
        client.sleep(1.5)
        local n = srv:count_log("onConnect http")
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local took = wait_more(srv, "onConnect http", n, 30)
        assert.is_truthy(took, "never handed over\n" .. server.tail(srv:log()))
        -- the kernel holds it for about 1 s (load can only make it later)
        assert.is_true(took >= 0.5, "handed over after " .. took .. " s")
        assert(c:send(get("/late")))
        assert.are.equal("hi /late", response(c))
        assert.are.equal(0, srv:stop())
    end)

    it("= false hands a connection over before it has sent anything",
    function()
        local srv = server.start_two(APP, { env = { LUASERV_TEST_DEFER = "0" } })
        client.sleep(1.5)
        local n = srv:count_log("onConnect http")
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        assert.is_truthy(wait_more(srv, "onConnect http", n, 30),
            server.tail(srv:log()))
        assert(c:send(get("/x")))
        assert.are.equal("hi /x", response(c))
        assert.are.equal(0, srv:stop())
    end)

    it("works on a text:// listener, at once and after the kernel's wait",
    function()
        local srv, port2 = server.start_two(APP)
        local a = client.must_connect(port2)
        local b = client.must_connect(port2)
        finally(function() a:close(); b:close() end)
        assert.are.equal("echo now", a:request("now", 10))
        assert.are.equal("echo again", a:request("again", 10))
        client.sleep(1.5) -- b: handed over after the wait, nothing to read
        assert.are.equal("echo later", b:request("later", 10))
        assert.are.equal("echo more", b:request("more", 10))
        assert.are.equal(0, srv:stop())
    end)
end)
