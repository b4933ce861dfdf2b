-- Scale-out (issue 19): examples/cluster built for real on one machine,
-- inside the suite's private network namespace: redis-server on
-- 127.0.2.1, three luaserv hosts on 127.0.1.1-3 (two workers each, one
-- Redis stream reader per worker), HAProxy on 127.0.3.1 with health checks
-- every 500 ms (fall 2, rise 1). The clients are examples/cluster/loadgen.py
-- (python3-websockets chat clients that count every message, and an HTTP
-- loop through the session API). Fault cases: a graceful stop (the health
-- check says draining), a rolling reload under load, kill -9 of a host,
-- Redis restarted. Every process is stopped by pid in teardown.
local cjson = require "cjson"
local server = require "helpers.server"
local external = require "helpers.external"

package.path = "examples/cluster/?.lua;" .. package.path
local cluster = require "cluster"

local PY = io.open("/usr/bin/python3", "r") and "/usr/bin/python3" or "python3"

local function why_not()
    local ok, why = server.private_netns()
    if not ok then
        return "needs root in a network namespace of its own (" .. why ..
               "): the hosts bind 127.0.1.1-3"
    end
end

local skip = why_not()
local CLIENTS = 6

-- Reports, printed at the end (the README's figures come from here).
local figures = {}
local function note(fmt, ...)
    figures[#figures + 1] = string.format(fmt, ...)
end

local function summary(r)
    return string.format("sent %d, delivered %d, duplicated %d, lost %d, " ..
        "out of order %d (send errors %d, unconfirmed %d)", r.sent,
        r.delivered, r.duplicated, r.lost, r.out_of_order, r.send_errors,
        r.unconfirmed_delivered)
end

local function describe_clients(r)
    local t = {}
    for _, c in ipairs(r.clients or {}) do
        t[#t + 1] = string.format("%s hosts=%s connected=%s start=%s last=%s " ..
            "exp=%d got=%d dup=%d lost=%d missing=%s notes=%s", c.client,
            table.concat(c.hosts, ","), tostring(c.connected),
            tostring(c.start), tostring(c.last), c.expected, c.received,
            c.duplicated, c.lost, table.concat(c.missing, ","),
            table.concat(c.notes, " | "))
    end
    return table.concat(t, "\n")
end

-- Every acknowledged message reached every client exactly once, in order.
local function assert_exactly_once(r, what)
    local info = what .. ": " .. summary(r) .. "\n" .. describe_clients(r)
    assert.is_true(r.sent > 0, info)
    assert.are.equal(0, r.lost, info)
    assert.are.equal(0, r.duplicated, info)
    assert.are.equal(0, r.out_of_order, info)
    -- each client joined before the first message, so each should have
    -- every one of them
    assert.are.equal(r.sent * CLIENTS, r.delivered, info)
end

-- After "hold": wait until nothing is in flight (the acked count stopped
-- moving) and every client has every message, or give up after a while
-- (the assertions then say what is missing).
local function settle(lg)
    local prev
    lg:wait(function(r)
        local still = prev and prev.sent == r.sent and
                      prev.delivered == r.delivered
        prev = r
        return still and r.lost == 0 and r.connected == CLIENTS
    end, 30)
end

local function hosts_of(r)
    local n = {}
    for _, h in ipairs(r.hosts) do
        if h ~= cjson.null then n[h] = (n[h] or 0) + 1 end
    end
    return n
end

local function wait_sent(lg, n, timeout)
    local r, last = lg:wait(function(r) return r.sent >= n end, timeout or 30)
    assert(r, "chat clients did not get " .. n .. " messages acked: " ..
           (last and summary(last) or "?"))
    return r
end

describe("cluster of 3 luaserv hosts behind HAProxy, state in Redis", function()
    local c

    setup(function()
        if skip then return end
        assert(external.have("haproxy"), "haproxy is not installed " ..
               "(apt-get install haproxy; .ci/deps has it)")
        assert(external.have("redis-server"), "redis-server is not installed")
        assert(os.execute(PY .. " -c 'import websockets' 2>/dev/null"),
               "python3-websockets is not installed")
        c = cluster.new { luaserv = server.bin, python = PY }
        local ok, err = pcall(c.start, c)
        if not ok then
            c:teardown()
            error(err, 0)
        end
    end)

    teardown(function()
        if not c then return end
        local killed = c:teardown()
        local bad = c:bad_log_lines()
        io.stderr:write("\ncluster figures:\n  " ..
                        table.concat(figures, "\n  ") .. "\n")
        local keep = os.getenv("LUASERV_TEST_KEEP_LOGS") or #bad > 0 or
                     #killed > 0
        if keep then io.stderr:write("cluster logs kept in " .. c.dir .. "\n") end
        c:remove(keep)
        assert(#killed == 0, "had to be killed: " .. table.concat(killed, ", "))
        assert(#bad == 0, "host logs:\n" .. table.concat(bad, "\n"))
    end)

    local function it_cluster(name, fn)
        it(name, function()
            if skip then pending(skip) return end
            fn()
        end)
    end

    it_cluster("shares sessions: made through one host, read through all",
    function()
        local st, body = cluster.http(c.lb, "POST", "/sessions",
                                      '{"user":"ann"}')
        assert.are.equal(201, st, body)
        local id = body:match('"id":"(%x+)"')
        assert.truthy(id, body)
        local served = {}
        for i, h in ipairs(c.hosts) do
            local s2, b2, hd = cluster.http(h.addr, "GET", "/sessions/" .. id)
            assert.are.equal(200, s2, b2)
            assert.matches('"user":"ann"', b2)
            assert.matches('"hits":' .. i, b2)
            served[hd["x-served-by"]:match("^(h%d)/")] = true
        end
        assert.are.same({ h1 = true, h2 = true, h3 = true }, served)
        assert.are.equal(204, (cluster.http(c.lb, "DELETE", "/sessions/" .. id)))
        assert.are.equal(404, (cluster.http(c.hosts[2].addr, "GET",
                                            "/sessions/" .. id)))
        assert.are.equal(400, (cluster.http(c.lb, "POST", "/sessions", "{}")))
    end)

    it_cluster("stop -g: /health says draining, HAProxy takes the host out " ..
               "before it stops accepting, no request fails", function()
        local http = c:loadgen("http", { "--conns", "4" })
        http:wait(function(r) return r.requests >= 200 end, 30)
        local stopper = c:stop_host_async(3)
        -- the host serves on for stopDelay (2 s) and says draining
        local draining = cluster.wait_until(function()
            local st, body = cluster.http(c.hosts[3].addr, "GET", "/health",
                                          nil, 1)
            return st == 503 and body == "draining\n"
        end, 10, 0.02)
        assert.truthy(draining, "h3 never answered 503 draining")
        local down = c:wait_status(3, "DOWN", 10)
        assert.truthy(down, "HAProxy did not take h3 out")
        -- out while h3 still accepts (stopDelay): its master is alive
        assert.is_true(cluster.alive(c.hosts[3].pid),
                       "h3 was gone before HAProxy took it out")
        assert.is_true(c:reap_host(3, stopper, 30), "h3 did not stop")
        local before = http:cmd("report")
        http:wait(function(r) return r.requests >= before.requests + 200 end)
        local r = http:finish()
        note("stop -g of h3 under HTTP load (4 connections): %d requests, " ..
             "%d failed; HAProxy took h3 out %.2f s after /health first " ..
             "said draining", r.requests, r.failed, down)
        assert.are.equal(0, r.failed, table.concat(r.samples, "\n"))
        c:start_host(3)
        assert.truthy(c:wait_status(3, "UP", 10), "h3 did not come back UP")
    end)

    it_cluster("a rolling reload of the 3 hosts under load fails no " ..
               "request and loses no chat message", function()
        local chat = c:loadgen("chat", { "--clients", tostring(CLIENTS) })
        chat:wait(function(r) return r.connected == CLIENTS end, 30)
        local http = c:loadgen("http", { "--conns", "4" })
        chat:cmd("send")
        http:wait(function(r) return r.requests >= 200 end, 30)
        for i = 1, 3 do
            local code, out = c:reload_host(i)
            assert.are.equal(0, code, out)
            assert.matches("reloaded, generation 2", out)
            assert.are.equal("UP", c:status()["h" .. i])
            -- load goes on between two reloads
            local before = http:cmd("report")
            http:wait(function(r) return r.requests >= before.requests + 100 end)
        end
        -- the chat clients of the old workers were closed with 1001 and came
        -- back with ?last=
        chat:wait(function(r) return r.connected == CLIENTS end, 30)
        local sent = chat:cmd("report").sent
        wait_sent(chat, sent + 30)
        chat:cmd("hold")
        local h = http:finish()
        settle(chat)
        local r = chat:finish()
        local reconnects = 0
        for _, cl in ipairs(r.clients) do reconnects = reconnects + cl.disconnects end
        note("rolling reload of h1, h2, h3 under HTTP load (4 connections): " ..
             "%d requests, %d failed", h.requests, h.failed)
        note("chat during the rolling reload (%d clients, %d reconnections): %s",
             CLIENTS, reconnects, summary(r))
        assert.are.equal(0, h.failed, table.concat(h.samples, "\n"))
        assert.is_true(h.requests >= 500, "only " .. h.requests .. " requests")
        assert_exactly_once(r, "chat during the rolling reload")
    end)

    it_cluster("kill -9 of a host: HAProxy takes it out within its check " ..
               "interval, its clients move, every message arrives once",
    function()
        local chat = c:loadgen("chat", { "--clients", tostring(CLIENTS) })
        local r0 = chat:wait(function(r) return r.connected == CLIENTS end, 30)
        assert.truthy(r0, "chat clients did not connect")
        -- leastconn spreads them: two per host
        local on = hosts_of(r0)
        assert.truthy(on.h2, "no client on h2: " .. table.concat(r0.hosts, ","))
        local http = c:loadgen("http", { "--conns", "2" })
        chat:cmd("send")
        local sent0 = wait_sent(chat, 30).sent
        local pids = c:kill_host(2)
        local t_kill = cluster.now()
        local down = c:wait_status(2, "DOWN", 10)
        assert.truthy(down, "HAProxy did not take h2 out")
        local served_at_down = http:cmd("report").served_by.h2 or 0
        -- its clients reconnect to h1 and h3 and are replayed what they missed
        local moved = chat:wait(function(r)
            local n = hosts_of(r)
            return r.connected == CLIENTS and not n.h2
        end, 30)
        assert.truthy(moved, "the clients of h2 did not reconnect elsewhere")
        local t_moved = cluster.now() - t_kill
        local sent1 = chat:cmd("report").sent
        wait_sent(chat, sent1 + 60)
        chat:cmd("hold")
        local h = http:finish()
        settle(chat)
        local r = chat:finish()
        note("kill -9 of h2 (%d processes): HAProxy took it out after %.2f s " ..
             "(inter 500ms fall 2), its clients were all on h1/h3 after " ..
             "%.2f s; HTTP (2 connections): %d requests, %d failed, %d " ..
             "served by h2 after it was out", #pids, down, t_moved,
             h.requests, h.failed, (h.served_by.h2 or 0) - served_at_down)
        note("chat across the kill (%d clients, %d acked before it): %s",
             CLIENTS, sent0, summary(r))
        assert.is_true(down < 5, "took " .. down .. " s")
        assert.are.equal(served_at_down, h.served_by.h2 or 0,
                         "HAProxy sent requests to h2 after it was out")
        assert_exactly_once(r, "chat across kill -9 of h2")
        c:start_host(2)
        assert.truthy(c:wait_status(2, "UP", 10), "h2 did not come back UP")
    end)

    it_cluster("Redis restarted: the hosts reconnect and resume, nothing " ..
               "acked is lost", function()
        local st, body = cluster.http(c.lb, "POST", "/sessions",
                                      '{"user":"bob"}')
        assert.are.equal(201, st, body)
        local id = body:match('"id":"(%x+)"')
        local chat = c:loadgen("chat", { "--clients", tostring(CLIENTS) })
        chat:wait(function(r) return r.connected == CLIENTS end, 30)
        chat:cmd("send")
        local sent0 = wait_sent(chat, 30).sent
        assert.is_true(c:stop_redis(), "redis-server did not stop on SIGTERM")
        -- senders are told (error frames), readers back off
        local told = chat:wait(function(r) return r.send_errors > 0 end, 30)
        assert.truthy(told, "no client was told its message was not sent")
        local t_down = cluster.now()
        c:start_redis()
        local back = cluster.wait_until(function()
            local n = 0
            for _, h in ipairs(c.hosts) do
                local log = cluster.readfile(h.log) or ""
                local _, k = log:gsub("chat bus: redis is back", "")
                n = n + (k > 0 and 1 or 0)
            end
            return n == 3
        end, 30)
        assert.truthy(back, "not every host logged that Redis is back")
        local sent1 = chat:cmd("report").sent
        wait_sent(chat, sent1 + 60)
        local t_resumed = cluster.now() - t_down
        chat:cmd("hold")
        settle(chat)
        local r = chat:finish()
        note("Redis stopped and restarted (%d acked before): %s; chat " ..
             "resumed %.2f s after the restart began", sent0, summary(r),
             t_resumed)
        assert_exactly_once(r, "chat across a Redis restart")
        -- the session made before the restart survived it (append-only file)
        local s2, b2 = cluster.http(c.lb, "GET", "/sessions/" .. id)
        assert.are.equal(200, s2, b2)
        assert.matches('"user":"bob"', b2)
    end)
end)
