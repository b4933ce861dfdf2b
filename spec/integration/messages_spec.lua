-- Messages between workers: luaserv.send, luaserv.broadcast and
-- onWorkerMessage, over two listeners (ids unique across them), a full
-- queue, 1 MiB messages, and messages queued for a worker being replaced.
local server = require "helpers.server"
local client = require "helpers.client"
local socket = require "socket"

local APP = "spec/fixtures/apps/messages.lua"

local function ev(c, code, timeout)
    code = code:gsub("\n", " ")
    local line = assert(c:request(code, timeout or 20))
    local t = assert(load("return " .. line, "=reply"))()
    if t.err then error("worker: " .. t.err .. "\n  for: " .. code, 2) end
    return t
end

local function run(c, code, timeout)
    local t = ev(c, code, timeout)
    return table.unpack(t, 1, t.n)
end

local function wait_for(fn, what, timeout)
    assert(client.wait_until(fn, timeout or 10, 0.02),
           "timed out waiting for " .. what)
end

-- A connection to each of the 3 workers: { [id] = {conn=, pid=} }.
local function reach(srv, port2, conns)
    local by_id, n = {}, 0
    client.wait_until(function()
        local c = client.must_connect(srv.port)
        conns[#conns + 1] = c
        local id, pid = run(c, "return luaserv.worker.id, luaserv.worker.pid")
        if not by_id[id] then
            by_id[id] = { conn = c, pid = pid }
            n = n + 1
        end
        return n >= 2 or #conns > 200
    end, 20, 0.01)
    local c = client.must_connect(port2)
    conns[#conns + 1] = c
    local id, pid = run(c, "return luaserv.worker.id, luaserv.worker.pid")
    by_id[id] = { conn = c, pid = pid }
    return by_id
end

describe("messages between workers", function()
    local srv, port2, w, mport
    local conns = {}

    setup(function()
        mport = server.free_port()
        srv, port2 = server.start_two(APP, { wait_workers = 3,
            env = { LUASERV_TEST_METRICS = "127.0.0.1:" .. mport } })
        w = reach(srv, port2, conns)
    end)
    teardown(function()
        for _, c in ipairs(conns) do c:close() end
        server.cleanup()
    end)

    it("gives worker ids that are unique across listeners", function()
        assert.truthy(w[0] and w[1] and w[2], "ids 0, 1 (main) and 2 (side)")
        assert.same({ n = 1, "main" }, ev(w[1].conn, "return luaserv.worker.listener"))
        assert.same({ n = 1, "side" }, ev(w[2].conn, "return luaserv.worker.listener"))
    end)

    it("broadcast reaches every worker exactly once, the sender included", function()
        for _, from in ipairs({ 0, 2 }) do
            assert.same({ n = 1, true },
                ev(w[from].conn, "local ok = true for i = 1, 50 do " ..
                   "ok = ok and luaserv.broadcast('b" .. from .. ":' .. i) end return ok"))
        end
        wait_for(function()
            return run(w[0].conn, [[
                local n = 0
                for _, k in ipairs(log:get_keys(0)) do
                    if k:match("^got:%d:b") then n = n + log:get(k) end
                end
                return n]]) == 300
        end, "300 receipts")
        assert.same({ n = 2, true, 300 }, ev(w[0].conn, [[
            local ok, n = true, 0
            for id = 0, 2 do
                for _, from in ipairs({ 0, 2 }) do
                    for i = 1, 50 do
                        local v = log:get("got:" .. id .. ":b" .. from .. ":" .. i)
                        ok = ok and v == 1
                        n = n + (v or 0)
                    end
                end
            end
            return ok, n]]))
    end)

    it("send reaches the one worker named, with the sender's id", function()
        assert.same({ n = 1, true }, ev(w[0].conn, "return luaserv.send(2, 'hi')"))
        assert.same({ n = 1, true }, ev(w[2].conn, "return luaserv.send(1, 'yo')"))
        wait_for(function()
            return run(w[0].conn, "return log:get('got:2:hi') == 1 and " ..
                                  "log:get('got:1:yo') == 1")
        end, "both messages")
        assert.same({ n = 4, nil, nil, nil, nil },
            ev(w[0].conn, "return log:get('got:0:hi'), log:get('got:1:hi'), " ..
                          "log:get('got:0:yo'), log:get('got:2:yo')"))
        assert.same({ n = 1, true }, ev(w[0].conn, [[
            local found = false
            for _ = 1, log:llen("from:2") do
                local v = log:lpop("from:2")
                found = found or v == "0:1:hi"
            end
            return found]]))
        -- a worker id nobody has, and misuse
        assert.same({ n = 2, nil, "no such worker" },
                    ev(w[0].conn, "return luaserv.send(3, 'x')"))
        assert.same({ n = 2, nil, "no such worker" },
                    ev(w[0].conn, "return luaserv.send(-1, 'x')"))
        local t = ev(w[0].conn, "return pcall(luaserv.send, 1, {})")
        assert.is_false(t[1])
        assert.matches("string expected", t[2])
    end)

    it("carries messages of up to 1 MiB", function()
        assert.same({ n = 1, true },
                    ev(w[0].conn, "return luaserv.send(1, 'L' .. ('x'):rep(1048575))"))
        wait_for(function()
            return run(w[0].conn, "return log:get('len:1')") == 1048576
        end, "the 1 MiB message")
        local t = ev(w[0].conn, "return pcall(luaserv.send, 1, ('x'):rep(1048577))")
        assert.is_false(t[1])
        assert.matches("message over 1048576 bytes", t[2])
    end)

    it("a full queue gives nil, 'queue full' and never blocks; nothing is lost",
    function()
        -- worker 1 busy (not reading) for a while; worker 0 sends until full
        assert(w[1].conn:send("local t = os.clock() while os.clock() - t < 1.5 " ..
                              "do end return 1\n"))
        local t = ev(w[0].conn, [[
            local msg = "Q" .. ("q"):rep(65535)
            local n, ok, err = 0, true
            while ok and n < 5000 do
                ok, err = luaserv.send(1, msg)
                if ok then n = n + 1 end
            end
            return n, ok, err]], 30)
        assert.is_nil(t[2])
        assert.are.equal("queue full", t[3])
        assert.is_true(t[1] >= 16 and t[1] < 5000, tostring(t[1]))
        assert(w[1].conn:line(30))
        wait_for(function()
            return run(w[0].conn, "return log:get('Q:1')") == t[1]
        end, t[1] .. " queued messages to arrive", 30)
        -- /metrics counts them: worker 0 sent them and met a full queue,
        -- worker 1 received them (the figures are copied twice a second)
        local function count(id, kind)
            local c = assert(socket.connect("127.0.0.1", mport))
            c:settimeout(10)
            c:send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            local all = c:receive("*a") or ""
            c:close()
            for line in all:gmatch("[^\n]+") do
                if line:find("^luaserv_worker_messages_total{") and
                   line:find('worker="' .. id .. '"', 1, true) and
                   line:find('kind="' .. kind .. '"', 1, true) then
                    return tonumber(line:match(" (%d+)$"))
                end
            end
            return -1
        end
        wait_for(function()
            return count(0, "sent") >= t[1] and count(0, "queue_full") >= 1 and
                   count(1, "received") >= t[1]
        end, "the message counts in /metrics", 10)
        -- and status, a line per worker that sent or received any
        local r = server.run({ "-p", srv.master_pidfile, APP, "status" })
        assert.are.equal(0, r.code, r.stderr)
        local sent, full = r.stdout:match(
            "\nworker 0 messages: (%d+) sent, (%d+) queue full, %d+ received\n")
        assert.is_truthy(sent, r.stdout)
        assert.is_true(tonumber(sent) >= t[1] and tonumber(full) >= 1, r.stdout)
        local got = r.stdout:match(
            "\nworker 1 messages: %d+ sent, %d+ queue full, (%d+) received\n")
        assert.is_true(tonumber(got or -1) >= t[1], r.stdout)
    end)

    it("messages for a worker being replaced go to its successor", function()
        -- the side worker (id 2) is stopped, so only its successor can read
        local old = w[2].pid
        server.kill(old, "STOP")
        local resumed = false
        finally(function() if not resumed then server.kill(old, "CONT") end end)
        assert.same({ n = 1, true }, ev(w[0].conn, [[
            local ok = true
            for i = 1, 5 do ok = ok and luaserv.send(2, "r" .. i) end
            return ok]]))
        local gen = srv:reload()
        local c = client.must_connect(srv.port)
        conns[#conns + 1] = c
        wait_for(function()
            return run(c, [[
                local n = 0
                for i = 1, 5 do n = n + (log:get("got:2:r" .. i) or 0) end
                return n]]) == 5
        end, "the successor to read the 5 messages", 30)
        server.kill(old, "CONT")
        resumed = true
        local got = ev(c, [[
            local t = {}
            for _ = 1, log:llen("from:2") do t[#t + 1] = log:lpop("from:2") end
            return t]])[1]
        local n = 0
        for _, v in ipairs(got) do
            if v:match(":r%d$") then
                n = n + 1
                assert.are.equal("0:" .. gen .. ":r" .. n, v)
            end
        end
        assert.are.equal(5, n)
        wait_for(function() return not server.alive(old) end, "the old worker to go")
    end)
end)
