-- Listener option maxRequests recycles a worker (new one first, then the
-- old one drains) without failing a single request.
local server = require "helpers.server"
local socket = require "socket"
local life = require "integration.lifecycle"
local client = require "helpers.client"

local APP = "recycle.lua"

local function setup(env, workers)
    local dir = life.tmpdir()
    life.copy_fixtures(dir, APP)
    env = env or {}
    env.LUASERV_TEST_MAX_REQUESTS = env.LUASERV_TEST_MAX_REQUESTS or "20"
    return life.start(dir, APP, {
        workers = workers or 1, env = env,
    })
end

-- One HTTP/1.1 keep-alive client over lua-socket that reconnects when the
-- server answers with `Connection: close`.
local Http = {}
Http.__index = Http

local function http_client(port)
    return setmetatable({ port = port, closes = 0, connects = 0 }, Http)
end

function Http:get()
    if not self.sock then
        local s = socket.tcp()
        s:settimeout(10)
        local ok, err = s:connect("127.0.0.1", self.port)
        if not ok then s:close(); return nil, "connect: " .. err end
        self.sock = s
        self.connects = self.connects + 1
    end
    local s = self.sock
    local ok, err = s:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    if not ok then self:close(); return nil, "send: " .. err end
    local status = s:receive("*l")
    if not status then self:close(); return nil, "no status line" end
    local headers = {}
    while true do
        local line, lerr = s:receive("*l")
        if not line then self:close(); return nil, "head: " .. lerr end
        if line == "" or line == "\r" then break end
        local k, v = line:match("^([^:]+):%s*(.-)\r?$")
        if k then headers[k:lower()] = v end
    end
    local len = tonumber(headers["content-length"])
    if not len then self:close(); return nil, "no content-length" end
    local body, berr = s:receive(len)
    if not body then self:close(); return nil, "body: " .. berr end
    if (headers.connection or ""):lower() == "close" then
        self.closes = self.closes + 1
        self:close()
    end
    return status:match("^HTTP/1%.1 (%d+)"), body
end

function Http:close()
    if self.sock then self.sock:close() end
    self.sock = nil
end

describe("recycling", function()
    after_each(function()
        server.cleanup()
        life.cleanup()
    end)

    it("maxRequests = 20: the worker pid changes, no request fails",
    function()
        local srv = setup()
        srv:wait_workers(1)
        local pids, order = {}, {}
        -- go by time, not by a request count (a replacement takes a
        -- moment to be ready and the old worker serves meanwhile); 90 s is
        -- only a bound
        local deadline = socket.gettime() + 90
        local i = 0
        while socket.gettime() < deadline do
            i = i + 1
            local reply, err = life.text_request(srv.port, "pid", 10)
            assert.is_truthy(reply, "request " .. i .. " failed: " ..
                tostring(err) .. "\n" .. server.tail(srv:log()))
            local pid = assert(tonumber(reply), reply)
            if not pids[pid] then
                pids[pid] = true
                order[#order + 1] = pid
            end
            if #order >= 4 then break end
            socket.sleep(0.01)
        end
        assert.is_true(#order >= 4, "worker recycled " .. (#order - 1) ..
            " time(s) in " .. i .. " requests: " .. table.concat(order, ","))
        -- the old workers are gone, one worker serves
        srv:wait_workers(1, 30)
        for _, p in ipairs(order) do
            if p ~= order[#order] then
                assert.is_truthy(server.wait_until(function()
                    return not server.alive(p)
                end, 30), "old worker " .. p .. " still alive")
            end
        end
        assert.is_truthy(#srv:log_lines("maxRequests") >= 3, srv:log())
        assert.are.equal(0, srv:stop())
    end)

    it("maxRequests is exact: the 10th message starts the recycle, the " ..
       "9th does not", function()
        local srv = setup({ LUASERV_TEST_MAX_REQUESTS = "10" })
        srv:wait_workers(1)
        local c = client.must_connect(srv.port)
        finally(function() c:close() end)
        local first
        for i = 1, 9 do
            local pid = c:request("pid", 10)
            assert.is_truthy(pid, "message " .. i)
            first = first or pid
            assert.are.equal(first, pid)
        end
        -- a bounded wait for something that must not happen (the limit
        -- used to be checked once a second)
        client.sleep(1.5)
        assert.are.equal(0, srv:count_log("maxRequests reached"), srv:log())
        assert.are.equal(first, c:request("pid", 10))       -- the 10th
        assert.is_truthy(srv:wait_log("maxRequests reached (10 messages", 10),
                         srv:log())
        -- the successor serves new connections; the old worker drains
        -- (this connection stays up meanwhile) and goes
        assert.is_truthy(server.wait_until(function()
            local r = life.text_request(srv.port, "pid", 10)
            return r and r ~= first
        end, 30), "no successor answered\n" .. srv:log())
        assert.are.equal(1, srv:count_log("maxRequests reached"))
        assert.are.equal(0, srv:stop())
    end)

    it("maxRequests counts HTTP requests one by one, pipelined too", function()
        local port2 = server.free_port()
        local srv = setup({ LUASERV_TEST_PORT2 = tostring(port2),
                            LUASERV_TEST_MAX_REQUESTS = "5" })
        srv:wait_workers(2)
        local s = assert(socket.connect("127.0.0.1", port2))
        finally(function() s:close() end)
        s:settimeout(10)
        assert(s:send(("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):rep(5)))
        for i = 1, 5 do
            local status = s:receive("*l")
            assert.is_truthy(status and status:find(" 200 ", 1, true),
                             "response " .. i .. ": " .. tostring(status))
            local len
            repeat
                local line = assert(s:receive("*l"))
                len = len or tonumber(line:match("^[Cc]ontent%-[Ll]ength: (%d+)"))
            until line == ""
            assert(s:receive(len))
        end
        assert.is_truthy(srv:wait_log("[recycle_http]: maxRequests reached " ..
                                      "(5 messages", 10), srv:log())
        assert.are.equal(0, srv:count_log("%[recycle%]: maxRequests"))
        assert.are.equal(0, srv:stop())
    end)

    it("keep-alive HTTP clients see no failure across recycles", function()
        local port2 = server.free_port()
        local srv = setup({ LUASERV_TEST_PORT2 = tostring(port2) })
        srv:wait_workers(2)
        local clients = {}
        for i = 1, 5 do clients[i] = http_client(port2) end
        local pids, n = {}, 0
        local deadline = socket.gettime() + 90
        local i = 0
        while n < 4 and socket.gettime() < deadline do
            i = i + 1
            local c = clients[i % #clients + 1]
            local status, body = c:get()
            assert.are.equal("200", status, "request " .. i .. ": " ..
                tostring(body) .. "\n" .. server.tail(srv:log()))
            local pid = assert(tonumber(body), body)
            if not pids[pid] then pids[pid] = true; n = n + 1 end
            socket.sleep(0.005)
        end
        for _, c in ipairs(clients) do c:close() end
        assert.is_true(n >= 4, "only " .. n .. " distinct worker pids")
        srv:wait_workers(2, 30)
        assert.are.equal(0, srv:stop())
    end)

    it("status counts requests and shows the replacement", function()
        local srv = setup({ LUASERV_TEST_MAX_REQUESTS = "1000000" })
        srv:wait_workers(1)
        local r = life.cmd(srv, "status")
        assert.are.equal(0, r.code, life.describe_run(r))
        local rows = life.parse_status(r.stdout)
        assert.are.equal(1, #rows, r.stdout)
        local before = rows[1].msgs_in
        for _ = 1, 7 do assert(life.text_request(srv.port, "pid", 10)) end
        r = life.cmd(srv, "status")
        rows = life.parse_status(r.stdout)
        assert.are.equal(1, #rows, r.stdout)
        assert.are.equal(before + 7, rows[1].msgs_in, r.stdout)
        assert.is_true(rows[1].total >= 7, r.stdout)
        assert.are.equal(0, srv:stop())
    end)

    it("status counts timeouts per worker", function()
        local port2 = server.free_port()
        local srv = setup({ LUASERV_TEST_MAX_REQUESTS = "1000000",
                            LUASERV_TEST_PORT2 = tostring(port2),
                            LUASERV_TEST_HEADER_TIMEOUT = "0.5",
                            LUASERV_TEST_IDLE_TIMEOUT = "1" })
        srv:wait_workers(2)
        local function status()
            local r = life.cmd(srv, "status")
            assert.are.equal(0, r.code, life.describe_run(r))
            local by = {}
            for _, row in ipairs(life.parse_status(r.stdout)) do
                by[row.listener] = row
            end
            assert.is_truthy(by.recycle and by.recycle_http, r.stdout)
            return by, r.stdout
        end
        local by, out = status()
        for _, row in pairs(by) do
            for _, k in ipairs({ "to_head", "to_body", "to_send", "to_idle",
                                 "emfile" }) do
                assert.are.equal(0, row[k], k .. "\n" .. out)
            end
        end

        -- an HTTP request head that never completes: 408 at headerTimeout
        local c = assert(socket.connect("127.0.0.1", port2))
        c:settimeout(10)
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n"))
        assert.are.equal("HTTP/1.1 408 Request Timeout", c:receive("*l"))
        c:close()
        -- a text:// connection that says nothing: closed at idleTimeout
        local t = assert(socket.connect("127.0.0.1", srv.port))
        t:settimeout(10)
        assert.are.equal("closed", select(2, t:receive("*l")))
        t:close()

        by, out = status()
        assert.are.equal(1, by.recycle_http.to_head, out)
        assert.are.equal(0, by.recycle_http.to_body, out)
        assert.are.equal(0, by.recycle_http.to_idle, out)
        assert.are.equal(1, by.recycle.to_idle, out)
        assert.are.equal(0, by.recycle.to_head, out)
        assert.are.equal(0, by.recycle.to_send, out)
        assert.are.equal(0, by.recycle.emfile, out)
        assert.are.equal(0, srv:stop())
    end)
end)
